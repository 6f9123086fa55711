"""The stored (Neuronpedia) input score compares against the top-k (k = 20) promoted tokens only."""
from __future__ import annotations

import pytest

from saegold.engine.scoring.inputscore import score_stored
from saegold.store.features import get_or_create_source, put_examples, put_logit_tokens, upsert_feature


def test_stored_input_score_uses_the_top_20_promoted_tokens(project):
    promoted = [(f"tok{i}", None, 30.0 - i) for i in range(30)]          # 30 listed, best first
    with project.write() as db:
        fid = upsert_feature(db, get_or_create_source(db, "m", "s"), 0)
        # Ten contexts; context c's max-activating token is tok{3c}: tok0..tok18 are in the top
        # 20, tok21..tok27 are not.
        put_examples(db, fid, "top", [{"tokens": ["x", f"tok{3 * c}", "y", f"pad{c}"], "acts": [0, 5.0 - 0.1 * c, 1, 0]}
                                      for c in range(10)], "neuronpedia")
        put_logit_tokens(db, fid, "promoted", promoted)
    assert score_stored(project) == 1
    top20 = {t for t, _, _ in promoted[:20]}
    expected = sum(f"tok{3 * c}" in top20 for c in range(10)) / 10
    assert expected == pytest.approx(0.7)
    assert project.scalar("SELECT input_score FROM taxonomy_scores") == pytest.approx(expected)
