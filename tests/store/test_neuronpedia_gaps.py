"""Neuronpedia projects: features that cannot be judged or scored from stored data are
reported with the reason and what would fill them (status, annotate's start line,
score --from-stored), never left out silently."""
from __future__ import annotations

import json
import shutil

import pytest

from saegold.tui.cli import main

from store_samples import EXCERPT, FULL_FILES, TRIMMED_FILES, needs_samples

pytestmark = needs_samples
EXPLANATION_ONLY = "gemma-2-2b/20-gemmascope-res-16k"
TRIMMED = "gemma-3-270m-it/12-gemmascope-2-res-16k"


@pytest.fixture
def db(tmp_path, capsys):
    """The explanations excerpt (3 features, no examples), the trimmed records (5 features,
    examples but no logit lens) and one full feature (examples and pos_str), copied."""
    files = tmp_path / "np"
    files.mkdir()
    for i, src in enumerate([EXCERPT, *TRIMMED_FILES, FULL_FILES[0]]):
        shutil.copy(src, files / f"{i}_{src.name}")
    path = str(tmp_path / "p.db")
    assert main(["--db", path, "init"]) == 0
    assert main(["--db", path, "import", "neuronpedia", str(files)]) == 0
    capsys.readouterr()
    return path


def test_status_says_how_many_cannot_be_judged_and_why(db, capsys):
    assert main(["--db", db, "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["not_judgeable"]["by_source"] == {EXPLANATION_ONLY: 3}
    assert data["not_judgeable"]["features"] == 3
    assert "no activating examples" in data["not_judgeable"]["reason"]
    by_name = {s["name"]: s for s in data["sources"]}
    assert by_name[EXPLANATION_ONLY]["with_examples"] == 0 and by_name[TRIMMED]["with_examples"] == 5
    assert main(["--db", db, "status"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "3 feature(s) cannot be judged" in out and "no activating examples" in out
    assert "saegold score --model M --sae S --corpus C --source NAME" in out


def test_annotate_start_line_names_the_features_left_out(db, capsys):
    assert main(["--db", db, "annotate", "--annotator", "alice"]) == 2   # no terminal in tests
    captured = capsys.readouterr()
    out = " ".join(captured.out.split())     # wrapped at the terminal's width, between words
    assert out.startswith("saegold annotate: 6 feature(s) can be judged; 3 feature(s) cannot be "
                                   "judged and are not in any annotator's queue: no activating examples")
    assert f"[{EXPLANATION_ONLY} 3]" in out and "To fill them: import Neuronpedia's feature JSON" in out
    assert "annotate needs a terminal" in captured.err


def test_score_from_stored_says_what_it_skipped_and_why(db, capsys):
    assert main(["--db", db, "score", "--from-stored"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "input scores from stored activations: 1 features"
    assert out[1] == "not scored: 8 feature(s)"
    assert out[2] == f"  3: no activating examples (an explanation-only import) [{EXPLANATION_ONLY} 3]"
    assert out[4] == (f"  5: no logit-lens tokens stored (e.g. a trimmed Neuronpedia record without "
                      f"pos_str) [{TRIMMED} 5]")
    assert out[5].startswith("    to score them: import the full feature JSON (with pos_str)")
    assert main(["--db", db, "score", "--from-stored", "--source", TRIMMED]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["input scores from stored activations: 0 features", "not scored: 5 feature(s)"]
    assert main(["--db", db, "score", "--from-stored", "--source", FULL_FILES[0].parent.name.replace("__", "/")]) == 0
    assert capsys.readouterr().out.splitlines()[1:3] == [
        "not scored: 1 feature(s)", "  1: already have an input score [gemma-4-e2b/17-matryoshka-res-65k 1]"]
