"""Rich renderables for the agreement and calibration reports (CLI and app alike).

Every figure is shown with its CI and item count, or as a dash with the reason it is
missing; NaN never reaches the screen.  Names and other stored text pass through
:func:`tui.safe.inert`.
"""
from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from saegold.engine.stats.agreement import AgreementReport
from saegold.engine.stats.calibration import CalibrationReport, Cell, anti_predicts, predicts
from saegold.engine.stats.calibration_map import CalibrationMap
from saegold.engine.stats.resample import Estimate
from saegold.engine.stats.thresholds import ThresholdFit, decision
from saegold.store.judgments import TIERS

from .safe import inert

BAR = 30


def fmt(x: float | None, digits: int = 2, pct: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:.0%}" if pct else f"{x:.{digits}f}"


def fmt_p(p: float | None) -> str:
    return "—" if p is None else f"{p:.2g}"


def lines(items: list[str], style: str = "") -> Text:
    """Several lines of stored text, each made inert."""
    return Text("\n", style=style).join(inert(line, style) for line in items)


def est_text(e: Estimate | None, pct: bool = False, with_n: bool = False) -> Text:
    """``0.74 [0.61, 0.85]`` or a dim dash with the reason."""
    if e is None:
        return Text("—", style="dim")
    if e.value is None:
        return Text(f"— {e.reason or ''}".strip(), style="dim")
    t = Text(fmt(e.value, pct=pct), style="bold")
    if e.ci:
        t.append(f" [{fmt(e.ci[0], pct=pct)}, {fmt(e.ci[1], pct=pct)}]")
    if with_n:
        t.append(f" n={e.n_items}", style="dim")
    return t


def interval_bar(e: Estimate, lo: float = 0.0, hi: float = 1.0, chance: float = 0.5,
                 width: int = BAR, call: int | None = None) -> Text:
    """A one-line forest plot: ``├──●──┤`` on [lo, hi], with ``¦`` at chance.  Green / red /
    yellow: above / below / not shown to differ from chance -- by ``call`` (+1, -1, 0) when the
    report decides by a test, else by the CI."""
    cells = [" "] * (width + 1)
    pos = lambda v: max(0, min(width, round((v - lo) / (hi - lo) * width)))  # noqa: E731
    cells[pos(chance)] = "¦"
    if e.value is None:
        return Text("".join(cells), style="dim")
    if e.ci:
        a, b = pos(e.ci[0]), pos(e.ci[1])
        for i in range(a, b + 1):
            cells[i] = "─"
        cells[a], cells[b] = "├", "┤"
    cells[pos(e.value)] = "●"
    if call is None:
        call = 1 if e.ci and e.ci[0] > chance else -1 if e.ci and e.ci[1] < chance else 0
    style = {1: "green", -1: "red"}.get(call, "yellow")
    return Text("".join(cells), style=style)


# -- agreement -------------------------------------------------------------------------------

