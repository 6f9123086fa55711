"""A self-contained HTML report (plotly.js embedded inline, so it works offline)."""
from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from saegold.store.export import check_output_path
from saegold.store.judgments import TIERS

from . import thresholds
from .agreement import AgreementReport
from .calibration import CHANCE, CalibrationReport
from .disputes import Dispute
from .resample import Estimate

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f3f3f3} td.l,th.l{text-align:left}
.dim{color:#888} li{margin:.3em 0} h2{margin-top:2em}
details{margin:.4em 0;border-left:3px solid #ddd;padding-left:.6em} summary{cursor:pointer}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _est(e: Estimate | None, pct: bool = False) -> str:
    if e is None:
        return '<span class="dim">—</span>'
    if e.value is None:
        return f'<span class="dim">— {_e(e.reason or "")}</span>'
    f = (lambda x: f"{x:.0%}") if pct else (lambda x: f"{x:.2f}")
    ci = f" [{f(e.ci[0])}, {f(e.ci[1])}]" if e.ci else ""
    return f"<b>{f(e.value)}</b>{ci} <span class='dim'>n={e.n_items}</span>"


def _ce(e: Estimate | None) -> str:
    if e is None or e.value is None:
        return "—"
    return f"{e.value:.3f}" + (f" [{e.ci[0]:.3f}, {e.ci[1]:.3f}]" if e.ci else "")


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th class='l'>{_e(h)}</th>" if i == 0 else f"<th>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td class='l'>{c}</td>" if i == 0 else f"<td>{c}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _auroc_figure(rep: CalibrationReport) -> go.Figure:
    fig = go.Figure()
    cells = [c for c in rep.cells if c.auroc_correct.value is not None]
    for kind, attr in (("correct", "auroc_correct"), ("correct or partly", "auroc_correct_or_partly")):
        pts = [(_e(f"{c.benchmark} · {c.category}"), getattr(c, attr)) for c in cells if getattr(c, attr).value is not None]
        fig.add_trace(go.Scatter(
            x=[e.value for _, e in pts], y=[n for n, _ in pts], mode="markers", name=f"positive: {kind}",
            error_x=dict(type="data", symmetric=False,
                         array=[(e.ci[1] - e.value) if e.ci else 0 for _, e in pts],
                         arrayminus=[(e.value - e.ci[0]) if e.ci else 0 for _, e in pts])))
    fig.add_vline(x=CHANCE, line_dash="dash", annotation_text="chance")
    fig.update_layout(title="AUROC of each benchmark for human verdicts (95% bootstrap CI)",
                      xaxis=dict(range=[0, 1], title="AUROC"), height=220 + 28 * max(1, len(cells)))
    return fig


def _reliability_figure(rep: CalibrationReport) -> go.Figure | None:
    cells = [c for c in rep.cells if c.category == "all" and c.calibration.method is not None]
    if not cells:
        return None
    fig = make_subplots(rows=1, cols=len(cells), subplot_titles=[
        f"{_e(c.benchmark)}: {c.calibration.method}, CV calibration error {_ce(c.calibration.cv_calibration_error)}"
        for c in cells])
    for i, c in enumerate(cells, start=1):
        bins = [b for b in c.calibration.bins if b.n]
        # The n behind each point: marker area proportional to n, and "n=..." written next to it,
        # so a bin of 2 verdicts does not read like one of 46.
        biggest = max(b.n for b in bins) if bins else 1
        fig.add_trace(go.Scatter(x=[b.mean_predicted for b in bins], y=[b.observed for b in bins],
                                 mode="markers+lines+text", name=f"{_e(c.benchmark)} out-of-fold",
                                 text=[f"n={b.n}" for b in bins], cliponaxis=False,
                                 textposition=["bottom center" if b.observed is not None and b.observed > 0.85 else "top center"
                                               for b in bins],
                                 marker=dict(size=[6 + 22 * (b.n / biggest) ** 0.5 for b in bins],
                                             line=dict(width=1, color="white")),
                                 hovertemplate="predicted %{x:.2f}, observed %{y:.2f}, %{text}<extra></extra>"),
                      row=1, col=i)
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"),
                                 showlegend=False), row=1, col=i)
        fig.update_xaxes(title_text="predicted P(correct)", range=[0, 1], row=1, col=i)
        fig.update_yaxes(title_text="observed share correct", range=[0, 1], row=1, col=i)
    notes = sorted({c.calibration.note for c in cells if c.calibration.note})
    fig.update_layout(title="Reliability diagrams (cross-validated; calibration error: debiased binned RMS, "
                            "95% CI over labels; marker area and label: verdicts in the bin)<br><sup>" + _e("; ".join([cells[0].calibration.rule, *notes]))
                            + "</sup>", height=460)
    return fig


