"""Bad model / SAE / corpus / flags: one clear line, exit 2, and nothing written."""
from __future__ import annotations

import pytest

from saegold.engine.scoring.random_models import random_sae
from saegold.store.db import open_project
from saegold.tui.cli import main


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    random_sae(48, 8, "blocks.1.hook_resid_post").save_model(d / "sae-wide")
    random_sae(32, 8, "blocks.1.hook_attn_out").save_model(d / "sae-hook")
    random_sae(32, 8, "blocks.7.hook_resid_post").save_model(d / "sae-layer")
    (d / "empty-dir").mkdir()
    (d / "a-file").write_text("x")
    (d / "bad.jsonl").write_text('{"text": "the ocean"}\n{"text": "a storm"}\n{"text": oops}\n')
    (d / "notext.jsonl").write_text('{"text": "the ocean"}\n{"body": "a storm"}\n')
    (d / "empty.txt").write_text("\n\n")
    (d / "latin1.txt").write_bytes("the ocean caf\xe9\n".encode("latin-1"))
    return d


CASES = [
    # (what is wrong, args template, expected fragment of the one line)
    ("model dir missing", ["--model", "{d}/no-such-model", "--sae", "{sae}"], "no such model directory"),
    ("model dir without config", ["--model", "{d}/empty-dir", "--sae", "{sae}"], "no config.json"),
    ("model is a file", ["--model", "{d}/a-file", "--sae", "{sae}"], "not a file"),
    ("SAE dir missing", ["--model", "{model}", "--sae", "{d}/no-such-sae"], "no such SAE directory"),
    ("SAE dir without cfg", ["--model", "{model}", "--sae", "{d}/empty-dir"], "no cfg.json"),
    ("d_in mismatch", ["--model", "{model}", "--sae", "{d}/sae-wide"], "SAE d_in 48 does not match"),
    ("unknown hook", ["--model", "{model}", "--sae", "{d}/sae-hook"], "unknown hook 'blocks.1.hook_attn_out'"),
    ("hook past the last layer", ["--model", "{model}", "--sae", "{d}/sae-layer"], "has only 3 layers"),
    ("corpus missing", ["--model", "{model}", "--sae", "{sae}", "--corpus", "{d}/nope.txt"],
     "no such corpus file"),
    ("corpus bad JSON line", ["--model", "{model}", "--sae", "{sae}", "--corpus", "{d}/bad.jsonl"],
     "bad.jsonl: record line 3: not valid JSON"),
    ("corpus without text field", ["--model", "{model}", "--sae", "{sae}", "--corpus", "{d}/notext.jsonl"],
     "notext.jsonl: record line 2: field 'text': missing"),
    ("corpus empty", ["--model", "{model}", "--sae", "{sae}", "--corpus", "{d}/empty.txt"], "holds no text"),
    ("corpus not UTF-8", ["--model", "{model}", "--sae", "{sae}", "--corpus", "{d}/latin1.txt"],
     "latin1.txt: record byte"),
    ("features out of range", ["--model", "{model}", "--sae", "{sae}", "--features", "0-64"],
     "--features: 1 of the 65 requested indices is outside the SAE's width of 64 (indices 0-63): 64"),
    ("one feature out of range", ["--model", "{model}", "--sae", "{sae}", "--features", "70"],
     "--features: index 70 is outside the SAE's width of 64 (indices 0-63)"),
    ("features reversed", ["--model", "{model}", "--sae", "{sae}", "--features", "9-3"],
     "--features: '9-3' runs backwards (write 3-9)"),
    ("features checked before the model loads", ["--model", "{d}/no-such-model", "--sae", "{sae}",
                                                 "--features", "1,,2"], "--features: '1,,2' has an empty piece"),
    ("bad shard", ["--model", "{model}", "--sae", "{sae}", "--shard", "2/2"], "expected I/N"),
    ("no model", ["--sae", "{sae}"], "give --model and --sae"),
]


@pytest.mark.parametrize("what,args,fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(what, args, fragment, bad_inputs, tiny, tmp_path, capsys,
                                                  table_counts):
    model_dir, sae_dir = tiny
    db = tmp_path / "p.db"
    assert main(["--db", str(db), "init"]) == 0
    with open_project(db) as project:
        before = table_counts(project)
    capsys.readouterr()
    argv = [a.format(d=bad_inputs, model=model_dir, sae=sae_dir) for a in args]
    rc = main(["--db", str(db), "score", *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("saegold: error: ") and fragment in err, err
    with open_project(db) as project:
        assert table_counts(project) == before
