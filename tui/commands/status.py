"""``saegold status``: what the project holds and how far annotation has come."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..safe import inert, print_json

SHOW_IMPORTS = 10


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status", help="counts per table, category and label method; annotation progress",
        description="Show what the project holds: rows per table, features per source and "
                    "per category, labels per method, annotation progress per annotator "
                    "(assigned, judged, done = tier plus a verdict on every candidate), the "
                    "features held but not judged yet (leases: `saegold queue`), and "
                    "the files imported; and, once there are judgments, the stopping rule: for each "
                    "prediction-powered estimate (share of labels humans call correct per label method, "
                    "share of features per human tier; 'all' categories here, every category with --json "
                    "and in `saegold calibrate`) its 95%% CI width now and about how many more judged "
                    "features bring it to the project setting target_ci_width.",
    )
    p.add_argument("--json", action="store_true", help="print the same as JSON, for scripts")
    p.set_defaults(func=run)


def _table(title: str, *columns: str):
    from rich.table import Table

    t = Table(title=title, title_justify="left", title_style="bold")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right", overflow="fold",
                     min_width=16 if c.endswith("(UTC)") else None)
    return t


def _when(stamp: str | None) -> str:
    """``2026-11-26T10:00:01.000000Z`` -> ``2026-11-26 10:00`` (UTC)."""
    return "" if not stamp else stamp[:16].replace("T", " ")


def _n(value: object) -> str:
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _weights_line(w: dict) -> str:
    """The active queue's sampling weights: current, stale or missing, and what renews them."""
    renew = ("`saegold annotate` recomputes them in the background at start, or `saegold queue --refresh-active`")
    if w["state"] == "missing":
        return f"Active queue: sampling weights not computed yet (uniform draws until then); {renew}"
    when = _when(w["computed_at"])
    if w["state"] == "stale":
        return (f"Active queue: sampling weights stale (computed {when} UTC; judgments or results changed "
                f"since); {renew}")
    return f"Active queue: sampling weights up to date (computed {when} UTC; {w['reason']})"


