"""Rich ``Text`` for every part of the feature screen.

Untrusted strings (tokens, labels, continuations, notes) only ever enter a ``Text`` through
:func:`tui.safe.inert_line` / :mod:`tui.tokens` and ``Text.append`` with a plain
``str``, which never parses markup.
"""
from __future__ import annotations

import io
import math

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.style import Style
from rich.table import Table
from rich.text import Text

from saegold.store.benchmarks import BENCHMARKS
from saegold.store.examples import QUANTILE_BINS
from saegold.store.feature_view import IntruderResult, Score
from saegold.store.judgments import FeatureJudgment

from ..safe import inert_line
from ..tokens import listed, running, running_window
from . import theme
from .model import Candidate, FeatureView

SHORT = {"detection": "det", "fuzzing": "fuzz", "embedding": "emb", "steering": "steer"}


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


def fmt_act(v: float) -> str:
    """An activation in at most 6 cells, without exponents below a million (1420 and 1000,
    not 1.42e+03 or 1e+03)."""
    return f"{v:.0f}" if 100 <= abs(v) < 1e6 else f"{v:.3g}"


def fmt_prob(p: float) -> str:
    """A probability as a percentage: two significant digits below 10% (0.0123 -> 1.2%,
    4.5e-5 -> 0.0045%), whole percents above (0.42 -> 42%), never a bare 0.00 nor an
    exponent; a probability short of 1 never reads 100% (0.9996 -> 99.9%)."""
    pct = p * 100
    if pct == 0:
        return "0%"
    if pct < 1e-3:
        return "<0.001%"
    if pct < 9.95:
        return f"{pct:.2g}%"
    whole = f"{pct:.0f}"
    if whole == "100" and p < 1:
        return f"{math.floor(pct * 10) / 10:.1f}%"
    return whole + "%"


