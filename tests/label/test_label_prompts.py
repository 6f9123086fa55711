"""Exact prompt content of each label method, and parsing of the answers."""
from __future__ import annotations

import pytest

from saegold.engine.labeling import inputs
from saegold.engine.labeling.format import (activation_score, final_token_part, mark, marked_values,
                                    parse_explanation, window)
from saegold.engine.labeling.methods import METHODS, BuildOptions, build_explainer
from saegold.engine.labeling.nla import nla_request
from label_builders import add_feature, word_examples


def load(project, idx, nla_source=None):
    row = next(r for r in inputs.feature_rows(project) if r["idx"] == idx)
    return inputs.load(project, row, nla_source)


def test_marks_at_06_of_max_and_scores():
    tokens = ["a", "b", "c", "d", "e"]
    acts = [6.0, 10.0, 5.99, 0.0, 6.0]
    assert mark(tokens, acts) == "<<ab>>cd<<e>>"
    assert marked_values(tokens, acts, scale_max=20.0) == [("a", 3), ("b", 5), ("e", 3)]
    assert mark(tokens, [0.0] * 5) == "abcde"
    assert [activation_score(v, 10.0) for v in (10.0, 7.3, 7.0, 0.2, 12.0)] == [10, 8, 7, 1, 10]


def test_window_keeps_the_max_token():
    tokens = [f"t{i}" for i in range(200)]
    acts = [0.0] * 200
    acts[150] = 1.0
    t, a, m = window(tokens, acts, 150, 64)
    assert len(t) == 64 and t[m] == "t150" and a[m] == 1.0 and m == 48


def test_eleuther_prompt_exact(project):
    add_feature(project, 7, examples=word_examples("dog", n=2))
    data = load(project, 7)
    messages = METHODS["eleuther_acts_top5"].build(data, BuildOptions())
    assert messages[-1] == {"role": "user", "content": (
        "Example 1: I saw<< a dog>> today near home\n"
        'Activations: (" a", 6), (" dog", 10)\n'
        "Example 2: We saw<< a dog>> today near home\n"
        'Activations: (" a", 5), (" dog", 9)\n')}
    system = messages[0]["content"]
    assert messages[0]["role"] == "system" and "<<this>>" in system and "[EXPLANATION]:" in system
    assert "from 0 (weak) to 10" in system
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert all(m["content"].startswith("[EXPLANATION]:") for m in messages if m["role"] == "assistant")

    plain = build_explainer(data, BuildOptions(activations=False))
    assert plain[-1]["content"] == ("Example 1: I saw<< a dog>> today near home\n"
                                    "Example 2: We saw<< a dog>> today near home\n")
    assert not any("Activations:" in m["content"] for m in plain)


def test_eleuther_uses_only_top5(project):
    add_feature(project, 8, examples=word_examples("cat", n=7))
    data = load(project, 8)
    content = METHODS["eleuther_acts_top5"].build(data, BuildOptions())[-1]["content"]
    assert content.count("Example ") == 5 and "Example 6" not in content


def nla_fixture(project, texts: list[str]) -> inputs.FeatureData:
    add_feature(project, 9, examples=[
        (["<bos>", "The", " big", " dog", " barked", " loudly"], [0, 1.0, 2.0, 10.0, 3.0, 0.0]),
        (["<bos>", "A", " dog", " ran", " home"], [0, 0.5, 7.3, 1.0, 0.0]),
        (["<bos>", "my", " puppy", " sleeps"], [0, 0.0, 0.2, 0.1]),
    ])
    data = load(project, 9)
    with project.write() as db:
        for ex, text in zip(data.examples, texts):
            db.execute("INSERT INTO nla_explanations(example_id, nla_source, token_index, text, created_at) "
                       "VALUES (?, 'src', ?, ?, 'now')", [ex.id, ex.max_idx, text])
    return load(project, 9, "src")


