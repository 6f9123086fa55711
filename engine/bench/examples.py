"""Which examples a label is judged on, and how they are shown to a judge.

Positives are activating examples the labelers did *not* see (the labelers read the top
ranks 1-5; those contexts are never positives), drawn by a named sampler:

- ``quantiles`` (default, as Delphi): from the feature's ``quantile`` examples -- a uniform
  random sample of every context where it fires, kept by ``saegold score`` in 10
  activation-quantile bins -- an equal number from each bin (2 of each for 20 positives),
  so weak activations count as much as the peak;
- ``top``: the top contexts at ranks 6-25 (1-based; ``positive_ranks``), the strongest only;
- ``random``: a uniform random draw from the same activating sample, whatever the bins.

Negatives are by default the
feature's non-activating contexts from the scoring pass (examples of kind ``negative``); with
``negatives="other-features"`` they are top examples of other random features of the same
source, as the 2026 experiment did.  By default as many negatives as positives are drawn.

Every choice is seeded by the run seed and the feature's stable name (``MODEL/SOURCE`` and
index), so a seed reproduces a selection exactly, and every label of a feature (every method,
true and shuffled control) is judged on the very same examples.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from saegold.store.benchmarks import EXAMPLE_BENCHMARKS as EXAMPLE_BENCHMARKS  # re-exported for the job
from saegold.store.db import Project
from saegold.store.examples import examples as stored_examples
from saegold.store.errors import SaegoldError

from .rng import rng_for

NEGATIVE_SOURCES = ("scoring", "other-features", "hard")
# origins of model-verified negatives the score job stores besides its random ones
VERIFIED_ORIGINS = ("hard", "other")
SAMPLERS = ("quantiles", "top", "random")
DEFAULT_SAMPLER = "quantiles"
DEFAULT_N_POSITIVES = 20
LABELER_RANKS = 5          # top ranks 1-5: what the example-based labelers read
DEFAULT_POSITIVE_RANKS = (LABELER_RANKS + 1, LABELER_RANKS + DEFAULT_N_POSITIVES)
HIGHLIGHT_THRESHOLD = 0.3


@dataclass(frozen=True)
class BenchExample:
    """One example as judged: ``truth`` 1 = the feature fires on it, 0 = it does not.

    ``highlight`` holds the token positions marked in fuzzing: a positive's true highlights
    (tokens at >= threshold x the example's max activation), a negative's as many wrong ones.
    """

    example_id: int
    feature_id: int          # the feature the example belongs to (another one for other-features)
    kind: str                # 'top' | 'quantile' | 'negative'
    rank: int                # 0-based rank within its kind
    truth: int
    tokens: tuple[str, ...]
    acts: tuple[float, ...]
    highlight: tuple[int, ...] = ()
    bin: int | None = None   # activation-quantile bin of a 'quantile' example (0 = weakest)

    def text(self) -> str:
        return join_tokens(self.tokens)

    def highlighted_text(self) -> str:
        return mark_tokens(self.tokens, self.highlight)

    def record(self) -> dict:
        """The JSON-able identity of this example in a bench_scores ``details`` entry."""
        out = {"example_id": self.example_id, "feature_id": self.feature_id, "kind": self.kind,
               "rank": self.rank, "truth": self.truth}
        if self.bin is not None:
            out["bin"] = self.bin
        return out


@dataclass
class ExampleSet:
    """The examples of one feature for one run, in a seeded order (positives and negatives mixed)."""

    feature_id: int
    examples: list[BenchExample] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    # False: other features' examples not checked by a model (the target may fire on them)
    negatives_verified: bool = True

    @property
    def n_positive(self) -> int:
        return sum(e.truth for e in self.examples)

    @property
    def n_negative(self) -> int:
        return len(self.examples) - self.n_positive

    def usable(self) -> bool:
        return self.n_positive > 0 and self.n_negative > 0


BOS_TOKENS = frozenset({"<bos>", "<s>", "<|endoftext|>", "<|begin_of_text|>", "<|startoftext|>"})


def _display_tokens(tokens: tuple[str, ...] | list[str]) -> list[str]:
    """Token strings as text, one per position (so highlight positions stay valid).

    Tokens are stored exactly as given: BPE tokens carry their own spaces, SentencePiece marks
    them with ``▁``; a word-level tokenization, in which no token holds any whitespace, gets
    single spaces between tokens.  A leading beginning-of-sequence token shows as nothing."""
    toks = [t.replace("▁", " ") for t in tokens]
    start = 1 if toks and toks[0] in BOS_TOKENS else 0
    if start:
        toks[0] = ""
    if len(toks) - start > 1 and not any(ch.isspace() for t in toks for ch in t):
        toks = [t if i <= start else " " + t for i, t in enumerate(toks)]
    return toks


def join_tokens(tokens: tuple[str, ...] | list[str]) -> str:
    """Text of a token list (see :func:`_display_tokens`)."""
    return "".join(_display_tokens(tokens))


def mark_tokens(tokens: tuple[str, ...] | list[str], marked: tuple[int, ...] | list[int]) -> str:
    """Text with each run of marked tokens wrapped ``<<like this>>`` (leading spaces outside)."""
    toks = _display_tokens(tokens)
    marked_set = {i for i in marked if 0 <= i < len(toks) and toks[i]}
    out: list[str] = []
    i = 0
    while i < len(toks):
        if i not in marked_set:
            out.append(toks[i])
            i += 1
            continue
        j = i
        while j < len(toks) and j in marked_set:
            j += 1
        run = "".join(toks[i:j])
        stripped = run.lstrip(" ") or run
        out.append(run[: len(run) - len(stripped)] + "<<" + stripped + ">>")
        i = j
    return "".join(out)


def true_highlights(acts: tuple[float, ...] | list[float], threshold: float = HIGHLIGHT_THRESHOLD) -> tuple[int, ...]:
    """Token positions at or above ``threshold`` x the example's max activation (at least the max)."""
    if not acts:
        return ()
    a = np.asarray(acts, dtype=float)
    top = float(a.max())
    if top <= 0:
        return ()
    return tuple(int(i) for i in np.flatnonzero(a >= threshold * top))


def stored_sampler(selection: dict | None) -> str:
    """The sampler a stored result's positives were drawn with (results from before samplers
    existed took top ranks: ``top``)."""
    return (selection or {}).get("sampler", "top")


def parse_ranks(spec: str) -> tuple[int, int]:
    """``"6-15"`` -> (6, 15): an inclusive, 1-based range of top-example ranks."""
    try:
        lo, _, hi = spec.partition("-")
        first, last = int(lo), int(hi or lo)
    except ValueError:
        raise SaegoldError(f"--positive-ranks {spec!r}: expected FIRST-LAST, e.g. 6-15") from None
    if first < 1 or last < first:
        raise SaegoldError(f"--positive-ranks {spec!r}: ranks are 1-based and FIRST <= LAST")
    return first, last


class ExampleSelector:
    """Builds the seeded :class:`ExampleSet` of each feature for one run."""

    def __init__(self, project: Project, *, seed: int, sampler: str = DEFAULT_SAMPLER,
                 n_positives: int = DEFAULT_N_POSITIVES, positive_ranks: tuple[int, int] | None = None,
                 negatives: str = "scoring", n_negatives: int | None = None,
                 highlight_threshold: float = HIGHLIGHT_THRESHOLD):
        if negatives not in NEGATIVE_SOURCES:
            raise SaegoldError(f"--negatives {negatives!r}: expected one of {', '.join(NEGATIVE_SOURCES)}")
        if sampler not in SAMPLERS:
            raise SaegoldError(f"--sampler {sampler!r}: expected one of {', '.join(SAMPLERS)}")
        if n_positives < 1:
            raise SaegoldError("--n-positives must be at least 1")
        self.project, self.seed = project, int(seed)
        self.sampler = sampler
        if positive_ranks is not None:       # the top sampler's ranks, given: they fix the count
            n_positives = positive_ranks[1] - positive_ranks[0] + 1
        self.n_positives = n_positives
        self.positive_ranks = positive_ranks or (LABELER_RANKS + 1, LABELER_RANKS + n_positives)
        self.negatives = negatives
        self.n_negatives, self.threshold = n_negatives, highlight_threshold
        self._names: dict[int, tuple[int, str]] = {}
        self._pools: dict[int, list[int]] = {}
        self._cache: OrderedDict[int, ExampleSet] = OrderedDict()  # LRU: jobs come feature by feature

    @property
    def settings(self) -> dict:
        out = {"seed": self.seed, "sampler": self.sampler, "n_positives": self.n_positives,
               "negatives": self.negatives, "n_negatives": self.n_negatives, "highlight_threshold": self.threshold}
        if self.sampler == "top":
            out["positive_ranks"] = list(self.positive_ranks)
        return out

    def _key(self, feature_id: int) -> tuple[int, str]:
        """(source id, stable name) of a feature."""
        if feature_id not in self._names:
            row = self.project.query(
                "SELECT f.source_id, s.name, f.idx FROM features f JOIN sources s ON s.id = f.source_id "
                "WHERE f.id = ?", [feature_id])
            if not row:
                raise SaegoldError(f"feature id {feature_id}: no such feature")
            self._names[feature_id] = (row[0]["source_id"], f"{row[0]['name']}#{row[0]['idx']}")
        return self._names[feature_id]

    def for_feature(self, feature_id: int) -> ExampleSet:
        if feature_id not in self._cache:
            self._cache[feature_id] = self._build(feature_id)
            while len(self._cache) > 1024:
                self._cache.popitem(last=False)
        self._cache.move_to_end(feature_id)
        return self._cache[feature_id]

    def _rows(self, feature_id: int, kind: str, ranks: tuple[int, int] | None = None) -> list[dict]:
        rows = stored_examples(self.project, feature_id, kind, ranks=ranks)
        for r in rows:
            r["tokens"], r["acts"] = tuple(r["tokens"]), tuple(r["acts"])
        return rows

    def _positive_rows(self, feature_id: int, name: str) -> list[dict]:
        """The sampler's positives (rank order for ``top``, else bin then rank order)."""
        if self.sampler == "top":
            first, last = self.positive_ranks
            return self._rows(feature_id, "top", (first - 1, last - 1))
        seen = {tuple(r["tokens"]) for r in self._rows(feature_id, "top", (0, LABELER_RANKS - 1))}
        pool = [r for r in self._rows(feature_id, "quantile")
                if r["max_act"] is not None and r["max_act"] > 0 and r["tokens"] not in seen]
        rng = rng_for(self.seed, "positives", self.sampler, name)
        if self.sampler == "random":
            take = rng.permutation(len(pool))[: self.n_positives]
            return [pool[int(i)] for i in sorted(take)]
        # quantiles: one from each bin in turn (bins in a seeded order, each bin's examples
        # shuffled), so the bins are equally represented; a short bin leaves its turn to others.
        by_bin: dict[int, list[dict]] = {}
        for r in pool:
            by_bin.setdefault(int(r["bin"] if r["bin"] is not None else 0), []).append(r)
        queues = {b: [rows[int(i)] for i in rng.permutation(len(rows))] for b, rows in sorted(by_bin.items())}
        order = [sorted(queues)[int(i)] for i in rng.permutation(len(queues))]
        picked: list[dict] = []
        while len(picked) < self.n_positives and any(queues[b] for b in order):
            for b in order:
                if queues[b] and len(picked) < self.n_positives:
                    picked.append(queues[b].pop())
        return sorted(picked, key=lambda r: (r["bin"] or 0, r["rank"]))

    def _build(self, feature_id: int) -> ExampleSet:
        source_id, name = self._key(feature_id)
        pos_rows = self._positive_rows(feature_id, name)
        want = len(pos_rows) if self.n_negatives is None else self.n_negatives
        rng = rng_for(self.seed, "negatives", name)
        stored_negs = self._rows(feature_id, "negative")
        verified = True
        if self.negatives in ("scoring", "hard"):
            if self.negatives == "scoring":
                pool = [r for r in stored_negs if r["origin"] not in VERIFIED_ORIGINS]
            else:
                pool = [r for r in stored_negs if r["origin"] == "hard"]
            take = rng.permutation(len(pool))[: want]
            neg_rows = [pool[int(i)] for i in sorted(take)]
        elif any(r["origin"] == "other" for r in stored_negs):
            # other features' top contexts on which the model showed this feature silent
            pool = [r for r in stored_negs if r["origin"] == "other"]
            take = rng.permutation(len(pool))[: want]
            neg_rows = [pool[int(i)] for i in sorted(take)]
        else:
            verified = False
            neg_rows = self._other_feature_rows(feature_id, source_id, want, rng)
        hl_rng = rng_for(self.seed, "highlights", name)
        positives = [self._example(r, 1, true_highlights(r["acts"], self.threshold)) for r in pos_rows]
        counts = [max(1, len(p.highlight)) for p in positives] or [1]
        negatives = []
        reference = min((max(p.acts) for p in positives if p.acts), default=None)
        for r in neg_rows:
            k = counts[int(hl_rng.integers(len(counts)))]
            negatives.append(self._example(r, 0, self._wrong_highlights(r, k, hl_rng, reference)))
        items = positives + negatives
        order = rng_for(self.seed, "order", name).permutation(len(items))
        return ExampleSet(feature_id, [items[int(i)] for i in order], self.settings, verified)

    def _other_feature_rows(self, feature_id: int, source_id: int, want: int,
                            rng: np.random.Generator) -> list[dict]:
        if source_id not in self._pools:
            self._pools[source_id] = [r["feature_id"] for r in self.project.query(
                "SELECT DISTINCT e.feature_id FROM examples e JOIN features f ON f.id = e.feature_id "
                "WHERE e.kind = 'top' AND f.source_id = ? ORDER BY e.feature_id", [source_id])]
        others = [f for f in self._pools[source_id] if f != feature_id]
        if not others or want <= 0:
            return []
        # Without a model nothing proves the feature silent there; what its own stored examples
        # show it firing on is at least left out (the result is marked unverified all the same).
        fires = {r["tokens"] for kind in ("top", "quantile") for r in self._rows(feature_id, kind)
                 if r["max_act"] is not None and r["max_act"] > 0}
        # Distinct features while there are enough, then with replacement of features.
        picks = list(rng.permutation(len(others))[:want])
        while len(picks) < want:
            picks.append(int(rng.integers(len(others))))
        rows, seen = [], set()
        for i in picks:
            other = others[int(i)]
            top = self._rows(other, "top")
            fresh = [r for r in top if r["id"] not in seen and r["tokens"] not in fires]
            if not fresh:
                continue
            r = fresh[int(rng.integers(len(fresh)))]
            seen.add(r["id"])
            rows.append(r)
        return rows

    def _wrong_highlights(self, row: dict, k: int, rng: np.random.Generator,
                          reference: float | None) -> tuple[int, ...]:
        """``k`` seeded positions on tokens where the judged feature does not fire.

        A scoring-pass negative holds this feature's activations: tokens at or above
        threshold x ``reference`` (the weakest positive's max activation) are avoided.  Another
        feature's example holds that feature's activations, so any of its tokens may be picked."""
        n = len(row["tokens"])
        if n == 0:
            return ()
        allowed = list(range(1 if row["tokens"][0] in BOS_TOKENS else 0, n)) or list(range(n))
        if row["kind"] == "negative" and reference is not None and reference > 0:
            allowed = [i for i in allowed if row["acts"][i] < self.threshold * reference] or allowed
        k = min(k, len(allowed))
        return tuple(sorted(int(allowed[int(i)]) for i in rng.choice(len(allowed), size=k, replace=False)))

    @staticmethod
    def _example(row: dict, truth: int, highlight: tuple[int, ...]) -> BenchExample:
        return BenchExample(row["id"], row["feature_id"], row["kind"], row["rank"], truth,
                            row["tokens"], row["acts"], highlight,
                            row.get("bin") if row["kind"] == "quantile" else None)
