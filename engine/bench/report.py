"""The bench report: method x benchmark (and x category), with bootstrap CIs.

Groups are also split by the sampler that drew the positives (``quantiles``, ``top``,
``random``; none for steering), so results drawn differently are never pooled.
Per group: ``n`` labels with a true-label score, their mean with a 95% bootstrap CI over
labels, the chance level, the shuffled-label control's mean, the paired true-minus-shuffled
gap (per label, same examples) with its CI, the median width of one label's own 95% CI
(stored with each score), how many true-label results were judged on negatives no model
verified (``unverified``), and the judge's parse-failure rate (failed
examples / examples asked, over true and shuffled results).  Categories come from
``taxonomy_scores``; features without one are ``unscored``.  ``method_pairs`` compares two
methods on the features both labeled (e.g. baez vs eleuther_acts_top5, as in 2026).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from saegold.store.db import Project
from saegold.store.features import CATEGORIES

from . import BENCHMARKS, CHANCE, results
from .metrics import N_RESAMPLES, mean_ci

UNSCORED = "unscored"


def _summarize(group: list[dict], seed: int, n_resamples: int) -> dict[str, Any]:
    true = {r["label_id"]: r for r in group if r["control"] == "true"}
    shuf = {r["label_id"]: r for r in group if r["control"] == "shuffled"}
    true_vals = [r["value"] for r in true.values() if r["value"] is not None]
    shuf_vals = [r["value"] for r in shuf.values() if r["value"] is not None]
    gaps = [true[k]["value"] - shuf[k]["value"] for k in true.keys() & shuf.keys()
            if true[k]["value"] is not None and shuf[k]["value"] is not None]
    mean, lo, hi = mean_ci(true_vals, seed=seed, n_resamples=n_resamples)
    s_mean, s_lo, s_hi = mean_ci(shuf_vals, seed=seed, n_resamples=n_resamples)
    g_mean, g_lo, g_hi = mean_ci(gaps, seed=seed, n_resamples=n_resamples)
    widths = sorted(r["ci_high"] - r["ci_low"] for r in true.values()
                    if r.get("ci_low") is not None and r.get("ci_high") is not None)
    asked = sum(r["n"] + r["parse_failures"] for r in group)
    failed = sum(r["parse_failures"] for r in group)
    return {
        "n": len(true_vals), "mean": mean, "ci_low": lo, "ci_high": hi,
        "chance": CHANCE[group[0]["benchmark"]],
        "shuffled_n": len(shuf_vals), "shuffled_mean": s_mean, "shuffled_ci_low": s_lo, "shuffled_ci_high": s_hi,
        "gap_n": len(gaps), "gap_mean": g_mean, "gap_ci_low": g_lo, "gap_ci_high": g_hi,
        # the median width of one label's own 95% interval: how far a single score can be trusted
        "label_ci_width_median": (widths[len(widths) // 2] if len(widths) % 2 else
                                  (widths[len(widths) // 2 - 1] + widths[len(widths) // 2]) / 2) if widths else None,
        "examples_asked": asked, "parse_failures": failed,
        "parse_failure_rate": (failed / asked) if asked else None,
        "unscored": sum(1 for r in true.values() if r["value"] is None),
        "judges": sorted({r["judge_model"] for r in group if r["judge_model"]}),
        "seeds": sorted({r["seed"] for r in group if r["seed"] is not None}),
        # 'other-features (unverified)': no model checked that the feature is silent on them
        # (imports, --no-verified-negatives, results from before the check existed)
        "negatives": sorted({r["negatives"] + (" (unverified)" if r.get("negatives_verified") == 0 else "")
                             for r in group if r["negatives"]}),
        "unverified": sum(1 for r in true.values() if r.get("negatives_verified") == 0),

    }


def _order(method: str, benchmark: str, category: str | None = None) -> tuple:
    b = BENCHMARKS.index(benchmark) if benchmark in BENCHMARKS else len(BENCHMARKS)
    c = (list(CATEGORIES) + [UNSCORED]).index(category) if category in (*CATEGORIES, UNSCORED) else 99
    return (c, method, b, benchmark) if category is not None else (method, b, benchmark)


def method_pairs(rows: list[dict], seed: int, n_resamples: int) -> list[dict[str, Any]]:
    """Paired comparison of methods on the features both labeled: per benchmark and pair
    (A, B), the mean over shared features of A's true-label score minus B's, with its CI
    (a feature's labels of one method are averaged first)."""
    per: dict[tuple[str, str | None, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["control"] == "true" and r["value"] is not None:
            per[(r["benchmark"], r.get("sampler"), r["method"])][r["feature_id"]].append(r["value"])
    out = []
    for benchmark, sampler in sorted({(b, s) for b, s, _ in per}, key=lambda bs: (_order("", bs[0]), bs[1] or "")):
        methods = sorted(m for b, s, m in per if b == benchmark and s == sampler)
        for i, a in enumerate(methods):
            for b in methods[i + 1:]:
                fa, fb = per[(benchmark, sampler, a)], per[(benchmark, sampler, b)]
                shared = sorted(fa.keys() & fb.keys())
                if not shared:
                    continue
                diffs = [sum(fa[f]) / len(fa[f]) - sum(fb[f]) / len(fb[f]) for f in shared]
                mean, lo, hi = mean_ci(diffs, seed=seed, n_resamples=n_resamples)
                out.append({"benchmark": benchmark, "sampler": sampler, "method_a": a, "method_b": b, "n_features": len(shared),
                            "diff_mean": mean, "diff_ci_low": lo, "diff_ci_high": hi})
    return out


def build_report(project: Project, *, seed: int = 0, n_resamples: int = N_RESAMPLES) -> dict[str, Any]:
    """The report as JSON-able data: ``overall`` and ``by_category`` lists of rows, and
    ``method_pairs`` (paired method differences on shared features)."""
    rows = results.rows(project)
    overall: dict[tuple, list] = defaultdict(list)
    by_cat: dict[tuple, list] = defaultdict(list)
    for r in rows:
        overall[(r["method"], r["benchmark"], r["sampler"])].append(r)
        by_cat[(r["method"], r["benchmark"], r["sampler"], r["category"] or UNSCORED)].append(r)
    out_overall = [{"method": m, "benchmark": b, "sampler": s, **_summarize(g, seed, n_resamples)}
                   for (m, b, s), g in sorted(overall.items(),
                                              key=lambda kv: (*_order(kv[0][0], kv[0][1]), kv[0][2] or ""))]
    out_cat = [{"category": c, "method": m, "benchmark": b, "sampler": s, **_summarize(g, seed, n_resamples)}
               for (m, b, s, c), g in sorted(by_cat.items(),
                                             key=lambda kv: (*_order(kv[0][0], kv[0][1], kv[0][3]), kv[0][2] or ""))]
    return {"confidence": 0.95, "bootstrap_resamples": n_resamples, "bootstrap_seed": seed,
            "results": len(rows), "overall": out_overall, "by_category": out_cat,
            "method_pairs": method_pairs(rows, seed, n_resamples),
            "intruder": intruder_report(project, seed=seed, n_resamples=n_resamples)}


def intruder_report(project: Project, *, seed: int = 0, n_resamples: int = N_RESAMPLES) -> list[dict[str, Any]]:
    """The intruder benchmark per category ('all' first): features scored, mean accuracy with
    a bootstrap CI over features, chance, median width of one feature's own Wilson CI, and
    the share of rounds whose answer could not be parsed."""
    from . import intruder

    rows = intruder.rows(project)
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups["all"].append(r)
        groups[r["category"] or UNSCORED].append(r)
    out = []
    for cat in ["all", *CATEGORIES, UNSCORED]:
        g = groups.get(cat)
        if not g:
            continue
        vals = [r["value"] for r in g if r["value"] is not None]
        mean, lo, hi = mean_ci(vals, seed=seed, n_resamples=n_resamples)
        widths = sorted(r["ci_high"] - r["ci_low"] for r in g if r["ci_low"] is not None)
        asked = sum(r["n"] + r["parse_failures"] for r in g)
        failed = sum(r["parse_failures"] for r in g)
        out.append({"category": cat, "n": len(vals), "mean": mean, "ci_low": lo, "ci_high": hi,
                    "chance": sorted({r["chance"] for r in g if r["chance"] is not None}),
                    "feature_ci_width_median": widths[len(widths) // 2] if widths else None,
                    "rounds_asked": asked, "parse_failures": failed,
                    "parse_failure_rate": failed / asked if asked else None,
                    "judges": sorted({r["judge_model"] for r in g if r["judge_model"]})})
    return out