def _fit_context(toks: list[str], acts: list, mx: int, scale: float, room: int) -> Text:
    """One context cut to ``room`` cells around its max token: about two thirds of the room
    before it, the rest after; ``…`` where it is cut."""
    t = Text(no_wrap=True, overflow="crop")
    if room <= 0 or not toks:
        return t
    mx = min(max(mx, 0), len(toks) - 1)
    max_tok = toks[mx]
    body = max_tok.lstrip(" ")
    core = max_tok[: len(max_tok) - len(body)] + theme.MAX_MARK + body
    used = cell_len(core)
    lo, hi = mx, mx + 1
    before_room = max(0, (room - used) * 2 // 3)   # for tokens before it and their "…"
    acc = 0
    while lo > 0 and acc + cell_len(toks[lo - 1]) + 1 <= before_room:
        lo -= 1
        acc += cell_len(toks[lo])
    used += acc + (1 if lo > 0 else 0)
    while hi < len(toks) and used + cell_len(toks[hi]) + (1 if hi + 1 < len(toks) else 0) <= room:
        used += cell_len(toks[hi])
        hi += 1
    if hi < len(toks):
        used += 1
    while lo > 0 and used + cell_len(toks[lo - 1]) <= room:   # room left after the tail: more before
        lo -= 1
        used += cell_len(toks[lo])
    if lo > 0:
        t.append("…", theme.STYLE_DIM)
    for i in range(lo, hi):
        act = float(acts[i]) if i < len(acts) and acts[i] is not None else 0.0
        if i == mx:  # the marker goes after the token's leading spaces: " ▶cheese"
            t.append(max_tok[: len(max_tok) - len(body)])
            t.append(theme.MAX_MARK + body, theme.STYLE_MAX)
        else:
            t.append(toks[i], theme.act_style(act, scale))
    if hi < len(toks):
        t.append("…", theme.STYLE_DIM)
    t.truncate(room, overflow="ellipsis")
    return t


def _full_context(toks: list[str], acts: list, mx: int, scale: float) -> Text:
    t = Text(overflow="fold")
    for i, tok in enumerate(toks):
        if i == mx:
            body = tok.lstrip(" ")
            t.append(tok[: len(tok) - len(body)])
            t.append(theme.MAX_MARK + body, theme.STYLE_MAX)
        else:
            act = float(acts[i]) if i < len(acts) and acts[i] is not None else 0.0
            t.append(tok, theme.act_style(act, scale))
    return t


def top_maxima(view: FeatureView) -> list[float]:
    """The top examples' maxima: store.examples.LazyExamples knows them without decoding an
    example, so only the examples drawn are decoded (a screen shows a few of the 50 read)."""
    maxima = getattr(view.examples, "max_acts", None)
    return [float(e["max_act"]) for e in view.examples] if maxima is None else maxima


def top_scale(view: FeatureView) -> float:
    """The activation that takes the strongest colour: the top example's."""
    return max(top_maxima(view), default=0.0) or (view.max_act or 0.0)


class Examples:
    """The top activating examples, fitted to the room the screen gives them.

    Compact (the first screen): one line per example, its activation value first and the
    context cut around the max token to the width, as many examples as the height holds
    (``m`` shows all).  Full (``m``): every stored example with its whole context, wrapped
    beside its value, which stays on the example's first line."""

    def __init__(self, view: FeatureView, *, full: bool = False, n_max: int = 25):
        self.view, self.full, self.n_max = view, full, n_max
        maxima = top_maxima(view)
        self.scale = top_scale(view)
        self.values = [fmt_act(float(m)) for m in maxima]
        self.value_w = max((len(v) for v in self.values), default=1)
        self._tokens: list[list[str] | None] = [None] * len(view.examples)
        self._lines: dict[tuple[int, int], list[Text]] = {}

    def tokens(self, k: int) -> list[str]:
        cached = self._tokens[k]
        if cached is None:
            cached = self._tokens[k] = running([str(x) for x in self.view.examples[k]["tokens"]])
        return cached

    def count(self, height: int | None) -> int:
        n = len(self.view.examples)
        if self.full:
            return n
        if height is None:
            return min(n, 5)
        more = 1 if n > height - 1 or self.view.quantiles else 0   # the "m: ..." line
        return max(0, min(n, self.n_max, height - 1 - more))

    def _title(self, shown: int, width: int) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(f"Top activating examples ({shown} of {len(self.view.examples)})", theme.STYLE_HEAD)
        t.append("  colour: activation, ▶ strongest", theme.STYLE_DIM)
        t.truncate(width, overflow="ellipsis")
        return t

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width, exs = options.max_width, self.view.examples
        shown = self.count(options.height)
        yield self._title(shown, width)
        if not exs:
            yield Text("  no activating examples stored for this feature", theme.STYLE_DIM)
            return
        if self.full:
            grid = Table.grid(padding=(0, 1))
            grid.add_column(justify="right", no_wrap=True, style=theme.STYLE_DIM)
            grid.add_column(overflow="fold")
            for k, ex in enumerate(exs[:]):     # decoded in one go
                grid.add_row(self.values[k], _full_context(self.tokens(k), ex["acts"], ex["max_idx"], self.scale))
            yield grid
            return
        yield from self._compact(width, shown)
        if shown < len(exs) or self.view.quantiles:
            more = (f"  m: all {len(exs)} in full, examples across the activation range, all output evidence"
                    if self.view.quantiles else f"  m: all {len(exs)} with full contexts, and the full output evidence")
            yield Text(more, theme.STYLE_DIM, no_wrap=True, overflow="ellipsis")

    def _compact(self, width: int, shown: int) -> list[Text]:
        """The compact lines for this width, made once: the screen renders the examples many
        times per feature (measuring, laying out, drawing) at the same size."""
        key = (width, shown)
        lines = self._lines.get(key)
        if lines is None:
            room = width - self.value_w - 1
            drawn = self.view.examples[:shown]     # decoded in one go (store.examples.LazyExamples)
            lines = []
            for k, ex in enumerate(drawn):
                line = Text(no_wrap=True, overflow="crop")
                line.append(self.values[k].rjust(self.value_w) + " ", theme.STYLE_DIM)
                # Only the tokens that can reach the line are made ready for display: nearly
                # every token takes a cell at least (twice the room leaves space for empty ones).
                raw, mx = ex["tokens"], min(max(ex["max_idx"], 0), max(len(ex["tokens"]) - 1, 0))
                lo, hi = max(0, mx - 2 * room), min(len(raw), mx + 2 * room + 1)
                cached = self._tokens[k]
                toks = running_window(raw, lo, hi) if cached is None else cached[lo:hi]
                line.append_text(_fit_context(toks, ex["acts"][lo:hi], mx - lo, self.scale, room))
                lines.append(line)
            self._lines[key] = lines
        return [line.copy() for line in lines]

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)


