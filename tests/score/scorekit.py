"""What a score job wrote, and comparing two jobs' results (another chunking, shard or resume)."""
from __future__ import annotations

from typing import Any

from tolerance import ATOL, P_RTOL, assert_close_lists, close, ranked_lists_agree

from saegold.store.examples import examples as stored_examples


def snapshot(project) -> dict[int, dict[str, Any]]:
    """Everything a run writes, per feature index (ids differ between databases)."""
    out: dict[int, dict[str, Any]] = {}
    for r in project.query(
            "SELECT f.id, f.idx, t.input_score, t.output_score, t.category, t.continuation, f.density, "
            "f.max_act, t.input_threshold, t.output_threshold FROM features f "
            "JOIN taxonomy_scores t ON t.feature_id = f.id"):
        fid = r.pop("id")
        r["examples"] = {kind: [(e["token_ids"], e["acts"]) for e in stored_examples(project, fid, kind)]
                         for kind in ("top", "negative")}
        r["logit_tokens"] = {kind: [(t["token_id"], t["value"]) for t in project.query(
            "SELECT token_id, value FROM logit_tokens WHERE feature_id = ? AND kind = ? ORDER BY rank", [fid, kind])]
            for kind in ("promoted", "suppressed", "amplified_next")}
        out[r.pop("idx")] = r
    return out


def assert_same_results(ref: dict[int, dict[str, Any]], got: dict[int, dict[str, Any]]) -> int:
    """Two runs of one model, SAE and corpus wrote the same results; returns how many features
    needed a near-tie to agree.

    Exact: the feature set, the example contexts (tokens), density and max activation (the
    corpus pass runs the same batches of contexts through the whole SAE whatever the chunk or
    shard: the same computation) and the thresholds.  With a tolerance (``tolerance`` says why):
    what is recomputed on another set of rows: logit-lens values (the features' rows go through
    the unembedding with other rows), next-token probabilities and output scores (another batch
    of features), the examples' per-token activations (their contexts re-run in other batches).
    Derived from those: ranked token lists, the input score (argmax token of each context, lens
    membership) and the category exactly unless a near-tie explains the difference.  The
    greedy continuation and the rank in the output score are compared exactly: in the tests'
    seeded instance the top two logits at each greedy step and the best lens token's logit and
    its neighbours are >= 6.7e-4 apart, 30 times the tolerance."""
    assert ref.keys() == got.keys()
    tied = 0
    for idx, a in ref.items():
        b = got[idx]
        what = f"feature {idx}"
        for key in ("density", "max_act", "input_threshold", "output_threshold"):
            assert a[key] == b[key], (what, key, a[key], b[key])
        near = False
        for kind, (va, vb) in ((k, (a["logit_tokens"][k], b["logit_tokens"][k])) for k in a["logit_tokens"]):
            rtol, atol = (P_RTOL, 0.0) if kind == "amplified_next" else (0.0, ATOL)
            near |= ranked_lists_agree(va, vb, rtol, atol, f"{what} {kind}")
        lens = {t for t, _ in a["logit_tokens"]["promoted"]}
        for kind in ("top", "negative"):
            ea, eb = a["examples"][kind], b["examples"][kind]
            assert [t for t, _ in ea] == [t for t, _ in eb], (what, kind, "contexts differ")
            for rank, ((ids, acts_a), (_, acts_b)) in enumerate(zip(ea, eb)):
                assert_close_lists(acts_a, acts_b, 0.0, ATOL, f"{what} {kind} {rank} acts")
                # The context's argmax token decides a hit of the input score: a tie there
                # matters only between a lens token and another.
                peak = max(acts_a)
                tied_at_max = {ids[i] in lens for i, x in enumerate(acts_a) if x >= peak - 2 * ATOL}
                near |= kind == "top" and len(tied_at_max) > 1
        assert close(a["output_score"], b["output_score"], P_RTOL, 0.0), (what, a["output_score"], b["output_score"])
        assert a["continuation"] == b["continuation"], (what, a["continuation"], b["continuation"])
        if not near:
            assert a["input_score"] == b["input_score"], (what, a["input_score"], b["input_score"])
        at_threshold = near or close(a["output_score"], a["output_threshold"], P_RTOL, 0.0)
        if not at_threshold:
            assert a["category"] == b["category"], (what, a["category"], b["category"])
        tied += near
    return tied
