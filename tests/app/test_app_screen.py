"""The feature screen at 80x24 and 120x40 (issue 13): both sides of the tier on the first
screen, word-boundary markers shown one way, activation values on their example's line,
probabilities with significant digits, steering on the compact side, and what is missing
when there is no output evidence."""
from __future__ import annotations

import pytest
from apphelp import drive, make_app, screen_text
from rich.cells import cell_len

from saegold.store import features as sf
from saegold.tui import tokens
from saegold.tui.app.render import fmt_act, fmt_prob


def above_candidates(text: str) -> str:
    return text.split("Candidate labels")[0]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_first_screen_shows_examples_and_output_evidence(filled, size):
    text = drive(make_app(filled), [], size=size, after=screen_text)
    top = above_candidates(text)
    assert top.count("▶") >= 3                        # several examples, each marked
    for row in ("promotes", "amplified→", "continues"):
        assert row in top, (row, text)
    lines = text.splitlines()
    assert all(cell_len(line.rstrip()) <= size[0] for line in lines)
    if size[0] >= 100:   # side by side: an example and an evidence row share a line
        assert any("▶" in line and "promotes" in line for line in lines), text


def test_many_candidates_still_leave_room_for_both_sides(filled):
    """Revealed candidates take two lines each: the examples give way, the evidence stays."""
    app = make_app(filled)
    keys = ["i"] + ["y"] * len(app.session.view.candidates)
    top = above_candidates(drive(app, keys, size=(80, 24), after=screen_text))
    assert "▶" in top and "amplified→" in top


def test_word_boundary_markers_look_the_same_for_every_tokenizer():
    spm, bpe, decoded = ["▁the", "▁cat"], ["Ġthe", "Ġcat", "Ċ"], [" the", " cat", "\n"]
    assert tokens.running(spm) == [" the", " cat"]
    assert tokens.running(bpe) == tokens.running(decoded) == [" the", " cat", "⏎"]
    assert tokens.listed(spm) == tokens.listed(bpe[:2]) == tokens.listed(decoded[:2]) == ["␣the", "␣cat"]
    # Ġ is a letter (Maltese) in a sequence that is not raw byte-level BPE: kept
    assert tokens.running([" Ġużepp", " u"]) == [" Ġużepp", " u"]
    # Neuronpedia's Gemma whitespace: a space and ▁s are all spaces
    assert tokens.running([" ▁▁▁", "x"]) == ["    ", "x"]
    # still inert
    assert tokens.listed(["▁\x1b[31mred"]) == ["␣\\x1b[31mred"]


def test_markers_on_screen_are_display_only(filled):
    from saegold.store import examples as sx
    fid = filled.scalar("SELECT MIN(f.id) FROM features f")
    spm = ["▁the", "▁cat", "▁sat", "▁on", "▁a", "▁mat", "▁in", "▁the", "▁sun", "▁all", "▁day", "."]
    with filled.write() as db:
        sf.put_logit_tokens(db, fid, "promoted", [("▁forest", 1, 3.0), ("Ġtree", 2, 2.0)])
        sx.put_examples(db, fid, "top", [{"tokens": spm, "acts": [0.0, 2.0] + [0.5] * 10}], "neuronpedia")
    for size in ((80, 24), (120, 40)):
        app = make_app(filled)
        app.session.jump(filled.scalar("SELECT idx FROM features WHERE id = ?", [fid]))
        text = drive(app, [], size=size, after=screen_text)
        assert "␣forest" in text and "▁" not in text and "Ġ" not in text, text
        assert "the ▶cat sat on" in text, text
    # stored (and so exported) exactly as they came
    assert filled.scalar("SELECT token FROM logit_tokens WHERE feature_id = ? AND kind = 'promoted' "
                         "ORDER BY rank LIMIT 1", [fid]) == "▁forest"
    assert sf.examples(filled, fid, "top")[0]["tokens"] == spm


def test_a_long_example_keeps_its_value_on_its_line(filled):
    from saegold.store import examples as sx
    long = "x" * 300
    with filled.write() as db:   # every feature's top example: two 300-character tokens
        for (fid,) in db.execute("SELECT id FROM features").fetchall():
            sx.put_examples(db, fid, "top", [{"tokens": [long, long, " tail"], "acts": [0.0, 1234.5, 0.0]}],
                            "neuronpedia", replace=False)
    for keys in ([], ["m"]):     # the first screen, and "more" (full contexts, wrapped)
        text = drive(make_app(filled), keys, size=(80, 24), after=screen_text)
        line = next(ln for ln in text.splitlines() if "1234" in ln or "1235" in ln)
        assert "xxxxxxxx" in line and "e+03" not in line, line