class QuantileExamples:
    """Examples across the whole activation range (under "more"): the feature's ``quantile``
    examples, bin by bin from the strongest, each bin headed by its place and the activation
    interval of its examples (``bin 3/10  0.8–1.2``, as Anthropic's feature browser shows
    its intervals), so an annotator sees where the feature fires weakly too.  Evidence, not
    a score: shown in blind mode too.  Colours on the top examples' scale."""

    def __init__(self, view: FeatureView, scale: float):
        self.view, self.scale = view, scale

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        exs = self.view.quantiles
        title = Text("Examples across the activation range", theme.STYLE_HEAD, no_wrap=True, overflow="ellipsis")
        if not exs:
            yield title
            yield Text("  none stored for this feature (saegold score keeps 50 by default, in 10 bins)",
                       theme.STYLE_DIM)
            return
        bins = getattr(exs, "bins", None)
        if bins is None:
            bins = [e.get("bin") for e in exs]
        maxima = getattr(exs, "max_acts", None)
        if maxima is None:
            maxima = [float(e["max_act"]) for e in exs]
        n_bins = max([QUANTILE_BINS] + [b + 1 for b in bins if b is not None])
        title.append(f"  {len(exs)} examples in {n_bins} activation bins, strongest first", theme.STYLE_DIM)
        yield title
        groups: dict[int, list[int]] = {}
        for k, b in enumerate(bins):
            groups.setdefault(-1 if b is None else b, []).append(k)
        decoded = exs[:]          # decoded in one go (store.examples.LazyExamples)
        for b in sorted(groups, reverse=True):
            ks = sorted(groups[b], key=lambda k: -maxima[k])
            lo, hi = min(maxima[k] for k in ks), max(maxima[k] for k in ks)
            head = Text("unbinned" if b < 0 else f"bin {b + 1}/{n_bins}", theme.STYLE_HEAD)
            head.append(f"  {fmt_act(lo)}–{fmt_act(hi)}", theme.STYLE_DIM)
            yield head
            grid = Table.grid(padding=(0, 1))
            grid.add_column(justify="right", no_wrap=True, style=theme.STYLE_DIM)
            grid.add_column(overflow="fold")
            for k in ks:
                ex = decoded[k]
                toks = running([str(x) for x in ex["tokens"]])
                grid.add_row(fmt_act(maxima[k]), _full_context(toks, ex["acts"], ex["max_idx"], self.scale))
            yield grid

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)


def _token_units(items: list[tuple[str, float | None]], *, prob: bool, n: int = 10) -> list[Text]:
    """One unit per token (with its probability): a line breaks between units, never inside."""
    units = []
    shown = items[:n]
    for tok, (_, val) in zip(listed([x[0] for x in shown]), shown):
        u = Text(tok, theme.STYLE_TOKEN)
        if prob and val is not None:
            u.append(f" {fmt_prob(val)}", theme.STYLE_DIM)
        units.append(u)
    return units