def agreement_renderable(rep: AgreementReport, bar: int = BAR) -> RenderableType:
    """The agreement report; ``bar`` is the width of the interval charts (narrower on a
    small terminal: the chart column never wraps or shrinks)."""
    parts: list[RenderableType] = []
    raters = ", ".join(f"{n} feature(s) by {k}" for k, n in rep.raters_per_feature.items()) or "none"
    head = Text(f"{rep.n_features_judged} features judged by {rep.n_annotators} annotator(s); {raters}.")
    if rep.settings:
        head.append(f"\n95% CIs: {rep.settings['ci_method']}, {rep.settings['n_boot']} resamples, "
                    f"seed {rep.settings['seed']}.", style="dim")
    parts.append(head)

    t = Table(title="Agreement between annotators", title_justify="left")
    for col in ("variable", "measure", "value [95% CI]", "items"):
        t.add_column(col)
    t.add_column("chart 0..1, ¦ 0.5", no_wrap=True, min_width=bar + 1)
    for var in (rep.tier, rep.verdict):
        rows = [(f"Krippendorff's α ({var.level})", var.krippendorff_alpha),
                ("percent agreement", var.percent_agreement)]
        if var.fleiss_kappa is not None:
            rows.append(("Fleiss' κ", var.fleiss_kappa))
        for name, e in rows:
            t.add_row(var.variable, name, est_text(e, pct=name == "percent agreement"), str(e.n_items),
                      interval_bar(e, width=bar))
    parts.append(t)
    notes = [e.reason for var in (rep.tier, rep.verdict)
             for e in (var.krippendorff_alpha, var.percent_agreement, var.fleiss_kappa)
             if e is not None and e.value is not None and e.reason]
    if notes:
        parts.append(Text("\n".join(sorted(set(notes))), style="dim"))

    if rep.tier.pairwise_kappa:
        pk = Table(title="Pairwise Cohen's κ (tier: unweighted; verdict: linear weights)", title_justify="left")
        for col in ("annotators", "tier κ", "tier shared", "verdict κ", "verdict shared"):
            pk.add_column(col)
        verdict_pairs = {(p.a, p.b): p for p in rep.verdict.pairwise_kappa}
        for p in rep.tier.pairwise_kappa:
            vp = verdict_pairs.get((p.a, p.b))
            pk.add_row(inert(f"{p.a} · {p.b}"), est_text(p.kappa), str(p.kappa.n_items),
                       est_text(vp.kappa if vp else None), str(vp.kappa.n_items) if vp else "0")
        parts.append(pk)

    pa = Table(title="Per annotator", title_justify="left")
    for col in ("annotator", "judged", "skipped", "flagged", "median s/feature",
                "tier agreement with rest", "verdict agreement with rest", "stands out"):
        pa.add_column(col)
    for s in rep.per_annotator:
        pa.add_row(inert(s.name), str(s.n_judged), str(s.n_skipped), str(s.n_flagged), fmt(s.median_seconds, 1),
                   est_text(s.tier_agreement_with_rest, pct=True, with_n=True),
                   est_text(s.verdict_agreement_with_rest, pct=True, with_n=True),
                   Text("\n".join(s.flags), style="bold red") if s.flags else Text("—", style="dim"))
    parts.append(pa)

    vs = rep.tier_vs_category
    cm = Table(title=f"Human tier (rows) vs automatic category (columns): {vs.n_judgments} judgments "
                     f"of {vs.n_features} features", title_justify="left")
    cm.add_column("human \\ auto")
    for v in vs.values:
        cm.add_column(v, justify="right")
    for i, (v, row) in enumerate(zip(vs.values, vs.matrix)):
        cm.add_row(v, *[Text(str(x), style="bold green" if i == j else "") for j, x in enumerate(row)])
    parts.append(cm)
    parts.append(Text.assemble("κ human vs auto: ", est_text(vs.kappa, with_n=True), "   agreement: ",
                               est_text(vs.percent_agreement, pct=True)))
    if rep.notes:
        parts.append(lines(rep.notes, style="dim"))
    return Group(*parts)


# -- calibration -----------------------------------------------------------------------------

def reliability_chart(cal: CalibrationMap, width: int = BAR) -> RenderableType:
    """Text reliability diagram: observed rate as a bar, predicted P as ``│``, per bin."""
    if cal.method is None:
        return Text(f"calibration map: {cal.reason}", style="dim")
    t = Table(title=Text.assemble(f"reliability ({cal.method}, {cal.folds}-fold CV; calibration error ",
                                  est_text(cal.cv_calibration_error), " debiased RMS)"),
              caption=f"{cal.rule}" + (f"; {cal.note}" if cal.note else ""), caption_justify="left",
              title_justify="left", show_edge=False, pad_edge=False)
    for col in ("predicted P", "n", "observed (█) vs predicted (│)", "obs", "pred"):
        t.add_column(col)
    for b in cal.bins:
        if not b.n or b.observed is None or b.mean_predicted is None:   # both are set where n > 0
            continue
        cells = ["█" if i < round(b.observed * width) else "·" for i in range(width + 1)]
        cells[min(width, round(b.mean_predicted * width))] = "│"
        t.add_row(f"{b.lo:.1f}–{b.hi:.1f}", str(b.n), Text("".join(cells), style="cyan"),
                  fmt(b.observed), fmt(b.mean_predicted))
    return t


