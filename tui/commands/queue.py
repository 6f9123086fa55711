"""``saegold queue``: the features annotators hold without having judged them yet (leases),
and releasing them."""
from __future__ import annotations

import argparse
from collections import Counter


from saegold.store.errors import SaegoldError

from ..safe import inert, inert_line, print_json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "queue", help="list the features annotators hold but have not judged (leases); release them",
        description="The app hands each annotator only a few features ahead (the one on screen "
                    "and the next ones). Such a hold is a lease: the app renews it while the "
                    "annotator works and releases it when they quit; one idle longer than the "
                    "project setting lease_idle_minutes (default 30) expires and returns to the "
                    "pool at the next top-up. This lists the leases per annotator with their "
                    "age and expiry. Features an annotator has judged (any event: a tier, a "
                    "verdict, a skip, a note...) stay theirs and are never released.",
    )
    p.add_argument("--release", metavar="NAME",
                   help="release every lease of annotator NAME now (a running app takes a "
                        "feature back when NAME judges it, if it still has room)")
    p.add_argument("--release-expired", action="store_true",
                   help="release every lease idle longer than lease_idle_minutes now")
    p.add_argument("--refresh-active", action="store_true",
                   help="recompute the active queue's sampling weights (queue_order = active): how much a "
                        "human verdict on each feature would shrink the widest prediction-powered interval; "
                        "(they are also recomputed automatically when missing or stale -- judgments, labels or "
                        "results changed since -- by `saegold annotate` in the background, `calibrate`, and "
                        "`settings set queue_order active`; without weights the draws are uniform)")
    p.add_argument("--if-stale", action="store_true",
                   help="with --refresh-active: only when the weights are missing or stale (what "
                        "`saegold annotate` runs in the background)")
    p.add_argument("--json", action="store_true", help="print the leases (after any release) as JSON")
    p.set_defaults(func=run)


def _age(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``4000`` -> ``1h06m``."""
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def run(args: argparse.Namespace) -> int:
    from saegold.store import queue as sq          # here, not at the top: `saegold --help` stays light
    from rich.console import Console
    from rich.table import Table

    from saegold.store.db import default_path, open_project

    if args.if_stale and not args.refresh_active:
        raise SaegoldError("--if-stale: it goes with --refresh-active")
    with open_project(args.db or default_path()) as project:
        released: dict[str, object] = {}   # for --json: what this run released
        said: list[str] = []
        if args.release is not None:
            name = args.release.strip()
            if project.scalar("SELECT 1 FROM annotators WHERE name = ?", [name]) is None:
                raise SaegoldError(f"--release {name!r}: no annotator of that name in this project")
            n = sq.release(project, name)
            released.update(annotator=name, of_annotator=n)
            said.append(f"released {n} lease(s) of {name}")
        if args.release_expired:
            n = released["expired"] = sq.release_expired(project)
            said.append(f"released {n} expired lease(s)")
        if args.refresh_active:
            from saegold.engine.stats.calibration import refresh_sampling_weights

            done = refresh_sampling_weights(project, force=not args.if_stale)
            released["active_weights"] = n = done.n
            released["active_weights_refresh"] = vars(done) | {"line": done.line()}
            said.append((f"active queue: weights of {n} feature(s) refreshed; {done.why}" if done.refreshed
                         else done.line())
                        + ("" if sq.settings.load(project).queue_order == "active"
                           else " (queue_order is stratified: `saegold settings set queue_order active` uses them)"))
        limit = sq.idle_limit(project)
        held = sq.leases(project)
    if args.json:
        print_json({"idle_minutes": limit.total_seconds() / 60, "released": released,
                    "leases": [vars(lease) for lease in held]})
        return 0
    console = Console(highlight=False)
    for line in said:
        console.print(inert(line))
    minutes = f"{limit.total_seconds() / 60:g}"
    if not held:
        console.print(inert(f"no leases: no annotator holds a feature they have not judged "
                            f"(leases expire after {minutes} min idle)"))
        return 0
    per = Counter(lease.annotator for lease in held)
    expired = Counter(lease.annotator for lease in held if lease.expired)
    t = Table(title=f"Leases (features held, not judged yet; expire after {minutes} min idle)",
              title_justify="left", title_style="bold")
    t.add_column("annotator", overflow="fold")
    t.add_column("feature", overflow="fold")
    for col in ("held for", "idle", "expires in"):
        t.add_column(col, justify="right", no_wrap=True)
    for lease in held:
        t.add_row(inert(lease.annotator), inert(f"{lease.source} #{lease.idx}"),
                  _age(lease.held_s), _age(lease.idle_s),
                  "expired" if lease.expired else _age(limit.total_seconds() - lease.idle_s))
    console.print(t)
    summary = ", ".join(f"{inert_line(a)} {n}" + (f" ({expired[a]} expired)" if expired[a] else "")
                        for a, n in sorted(per.items()))
    console.print(inert(f"{len(held)} lease(s): {summary}"))
    return 0