def _pack(units: list[Text], room: int) -> list[Text]:
    """Units packed greedily into lines of ``room`` cells, one space apart."""
    lines: list[Text] = [Text()]
    for u in units:
        if lines[-1].cell_len and lines[-1].cell_len + 1 + u.cell_len > room:
            lines.append(Text())
        if lines[-1].cell_len:
            lines[-1].append(" ")
        lines[-1].append_text(u)
    return lines


def shorten_end(text: str, cells: int) -> str:
    """``text`` cut to ``cells`` terminal cells, an ellipsis at the end."""
    if cell_len(text) <= cells:
        return text
    if cells <= 0:
        return ""
    out = ""
    for ch in text:
        if cell_len(out + ch) > cells - 1:
            break
        out += ch
    return out + "…"


def _kl_tag(row) -> str:
    """``KL 0.49`` of a steered result, with ``<`` and the target where it fell short."""
    return f"KL {row.kl:.2f}" if row.reached else f"KL {row.kl:.2f}<{row.target_kl:g}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _steered_first(view: FeatureView) -> tuple[str, str, str | None] | None:
    """(KL tag, steered text, clean text) of the first prompt at the strongest target."""
    if not view.steering:
        return None
    row = view.steering[-1]
    first = row.continuations[0] if row.continuations else None
    if first is None:
        return None
    clean = view.clean.get(first["prompt"])
    return (_kl_tag(row) + " ", inert_line(_one_line(first["text"])),
            inert_line(_one_line(clean)) if clean is not None else None)