def map_chart(cal: CalibrationMap, width: int = BAR) -> RenderableType:
    """The fitted map, score -> P(correct), as horizontal bars."""
    if cal.method is None or not cal.curve:
        return Text("")
    t = Table(title="fitted map: score → P(human says correct)", title_justify="left", show_edge=False,
              pad_edge=False)
    t.add_column("score")
    t.add_column("P(correct)")
    t.add_column("")
    for score, p in cal.curve[::2]:
        t.add_row(f"{score:.3g}", f"{p:.2f}", Text("█" * round(p * width), style="magenta"))
    return t


def _cell_row(c: Cell) -> list[RenderableType]:
    sh = c.shuffled
    return [
        inert(c.benchmark), c.category, str(c.n_labels), str(c.n_rows), fmt(c.human_correct_rate, pct=True),
        Text.assemble(est_text(c.auroc_correct), f" p={fmt_p(c.auroc_p)}") if c.auroc_p is not None
        else est_text(c.auroc_correct), est_text(c.auroc_correct_or_partly),
        Text(f"{fmt(c.spearman.value)} (p={fmt_p(c.spearman_p)})") if c.spearman.value is not None
        else Text("—", style="dim"),
        Text.assemble(f"{c.calibration.method} CE ", est_text(c.calibration.cv_calibration_error))
        if c.calibration.method
        else Text("—", style="dim"),
        Text.assemble(est_text(sh.gap), f" p={fmt_p(sh.p_value)}") if sh.gap.value is not None
        else Text(f"— n={sh.n_labels}", style="dim"),
        interval_bar(c.auroc_correct, call=1 if predicts(c) else -1 if anti_predicts(c) else 0),
    ]


def _stop_text(stop) -> Text:
    """The stopping rule's cell: width now and about how many more judged features reach the target."""
    if stop is None:
        return Text("—", style="dim")
    if stop.width is None:
        return Text("—", style="dim")
    if stop.more == 0 and stop.reachable:
        return Text(f"{stop.width:.3f}: reached", style="green")
    more = f"{stop.more:,}" + ("" if stop.reachable else " (all left; still wider)")
    return Text(f"{stop.width:.3f} → +{more}")


def ppi_renderable(rep: CalibrationReport) -> RenderableType:
    """Share of labels humans would call correct over all labelled features: prediction-powered
    estimate next to the judged-only one (engine.stats.ppi)."""
    target = rep.settings.get("target_ci_width")
    t = Table(title="Share of each method's labels humans would call correct, over all its labels "
                    "(prediction-powered, PPI, vs judged labels only; 95% CIs; 'all' stratified by category)",
              caption=rep.settings.get("rules", {}).get("prediction_powered", ""), caption_justify="left",
              title_justify="left")
    for col in ("method", "category", "verdict", "labels", "judged", "judged only [CI]",
                "PPI [CI]", "worth (judged labels)", f"CI width → +judged for {target:g}"
                if target else "CI width"):
        t.add_column(col)
    for e in rep.ppi:
        if not e.n_judged:
            continue
        t.add_row(inert(e.method), e.category, "correct" if e.target == "correct" else "correct|partly",
                  str(e.n_labels), str(e.n_judged), est_text(e.classical, pct=True),
                  est_text(e.ppi, pct=True) if e.ppi.value is not None or not e.reason
                  else Text(e.reason, style="dim"),
                  "—" if e.worth is None else f"{e.worth:.0f}", _stop_text(e.stopping),
                  style="bold" if e.category == "all" else None)
    return t