def _map_figure(rep: CalibrationReport) -> go.Figure | None:
    cells = [c for c in rep.cells if c.category == "all" and c.calibration.curve]
    if not cells:
        return None
    fig = go.Figure()
    for c in cells:
        fig.add_trace(go.Scatter(x=[p[0] for p in c.calibration.curve], y=[p[1] for p in c.calibration.curve],
                                 mode="lines", name=f"{_e(c.benchmark)} ({c.calibration.method})"))
    fig.update_layout(title="Calibration maps: benchmark score → P(human says correct)",
                      xaxis_title="benchmark score", yaxis=dict(range=[0, 1], title="P(correct)"), height=420)
    return fig


def _shuffled_figure(rep: CalibrationReport) -> go.Figure | None:
    cells = [c for c in rep.cells if c.category == "all" and c.shuffled.mean_true is not None]
    if not cells:
        return None
    names = [_e(c.benchmark) for c in cells]
    fig = go.Figure([
        go.Bar(name="true label", x=names, y=[c.shuffled.mean_true for c in cells]),
        go.Bar(name="shuffled label", x=names, y=[c.shuffled.mean_shuffled for c in cells]),
        go.Bar(name="human: share correct", x=names, y=[c.human_correct_rate or 0 for c in cells]),
    ])
    fig.add_hline(y=CHANCE, line_dash="dash", annotation_text="chance")
    fig.update_layout(barmode="group", title="True vs shuffled labels, next to the human verdict rate",
                      yaxis=dict(range=[0, 1]), height=420)
    return fig


def _confusion_figure(matrix: list[list[int]], title: str, cols: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=matrix, x=list(TIERS), y=list(TIERS), colorscale="Blues",
                               text=matrix, texttemplate="%{text}"))
    fig.update_layout(title=title, xaxis_title=cols, yaxis=dict(title="human tier", autorange="reversed"),
                      height=420)
    return fig


def _disputes_section(items: list[Dispute]) -> str:
    """Drill-down: one collapsible entry per disputed or flagged feature, with every
    annotator's tier and verdict on each candidate label (all text escaped)."""
    if not items:
        return "<h2>Disagreements and flags</h2><p>No feature has annotators who disagree, and none was flagged.</p>"
    parts = [f"<h2>Disagreements and flags ({len(items)} feature(s))</h2><p class='dim'>Features where two "
             "annotators gave different tiers or different verdicts on one candidate label, or that "
             "someone flagged. Open one to see each annotator's judgment.</p>"]
    for d in items:
        letters = {c.label_uuid: chr(ord("A") + i) if i < 26 else str(i) for i, c in enumerate(d.candidates)}
        head = ["annotator", "tier", *[f"{letters[c.label_uuid]}: {c.method}" for c in d.candidates],
                "flags and notes"]
        rows = []
        for v in d.views:
            who = _e(v.annotator) + (" <span class='dim'>(lead's adjudication)</span>" if v.is_adjudication else "")
            tier = "—" if v.tier is None else _e(v.tier) + ("" if v.confidence is None else f" ({v.confidence})")
            marks = [f"flag: {f}" if f else "flag" for f in v.flags] + [f"note: {n}" for n in v.notes]
            rows.append([who, tier, *[_e(v.verdicts.get(c.label_uuid, "—")) for c in d.candidates],
                         "<br>".join(_e(m) for m in marks) or "—"])
        labels = "".join(f"<li><b>{letters[c.label_uuid]}</b> ({_e(c.method)}): {_e(c.text or '(no text)')}</li>"
                         for c in d.candidates)
        parts.append(f"<details><summary><b>{_e(d.source)} #{d.feature}</b> "
                     f"<span class='dim'>({_e(d.category or 'unscored')})</span>: {_e('; '.join(d.reasons))}"
                     f"</summary><ul>{labels}</ul>{_table(head, rows)}</details>")
    return "".join(parts)


