"""Bad input at the command line, per subcommand: one line on stderr naming what is wrong,
exit code 2, no traceback, and the project database exactly as it was.  Ctrl+C: 130."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from saegold.store.db import open_project
from saegold.store.features import get_or_create_source, put_examples, upsert_feature
from saegold.store.labels import add_label
from saegold.tui.cli import main

REPO = Path(__file__).resolve().parents[2]


def _seed(path: Path, n: int = 4) -> Path:
    with open_project(path, create=True) as p, p.write() as db:
        sid = get_or_create_source(db, "tiny-model", "0-res", layer=0, d_sae=n)
        for i in range(n):
            fid = upsert_feature(db, sid, i, density=0.01, max_act=1.0)
            put_examples(db, fid, "top", [{"tokens": ["a", f"w{i}"], "acts": [0.0, 1.0]}], origin="test")
            add_label(db, fid, "eleuther_acts_top5", f"label {i}", origin="test")
    return path


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE foo (x)")
        conn.execute("INSERT INTO foo VALUES (1)")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bad.json").write_text("garbage {\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.db").write_bytes(b"")
    (tmp_path / "text.db").write_text("not a database\n")
    return {"db": _seed(tmp_path / "p.db"), "tmp": tmp_path, "other": other}


# (args, a fragment the one error line must hold); {db} {tmp} are filled in.
CASES = [
    # the project file itself
    (["--db", "{tmp}/missing.db", "status"], "no such project database"),
    (["--db", "{tmp}/folder", "status"], "is a directory"),
    (["--db", "{tmp}/text.db", "agreement"], "not a usable SQLite database"),
    (["--db", "{tmp}/empty.db", "status"], "empty file"),
    (["--db", "{tmp}/other.db", "status"], "not a saegold project"),
    (["--db", "{tmp}/other.db", "init"], "not a saegold project"),
    (["--db", "{tmp}/other.db", "export", "gold"], "not a saegold project"),
    # argparse: unknown command, flag, choice, a count below its floor
    (["nosuchcmd"], "invalid choice: 'nosuchcmd'"),
    (["status", "--bogus"], "unrecognized arguments: --bogus"),
    (["export", "gold", "--format", "xml"], "invalid choice: 'xml'"),
    (["export", "gold", "--policy", "nosuch"], "invalid choice: 'nosuch'"),
    (["import"], "required: KIND"),
    (["agreement", "--bootstrap", "-1"], "--bootstrap: must be at least 1"),
    (["agreement", "--min-items", "0"], "--min-items: must be at least 1"),
    (["calibrate", "--bootstrap", "0"], "--bootstrap: must be at least 1"),
    (["calibrate", "--grid", "x"], "--grid: 'x' is not a whole number"),
    (["calibrate", "--min-rows", "-1"], "--min-rows: must be at least 2"),
    (["score", "--model", "m", "--sae", "s", "--negatives", "-1"], "--negatives: must be at least 0"),
    (["score", "--model", "m", "--sae", "s", "--max-contexts", "0"], "--max-contexts: must be at least 1"),
    (["label", "--methods", "baez", "--max-retries", "-1"], "--max-retries: must be at least 0"),
    (["label", "--methods", "baez", "--nla-bos-offset", "-5"], "--nla-bos-offset: must be at least 0"),
    (["bench", "--max-retries", "-2"], "--max-retries: must be at least 0"),
    # score
    (["score"], "give --model and --sae"),
    (["score", "--from-stored", "--features", "5-2"], "--features: '5-2' runs backwards (write 2-5)"),
    (["score", "--from-stored", "--features", "abc"], "--features: 'abc' is not an index or a range like 40-49"),
    (["score", "--from-stored", "--features", ""], "--features: no indices given"),
    (["score", "--from-stored", "--features", "0-99999999999999"],
     "--features: '0-99999999999999' makes 100,000,000,000,000 indices in all; at most 2,097,152"),
    (["score", "--from-stored", "--features", "2-9"],
     "--features: 6 of the 8 requested indices are not stored in this project: 4, 5, 6, 7, 8 and 1 more"),
    (["score", "--from-stored", "--source", "tiny-model/0-res", "--features", "3,99"],
     "--features: 1 of the 2 requested indices is not stored for source tiny-model/0-res: 99"),
    (["score", "--model", "m", "--sae", "s", "--shard", "3/2"], "--shard '3/2'"),
    (["score", "--model", "{tmp}/nope", "--sae", "{tmp}/nope"], "no such model directory"),
    # label
    (["label"], "--methods M1,M2 or --by-tier"),
    (["label", "--methods", "nosuch"], "unknown label method 'nosuch'"),
    (["label", "--methods", "baez", "--features", "1-x"], "--features: '1-x' is not an index or a range like 40-49"),
    (["label", "--methods", "baez", "--features", "0-99999999999999"],
     "--features: '0-99999999999999' makes 100,000,000,000,000 indices in all"),
    (["label", "--methods", "baez", "--features", "0-3,-1"], "--features: '-1' is negative; indices start at 0"),
    (["label", "--methods", "baez", "--features", "0,,3"], "--features: '0,,3' has an empty piece"),
    (["label", "--methods", "baez", "--features", "2-9"],
     "--features: 6 of the 8 requested indices are not stored in this project: 4, 5, 6, 7, 8 and 1 more"),
    (["label", "--methods", "baez", "--source", "tiny-model/0-res", "--features", "4"],
     "--features: index 4 is not stored for source tiny-model/0-res"),
    (["label", "--methods", "baez", "--temperature", "hot"], "--temperature: 'hot'"),
    (["label", "--methods", "eleuther_acts_top5", "--redo", "--base-url", "notaurl", "--model", "m",
      "--api-key-env", "PATH"], "endpoint 'notaurl' is not an http"),
    (["bench", "--redo", "--base-url", "ftp://x", "--model", "m", "--api-key-env", "PATH"],
     "endpoint 'ftp://x' is not an http"),
    (["label", "--methods", "baez", "--concurrency", "0"], "concurrency must be at least 1"),
    (["label", "--methods", "baez", "--base-url", "http://127.0.0.1:180132/v1", "--model", "m"],
     "port is not a number from 1 to 65535"),
    (["bench", "--redo", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--api-key-env", "PATH",
      "--benchmarks", "embedding", "--embedding-model", "./no-such-dir"],
     "--embedding-model ./no-such-dir: no such directory"),
    (["bench", "--redo", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--api-key-env", "PATH",
      "--embedding-model", "{tmp}/empty.txt"], "empty.txt: is a file, not a model directory"),
    (["label", "--methods", "baez", "--source", "no/such"], "no source 'no/such'"),
    (["label", "--methods", "baez", "--nla-jsonl", "{tmp}/none.jsonl"], "none.jsonl: cannot read"),
    (["label", "--methods", "baez", "--nla-jsonl", "{tmp}/bad.json"], "bad.json: record line 1"),
    # bench
    (["bench", "--benchmarks", "nosuch"], "unknown nosuch"),
    (["bench", "--methods", "nosuch"], "no labels by 'nosuch'"),
    (["bench", "--positive-ranks", "9-3"], "--positive-ranks '9-3'"),
    (["bench", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["bench", "--n-negatives", "0"], "--n-negatives must be at least 1"),
    (["bench", "--json"], "--json goes with --report"),
    (["bench", "--features", "99"], "--features: index 99 is not stored in this project"),
    (["bench", "--features", "2-9"],
     "--features: 6 of the 8 requested indices are not stored in this project: 4, 5, 6, 7, 8 and 1 more"),
    (["bench", "--features", "3-1"], "--features: '3-1' runs backwards (write 1-3)"),
    (["bench", "--report", "--source", "no/such"], "--source: not used by --report"),
    (["bench", "--report", "--methods", "baez", "--json"], "--methods: not used by --report"),
    # import
    (["import", "judgments", "{tmp}/none.jsonl"], "none.jsonl: no such file"),
    (["import", "judgments", "{tmp}/empty.txt"], "empty.txt: is empty"),
    (["import", "judgments", "{tmp}/bad.json"], "bad.json: record line 1"),
    (["import", "judgments", "{db}"], "record line 1: not valid UTF-8"),
    (["import", "neuronpedia", "{tmp}/bad.json"], "bad.json: record line 1"),
    (["import", "neuronpedia", "{tmp}/folder"], "no importable files"),
    # export, calibrate --html, backup, merge
    (["export", "features", "-o", "{tmp}/folder"], "folder: cannot write"),
    (["export", "labels", "--method", "nosuch"], "no labels by method 'nosuch'"),
    (["export", "labels", "--source", "no/such"], "no source named 'no/such'"),
    (["export", "gold", "--format", "parquet"], "give --output"),
    (["export", "gold", "--format", "parquet", "-o", "{tmp}/folder"], "folder: cannot write"),
    (["calibrate", "--html", "{tmp}/folder"], "folder: cannot write the HTML report"),
    (["backup", "{db}"], "already exists"),
    (["backup", "{tmp}/folder"], "is a directory"),
    (["merge", "{tmp}/text.db"], "text.db: not a usable SQLite database"),
    (["merge", "{tmp}/other.db"], "not a saegold project"),
    (["merge", "{tmp}/none.db"], "none.db: no such project database"),
    (["merge", "{db}"], "this project's own database"),
    # annotators, annotate
    (["annotators", "--lead"], "--lead goes with --add NAME"),
    (["annotators", "--add", "ev\x1b[2Jil"], "must be non-empty printable text"),
    (["annotate", "--annotator", "ev\x1b]0;t\x07il"], "a name must be printable text"),
    # demo
    (["demo", "--no-open", "--max-contexts", "0"], "--max-contexts must be at least 1"),
    (["--db", "{tmp}/demo/d.db", "demo"], "demo opens the app, which needs a terminal"),
]


@pytest.mark.parametrize("args, fragment", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line_exit_2(files, capsys, args, fragment):
    db, tmp = files["db"], files["tmp"]
    argv = [a.format(db=db, tmp=tmp) for a in args]
    if argv[0] != "--db":
        argv = ["--db", str(db), *argv]
    watched = [db, files["other"]]
    before = [_dump(p) for p in watched]
    try:
        rc = main(argv)
    except SystemExit as exc:   # argparse
        rc = exc.code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, (out, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("saegold") and ": error: " in lines[0], err
    assert fragment in lines[0], err
    assert [_dump(p) for p in watched] == before
    assert (tmp / "empty.db").read_bytes() == b""
    assert not (tmp / "missing.db").exists()


def test_ctrl_c_during_label_is_130_and_one_line(files, llm_server):
    """SIGINT while label requests are in flight: exit 130, one line, a sound database."""
    db = files["db"]
    started = []

    def slow(request: dict) -> str:
        started.append(1)
        time.sleep(0.3)
        return "[EXPLANATION]: a word"

    server = llm_server(chat_handler=slow)
    env = {**os.environ, "PYTHONPATH": str(REPO), "SAEGOLD_TEST_KEY": "k"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "saegold.tui.cli", "--db", str(db), "label", "--methods", "eleuther_acts_top5",
         "--redo", "--no-cache", "--concurrency", "1", "--base-url", server.base_url, "--model", "m",
         "--api-key-env", "SAEGOLD_TEST_KEY"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    deadline = time.monotonic() + 60
    while not started and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0], err
    assert "Traceback" not in err
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_annotate_without_a_terminal_is_one_line(files, capsys):
    """`ssh HOST saegold annotate` (no -t): a clear line, not an app drawing into a pipe."""
    rc = main(["--db", str(files["db"]), "annotate", "--annotator", "ann"])
    out, err = capsys.readouterr()
    assert rc == 2 and len(err.strip().splitlines()) == 1, (out, err)
    assert "annotate needs a terminal" in err and "ssh -t" in err


@pytest.mark.parametrize("args", [
    ["export", "labels", "-o", "{tmp}/nonexistent/dir/f.jsonl"],
    ["export", "gold", "-o", "{tmp}/nonexistent/dir/f.jsonl"],
    ["calibrate", "--html", "{tmp}/nonexistent/dir/r.html", "--bootstrap", "5"],
    ["export", "labels", "-o", "{tmp}/empty.txt/f.jsonl"],
], ids=lambda a: " ".join(a[:2]))
def test_output_into_a_missing_directory_is_refused(files, capsys, args):
    """A typo in an output path never creates directories: one line, exit 2, nothing made."""
    tmp = files["tmp"]
    before = sorted(p.name for p in tmp.iterdir())
    rc = main(["--db", str(files["db"]), *[a.format(tmp=tmp) for a in args]])
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and ("no such directory" in lines[0] or "is not a directory" in lines[0]), err
    assert sorted(p.name for p in tmp.iterdir()) == before


LLM_COMMANDS = [
    ["label", "--methods", "eleuther_acts_top5", "--features", "0"],
    ["bench", "--benchmarks", "detection", "--features", "0", "--negatives", "other-features",
     "--sampler", "top", "--positive-ranks", "1-1"],
]


@pytest.mark.parametrize("command", LLM_COMMANDS, ids=lambda c: c[0])
def test_an_unreachable_endpoint_is_one_line_exit_2(files, capsys, monkeypatch, command):
    """An endpoint that never answers is an error of the run (exit 2, one line on stderr,
    nothing written), not N identical failures on stdout."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SAEGOLD_TEST_KEY", "k")
    before = _dump(files["db"])
    rc = main(["--db", str(files["db"]), *command, "--redo", "--base-url", f"http://127.0.0.1:{port}/v1",
               "--model", "m", "--api-key-env", "SAEGOLD_TEST_KEY", "--max-retries", "0", "--timeout", "2"])
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and "cannot reach" in err and "connection error" in err
    assert "error" not in out and "Traceback" not in out + err
    assert _dump(files["db"]) == before


