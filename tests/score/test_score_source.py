"""A source is what produced it (its fingerprint), not its folder names."""
from __future__ import annotations

import json
import shutil

import pytest

from saegold.engine.scoring.fingerprint import directory_digest, tensor_digest
from saegold.engine.scoring.random_models import random_sae, save_random_model
from saegold.store.db import open_project
from saegold.store.fingerprints import fingerprint_id
from saegold.tui.cli import main

FAST = ["--features", "0-11", "--continuation-tokens", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """/a/model + /a/sae and /b/model + /b/sae: the same model weights (copied), another SAE
    (other weights, another hook) under the same folder names."""
    d = tmp_path_factory.mktemp("two")
    model = save_random_model(d / "a", "llama", d_model=32, n_layers=3, seed=1)
    (d / "a" / "llama-model").rename(d / "a" / "model")
    shutil.copytree(d / "a" / "model", d / "b" / "model")
    random_sae(32, 16, "blocks.1.hook_resid_post", seed=2).save_model(d / "a" / "sae")
    random_sae(32, 16, "blocks.0.hook_resid_post", seed=3).save_model(d / "b" / "sae")
    del model
    return d


def _init(tmp_path):
    db = tmp_path / "p.db"
    open_project(db, create=True).close()
    return db


def _score(db, d, which, *extra):
    return main(["--db", str(db), "score", "--model", str(d / which / "model"), "--sae", str(d / which / "sae"),
                 *FAST, *extra])


def _sources(db):
    with open_project(db) as project:
        return {r["name"]: r for r in project.query("SELECT * FROM sources ORDER BY id")}


def _scores(db, source):
    with open_project(db) as project:
        return {r["idx"]: r["output_score"] for r in project.query(
            "SELECT f.idx, t.output_score FROM features f JOIN sources s ON s.id = f.source_id "
            "JOIN taxonomy_scores t ON t.feature_id = f.id WHERE s.name = ?", [source])}


def test_another_sae_under_the_same_folder_names_is_refused(two, tmp_path, capsys, table_counts):
    db = _init(tmp_path)
    assert _score(db, two, "a") == 0
    assert "output scores: 12 computed, 0 already done" in capsys.readouterr().out
    with open_project(db) as project:
        before = table_counts(project)
        stored = json.loads(project.scalar("SELECT fingerprint FROM sources"))
    assert stored["sae"]["hook"] == "blocks.1.hook_resid_post" and stored["model"]["files"]
    assert _score(db, two, "b") == 2
    cap = capsys.readouterr()
    err = cap.err.strip()
    assert len(err.splitlines()) == 1 and not cap.out, err
    assert err.startswith("saegold: error: source 'model/sae' holds scores of another")
    assert "SAE hook 'blocks.1.hook_resid_post' vs 'blocks.0.hook_resid_post'" in err
    assert "SAE weights" in err and "--source NAME" in err and "--redo" in err
    assert "model files" not in err                # the copied model is the same model
    with open_project(db) as project:
        assert table_counts(project) == before     # nothing written


def test_source_names_a_new_source(two, tmp_path, capsys):
    db = _init(tmp_path)
    assert _score(db, two, "a") == 0
    assert _score(db, two, "b", "--source", "model/sae-b") == 0
    out = capsys.readouterr().out
    assert "new source 'model/sae-b'" in out and "output scores: 12 computed, 0 already done" in out
    src = _sources(db)
    assert list(src) == ["model/sae", "model/sae-b"]
    assert src["model/sae-b"]["hook_name"] == "blocks.0.hook_resid_post"
    assert fingerprint_id(src["model/sae"]["fingerprint"]) != fingerprint_id(src["model/sae-b"]["fingerprint"])
    assert _scores(db, "model/sae-b") != _scores(db, "model/sae")
    # status and export name each source's fingerprint by the same short id
    from saegold.store.export import records
    from saegold.store.status import sources
    with open_project(db) as project:
        ids = {s["name"]: s["fingerprint"] for s in sources(project)}
        assert ids["model/sae-b"] == fingerprint_id(src["model/sae-b"]["fingerprint"])
        assert {(r["source"], r["source_fingerprint"]) for r in records(project, "features")} == set(ids.items())
    # and the new source is then checked like any other: the a SAE is refused there
    assert _score(db, two, "a", "--source", "model/sae-b") == 2
    assert "SAE hook 'blocks.0.hook_resid_post' vs 'blocks.1.hook_resid_post'" in capsys.readouterr().err


def test_the_same_model_and_sae_skips_what_is_done(two, tmp_path, capsys):
    db = _init(tmp_path)
    assert _score(db, two, "a") == 0
    capsys.readouterr()
    moved = tmp_path / "moved"                       # a moved copy is still the same model and SAE
    shutil.copytree(two / "a", moved / "a")
    assert _score(db, moved, "a") == 0
    out = capsys.readouterr().out
    assert "output scores: 0 computed, 12 already done" in out
    assert list(_sources(db)) == ["model/sae"]


def test_redo_replaces_the_source(two, tmp_path, capsys):
    db = _init(tmp_path)
    assert _score(db, two, "b", "--source", "reference") == 0
    assert _score(db, two, "a") == 0
    old = _sources(db)["model/sae"]
    # --redo of a part of the source would mix two SAEs under one name: refused
    assert _score(db, two, "b", "--redo", "--features", "0-5") == 2
    assert "must rescore all 12 features it holds, and 6 lie outside --features" in capsys.readouterr().err
    capsys.readouterr()
    assert _score(db, two, "b", "--redo") == 0
    out = capsys.readouterr().out
    assert "source 'model/sae': replacing what it was scored from (SAE hook" in out
    assert "output scores: 12 computed, 0 already done" in out
    new = _sources(db)["model/sae"]
    assert new["hook_name"] == "blocks.0.hook_resid_post" and new["id"] == old["id"]
    assert fingerprint_id(new["fingerprint"]) == fingerprint_id(_sources(db)["reference"]["fingerprint"])
    ref, got = _scores(db, "reference"), _scores(db, "model/sae")
    assert ref.keys() == got.keys() and all(got[j] == pytest.approx(ref[j], rel=2e-5) for j in ref)
    assert _score(db, two, "b") == 0                   # now b is what the source is
    assert "0 computed, 12 already done" in capsys.readouterr().out


def test_a_setting_that_changes_results_is_part_of_the_source(two, tmp_path, capsys):
    db = _init(tmp_path)
    assert _score(db, two, "a") == 0
    assert main(["--db", str(db), "settings", "set", "neutral_prompt", "the ocean"]) == 0
    capsys.readouterr()
    assert _score(db, two, "a") == 2
    err = capsys.readouterr().err
    assert "neutral prompt 'From my experience,' vs 'the ocean'" in err
    # what changes only float rounding is not: another feature batch skips as before
    assert main(["--db", str(db), "settings", "set", "neutral_prompt", "From my experience,"]) == 0
    assert _score(db, two, "a", "--feature-batch", "5", "--batch-size", "3") == 0
    assert "0 computed, 12 already done" in capsys.readouterr().out


def test_steering_settings_are_recorded_and_a_change_recomputes_steering(two, tmp_path, capsys):
    """The steering part records what steered results were made with; another steering
    setting is not a refusal (each stored result carries its settings): the run steers
    again, never skips, and the fingerprint follows."""
    db = _init(tmp_path)
    assert _score(db, two, "a", "--features", "0-3") == 0
    with open_project(db) as project:
        first = json.loads(project.scalar("SELECT fingerprint FROM sources"))
    assert first["steering"]["targets"] == [0.25, 0.5] and first["steering"]["n_tokens"] == 25
    assert main(["--db", str(db), "settings", "set", "steering_tokens", "3"]) == 0
    capsys.readouterr()
    assert _score(db, two, "a", "--features", "0-3") == 0
    out = capsys.readouterr().out
    assert "steering:      4 features steered, 0 already done" in out, out
    assert "0 computed, 4 already done" in out
    with open_project(db) as project:
        second = json.loads(project.scalar("SELECT fingerprint FROM sources"))
        lengths = {len(c["token_ids"]) for (conts,) in project.db.execute("SELECT continuations FROM steering")
                   for c in json.loads(conts)}
    assert second["steering"]["n_tokens"] == 3 and max(lengths) <= 3
    assert {k: v for k, v in second.items() if k != "steering"} == \
        {k: v for k, v in first.items() if k != "steering"}
    # a run without steering leaves the recorded steering part alone
    assert _score(db, two, "a", "--features", "0-3", "--no-steering") == 0
    with open_project(db) as project:
        assert json.loads(project.scalar("SELECT fingerprint FROM sources"))["steering"] == second["steering"]


def test_a_source_without_fingerprint_gets_the_first_runs(two, tmp_path, capsys):
    """Sources scored before fingerprints (or imported) record the first run that names them."""
    db = _init(tmp_path)
    assert _score(db, two, "a") == 0
    with open_project(db) as project, project.write() as w:
        w.execute("UPDATE sources SET fingerprint = NULL")
    capsys.readouterr()
    assert _score(db, two, "a") == 0
    out = capsys.readouterr().out
    assert "source 'model/sae' had no fingerprint" in out and "0 computed, 12 already done" in out
    assert _sources(db)["model/sae"]["fingerprint"]
    assert _score(db, two, "b") == 2                   # and from then on it is checked


def test_corpus_settings_join_the_fingerprint_when_a_corpus_run_comes(two, tmp_path, capsys, demo_corpus):
    db = _init(tmp_path)
    assert _score(db, two, "a") == 0                   # no corpus: no input part yet
    corpus = ["--corpus", str(demo_corpus), "--max-contexts", "20", "--ctx-len", "16", "--top-k", "5"]
    assert _score(db, two, "a", *corpus) == 0
    fp = json.loads(_sources(db)["model/sae"]["fingerprint"])
    assert fp["input"]["ctx_len"] == 16 and fp["input"]["files"]
    capsys.readouterr()
    assert _score(db, two, "a", *corpus[:-2], "--top-k", "7") == 2
    assert "top k 5 vs 7" in capsys.readouterr().err
    # verified negatives (off by default) change what is stored: not silently skipped as 'already done'
    assert fp["input"]["verified_negatives"] is False
    assert _score(db, two, "a", *corpus, "--verified-negatives") == 2
    err = capsys.readouterr().err
    assert "verified negatives False vs True" in err and "or --no-verified-negatives to score as" in err
    assert _score(db, two, "a") == 0                   # a run without a corpus does not check that part


def test_a_source_scored_before_verified_negatives_is_not_mixed_with_them(two, tmp_path, capsys, demo_corpus):
    """A fingerprint recorded before the setting existed lacks it: its negatives were not
    verified, so a --verified-negatives run is refused, not mixed into it; a default run fits."""
    db = _init(tmp_path)
    corpus = ["--corpus", str(demo_corpus), "--max-contexts", "20", "--ctx-len", "16", "--top-k", "5"]
    corpus.append("--no-steering")
    assert _score(db, two, "a", *corpus, "--features", "0-5") == 0
    with open_project(db) as project, project.write() as w:
        fp = json.loads(project.scalar("SELECT fingerprint FROM sources"))
        del fp["input"]["verified_negatives"]         # as recorded before the setting existed
        w.execute("UPDATE sources SET fingerprint = ?", [json.dumps(fp)])
    capsys.readouterr()
    assert _score(db, two, "a", *corpus, "--verified-negatives") == 2
    err = capsys.readouterr().err
    assert "verified negatives False vs True" in err and "or --no-verified-negatives to score as" in err
    assert _score(db, two, "a", *corpus) == 0
    out = capsys.readouterr().out
    assert "input scores:  6 computed, 6 already done" in out, out


def test_digests_are_cheap_and_see_content(tmp_path):
    """The directory digest reads a sample of a big file, yet sees a change of its bytes; the
    tensor digest sees another SAE of the same shape."""
    import os

    big = tmp_path / "m" / "model.safetensors"
    big.parent.mkdir()
    data = bytearray(os.urandom(32 << 20))
    big.write_bytes(data)
    (tmp_path / "m" / "README.md").write_text("notes")
    first = directory_digest(tmp_path / "m")
    (tmp_path / "m" / "README.md").write_text("other notes")     # documentation is not the model
    assert directory_digest(tmp_path / "m") == first
    from saegold.engine.scoring.fingerprint import BLOCK, BLOCKS, HEAD
    data[HEAD + (len(data) - HEAD - BLOCK) * (BLOCKS // 2) // BLOCKS + 10] ^= 1   # inside a sampled block
    big.write_bytes(data)
    assert directory_digest(tmp_path / "m") != first
    a, b = random_sae(32, 16, "blocks.1.hook_resid_post", seed=2), random_sae(32, 16, "blocks.1.hook_resid_post", seed=3)
    assert tensor_digest(dict(a.state_dict())) != tensor_digest(dict(b.state_dict()))
    assert tensor_digest(dict(a.state_dict())) == tensor_digest(dict(random_sae(32, 16, "blocks.1.hook_resid_post",
                                                                                  seed=2).state_dict()))


def test_merge_reports_a_source_made_from_something_else(two, tmp_path, capsys):
    """Two projects that scored other SAEs under one source name: merging says so."""
    for sub in ("1", "2", "3"):
        (tmp_path / sub).mkdir()
    mine, theirs, third = _init(tmp_path / "1"), _init(tmp_path / "2"), _init(tmp_path / "3")
    assert _score(mine, two, "a") == 0 and _score(theirs, two, "b") == 0
    with open_project(mine) as project, project.write() as w:
        w.execute("UPDATE sources SET fingerprint = NULL")        # as before fingerprints
    capsys.readouterr()
    assert main(["--db", str(mine), "merge", str(theirs)]) == 0
    assert _sources(mine)["model/sae"]["fingerprint"] is None    # unknown stays unknown: only a score run knows
    assert _score(third, two, "a") == 0
    capsys.readouterr()
    assert main(["--db", str(third), "merge", str(theirs)]) == 0
    out = capsys.readouterr().out
    assert "'model/sae' fingerprint (SAE hook 'blocks.1.hook_resid_post' vs 'blocks.0.hook_resid_post'" in out


def test_redo_from_another_sae_must_rescore_the_input_scores_too(two, tmp_path, capsys, demo_corpus):
    db = _init(tmp_path)
    corpus = ["--corpus", str(demo_corpus), "--max-contexts", "20", "--ctx-len", "16", "--top-k", "5"]
    assert _score(db, two, "a", *corpus) == 0
    capsys.readouterr()
    assert _score(db, two, "b", "--redo") == 2        # the input scores came from the a SAE
    assert "must rescore its input scores too" in capsys.readouterr().err
    assert _score(db, two, "b", "--redo", *corpus) == 0
    fp = json.loads(_sources(db)["model/sae"]["fingerprint"])
    assert fp["sae"]["hook"] == "blocks.0.hook_resid_post" and fp["input"]["top_k"] == 5


def test_a_redo_from_another_sae_cut_short_leaves_nothing_counted_as_done(two, tmp_path, capsys):
    """Ctrl+C in the middle of a --redo from another SAE: the old SAE's scores are superseded
    when the source is replaced (first write), so a re-run scores the rest, never takes the old
    SAE's scores for the new one's; the source names the new run's model and SAE."""
    from saegold.engine.scoring.job import score

    db = _init(tmp_path)
    assert _score(db, two, "a") == 0

    def stop(stage, done, total):
        if stage == "output scores" and done >= 4:
            raise KeyboardInterrupt

    with open_project(db) as project, pytest.raises(KeyboardInterrupt):
        score(project, model=str(two / "b" / "model"), sae=str(two / "b" / "sae"), features="0-11",
              continuation_tokens=0, device="cpu", feature_batch=4, redo=True, steering=False, progress=stop)
    with open_project(db) as project:
        assert project.scalar("SELECT count(*) FROM taxonomy_scores") == 4            # only the new SAE's
        assert project.scalar("SELECT count(*) FROM superseded_results WHERE tbl = 'taxonomy_scores'") == 12
        assert project.scalar("SELECT count(*) FROM steering") == 0                   # the old SAE's: gone
        hooks = {json.loads(d)["output"]["hook"] for (d,) in project.db.execute("SELECT details FROM taxonomy_scores")}
        assert hooks == {"blocks.0.hook_resid_post"}
    capsys.readouterr()
    assert _score(db, two, "b", "--no-steering") == 0
    assert "output scores: 8 computed, 4 already done" in capsys.readouterr().out
    with open_project(db) as project:
        hooks = [json.loads(d)["output"]["hook"] for (d,) in project.db.execute("SELECT details FROM taxonomy_scores")]
        assert len(hooks) == 12 and set(hooks) == {"blocks.0.hook_resid_post"}


def test_a_redo_from_another_sae_is_refused_where_labels_or_judgments_were_made(two, tmp_path, capsys, table_counts):
    from saegold.store import judgments

    db = _init(tmp_path)
    assert _score(db, two, "a") == 0
    with open_project(db) as project:
        judgments.ensure_annotator(project, "alice")
        fid = project.scalar("SELECT id FROM features WHERE idx = 3")
        judgments.append(project, judgments.make_event("alice", fid, "tier", value="input", confidence=2))
        before = table_counts(project)
    capsys.readouterr()
    assert _score(db, two, "b", "--redo") == 2
    err = capsys.readouterr().err
    assert "0 label(s) and 1 judgment(s) describe the old one's features" in err and "--source NAME" in err
    with open_project(db) as project:
        assert table_counts(project) == before