def test_baez_prompt_scores_and_final_token_trimming(project):
    texts = [
        "The text is about animals.\nFinal token: \"dog\", a pet noun.\nIt continues.",
        "Pets and movement.\n**Final token**: ' dog' again",
        "No final section here at all.",
    ]
    data = nla_fixture(project, texts)
    baez = METHODS["baez"].build(data, BuildOptions())
    assert baez[-1]["content"] == (
        "Explanation 1 (activation score 10):\n" + texts[0] + "\n\n"
        "Explanation 2 (activation score 8):\n" + texts[1] + "\n\n"
        "Explanation 3 (activation score 1):\n" + texts[2] + "\n")
    assert "at most 8 words" in baez[0]["content"] and "more weight" in baez[0]["content"]
    last = METHODS["baez_last"].build(data, BuildOptions())
    assert last[-1]["content"] == (
        "Explanation 1 (activation score 10):\nFinal token: \"dog\", a pet noun.\nIt continues.\n\n"
        "Explanation 2 (activation score 8):\n**Final token**: ' dog' again\n\n"
        "Explanation 3 (activation score 1):\nNo final section here at all.\n")
    assert "final token" in last[0]["content"]


def test_final_token_part():
    assert final_token_part("a\nb\nFinal token: x\ny") == "Final token: x\ny"
    assert final_token_part("a\n  final TOKEN - x") == "final TOKEN - x"
    assert final_token_part("about the final token here") == "about the final token here"


def test_nla_request_cut_after_max_token(project):
    data = nla_fixture(project, ["x", "y", "z"])
    reqs = [nla_request(e) for e in data.examples]
    assert [(r.text, r.position, r.token) for r in reqs] == [
        ("The big dog", 3, " dog"), ("A dog", 2, " dog"), ("my puppy", 2, " puppy")]
    assert nla_request(data.examples[0], bos_offset=0).position == 2


def test_output_logits_prompt(project):
    add_feature(project, 11, category="output", promoted=[(" Paris", 5.0), ("\n", 4.0)],
                suppressed=[(" London", -3.0)], amplified=[(" Paris", 0.42)], continuation=" Paris is lovely")
    data = load(project, 11)
    messages = METHODS["output_logits"].build(data, BuildOptions(neutral_prompt="From my experience,"))
    assert messages[-1]["content"] == (
        'Promoted tokens (logit lens, strongest first): " Paris", "\\n"\n'
        'Suppressed tokens (logit lens, strongest first): " London"\n'
        'Most probable next tokens with the feature amplified: " Paris" (0.42)\n'
        'Continuation of "From my experience," with the feature amplified: " Paris is lovely"\n')
    assert "the tokens it suppresses" in messages[0]["content"]
    assert METHODS["output_logits"].missing(data) is None
    assert METHODS["eleuther_acts_top5"].missing(data) == "no activating examples"


@pytest.mark.parametrize("answer, label, error", [
    ("thinking...\n[EXPLANATION]: Dogs and puppies", "Dogs and puppies", None),
    ("[EXPLANATION]: first\nmore\n[EXPLANATION]: **\"Final one\"**\nextra", "Final one", None),
    ("[explanation] : lenient case", "lenient case", None),
    ('[EXPLANATION]: Says "yes" and "no"', 'Says "yes" and "no"', None),
    ("Dogs, no tag", None, "no [EXPLANATION]: in the answer"),
    ("", None, "empty answer"),
    (None, None, "empty answer"),
    ("[EXPLANATION]:   \n  ", None, "nothing after [EXPLANATION]:"),
    ("[EXPLANATION]: one two three four five six seven eight nine", None,
     "label has 9 words, the limit is 8"),
])
def test_parse_explanation(answer, label, error):
    parsed = parse_explanation(answer, max_words=8)
    assert (parsed.label, parsed.error) == (label, error)


def test_parse_char_limit():
    assert parse_explanation("[EXPLANATION]: " + "x" * 301, max_words=None).error == \
        "label has 301 characters, the limit is 300"


def test_sentencepiece_spaces_become_text(project):
    add_feature(project, 12, examples=[(["<bos>", "I", "\u2581love", "\u2581dogs"], [0.0, 0.0, 1.0, 9.0])],
                promoted=[("\u2581puppy", 1.0)])
    data = load(project, 12)
    assert METHODS["eleuther_acts_top5"].build(data, BuildOptions())[-1]["content"] == \
        'Example 1: I love<< dogs>>\nActivations: (" dogs", 10)\n'
    assert nla_request(data.examples[0]).text == "I love dogs"
    assert '" puppy"' in METHODS["output_logits"].build(data, BuildOptions())[-1]["content"]
