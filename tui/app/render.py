"""Rich ``Text`` for every part of the feature screen.

Untrusted strings (tokens, labels, continuations, notes) only ever enter a ``Text`` through
:func:`tui.safe.inert_line` / :func:`tui.safe.token_text` and ``Text.append`` with a plain
``str``, which never parses markup.
"""
from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

from store.judgments import FeatureJudgment

from ..safe import inert_line, token_text
from . import theme
from .model import Candidate, FeatureView

BENCHMARKS = ("detection", "fuzzing", "embedding", "steering")
SHORT = {"detection": "det", "fuzzing": "fuzz", "embedding": "emb", "steering": "steer"}
CONTEXT_BEFORE, CONTEXT_AFTER = 24, 8


def _fmt(v: float | None, digits: int = 3) -> str:
    return "—" if v is None else f"{v:.{digits}g}"


def density_text(d: float | None) -> str:
    return "density ?" if d is None else f"density {d * 100:.3g}%"


def shorten_middle(text: str, cells: int) -> str:
    """``text`` cut to ``cells`` terminal cells with an ellipsis in the middle, so both ends
    (a model's name and an SAE's id, say) stay readable."""
    if cell_len(text) <= cells:
        return text
    if cells <= 1:
        return "…"[:cells]
    keep = cells - 1
    head, tail = text[: (keep + 1) // 2], text[len(text) - keep // 2:]
    while cell_len(head) + cell_len(tail) + 1 > cells:   # wide characters take two cells
        if cell_len(head) >= cell_len(tail) and head:
            head = head[:-1]
        else:
            tail = tail[1:]
    return head + "…" + tail


class Header:
    """The header line.  The annotator's name and the source go last; when the line is too
    long for the terminal they are shortened in the middle (the source keeps at least
    ``MIN_SOURCE`` cells) instead of being cut off."""

    MIN_SOURCE, MIN_NAME = 12, 6

    def __init__(self, fixed: Text, name: str, source: str | None):
        self.fixed, self.name, self.source = fixed, name, source

    @property
    def plain(self) -> str:
        return self.fixed.plain + self.name + (f"  {self.source}" if self.source else "")

    def _fit(self, room: int) -> tuple[str, str | None]:
        name, src = self.name, self.source
        if src is None:
            return shorten_middle(name, max(room, 0)), None
        n, m = cell_len(name), cell_len(src)
        if n + 2 + m <= room:
            return name, src
        src_room = max(min(m, self.MIN_SOURCE), room - 2 - n)
        name_room = room - 2 - src_room
        if name_room < min(n, self.MIN_NAME):
            name_room = min(n, self.MIN_NAME)
            src_room = room - 2 - name_room
        if src_room < 4:
            return shorten_middle(name, max(room, 0)), None
        return shorten_middle(name, name_room), shorten_middle(src, src_room)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        name, src = self._fit(width - self.fixed.cell_len)
        t = self.fixed.copy()
        t.append(name, theme.STYLE_DIM)
        if src:
            t.append("  ")
            t.append(src, theme.STYLE_DIM)
        t.no_wrap, t.overflow = True, "ellipsis"
        t.truncate(width, overflow="ellipsis")
        yield t

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)


def header(session) -> Header:
    v = session.view
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("saegold ", theme.STYLE_HEAD)
    if session.lead:
        t.append("[review] ", theme.STYLE_ERROR)
    if v is not None:
        t.append("#", theme.STYLE_HEAD)
        t.append(str(v.idx), theme.STYLE_HEAD)
        t.append(f"  {density_text(v.density)}")
    rate = session.rate_per_hour()
    skipped = session.skipped_count
    t.append(f"  done {session.done_count}/{session.assigned_count}"
             + (f" ({skipped} skipped)" if skipped else ""))
    # Where this feature sits in the queue, and the pace, in words (a bare "(at 43)" and
    # "—/h" meant nothing to a newcomer).  The pace appears after the first minute.
    t.append("  not in your queue" if session.pos is None else f"  queue position {session.pos + 1}",
             theme.STYLE_DIM)
    if rate is not None:
        t.append(f"  {rate:.0f} done per hour", theme.STYLE_DIM)
    t.append("  ")
    return Header(t, inert_line(session.annotator), inert_line(v.source) if v is not None else None)


