"""The demo stand-ins answer the label prompts from the evidence in them (and say so)."""
from __future__ import annotations

from label_builders import add_feature, word_examples

from saegold.engine.labeling import inputs
from saegold.engine.labeling.format import final_token_part, parse_explanation
from saegold.engine.labeling.methods import METHODS, BuildOptions
from saegold.engine.llm.demo_responder import DEMO_NOTICE, NLA_NOTICE, demo_label_answer, demo_nla_explanation


def test_demo_answers_follow_the_evidence(project):
    add_feature(project, 0, examples=word_examples("violin"), promoted=[(" orchestra", 2.0), (" cello", 1.0)])
    row = inputs.feature_rows(project)[0]
    data = inputs.load(project, row, None)
    data.nla = {e.id: demo_nla_explanation("".join(e.tokens[1:e.max_idx + 1]), e.max_idx) for e in data.examples}
    answers = {}
    for name, method in METHODS.items():
        raw = demo_label_answer({"messages": method.build(data, BuildOptions())})
        assert raw.startswith(DEMO_NOTICE)
        parsed = parse_explanation(raw, max_words=method.max_words)
        assert parsed.error is None, (name, raw)
        answers[name] = parsed.label
    assert "violin" in answers["eleuther_acts_top5"]
    assert "violin" in answers["baez"] and "violin" in answers["baez_last"]
    assert answers["output_logits"] == 'Makes the model say "orchestra", "cello"'


def test_demo_nla_explanation_has_final_token_section():
    text = demo_nla_explanation("The violin played a soft violin", 6)
    assert text.startswith(NLA_NOTICE)
    assert final_token_part(text).startswith('Final token: "violin" (position 6)')