@pytest.mark.parametrize("command", LLM_COMMANDS, ids=lambda c: c[0])
def test_requests_failing_for_good_exit_1(files, capsys, monkeypatch, llm_server, command):
    """The endpoint answers, but one request is refused for good: the run finishes, says so on
    stderr (once per distinct error) and exits 1, so a script notices."""
    from saegold.engine.llm.standin_server import Fault

    server = llm_server(lambda req: "[EXPLANATION]: x" if "EXPLANATION" in str(req) else "1")
    # The first request goes through; every later one is refused (400: not retried).
    server.inject(Fault(), *[Fault(status=400) for _ in range(20)])
    command = [c if c != "0" else "0-3" for c in command]
    monkeypatch.setenv("SAEGOLD_TEST_KEY", "k")
    rc = main(["--db", str(files["db"]), *command, "--redo", "--no-cache" if command[0] == "label" else "--redo",
               "--base-url", server.base_url, "--model", "m", "--api-key-env", "SAEGOLD_TEST_KEY",
               "--max-retries", "0", "--concurrency", "1"])
    out, err = capsys.readouterr()
    assert rc == 1, (out, err)
    errors = err.strip().splitlines()
    assert errors and all(e.startswith("saegold: ") for e in errors)
    assert "HTTP 400" in errors[-1], errors
    if command[0] == "label":  # the same failure of 3 requests is one line, counted
        assert len(errors) == 1 and "3 times" in errors[0], errors
    assert "HTTP 400" not in out and "Traceback" not in out + err


def test_unusable_answers_only_exit_1(files, capsys, monkeypatch, llm_server):
    """`N labeled, 1 failed (3 unusable answers)` is not done: exit 1, like a failed request."""
    server = llm_server(lambda req: "[EXPLANATION]: fine" if "w0" not in str(req) else "no tag here")
    monkeypatch.setenv("SAEGOLD_TEST_KEY", "k")
    rc = main(["--db", str(files["db"]), "label", "--methods", "eleuther_acts_top5", "--redo", "--no-cache",
               "--base-url", server.base_url, "--model", "m", "--api-key-env", "SAEGOLD_TEST_KEY"])
    out, err = capsys.readouterr()
    assert rc == 1, (out, err)
    assert "3 labeled, 1 failed (3 unusable answers" in out and "not done: 1 labels" in out