def render(calibration: CalibrationReport | None, agreement: AgreementReport | None = None,
           title: str = "saegold report", disputes: list[Dispute] | None = None) -> str:
    """The report as one HTML document with plotly.js inline."""
    figs: list[go.Figure] = []
    sections: list[str] = []
    if agreement is not None:
        rows = []
        for var in (agreement.tier, agreement.verdict):
            rows.append([f"{var.variable} α ({var.level})", _est(var.krippendorff_alpha)])
            rows.append([f"{var.variable} percent agreement", _est(var.percent_agreement, pct=True)])
        per = [[_e(s.name), str(s.n_judged), "—" if s.median_seconds is None else f"{s.median_seconds:.1f}",
                _est(s.tier_agreement_with_rest, pct=True), _e("; ".join(s.flags)) or "—"]
               for s in agreement.per_annotator]
        sections.append("<h2>Agreement between annotators</h2>" + _table(["measure", "value [95% CI]"], rows)
                        + _table(["annotator", "judged", "median s", "tier agreement with rest", "stands out"], per)
                        + f"<p>Human tier vs automatic category: κ {_est(agreement.tier_vs_category.kappa)}</p>")
        figs.append(_confusion_figure(agreement.tier_vs_category.matrix, "Human tier vs automatic category",
                                      "automatic category"))
    if calibration is not None:
        items = "".join(f"<li>{_e(f)}</li>" for f in calibration.findings)
        sections.append(f"<h2>Which benchmark predicts human judgment?</h2><ul>{items}</ul>")
        rows = [[_e(f"{c.benchmark} · {c.category}"), str(c.n_labels), str(c.n_rows),
                 "—" if c.human_correct_rate is None else f"{c.human_correct_rate:.0%}",
                 _est(c.auroc_correct) + ("" if c.auroc_p is None else f" p={c.auroc_p:.2g}"),
                 _est(c.auroc_correct_or_partly),
                 "—" if c.spearman.value is None else
                 f"{c.spearman.value:.2f} (p={'—' if c.spearman_p is None else f'{c.spearman_p:.2g}'})",
                 _e(c.calibration.method or c.calibration.reason or "—"),
                 _est(c.shuffled.gap) + ("" if c.shuffled.p_value is None else f" p={c.shuffled.p_value:.2g}"),
                 "—" if c.label_ci_halfwidth is None else f"±{c.label_ci_halfwidth:.2f}"
                 + ("" if c.reliability is None else f" ({c.reliability:.2f})"),
                 str(c.unverified)]
                for c in calibration.cells if c.category == "all" or c.n_rows]
        sections.append(_table(["benchmark · category", "labels", "verdicts", "% correct",
                                "AUROC correct (one-sided label-permutation p of AUROC > 0.5)",
                                "AUROC correct|partly", "Spearman ρ (label-permutation p)", "calibration map",
                                "true−shuffled gap (one-sided sign-flip p)",
                                "label CI ± (reliability)", "unverified negatives"], rows))
        ppi_rows = [[_e(e.method), _e(e.category), "correct" if e.target == "correct" else "correct or partly",
                     str(e.n_labels), str(e.n_judged), _est(e.classical, pct=True), _est(e.ppi, pct=True) if e.ppi.value is not None
                     else _e(e.reason or "—"), "—" if e.worth is None else f"{e.worth:.0f}",
                     _e(e.stopping.text() if e.stopping else "—")]
                    for e in calibration.ppi if e.n_judged]
        rules = calibration.settings.get("rules", {})
        target = calibration.settings.get("target_ci_width")
        stop_col = f"stopping rule (target 95% CI width {target:g})" if target else "stopping rule"
        if ppi_rows:
            sections.append("<h2>Share of labels humans would call correct, over all labels</h2>"
                            f"<p>{_e(rules.get('prediction_powered', ''))}</p>"
                            + _table(["method", "category", "verdict", "labels", "judged",
                                      "judged labels alone [95% CI]", "prediction-powered [95% CI]",
                                      "worth (judged labels)", stop_col], ppi_rows))
        tier_rows = [[_e(e.tier), _e(e.category), str(e.n_features), str(e.n_judged), _est(e.classical, pct=True),
                      _est(e.ppi, pct=True) if e.ppi.value is not None else _e(e.reason or "—"),
                      "—" if e.worth is None else f"{e.worth:.0f}", _e(e.stopping.text() if e.stopping else "—")]
                     for e in calibration.tiers if e.n_judged]
        if tier_rows:
            sections.append("<h2>Share of features humans would put in each tier, over all features</h2>"
                            f"<p>{_e(rules.get('tier_shares', ''))}</p><p>{_e(rules.get('stopping', ''))}</p>"
                            + _table(["human tier", "automatic category", "features", "judged",
                                      "judged features alone [95% CI]", "prediction-powered [95% CI]",
                                      "worth (judged features)", stop_col], tier_rows))
        if calibration.active:
            act_rows = [[_e(f"{a.name} labels {a.target}" if a.kind == "label" else f"features in tier {a.name}"),
                         str(a.n_items), str(a.n_draws), str(a.n_features), _est(a.classical, pct=True),
                         _est(a.ppi, pct=True) if a.ppi.value is not None else _e(a.reason or "—"),
                         _e(_active_more(a.stopping))]
                        for a in calibration.active]
            from .calibration import ACTIVE_STOP_RULE

            sections.append("<h2>Active queue: estimates reweighted by the draw probabilities</h2>"
                            f"<p>{_e(rules.get('active_queue', ''))}</p><p>{_e(ACTIVE_STOP_RULE)}</p>"
                            + _table(["estimate", "items", "draws used", "features drawn",
                                      "inverse-probability weighted [95% CI]", "prediction-powered [95% CI]",
                                      "more draws to the target width (new features)"],
                                     act_rows))
        if calibration.methods:
            names = [b.benchmark for b in calibration.benchmarks]
            sections.append("<h3>Label methods as humans judge them</h3>" + _table(
                ["method", "labels", "verdicts", "% correct", "% correct|partly", "preferred",
                 *[f"mean {n}" for n in names]],
                [[_e(m.method), str(m.n_labels), str(m.n_rows), _est(m.correct, pct=True),
                  _est(m.correct_or_partly, pct=True), str(m.preferred),
                  *["—" if m.mean_score.get(n) is None else f"{m.mean_score[n]:.2f}" for n in names]]
                 for m in calibration.methods]))
        figs.append(_auroc_figure(calibration))
        figs.extend(f for f in (_reliability_figure(calibration), _map_figure(calibration),
                                _shuffled_figure(calibration)) if f is not None)
        fit = calibration.thresholds
        fitted = ("—" if fit.fitted is None else
                  f"input {fit.fitted[0]:.4g}, output {fit.fitted[1]:.4g}; CV κ "
                  f"{'—' if fit.cv_kappa is None else f'{fit.cv_kappa:.2f}'}")
        verdict = ("" if fit.fitted is None else
                   f"<br><b>{'change recommended' if fit.recommended else 'keep the current thresholds'}</b>: "
                   f"{_e(thresholds.decision(fit))}")
        sections.append(f"<h2>Taxonomy thresholds</h2><p>current: input {fit.current[0]:.4g}, output "
                        f"{fit.current[1]:.4g}; κ {'—' if fit.current_kappa is None else f'{fit.current_kappa:.2f}'}"
                        f"<br>fitted: {_e(fitted)}{verdict}<br><span class='dim'>{_e(fit.reason or '')}</span></p>")
        if fit.confusion:
            figs.append(_confusion_figure(fit.confusion, "Human tier vs category from fitted thresholds",
                                          "fitted category"))
    if disputes is not None:
        sections.append(_disputes_section(disputes))
    plots = "".join(f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs))
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>{''.join(sections)}{plots}</body></html>")


def _active_more(s) -> str:
    """An active estimate's stopping rule (engine.stats.active.ActiveStopping) in a few words."""
    if s is None or s.width is None:
        return "—" if s is None else (s.reason or "—")
    if not s.reachable:
        return "not reachable"
    return "reached" if s.more_draws == 0 else f"{s.more_draws:,} ({s.more_features:,})"


def write(path: str | Path, calibration: CalibrationReport | None, agreement: AgreementReport | None = None,
          title: str = "saegold report", disputes: list[Dispute] | None = None) -> Path:
    path = check_output_path(path, "--html", "the HTML report")
    path.write_text(render(calibration, agreement, title, disputes), encoding="utf-8")
    return path