def tiers_renderable(rep: CalibrationReport) -> RenderableType:
    """Share of all features humans would put in each tier (engine.stats.ppi.tier_estimates)."""
    target = rep.settings.get("target_ci_width")
    t = Table(title="Share of all features humans would put in each tier (prediction-powered from the "
                    "automatic scores vs judged features only; 95% CIs; 'all' stratified by category)",
              caption=rep.settings.get("rules", {}).get("tier_shares", ""), caption_justify="left",
              title_justify="left")
    for col in ("human tier", "automatic category", "features", "judged", "judged only [CI]", "PPI [CI]",
                "worth (judged features)", f"CI width → +judged for {target:g}"
                if target else "CI width"):
        t.add_column(col)
    for e in rep.tiers:
        if not e.n_judged:
            continue
        t.add_row(e.tier, e.category, str(e.n_features), str(e.n_judged), est_text(e.classical, pct=True),
                  est_text(e.ppi, pct=True) if e.ppi.value is not None or not e.reason
                  else Text(e.reason, style="dim"),
                  "—" if e.worth is None else f"{e.worth:.0f}", _stop_text(e.stopping),
                  style="bold" if e.category == "all" else None)
    return t


def active_renderable(rep: CalibrationReport) -> RenderableType:
    """The 'all' estimates reweighted by the active queue's draw probabilities (engine.stats.active)."""
    from saegold.engine.stats.calibration import ACTIVE_STOP_RULE

    t = Table(title="Active queue: 'all' estimates reweighted by the recorded draw probabilities (95% CIs; "
                    "more draws to the target width)",
              caption=rep.settings.get("rules", {}).get("active_queue", "") + "; " + ACTIVE_STOP_RULE,
              caption_justify="left",
              title_justify="left")
    for col in ("estimate", "items", "draws used", "features drawn", "inverse-probability weighted [CI]",
                "prediction-powered [CI]", "λ", "more draws (new features)"):
        t.add_column(col)
    for a in rep.active:
        what = (f"{a.name} labels {'correct' if a.target == 'correct' else 'correct|partly'}"
                if a.kind == "label" else f"features in tier {a.name}")
        t.add_row(inert(what), str(a.n_items), str(a.n_draws), str(a.n_features), est_text(a.classical, pct=True),
                  est_text(a.ppi, pct=True) if a.ppi.value is not None else Text(a.reason or "—", style="dim"),
                  "—" if a.lam is None else f"{a.lam:.2f}", inert(active_more_text(a.stopping)))
    return t


def active_more_text(s) -> str:
    """An active estimate's stopping rule (engine.stats.active.ActiveStopping, or its dict) in a few words."""
    if s is None:
        return "—"
    get = s.get if isinstance(s, dict) else lambda k: getattr(s, k)
    if get("width") is None:
        return get("reason") or "—"
    if not get("reachable"):
        return "not reachable"   # why: the rule's text (ACTIVE_STOP_RULE), under the table
    if get("more_draws") == 0:
        return "reached"
    return f"{get('more_draws'):,} ({get('more_features'):,})"


def thresholds_renderable(fit: ThresholdFit) -> RenderableType:
    body = Text()
    body.append(f"current thresholds: input {fit.current[0]:.4g}, output {fit.current[1]:.4g}; "
                 f"kappa vs human tiers {fmt(fit.current_kappa)} (n={fit.n_rows} judgments, "
                 f"{fit.n_features} features)\n")
    if fit.fitted is not None:
        body.append(f"fitted thresholds:  input {fit.fitted[0]:.4g}, output {fit.fitted[1]:.4g}; "
                     f"kappa {fmt(fit.fitted_kappa)} in sample, ", style="bold")
        body.append(f"{fmt(fit.cv_kappa)} cross-validated ({fit.folds} folds over features; grid "
                     f"{'x'.join(map(str, fit.grid))})", style="bold")
        if fit.cv_fold_kappas:
            body.append(f"\nper-fold kappa: {', '.join(f'{k:.2f}' for k in fit.cv_fold_kappas)}", style="dim")
        body.append("\n" + ("change recommended" if fit.recommended else "keep the current thresholds"),
                    style="bold green" if fit.recommended else "bold")
        body.append(f": {decision(fit)}")
    if fit.reason:
        body.append(f"{chr(10) if fit.fitted is not None else ''}{fit.reason}", style="dim")
    parts: list[RenderableType] = [body]
    if fit.confusion:
        cm = Table(title="human tier (rows) vs category from fitted thresholds", title_justify="left",
                   show_edge=False)
        cm.add_column("")
        for v in TIERS:
            cm.add_column(v, justify="right")
        for i, (v, row) in enumerate(zip(TIERS, fit.confusion)):
            cm.add_row(v, *[Text(str(x), style="bold green" if i == j else "") for j, x in enumerate(row)])
        parts.append(cm)
    return Panel(Group(*parts), title="Taxonomy thresholds fitted to human tiers", title_align="left", expand=False)


