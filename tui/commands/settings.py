"""``saegold settings``: list, read and change the project settings."""
from __future__ import annotations

import argparse

from ..safe import inert_line

EPILOG = """\
examples:
  saegold settings                               list every setting, its value and what it does
  saegold settings get overlap                   one value, as `set` takes it (for scripts)
  saegold settings set overlap 3
  saegold settings set input_threshold 0.4       re-derives every category, says what moved
  saegold settings set label_routing '{"input": ["eleuther_acts_top5"], "output": ["output_logits"]}'
  saegold settings set llm_base_url none         back to no value
  saegold settings reset overlap                 back to the default

Values: numbers and words as typed; true/false (yes/no, on/off, 1/0); `none` for no value;
label_routing as a JSON object (a category left out gets no labels); a guidelines_path is
taken relative to the current directory, checked readable and stored absolute."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "settings", help="list, get or set the project settings (thresholds, overlap, LLM endpoint...)",
        description="List the project settings with their values, defaults and meaning; read one; or "
                    "change one. Every value is checked before it is written (one line naming the "
                    "setting and the cause otherwise, nothing changed). A change prints the old and "
                    "new value and what it did: a threshold re-derives every category and says how "
                    "many features moved between categories.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="list (or get) as JSON, for scripts")
    acts = p.add_subparsers(dest="action", metavar="ACTION")
    g = acts.add_parser("get", help="print one setting's value", description="Print one setting's value "
                        "in the form `set` takes (with --json: as JSON).")
    g.add_argument("key", metavar="KEY")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print it as JSON")
    s = acts.add_parser("set", help="check and change one setting", description="Check VALUE for KEY, "
                        "store it, re-derive what depends on it, and print the old and new value and "
                        "what changed.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("key", metavar="KEY")
    s.add_argument("value", metavar="VALUE")
    r = acts.add_parser("reset", help="return one setting to its default",
                        description="Return KEY to its default (and re-derive what depends on it).")
    r.add_argument("key", metavar="KEY")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from saegold.store import settings
    from saegold.store.db import default_path, open_project

    path = args.db or default_path()
    if args.action in ("set", "reset"):
        with open_project(path) as project:
            value = settings.DEFAULT if args.action == "reset" else settings.from_text(args.key, args.value)
            ch = settings.change(project, {args.key: value})[0]
            _print_change(settings, ch)
            if ch.key == "queue_order" and ch.new == "active":
                # The active queue draws by its sampling weights: have them current now, so
                # the first annotator's draws use them (missing or stale ones are computed).
                from saegold.engine.stats.calibration import refresh_sampling_weights

                print(f"  {inert_line(refresh_sampling_weights(project).line())}")
        return 0
    with open_project(path, readonly=True) as project:
        raw = settings.stored(project)
        cfg = settings.load(project)
    if args.action == "get":
        settings.rule(args.key)          # an unknown key is one line
        value = getattr(cfg, args.key)
        if args.json:
            from ..safe import print_json
            print_json(settings.as_json(value))
        else:
            print(inert_line(settings.as_text(value)))
        return 0
    if args.json:
        from ..safe import print_json
        print_json({k: {"value": settings.as_json(getattr(cfg, k)), "default": settings.DEFAULTS[k],
                        "changed": k in raw, "kind": settings.rule(k).kind, "group": settings.group_of(k),
                        "help": settings.help_of(k)} for k in settings.KEYS})
        return 0
    _print_list(settings, cfg, raw, path)
    return 0


def _print_change(settings, ch) -> None:
    old, new = inert_line(settings.as_text(ch.old)), inert_line(settings.as_text(ch.new))
    if not ch.changed:
        print(f"{ch.key}: {new} (unchanged)")
        return
    print(f"{ch.key}: {old} -> {new}")
    if ch.effect:
        print(f"  {inert_line(ch.effect)}")
    note = settings.environment_note(ch.key, ch.new)
    if note:
        print(f"  note: {inert_line(note)}")


def _print_list(settings, cfg, raw, path) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ..safe import inert

    t = Table(title=f"Settings of {inert_line(str(path))} (* = changed from the default)",
              title_justify="left", title_style="bold", box=None, pad_edge=False)
    t.add_column("setting", no_wrap=True)
    t.add_column("value", overflow="fold", max_width=34)
    t.add_column("what it does", overflow="fold", ratio=1)
    group = None
    for key in settings.KEYS:
        if settings.group_of(key) != group:
            group = settings.group_of(key)
            t.add_row(inert(group, "bold"), "", "")
        value = getattr(cfg, key)
        value = ("\n".join(f"{k}: {', '.join(v) or '-'}" for k, v in value.items())
                 if isinstance(value, dict) else settings.as_text(value))
        what = settings.help_of(key)
        if key in raw:
            what += f" (default: {settings.as_text(settings.rule(key).check(settings.DEFAULTS[key]))})"
        t.add_row(inert(f"  {key}" + (" *" if key in raw else "")),
                  Text("\n").join(inert(line) for line in value.split("\n")), inert(what))
    Console(highlight=False).print(t)
    print("Change one: saegold settings set KEY VALUE  (saegold settings --help for the value forms)")