def _print_stopping(console, stop: dict) -> None:
    """The stopping rule's 'all' rows: estimate, CI, width now, more judged features to the target."""
    def pct(e: dict) -> str:
        if e["value"] is None:
            return "—"
        ci = f" [{e['ci'][0]:.0%}, {e['ci'][1]:.0%}]" if e["ci"] else ""
        return f"{e['value']:.0%}{ci}"

    def more(s: dict | None) -> str:
        if not s or s["width"] is None:
            return (s or {}).get("reason") or "—"
        if s["more"] == 0 and s["reachable"]:
            return "reached"
        return f"{s['more']:,}" + ("" if s["reachable"] else " (all left; still wider)")

    t = _table(f"Stopping rule: 95% CI width now vs target {stop['target_ci_width']:g} ('all' categories; "
               "every category: --json, `saegold calibrate`)",
               "estimate", "prediction-powered [CI]", "judged", "CI width", "more judged features")
    for e in stop["labels"]:
        if e["category"] == "all" and e["n_judged"]:
            what = "correct" if e["target"] == "correct" else "correct|partly"
            width = e["stopping"]["width"] if e["stopping"] else None
            t.add_row(inert(f"{e['method']} labels {what}"), pct(e["ppi"]), _n(e["n_judged"]),
                      "—" if width is None else f"{width:.3f}", inert(more(e["stopping"])))
    for e in stop["tiers"]:
        if e["category"] == "all" and e["n_judged"]:
            width = e["stopping"]["width"] if e["stopping"] else None
            t.add_row(f"features in tier {e['tier']}", pct(e["ppi"]), _n(e["n_judged"]),
                      "—" if width is None else f"{width:.3f}", inert(more(e["stopping"])))
    if t.row_count:
        console.print(t)
        console.print(inert("More judged features: each goes to `overlap` annotators; spread over the categories "
                            "as the queue does. " + stop["rule"]), style="dim")
        if stop.get("note"):
            console.print(inert("Note: " + stop["note"] + " (`saegold calibrate`)."), style="bold")
    if stop.get("active"):
        from ..reports import active_more_text

        a_t = _table(f"Active queue: reweighted 'all' estimates, 95% CI width now vs target "
                     f"{stop['target_ci_width']:g}", "estimate", "prediction-powered [CI]", "draws used",
                     "CI width", "more draws (new features)")
        for a in stop["active"]:
            what = (f"{a['name']} labels {'correct' if a['target'] == 'correct' else 'correct|partly'}"
                    if a["kind"] == "label" else f"features in tier {a['name']}")
            width = (a["stopping"] or {}).get("width")
            a_t.add_row(inert(what), pct(a["ppi"]), _n(a["n_draws"]), "—" if width is None else f"{width:.3f}",
                        inert(active_more_text(a["stopping"])))
        console.print(a_t)
        console.print(inert(stop["active_rule"]), style="dim")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from saegold.store.db import default_path, open_project
    from saegold.store.status import not_judgeable_line, status

    with open_project(args.db or default_path(), readonly=True) as project:
        data = status(project)
        if any(a["judged"] for a in data["annotators"]):
            from saegold.engine.stats.calibration import stopping

            data["stopping"] = stopping(project)
        from saegold.store import queue as sq
        from saegold.store import settings as store_settings

        if store_settings.load(project).queue_order == "active":
            data["active_weights"] = vars(sq.active_weights_state(project))
    if args.json:
        print_json(data)
        return 0
    console = Console(highlight=False)
    console.print(inert(f"project {data['path']} (schema version {data['schema_version']})", "bold"))

    t = _table("Rows per table", "table", "rows")
    for name, n in data["tables"].items():
        t.add_row(inert(name), _n(n))
    console.print(t)

    if data["sources"]:
        t = _table("Sources", "source", "layer", "features", "with examples", "scored", "labeled",
                   "fingerprint")
        for s in data["sources"]:
            t.add_row(inert(s["name"]), _n(s["layer"]), _n(s["features"]), _n(s["with_examples"]),
                      _n(s["scored"]), _n(s["labeled"]), s["fingerprint"] or "unknown")
        console.print(t)
        line = not_judgeable_line(data["not_judgeable"]["by_source"])
        if line:
            console.print(inert(line), style="bold")

    t = _table("Features per category", "category", "features")
    for cat, n in data["categories"].items():
        t.add_row(cat, _n(n))
    console.print(t)

    if data["label_methods"]:
        t = _table("Labels per method", "method", "ok", "failed", "features", "origin")
        for m in data["label_methods"]:
            t.add_row(inert(m["method"]), _n(m["ok"]), _n(m["failed"]), _n(m["features"]),
                      inert(m["origins"] or ""))
        console.print(t)

    if data["annotators"]:
        t = _table("Annotation progress (done = tier + a verdict on every candidate)",
                   "annotator", "assigned", "judged", "done", "skipped", "flagged", "last (UTC)")
        for a in data["annotators"]:
            who = a["annotator"] + (" (lead)" if a["role"] == "lead" else "")
            t.add_row(inert(who), _n(a["assigned"]), _n(a["judged"]),
                      _n(a["done"]), _n(a["skipped"]), _n(a["flagged"]), inert(_when(a["last_at"])))
        console.print(t)
    else:
        console.print("No annotators yet.")
    leases = data["leases"]
    console.print(inert(
        f"Leases: {leases['held']:,} feature(s) held but not judged yet"
        + (f" ({', '.join(f'{a} {n}' for a, n in leases['annotators'].items())})" if leases["held"] else "")
        + (f", {leases['expired']:,} expired" if leases["expired"] else "")
        + f"; a lease idle {leases['idle_minutes']:g} min returns to the pool (`saegold queue`)"))

    weights = data.get("active_weights")
    if weights:
        console.print(inert(_weights_line(weights)))

    if data.get("stopping"):
        _print_stopping(console, data["stopping"])

    if data["imports"]:
        shown = data["imports"][-SHOW_IMPORTS:]
        t = _table(f"Imported files ({len(data['imports'])}, latest {len(shown)}; "
                   "full paths with --json)", "file", "kind", "records", "rejected", "imported (UTC)")
        for imp in shown:
            t.add_row(inert(Path(imp["path"]).name), imp["kind"], _n(imp["records"]),
                      _n(imp["rejected"]), inert(_when(imp["imported_at"])))
        console.print(t)
    return 0