def example_line(ex: dict, scale: float, *, full: bool) -> Text:
    tokens, acts, mx = ex["tokens"], ex["acts"], ex["max_idx"]
    lo, hi = (0, len(tokens)) if full else (max(0, mx - CONTEXT_BEFORE), min(len(tokens), mx + CONTEXT_AFTER + 1))
    t = Text()
    t.append(f"{ex['max_act']:>6.3g} ", theme.STYLE_DIM)
    if lo > 0:
        t.append("…", theme.STYLE_DIM)
    for i in range(lo, hi):
        tok = token_text(str(tokens[i]))
        act = float(acts[i]) if i < len(acts) and acts[i] is not None else 0.0
        if i == mx:  # the marker goes after the token's leading spaces: " ▶cheese"
            body = tok.lstrip(" ")
            t.append(tok[: len(tok) - len(body)])
            t.append(theme.MAX_MARK + body, theme.STYLE_MAX)
        else:
            t.append(tok, theme.act_style(act, scale))
    if hi < len(tokens):
        t.append("…", theme.STYLE_DIM)
    return t


def examples(view: FeatureView, *, expanded: bool, n_default: int = 5) -> Text:
    t = Text()
    shown = view.examples if expanded else view.examples[:n_default]
    t.append(f"Top activating examples ({len(shown)} of {len(view.examples)}", theme.STYLE_HEAD)
    t.append(")  colour = activation, ▶ = max token\n", theme.STYLE_DIM)
    if not view.examples:
        t.append("  no activating examples stored for this feature\n", theme.STYLE_DIM)
        return t
    scale = max((float(e["max_act"]) for e in view.examples), default=0.0) or (view.max_act or 0.0)
    for ex in shown:
        t.append_text(example_line(ex, scale, full=expanded))
        t.append("\n")
    if not expanded and len(view.examples) > len(shown):
        t.append(f"  m: {len(view.examples) - len(shown)} more, full contexts\n", theme.STYLE_DIM)
    return t


def _token_list(t: Text, items: list[tuple[str, float | None]], *, prob: bool, n: int = 10) -> None:
    for i, (tok, val) in enumerate(items[:n]):
        if i:
            t.append(" ")
        t.append(token_text(tok).replace(" ", "␣"), theme.STYLE_TOKEN)
        if prob and val is not None:
            t.append(f" {val:.2f}", theme.STYLE_DIM)


STEER_CELLS = (22, 16)   # cells of steered and clean text on the compact line (fits 80 columns)


def shorten_end(text: str, cells: int) -> str:
    """``text`` cut to ``cells`` terminal cells, an ellipsis at the end."""
    if cell_len(text) <= cells:
        return text
    out = ""
    for ch in text:
        if cell_len(out + ch) > cells - 1:
            break
        out += ch
    return out + "…"


def _kl_tag(row) -> str:
    """``KL 0.49`` of a steered result, with ``<`` and the target where it fell short."""
    return f"KL {row.kl:.2f}" if row.reached else f"KL {row.kl:.2f}<{row.target_kl:g}"