def test_probabilities_have_significant_digits(filled):
    assert fmt_prob(0.0042) == "0.42%" and fmt_prob(0.3) == "30%" and fmt_prob(4.2e-5) == "0.0042%"
    assert fmt_prob(1e-9) == "<0.001%" and fmt_prob(0.0) == "0%"
    # never an exponent, and a probability short of 1 never reads 100%
    assert fmt_prob(1.0) == "100%" and fmt_prob(0.9996) == "99.9%" and fmt_prob(0.42) == "42%"
    assert fmt_prob(0.0994) == "9.9%" and fmt_prob(0.0999) == "10%"
    assert all("e" not in fmt_prob(p) for p in (1.0, 0.999, 0.5, 0.1, 1e-3, 2e-5))
    assert fmt_act(999.7) == "1000" and fmt_act(1234.5) == "1234" and fmt_act(12.345) == "12.3"
    with filled.write() as db:
        db.execute("UPDATE logit_tokens SET value = value / 1000 WHERE kind = 'amplified_next'")
    text = drive(make_app(filled), [], size=(120, 40), after=screen_text)
    assert "0.03%" in text and "0.00 " not in text


def test_missing_output_evidence_names_what_score_needs(filled):
    with filled.write() as db:
        db.execute("DELETE FROM logit_tokens")
        db.execute("UPDATE taxonomy_scores SET continuation = NULL")
        db.execute("UPDATE sources SET model_id = 'gemma-3-270m-it', sae_id = '12-gemmascope-2-res-16k'")
        db.execute("UPDATE examples SET origin = 'neuronpedia'")
    text = drive(make_app(filled), [], size=(80, 24), after=screen_text)
    flat = " ".join(text.split())
    assert "not scored yet" not in flat
    assert "came from Neuronpedia" in flat and "no logit-lens tokens" in flat and "steered continuations" in flat
    source = filled.scalar("SELECT name FROM sources")
    assert f"saegold score --model gemma-3-270m-it --sae RELEASE:SAE_ID --source {source}" in flat
    assert "12-gemmascope-2-res-16k" in flat


def test_untrusted_tokens_stay_inert_on_both_sides(filled):
    from saegold.store import examples as sx
    fid = filled.scalar("SELECT MIN(f.id) FROM features f")
    toks = ["▁[bold]loud[/bold]", "▁\x1b[31mred", "▁[link=http://x]y[/link]", "."]
    with filled.write() as db:
        sf.put_logit_tokens(db, fid, "promoted", [("▁[red]p[/red]", 1, 3.0), ("\x1b[2Jclear", 2, 2.0)])
        sx.put_examples(db, fid, "top", [{"tokens": toks, "acts": [0.0, 2.0, 0.5, 0.0]}], "neuronpedia")
    for size, keys in (((80, 24), []), ((120, 40), []), ((80, 24), ["m"])):
        app = make_app(filled)
        app.session.jump(filled.scalar("SELECT idx FROM features WHERE id = ?", [fid]))
        text = drive(app, keys, size=size, after=screen_text)
        assert "[bold]loud[/bold]" in text and "[link=http://x]y[/link]" in text, text
        assert "␣[red]p[/red]" in text and "\x1b" not in text, text


def test_partial_evidence_says_what_is_missing_under_more(filled):
    """An import with logit-lens tokens only: the first screen marks the empty rows, "more"
    says what is missing and the score run that fills it."""
    with filled.write() as db:
        db.execute("DELETE FROM logit_tokens WHERE kind = 'amplified_next'")
        db.execute("UPDATE taxonomy_scores SET continuation = NULL")
    first = drive(make_app(filled), [], size=(80, 24), after=screen_text)
    assert "promotes    ␣" in first and first.count("needs a model run") == 2, first
    more = " ".join(drive(make_app(filled), ["m"], size=(80, 24), after=screen_text).split())
    assert "missing: no model has been run on this feature: no amplified next tokens, continuation or " \
           "steered continuations" in more, more
    assert "saegold score --model" in more
