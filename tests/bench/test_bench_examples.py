"""Example selection, highlighting and answer parsing (no LLM)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from saegold.engine.bench.examples import ExampleSelector, join_tokens, mark_tokens, parse_ranks, true_highlights
from saegold.engine.bench.prompts import batches, judge_messages, parse_answer
from saegold.store.errors import SaegoldError


def _ids(es):
    return [(e.example_id, e.truth, e.highlight) for e in es.examples]


def test_top_sampler_is_held_out_and_balanced(bench_project):
    fid = bench_project.scalar("SELECT id FROM features WHERE idx = 3")
    es = ExampleSelector(bench_project, seed=0, sampler="top").for_feature(fid)
    pos = [e for e in es.examples if e.truth == 1]
    neg = [e for e in es.examples if e.truth == 0]
    assert sorted(e.rank for e in pos) == list(range(5, 25))          # 1-based ranks 6-25
    assert all(e.kind == "top" and e.feature_id == fid for e in pos)
    assert len(neg) == len(pos) and all(e.kind == "negative" and e.feature_id == fid for e in neg)
    assert es.usable()
    # Positives and negatives are interleaved by the seeded shuffle, not in blocks.
    truths = [e.truth for e in es.examples]
    assert truths != sorted(truths) and truths != sorted(truths, reverse=True)


def test_seed_reproduces_and_changes_selection(bench_project):
    fid = bench_project.scalar("SELECT id FROM features WHERE idx = 5")
    a = ExampleSelector(bench_project, seed=7).for_feature(fid)
    b = ExampleSelector(bench_project, seed=7).for_feature(fid)
    c = ExampleSelector(bench_project, seed=8).for_feature(fid)
    assert _ids(a) == _ids(b)
    assert _ids(a) != _ids(c)


def test_other_feature_negatives(bench_project):
    fid = bench_project.scalar("SELECT id FROM features WHERE idx = 0")
    es = ExampleSelector(bench_project, seed=1, negatives="other-features", n_negatives=6).for_feature(fid)
    neg = [e for e in es.examples if e.truth == 0]
    assert len(neg) == 6
    assert all(e.kind == "top" and e.feature_id != fid for e in neg)
    assert len({e.feature_id for e in neg}) == 6        # distinct random features while there are enough
    assert len({e.example_id for e in neg}) == 6


def test_highlights_true_and_wrong(bench_project):
    fid = bench_project.scalar("SELECT id FROM features WHERE idx = 2")
    es = ExampleSelector(bench_project, seed=3).for_feature(fid)
    for e in es.examples:
        if e.truth:
            assert e.highlight == true_highlights(e.acts)
            assert len(e.highlight) == 2 and "<<" in e.highlighted_text()
        else:
            assert len(e.highlight) == 2                    # as many highlights as the positives carry
            assert all(e.acts[i] < 0.3 * 4.0 for i in e.highlight)
    assert true_highlights([0.0, 1.0, 0.29, 0.3, 0.0]) == (1, 3)
    assert true_highlights([0.0, 0.0]) == ()


def test_token_rendering():
    assert join_tokens(["Hello", " big", " world", "!"]) == "Hello big world!"
    assert join_tokens(["<bos>", "the", "cat"]) == "the cat"                  # word-level tokens
    assert join_tokens(["▁the", "▁cat"]) == " the cat"
    assert mark_tokens(["Hello", " big", " world", "!"], [1, 2]) == "Hello <<big world>>!"
    assert mark_tokens(["Hello", " big", " world", "!"], [0, 3]) == "<<Hello>> big world<<!>>"
    assert mark_tokens(["a", "\n", "b"], [1]) == "a<<\n>>b"


def test_parse_ranks():
    assert parse_ranks("6-15") == (6, 15)
    assert parse_ranks("3") == (3, 3)
    for bad in ("0-3", "9-2", "x", "1-y"):
        with pytest.raises(SaegoldError, match="positive-ranks"):
            parse_ranks(bad)


@pytest.mark.parametrize("text, n, expected", [
    ("[1, 0, 0, 1, 0]", 5, [1, 0, 0, 1, 0]),
    ("  [1,1]\n", 2, [1, 1]),
    ("```json\n[0, 1, 1]\n```", 3, [0, 1, 1]),
    ("Example 1 mentions it, example 2 does not.\n[1, 0]", 2, [1, 0]),
    ("[1, 0, 1]", 2, None),                 # wrong length
    ("[true, false]", 2, None),             # booleans are not 1/0
    ("[1, 2]", 2, None),
    ("[\"1\", \"0\"]", 2, None),           # strings
    ("[1.0, 0]", 2, None),
    ("1, 0", 2, None),
    ("Yes, no", 2, None),
    ("", 2, None),
    (None, 2, None),
    ("[1, 0]\nsorry, I meant [0, 1] and more", 2, None),
])
def test_parse_answer_is_strict(text, n, expected):
    assert parse_answer(text, n) == expected


@given(st.lists(st.integers(0, 1), min_size=1, max_size=12), st.sampled_from(["", " ", "\n", "\n\n"]))
def test_parse_answer_round_trip(values, pad):
    assert parse_answer(pad + str(values) + pad, len(values)) == values
    assert parse_answer(str(values), len(values) + 1) is None


def test_prompt_layout(bench_project):
    fid = bench_project.scalar("SELECT id FROM features WHERE idx = 1")
    es = ExampleSelector(bench_project, seed=0).for_feature(fid)
    groups = batches(es.examples, 5)
    assert [len(g) for g in groups] == [5] * 8          # 20 positives and 20 negatives
    det = judge_messages("detection", "line one\nline two", groups[0])
    fuzz = judge_messages("fuzzing", "x", groups[0])
    user = det[1]["content"]
    assert "Feature description: line one\\nline two" in user          # one line per field
    assert user.count("\nExample ") == 5 and "<<" not in user
    assert fuzz[1]["content"].count("<<") >= 5 and det[0]["content"] != fuzz[0]["content"]


def test_wrong_highlights_never_fall_on_bos(project):
    from saegold.store.features import get_or_create_source, put_examples, upsert_feature

    with project.write() as db:
        fid = upsert_feature(db, get_or_create_source(db, "m", "s"), 0)
        put_examples(db, fid, "top", [{"tokens": ["<bos>", " a", " b", " c"], "acts": [0, 0, 3.0, 2.0]}] * 8, "t")
        put_examples(db, fid, "negative", [{"tokens": ["<bos>", " x"], "acts": [0, 0]}] * 4, "t")
    for seed in range(5):
        es = ExampleSelector(project, seed=seed, sampler="top").for_feature(fid)
        assert [e.highlight for e in es.examples if not e.truth] == [(1,)] * 3
        assert {e.highlighted_text() for e in es.examples if not e.truth} == {" <<x>>"}
        assert {e.highlighted_text() for e in es.examples if e.truth} == {" a <<b c>>"}


def test_quantiles_sampler_draws_every_bin_and_never_what_labelers_saw(bench_project):
    from saegold.store.examples import examples as stored
    from saegold.store.features import put_examples

    fid = bench_project.scalar("SELECT id FROM features WHERE idx = 4")
    # A quantile example that is also one of the top 5 (the labelers read it) is never a positive.
    quant = stored(bench_project, fid, "quantile")
    top1 = stored(bench_project, fid, "top", limit=1)[0]
    with bench_project.write() as db:
        put_examples(db, fid, "quantile", [{**q, "tokens": top1["tokens"], "acts": top1["acts"]} if q["rank"] == 0
                                           else q for q in quant], "test")
    es = ExampleSelector(bench_project, seed=2).for_feature(fid)
    pos = [e for e in es.examples if e.truth]
    assert len(pos) == 20 and all(e.kind == "quantile" for e in pos)
    assert tuple(top1["tokens"]) not in {e.tokens for e in pos}
    bins = [e.bin for e in pos]
    # bin 9 lost one example (30 -> 2 left in it): every bin still gives 2
    assert sorted(set(bins)) == list(range(10)) and all(bins.count(b) == 2 for b in range(10))
    assert es.settings["sampler"] == "quantiles" and es.settings["n_positives"] == 20
    assert all(e.record()["bin"] == e.bin for e in pos)

    rnd = ExampleSelector(bench_project, seed=2, sampler="random").for_feature(fid)
    rpos = [e for e in rnd.examples if e.truth]
    assert len(rpos) == 20 and all(e.kind == "quantile" for e in rpos)
    assert rnd.settings["sampler"] == "random" and "positive_ranks" not in rnd.settings
    top = ExampleSelector(bench_project, seed=2, sampler="top").for_feature(fid)
    assert top.settings["positive_ranks"] == [6, 25]
    with pytest.raises(SaegoldError, match="--sampler"):
        ExampleSelector(bench_project, seed=0, sampler="peak")


def test_quantiles_sampler_without_quantile_examples_has_no_positives(project):
    from saegold.store.features import get_or_create_source, put_examples, upsert_feature

    with project.write() as db:
        fid = upsert_feature(db, get_or_create_source(db, "m", "s"), 0)
        put_examples(db, fid, "top", [{"tokens": [" a", " b"], "acts": [1.0, 0.0]}] * 30, "t")
        put_examples(db, fid, "negative", [{"tokens": [" x"], "acts": [0.0]}] * 4, "t")
    es = ExampleSelector(project, seed=0).for_feature(fid)
    assert es.n_positive == 0 and not es.usable()       # never a silent fall-back to the top
    assert ExampleSelector(project, seed=0, sampler="top").for_feature(fid).n_positive == 25 - 5