def steering_lines(view: FeatureView, t: Text, *, expanded: bool) -> None:
    """Steered continuations next to the clean ones: one line for the first prompt at the
    strongest target (``m`` shows every prompt at every target).  Evidence, not a score:
    shown in blind mode too."""
    if not view.steering:
        return
    if not expanded:
        row = view.steering[-1]
        first = row.continuations[0] if row.continuations else None
        if first is None:
            return
        t.append(f"  steered    {_kl_tag(row)} ", theme.STYLE_DIM)
        t.append(inert_line(shorten_end(first["text"].strip(), STEER_CELLS[0])))
        clean = view.clean.get(first["prompt"])
        if clean is not None:
            t.append("  clean ", theme.STYLE_DIM)
            t.append(inert_line(shorten_end(clean.strip(), STEER_CELLS[1])), theme.STYLE_DIM)
        t.append("\n")
        return
    t.append("  steered continuations: alpha·W_dec added at every position, at a KL(clean‖steered) target\n",
             theme.STYLE_DIM)
    prompts = [c["prompt"] for c in view.steering[0].continuations]
    for prompt in prompts:
        t.append("  ▸ ", theme.STYLE_DIM)
        t.append(inert_line(prompt), theme.STYLE_TOKEN)
        t.append("\n")
        if prompt in view.clean:
            t.append("    clean       ", theme.STYLE_DIM)
            t.append(inert_line(view.clean[prompt].strip()), theme.STYLE_DIM)
            t.append("\n")
        for row in view.steering:
            text = next((c["text"] for c in row.continuations if c["prompt"] == prompt), None)
            if text is None:
                continue
            t.append(f"    {_kl_tag(row):<11} ", theme.STYLE_DIM)
            t.append(inert_line(text.strip()))
            t.append("\n")
    if any(not r.reached for r in view.steering):
        t.append("  KL a<b: the target b was out of reach; shown at the closest KL a\n", theme.STYLE_DIM)


def evidence(view: FeatureView, *, expanded: bool = False) -> Text:
    t = Text()
    t.append("Output evidence\n", theme.STYLE_HEAD)
    tax = view.taxonomy or {}
    if not (view.promoted or view.suppressed or view.amplified_next or tax.get("continuation") or view.steering):
        t.append("  not scored yet (run `saegold score`)\n", theme.STYLE_DIM)
        return t
    for name, items, prob in (("promotes   ", view.promoted, False), ("suppresses ", view.suppressed, False),
                              ("amplified→ ", view.amplified_next, True)):
        t.append(f"  {name}", theme.STYLE_DIM)
        if items:
            _token_list(t, items, prob=prob)
        else:
            t.append("—", theme.STYLE_DIM)
        t.append("\n")
    if tax.get("continuation") is not None:
        t.append("  continues  ", theme.STYLE_DIM)
        t.append(inert_line(tax["continuation"]))
        t.append("\n")
    steering_lines(view, t, expanded=expanded)
    return t


def _bench(c: Candidate) -> Text:
    """``det 0.62 · fuzz 0.55 · emb 0.7  (shuffled 0.5 0.51 0.49)``: the true label's
    benchmark scores, then the shuffled-label controls in the same order."""
    t = Text()
    if not c.bench:
        t.append("no benchmark scores", theme.STYLE_DIM)
        return t
    names = [b for b in BENCHMARKS if b in c.bench] + sorted(set(c.bench) - set(BENCHMARKS))
    t.append(" · ".join(f"{SHORT.get(b, inert_line(b))} {_fmt(c.bench[b].get('true'), 2)}" for b in names),
             theme.STYLE_DIM)
    if any("shuffled" in c.bench[b] for b in names):
        t.append("  (shuffled " + " ".join(_fmt(c.bench[b].get("shuffled"), 2) for b in names) + ")",
                 theme.STYLE_DIM)
    return t


def candidates(session) -> Text:
    v = session.view
    j: FeatureJudgment | None = session.judgment
    t = Text()
    t.append("Candidate labels", theme.STYLE_HEAD)
    if session.blind and not session.revealed:
        t.append("  (methods & scores hidden until you finish)", theme.STYLE_DIM)
    t.append("\n")
    if v is None or not v.candidates:
        t.append("  none for this feature: judge the tier (and write your own label with e)\n", theme.STYLE_DIM)
        return t
    verdicts = j.verdicts if j else {}
    for i, c in enumerate(v.candidates):
        sel = i == session.selected
        t.append("▸ " if sel else "  ", theme.STYLE_KEY)
        t.append(f" {c.letter} ", theme.STYLE_SELECTED if sel else theme.STYLE_HEAD)
        t.append(" ")
        verdict = verdicts.get(c.uuid)
        t.append(f"{verdict or '·':<8}", theme.VERDICT_STYLE.get(verdict, theme.STYLE_DIM))
        if j and j.preference == c.uuid:
            t.append("★ ", theme.STYLE_KEY)
        t.append(inert_line(c.text))
        t.append("\n")
        if session.revealed:
            t.append("      ")
            t.append(inert_line(c.method), theme.STYLE_KEY)
            t.append("  ")
            t.append_text(_bench(c))
            t.append("\n")
    return t