def calibration_renderable(rep: CalibrationReport) -> RenderableType:
    parts: list[RenderableType] = []
    st = Table(title="Benchmark scores in the project", title_justify="left")
    for col in ("benchmark", "true-label scores", "shuffled-label scores", "unscored", "items judged",
                "unparseable answers", "label CI ± (mean)", "unverified negatives"):
        st.add_column(col)
    for s in rep.benchmarks:
        st.add_row(inert(s.benchmark), str(s.n_true_scores), str(s.n_shuffled_scores), str(s.n_unscored),
                   str(s.items_scored), str(s.parse_failures),
                   "-" if s.label_ci_halfwidth is None else f"±{s.label_ci_halfwidth:.2f}", str(s.unverified))
    parts.append(st)

    if rep.methods:
        bench_names = [b.benchmark for b in rep.benchmarks]
        mt = Table(title="Label methods as humans judge them (next to their mean benchmark scores)",
                   title_justify="left")
        for col in ("method", "labels", "verdicts", "% correct [CI]", "% correct|partly [CI]", "preferred",
                    *[f"mean {b}" for b in bench_names]):
            mt.add_column(inert(col))
        for m in rep.methods:
            mt.add_row(inert(m.method), str(m.n_labels), str(m.n_rows), est_text(m.correct, pct=True),
                       est_text(m.correct_or_partly, pct=True), str(m.preferred),
                       *[fmt(m.mean_score.get(b)) for b in bench_names])
        parts.append(mt)

    if any(e.n_judged for e in rep.ppi):
        parts.append(ppi_renderable(rep))
    if any(e.n_judged for e in rep.tiers):
        parts.append(tiers_renderable(rep))
    if rep.active:
        parts.append(active_renderable(rep))

    t = Table(title=f"Benchmarks vs human verdicts ({rep.n_verdicts} verdicts; rows = (label, annotator))",
              title_justify="left")
    for col in ("benchmark", "category", "labels", "verdicts", "% correct", "AUROC correct [CI] (perm. p > 0.5)",
                "AUROC correct|partly [CI]", "Spearman ρ (label-perm. p)", "calibration", "true−shuffled gap (sign-flip p)",
                "AUROC (0..1, ¦ = chance)"):
        t.add_column(col)
    empty = [c.benchmark for c in rep.cells if c.category == "all" and c.n_rows == 0]
    for c in rep.cells:
        if c.n_rows == 0:
            continue
        t.add_row(*_cell_row(c), style="bold" if c.category == "all" else None)
    if t.row_count:
        parts.append(t)
    if empty:
        parts.append(Text.assemble("not enough data (n=0) for ", inert(", ".join(empty)),
                                   ": no human verdict on a label that has a score from it", style="yellow"))
    for c in rep.cells:
        if c.category == "all" and c.calibration.method is not None:
            parts.append(Panel(Group(reliability_chart(c.calibration), map_chart(c.calibration)),
                               title=Text.assemble(inert(c.benchmark), ": calibration (all categories)"),
                               title_align="left", expand=False))
    parts.append(thresholds_renderable(rep.thresholds))
    findings = lines([f"• {line}" for line in rep.findings] or ["no findings: no data"])
    parts.append(Panel(findings, title="Which benchmark predicts human judgment?", title_align="left",
                       border_style="green"))
    if rep.notes:
        parts.append(lines(rep.notes, style="dim"))
    return Group(*parts)