def steered_compact(view: FeatureView, room: int) -> Text | None:
    """The steered continuation of the first prompt at the strongest target, next to the
    clean one, in ``room`` cells: ``KL 0.31<0.5 castle castle…  clean the plain…``.  The
    steered text gets three fifths of what is left after the KL, the clean text the rest."""
    got = _steered_first(view)
    if got is None:
        return None
    tag, steered, clean = got
    left = max(0, room - cell_len(tag))
    if clean is None:
        s_cells, c_cells = left, 0
    else:
        c_room = max(0, left - len("  clean "))
        s_cells = min(cell_len(steered), max(c_room * 3 // 5, c_room - cell_len(clean)))
        c_cells = c_room - s_cells
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(tag, theme.STYLE_DIM)
    t.append(shorten_end(steered, s_cells))
    if clean is not None and c_cells > 0:
        t.append("  clean ", theme.STYLE_DIM)
        t.append(shorten_end(clean, c_cells), theme.STYLE_DIM)
    return t


def steered_pair(view: FeatureView, room: int) -> list[Text]:
    """The same two texts on two lines of ``room`` cells each (where a line has room to
    spare): steered, then clean."""
    got = _steered_first(view)
    if got is None:
        return []
    tag, steered, clean = got
    out = [Text(tag, theme.STYLE_DIM) + Text(shorten_end(steered, room - cell_len(tag)))]
    if clean is not None:
        pad = "clean".ljust(cell_len(tag) - 1) + " "
        out.append(Text(pad, theme.STYLE_DIM) + Text(shorten_end(clean, room - cell_len(pad)), theme.STYLE_DIM))
    return out


def steering_block(view: FeatureView, width: int) -> list[Text]:
    """Every prompt at every target, the clean continuation first (``m``), each text wrapped
    under itself.  Evidence, not a score: shown in blind mode too."""
    if not view.steering:
        return []

    def hang(prefix: str, text: str, style: str | Style = "") -> list[Text]:
        room = max(8, width - cell_len(prefix))
        body = Text(text, style)
        lines = list(body.wrap(_CONSOLE, room, overflow="fold")) or [Text()]
        out = []
        for k, part in enumerate(lines):
            line = Text((prefix if k == 0 else " " * cell_len(prefix)), theme.STYLE_DIM)
            line.append_text(part)
            out.append(line)
        return out

    out = hang("", "steered continuations: alpha·W_dec added at every position, at a KL(clean‖steered) target",
               theme.STYLE_DIM)
    tag_w = max([len("clean")] + [len(_kl_tag(r)) for r in view.steering])
    prompts = [c["prompt"] for c in view.steering[0].continuations]
    for prompt in prompts:
        out += hang("▸ ", inert_line(prompt), theme.STYLE_TOKEN)
        if prompt in view.clean:
            out += hang(f"  {'clean':<{tag_w}} ", inert_line(_one_line(view.clean[prompt])), theme.STYLE_DIM)
        for row in view.steering:
            text = next((c["text"] for c in row.continuations if c["prompt"] == prompt), None)
            if text is not None:
                out += hang(f"  {_kl_tag(row):<{tag_w}} ", inert_line(_one_line(text)))
    if any(not r.reached for r in view.steering):
        out += hang("", "KL a<b: the target b was out of reach; shown at the closest KL a", theme.STYLE_DIM)
    return out


def continuation(view: FeatureView) -> str | None:
    """The amplified continuation of the neutral prompt (None where not scored)."""
    return view.taxonomy.continuation if view.taxonomy is not None else None


def missing_parts(view: FeatureView) -> list[str]:
    """The kinds of output evidence this feature has none of."""
    have = {"logit-lens tokens": bool(view.promoted or view.suppressed),
            "amplified next tokens": bool(view.amplified_next),
            "continuation": continuation(view) is not None,
            "steered continuations": bool(view.steering)}
    return [k for k, v in have.items() if not v]


def missing_output(view: FeatureView, missing: list[str] | None = None, lead: str = "none") -> str:
    """What output evidence is missing and why, and what `saegold score` would need: the
    model and SAE that the feature's source names, written into that source."""
    missing = missing_parts(view) if missing is None else missing
    origins = getattr(view.examples, "origins", None)   # store.examples.LazyExamples: no decoding
    if origins is None:
        origins = [e.get("origin") for e in view.examples]
    imported = any((o or "") == "neuronpedia" for o in origins)
    why = ("this feature came from Neuronpedia without them" if imported
           else "no model has been run on this feature")
    what = ", ".join(missing[:-1]) + (" or " if len(missing) > 1 else "") + missing[-1]
    model = inert_line(view.model_id) if view.model_id else "MODEL"
    sae = inert_line(view.sae_id) if view.sae_id else "the SAE"
    return (f"{lead}: {why}: no {what}. "
            f"`saegold score --model {model} --sae RELEASE:SAE_ID --source {inert_line(view.source)}` "
            f"computes them with the model {model} and the SAE {sae} (in sae-lens form) that the source names.")


class Evidence:
    """The output evidence: what the feature makes the model say.  Sections in the order
    that decides a tier: promoted tokens, amplified next tokens with their probabilities,
    the amplified continuation, the steered continuation (where steering ran), then the
    suppressed tokens.  Compact: one line per section, all but the suppressed tokens; full:
    every section wrapped, and every steering prompt at every target; fitted (beside the
    examples): the fullest of full, rows (steering on two lines) and compact that fits."""

    LABEL_W = 11

    def __init__(self, view: FeatureView, *, full: bool = False, fit: bool = False):
        """``full``: everything (under "more").  ``fit``: the fullest form that fits the
        height it is given (beside the examples); otherwise compact (below them)."""
        self.view, self.full, self.fit = view, full, fit

    def rows(self, room: int) -> list[tuple[str, list[Text] | Text, bool]]:
        """(label, token units or one text, compact?) per section."""
        v = self.view
        pending = Text("— (needs a model run: saegold score)", theme.STYLE_DIM)
        cont = continuation(v)
        rows: list[tuple[str, list[Text] | Text, bool]] = [
            ("promotes", _token_units(v.promoted, prob=False) if v.promoted else pending, True),
            ("amplified→", _token_units(v.amplified_next, prob=True) if v.amplified_next else pending, True),
            ("continues", Text(inert_line(cont)) if cont is not None else pending, True),
        ]
        steered = steered_compact(v, room)
        if steered is not None:
            rows.append(("steered", steered, True))
        elif self.full and not v.steering:   # said under "more" only: no clutter on the first screen
            rows.append(("steered", Text("— (none stored: saegold score steers unless --no-steering)",
                                         theme.STYLE_DIM), False))
        rows.append(("suppresses", _token_units(v.suppressed, prob=False) if v.suppressed else pending, False))
        return rows

    def empty(self) -> bool:
        v = self.view
        return not (v.promoted or v.suppressed or v.amplified_next or continuation(v) or v.steering)

    def _lines(self, width: int, form: str) -> list[Text]:
        """The sections as lines: a label column, then the value.  ``compact``: one line per
        section, cut; ``rows``: every section wrapped under itself, steering on its one line;
        ``full``: as ``rows`` with every steering prompt at every target below."""
        compact = form == "compact"
        room = max(1, width - self.LABEL_W - 1)
        out: list[Text] = []
        for label, value, in_compact in self.rows(room):
            if compact and not in_compact:
                continue
            if form == "full" and label == "steered" and self.view.steering:
                continue   # every prompt and target below
            if isinstance(value, list):
                parts = [Text(" ").join(value)] if compact else _pack(value, room)
            elif label == "steered":   # fitted to the room already: one line, or two
                parts = [value] if compact else (steered_pair(self.view, room) or [value])
            else:
                parts = [value] if compact else list(value.wrap(_CONSOLE, room, overflow="fold"))
            for k, part in enumerate(parts):
                line = Text(no_wrap=True, overflow="ellipsis")
                line.append((label if k == 0 else "").ljust(self.LABEL_W) + " ", theme.STYLE_DIM)
                part = part.copy()
                part.truncate(room, overflow="ellipsis")
                line.append_text(part)
                out.append(line)
        if form == "full":
            out.extend(steering_block(self.view, width))
            missing = missing_parts(self.view)
            if self.full and set(missing) - {"steered continuations"}:
                # partial evidence (an import with logit-lens tokens only, say): what score adds
                note = Text(missing_output(self.view, missing, lead="missing"), theme.STYLE_DIM)
                out.extend(note.wrap(_CONSOLE, width, overflow="fold"))
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width, height = options.max_width, options.height
        title = Text("Output evidence", theme.STYLE_HEAD, no_wrap=True, overflow="ellipsis")
        if self.empty():
            yield title
            yield Text(missing_output(self.view), theme.STYLE_DIM)
            return
        if title.cell_len + len(SUBTITLE) <= width:
            title.append(SUBTITLE, theme.STYLE_DIM)
        title.truncate(width, overflow="ellipsis")
        yield title
        if self.full:
            yield from self._lines(width, "full")
            return
        # The first screen: the fullest form that fits the height it is given (none: compact).
        for form in ("full", "rows") if self.fit and height is not None else ():
            lines = self._lines(width, form)
            if height is not None and len(lines) <= height - 1:
                yield from lines
                return
        yield from self._lines(width, "compact")

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)


_CONSOLE = Console(width=200, color_system=None, file=io.StringIO())
SUBTITLE = "  what the feature makes the model say"


def _value(score: Score | None) -> float | None:
    return None if score is None else score.value


def score_ci(score: Score | IntruderResult | None) -> str:
    """``0.62 (0.41–0.80)``: a score and its stored 95% interval (``0.62`` where none is
    stored, ``—`` where nothing could be scored)."""
    if score is None or score.value is None:
        return "—"
    out = _fmt(score.value, 2)
    if score.ci_low is not None and score.ci_high is not None:
        out += f" ({_fmt(score.ci_low, 2)}–{_fmt(score.ci_high, 2)})"
    return out


def _bench(c: Candidate) -> list[tuple[str, Text]]:
    """``det 0.62 (0.41–0.80) · fuzz 0.55 (0.33–0.75) · emb 0.7  (shuffled 0.5 0.51 0.49)``:
    the true label's benchmark scores with their 95% intervals, then the shuffled-label
    controls in the same order; as (separator, unit) pairs that a line may break between."""
    if not c.bench:
        return [("", Text("no benchmark scores", theme.STYLE_DIM))]
    names = [b for b in BENCHMARKS if b in c.bench] + sorted(set(c.bench) - set(BENCHMARKS))
    units = [("" if k == 0 else " · ", Text(f"{SHORT.get(b, inert_line(b))} {score_ci(c.bench[b].get('true'))}",
                                             theme.STYLE_DIM))
             for k, b in enumerate(names)]
    if any("shuffled" in c.bench[b] for b in names):
        units.append(("  ", Text("(shuffled " + " ".join(_fmt(_value(c.bench[b].get("shuffled")), 2) for b in names)
                                 + ")", theme.STYLE_DIM)))
    return units


REVEAL_INDENT = 6


def _reveal(c: Candidate, width: int | None) -> Text:
    """The method and the scores of a candidate, under it: broken between units (never
    inside one) into lines of ``width`` cells, each indented under the label."""
    units = [("", Text(inert_line(c.method), theme.STYLE_KEY))] + [
        ("  " if k == 0 else sep, u) for k, (sep, u) in enumerate(_bench(c))]
    t = Text(" " * REVEAL_INDENT)
    used = REVEAL_INDENT
    for sep, unit in units:
        if width is not None and used > REVEAL_INDENT and used + len(sep) + unit.cell_len > width:
            t.append("\n" + " " * REVEAL_INDENT)
            used, sep = REVEAL_INDENT, sep.lstrip(" ·")
        t.append(sep, theme.STYLE_DIM)
        t.append_text(unit)
        used += len(sep) + unit.cell_len
    return t


def candidates(session, width: int | None = None) -> Text:
    """The candidate labels; revealed, each with its method and scores under it (fitted to
    ``width`` cells when given)."""
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
        t.append(f"{verdict or '·':<8}", theme.VERDICT_STYLE.get(verdict or "", theme.STYLE_DIM))
        if j and j.preference == c.uuid:
            t.append("★ ", theme.STYLE_KEY)
        t.append(inert_line(c.text))
        t.append("\n")
        if session.revealed:
            t.append_text(_reveal(c, width))
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
        t.append("Predicted category: hidden until you give the tier and every verdict.", theme.STYLE_DIM)
        return t
    tax = v.taxonomy
    t.append("Predicted ", theme.STYLE_HEAD)
    if tax is None or tax.category is None:
        t.append("— (not scored)", theme.STYLE_DIM)
        return t
    t.append(tax.category, theme.CATEGORY_STYLE.get(tax.category, theme.STYLE_HEAD))
    i, o = tax.input_score, tax.output_score
    ti, to = tax.input_threshold, tax.output_threshold
    rel = lambda v, th: "?" if v is None or th is None else ("≥" if v >= th else "<")  # noqa: E731
    t.append(f"  input score {_fmt(i)} {rel(i, ti)} {_fmt(ti)}, output score {_fmt(o)} {rel(o, to)} {_fmt(to)}",
             theme.STYLE_DIM)
    if v.intruder is not None:   # per feature, no label: how well a judge picks out an intruder
        chance = f", chance {_fmt(v.intruder.chance, 2)}" if v.intruder.chance is not None else ""
        t.append(f"  intruder {score_ci(v.intruder)}{chance}", theme.STYLE_DIM)
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
            t.append(f"{verdict or '·'} ", theme.VERDICT_STYLE.get(verdict or "", theme.STYLE_DIM))
        if j.gold_label:
            t.append(" label: ", theme.STYLE_DIM)
            t.append(inert_line(j.gold_label))
        for what, text in [("flag", f) for f in j.flags] + [("note", n) for n in j.notes]:
            # A flag (something is wrong with the feature) is not a free note: say which.
            t.append(f"\n    {what}: ", theme.STYLE_ERROR if what == "flag" else theme.STYLE_DIM)
            t.append(inert_line(text))
        t.append("\n")
    return t