def judgment(session) -> Text:
    j: FeatureJudgment | None = session.judgment
    v = session.view
    t = Text()
    t.append("Tier ", theme.STYLE_DIM)
    if j and j.tier:
        t.append(j.tier, theme.CATEGORY_STYLE[j.tier])
        t.append(f" (conf {j.confidence})" if j.confidence else " (conf ?)", theme.STYLE_DIM)
    else:
        t.append("?", theme.STYLE_ERROR)
        if session.pending_confidence:
            t.append(f" (conf {session.pending_confidence} pending)", theme.STYLE_DIM)
    n = len(v.candidates) if v else 0
    got = sum(1 for c in (v.candidates if v else []) if j and c.uuid in j.verdicts)
    t.append(f"  verdicts {got}/{n}", theme.STYLE_DIM)
    if j and j.preference:
        pref = "neither" if j.preference == "neither" else (
            v.candidate(j.preference).letter if v and v.candidate(j.preference) else "?")
        t.append(f"  prefers {pref}", theme.STYLE_DIM)
    if j and j.gold_label:
        t.append("  own label: ", theme.STYLE_DIM)
        t.append(inert_line(j.gold_label))
    if j and j.skipped:
        t.append("  skipped", theme.STYLE_ERROR)
    if j and j.flags:
        t.append(f"  flagged×{len(j.flags)}", theme.STYLE_ERROR)
    if j and j.notes:
        t.append(f"  notes×{len(j.notes)}", theme.STYLE_DIM)
    if session.state.done:
        t.append("  ✓ DONE", theme.STYLE_SAVED)
    return t


def machine(session) -> Text:
    """The machine's view of the feature: hidden while blind, then revealed."""
    v = session.view
    t = Text()
    if v is None:
        return t
    if not session.revealed:
        t.append("Predicted category: hidden until you give the tier and every verdict.\n", theme.STYLE_DIM)
        return t
    tax = v.taxonomy
    t.append("Predicted ", theme.STYLE_HEAD)
    if not tax or tax.get("category") is None:
        t.append("— (not scored)\n", theme.STYLE_DIM)
        return t
    t.append(tax["category"], theme.CATEGORY_STYLE.get(tax["category"], theme.STYLE_HEAD))
    i, o = tax.get("input_score"), tax.get("output_score")
    ti, to = tax.get("input_threshold"), tax.get("output_threshold")
    rel = lambda v, th: "?" if v is None or th is None else ("≥" if v >= th else "<")  # noqa: E731
    t.append(f"  input score {_fmt(i)} {rel(i, ti)} {_fmt(ti)}, output score {_fmt(o)} {rel(o, to)} {_fmt(to)}\n",
             theme.STYLE_DIM)
    return t


def others(session) -> Text:
    """What each annotator said (lead review only)."""
    t = Text()
    v = session.view
    rows = session.others()
    if not session.lead or v is None:
        return t
    t.append("Annotators' judgments\n", theme.STYLE_HEAD)
    if not rows:
        t.append("  none\n", theme.STYLE_DIM)
    for j in rows:
        t.append(f"  {inert_line(j.annotator):<12} ")
        t.append(j.tier or "?", theme.CATEGORY_STYLE.get(j.tier or "", theme.STYLE_DIM))
        t.append(f" ({j.confidence or '?'})  ")
        for c in v.candidates:
            verdict = j.verdicts.get(c.uuid)
            t.append(f"{c.letter}:")
            t.append(f"{verdict or '·'} ", theme.VERDICT_STYLE.get(verdict, theme.STYLE_DIM))
        if j.gold_label:
            t.append(" label: ", theme.STYLE_DIM)
            t.append(inert_line(j.gold_label))
        for what, text in [("flag", f) for f in j.flags] + [("note", n) for n in j.notes]:
            # A flag (something is wrong with the feature) is not a free note: say which.
            t.append(f"\n    {what}: ", theme.STYLE_ERROR if what == "flag" else theme.STYLE_DIM)
            t.append(inert_line(text))
        t.append("\n")
    return t
