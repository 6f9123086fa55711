"""End to end, as a researcher runs it: the real ``saegold`` CLI through the whole pipeline.

planted model -> init -> score -> label --by-tier -> bench -> two annotators' judgments
(imported, with disagreements, a retraction, a skip and a flag) -> the annotation queue ->
status / agreement / calibrate / export -> backup -> merge (a third annotator; features
scored elsewhere) -> stored thresholds -> a lead's adjudications -> gold under each policy;
and the Neuronpedia path: import -> score --from-stored -> label -> bench -> gold back out
in Neuronpedia's shape.  LLM calls go over real HTTP to the rule-based stand-in server on
127.0.0.1 (the demo's responders).  Every step is checked against the others (counts,
routing, requests sent, idempotence, recomputed statistics, resolved gold)."""
from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from saegold.store.db import open_project
from saegold.store.settings import all_settings
from saegold.tui.cli import main

REPO = Path(__file__).resolve().parents[2]
_VENV_SAEGOLD = REPO / ".venv" / "bin" / "saegold"
# the installed command line where there is one, else the same entry point by module
SAEGOLD = [str(_VENV_SAEGOLD)] if _VENV_SAEGOLD.exists() else [sys.executable, "-m", "saegold.tui.cli"]
SEED = 0
N_FIRST = 44         # features scored in the project itself; the planted SAE has 48


def _shared() -> Path | None:
    for root in (REPO.parent / "shared", Path("/work/shared")):
        if (root / "data" / "neuronpedia").is_dir():
            return root / "data" / "neuronpedia"
    return None


class Cli:
    """``saegold --db DB ...`` in-process; returns stdout, asserts the exit status."""

    def __init__(self, db: Path, capsys):
        self.db, self.capsys = db, capsys

    def __call__(self, *argv: str, rc: int = 0) -> str:
        self.capsys.readouterr()
        got = main(["--db", str(self.db), *argv])
        out, err = self.capsys.readouterr()
        assert got == rc, f"saegold {' '.join(argv)} -> {got}\n{out}\n{err}"
        self.err = err
        return out

    def json(self, *argv: str) -> dict:
        return json.loads(self(*argv))


def _rows(db: Path, sql: str, params=()) -> list[sqlite3.Row]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def _standin():
    from saegold.engine.bench.demo_judge import demo_embed
    from saegold.engine.demo import _chat
    from saegold.engine.llm.demo_responder import demo_nla_explanation
    from saegold.engine.llm.standin_server import StandinServer

    return StandinServer(_chat, demo_embed, demo_nla_explanation)


def _endpoint(server) -> list[str]:
    return ["--base-url", server.base_url, "--model", "standin-judge", "--api-key-env", "E2E_UNSET_KEY"]


def _bench_args(server) -> list[str]:
    return ["bench", *_endpoint(server), "--benchmarks", "detection,fuzzing,embedding",
            "--embedding-model", "standin-embed", "--negatives", "other-features", "--seed", str(SEED)]


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# -- judgments two annotators made elsewhere, built from the project's own labels ----------
OTHER_TIER = {"input": "output", "output": "input", "cross": "obscure", "obscure": "cross"}


def make_judgments(scores: list[dict], labels: list[dict]) -> tuple[list[dict], list[dict], dict, dict]:
    """alice judges every labeled feature and two obscure ones (and prefers one candidate,
    and writes her own label on an obscure feature); bob judges two thirds of them and
    disagrees on some tiers and verdicts.  Returns (alice, bob, tiers, gold_labels): what
    majority resolution must give per (source, feature) (None: unresolved)."""
    by_feature: dict[tuple[str, int], list[dict]] = {}
    for lab in labels:
        by_feature.setdefault((lab["source"], lab["feature"]), []).append(lab)
    cat = {(s["source"], s["feature"]): s["category"] for s in scores}
    obscure = sorted(k for k, c in cat.items() if c == "obscure")[:2]
    judged = sorted(by_feature) + obscure
    alice, bob, tiers, gold = [], [], {}, {}
    t = 0

    def event(who, key, kind, value, **extra):
        nonlocal t
        t += 1
        rec = {"annotator": who, "source": key[0], "feature": key[1], "kind": kind, "value": value,
               "created_at": f"2026-11-26T10:{t // 60:02d}:{t % 60:02d}Z", "seconds_spent": 3.5}
        rec.update(extra)
        return rec

    for n, key in enumerate(judged):
        auto = cat[key]
        cands = sorted(by_feature.get(key, []), key=lambda lab: lab["method"])
        alice.append(event("alice", key, "tier", auto, confidence=3))
        if n == 0:              # a change of mind, undone: the retraction restores her first tier
            alice.append(event("alice", key, "tier", OTHER_TIER[auto], confidence=1, uuid=f"e2e-oops-{n}"))
            alice.append(event("alice", key, "retract", None, target_uuid=f"e2e-oops-{n}"))
        for lab in cands:
            alice.append(event("alice", key, "verdict", "correct" if lab["method"] != "baez_last" else "partly",
                               label_uuid=lab["uuid"]))
        if cands:
            alice.append(event("alice", key, "preference", "prefer", label_uuid=cands[0]["uuid"]))
        elif key == obscure[0]:
            alice.append(event("alice", key, "gold_label", "  Fires on  nothing in particular "))
        tiers[key] = auto
        gold[key] = (cands[0]["text"] if cands else
                     "Fires on nothing in particular" if key == obscure[0] else None)
        if n % 3 == 2:                      # bob leaves a third to alice alone
            continue
        disagree = n % 4 == 1
        bob.append(event("bob", key, "tier", OTHER_TIER[auto] if disagree else auto, confidence=2))
        for lab in cands:
            bob.append(event("bob", key, "verdict", "wrong" if disagree else "correct", method=lab["method"]))
        if disagree:
            tiers[key] = None
            if cands:           # every verdict tied: no candidate is correct
                gold[key] = None
    # bob skips one of alice's features and flags one nobody judged: neither is a judgment
    bob.append(event("bob", judged[2], "skip", "unsure"))
    unjudged = next(k for k, c in sorted(cat.items()) if c == "obscure" and k not in judged)
    bob.append(event("bob", unjudged, "flag", "tokenizer artefact?"))
    return alice, bob, tiers, gold


# -- the planted pipeline ------------------------------------------------------------------
def test_planted_pipeline_end_to_end(tmp_path, capsys):
    from saegold.engine.planted import build_planted, demo_corpus_path

    model_dir, sae_dir, planted = build_planted(tmp_path / "planted", seed=SEED)
    db = tmp_path / "project.db"
    cli = Cli(db, capsys)

    # init, in a real subprocess (python -m tui.cli)
    proc = subprocess.run([sys.executable, "-m", "saegold.tui.cli", "--db", str(db), "init"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "label_routing" in proc.stdout and db.exists()
    with open_project(db) as project:
        routing = all_settings(project)["label_routing"]

    # score
    score_args = ["score", "--model", str(model_dir), "--sae", str(sae_dir), "--corpus", str(demo_corpus_path()),
                  "--ctx-len", "32", "--max-contexts", "300", "--device", "cpu"]
    out = cli(*score_args, "--features", f"0-{N_FIRST - 1}")     # the rest come later, by a merge
    assert f"{N_FIRST} features in scope" in out
    scores = [json.loads(x) for x in cli("export", "scores").splitlines()]
    assert len(scores) == N_FIRST
    assert {s["source"] for s in scores} == {"planted-model/planted-sae"}
    got = {s["feature"]: s["category"] for s in scores}
    assert {j: got[j] for j in planted} == planted
    cats = {c: sum(v == c for v in got.values()) for c in ("input", "output", "cross", "obscure")}
    for s in scores:
        assert s["category"] == _category(s["input_score"], s["output_score"], s["input_threshold"],
                                          s["output_threshold"])

    with _standin() as server:
        # label --by-tier
        out = cli("label", "--by-tier", *_endpoint(server), "--nla-url", server.nla_url, "--nla-source", "demo-nla")
        assert "0 failed" in out
        total = re.search(r"^\s*total\s+([\d,]+)\s+([\d,]+)", out, re.M)
        assert total and int(total[1].replace(",", "")) == len(server.requests), out   # calls sent, as counted
        n_label_requests = len(server.requests)
        labels = [json.loads(x) for x in cli("export", "labels").splitlines()]
        st = cli.json("status", "--json")
        methods_of: dict[int, set[str]] = {}
        for lab in labels:
            assert lab["status"] == "ok" and lab["text"]
            methods_of.setdefault(lab["feature"], set()).add(lab["method"])
        for f, c in got.items():
            assert methods_of.get(f, set()) == set(routing[c]), (f, c)
        assert len(labels) == sum(len(routing[c]) * n for c, n in cats.items())
        assert not any(got[f] == "obscure" for f in methods_of)
        assert {m["method"]: m["ok"] for m in st["label_methods"]} == {
            m: sum(lab["method"] == m for lab in labels) for m in {lab["method"] for lab in labels}}
        assert st["sources"][0]["labeled"] == len(methods_of)

        # bench
        out = cli(*_bench_args(server))
        sent = re.search(r"LLM: (\d+) requests sent", out)
        assert sent and int(sent[1]) == len(server.requests) - n_label_requests > 0, out
        n_bench = _rows(db, "SELECT COUNT(*) FROM bench_scores")[0][0]
        assert n_bench > 0 and f"stored {n_bench} results" in out
        true_rows = _rows(db, "SELECT l.uuid, b.benchmark FROM bench_scores b JOIN labels l ON l.id = b.label_id "
                              "WHERE b.control = 'true'")
        assert sorted((r[0], r[1]) for r in true_rows) == sorted(
            (lab["uuid"], b) for lab in labels for b in ("detection", "fuzzing", "embedding"))
        # each shuffled control scored a label of the same method from another feature
        pairs = _rows(db, "SELECT b.control, l.method, l.feature_id, s.method, s.feature_id, s.id = l.id "
                          "FROM bench_scores b JOIN labels l ON l.id = b.label_id "
                          "JOIN labels s ON s.id = b.scored_label_id")
        assert len(pairs) == n_bench
        for control, method, fid, s_method, s_fid, same in pairs:
            assert s_method == method and (same if control == "true" else s_fid != fid)
        assert sum(p[0] == "shuffled" for p in pairs) == sum(p[0] == "true" for p in pairs)
        nla = [r.body for r in server.requests if r.path.endswith("/explain")]
        assert nla and all(b["nlaSourceId"] == "demo-nla" and b["modelId"] == "planted-model" for b in nla)
        baez_features = sorted(f for f, c in got.items() if "baez" in routing[c])
        explained = _rows(db, "SELECT f.idx, e.rank FROM nla_explanations n JOIN examples e ON e.id = n.example_id "
                              "JOIN features f ON f.id = e.feature_id WHERE n.nla_source = 'demo-nla'")
        assert sorted(map(tuple, explained)) == sorted(tuple(r) for r in _rows(
            db, "SELECT f.idx, e.rank FROM examples e JOIN features f ON f.id = e.feature_id WHERE e.kind = 'top' "
                f"AND e.rank < 5 AND f.idx IN ({','.join(map(str, baez_features))})"))
        assert len({(b["text"], tuple(b["positions"])) for b in nla}) == len(nla) <= len(explained)
        report = cli.json("bench", "--report", "--json")
        assert {r["benchmark"] for r in report["overall"]} == {"detection", "fuzzing", "embedding"}
        for r in report["overall"]:
            assert r["n"] == sum(lab["method"] == r["method"] for lab in labels), r
        for r in report["by_category"]:
            assert r["n"] == sum(lab["method"] == r["method"] and got[lab["feature"]] == r["category"]
                                 for lab in labels), r
        assert sum(r["n"] for r in report["by_category"]) == sum(r["n"] for r in report["overall"])

        # re-running label and bench sends nothing
        before = len(server.requests)
        out = cli("label", "--by-tier", *_endpoint(server), "--nla-url", server.nla_url, "--nla-source", "demo-nla")
        out2 = cli(*_bench_args(server))
        assert len(server.requests) == before, [r.path for r in server.requests[before:]][:5]
        assert _rows(db, "SELECT COUNT(*) FROM bench_scores")[0][0] == n_bench
        assert f"{n_bench} results already stored" in out2

    # two annotators' judgments, made elsewhere, imported
    alice, bob, expected, expected_gold = make_judgments(scores, labels)
    cli("import", "judgments", str(_write_jsonl(tmp_path / "alice.jsonl", alice)))
    cli("import", "judgments", str(_write_jsonl(tmp_path / "bob.jsonl", bob)))
    n_events = len(alice) + len(bob)

    st = cli.json("status", "--json")
    imports = [(Path(i["path"]).name, i["kind"], i["records"], i["rejected"]) for i in st["imports"]]
    assert sorted(imports) == [("alice.jsonl", "judgments", len(alice), 0), ("bob.jsonl", "judgments", len(bob), 0)]
    proc = subprocess.run([*SAEGOLD, "--db", str(db), "status", "--json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)          # a second process, stdout a pipe
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == st
    for table, n in st["tables"].items():
        assert _rows(db, f"SELECT COUNT(*) FROM {table}")[0][0] == n, table
    assert st["tables"]["judgments"] == n_events
    assert sum(st["categories"].values()) == N_FIRST and {k: st["categories"][k] for k in cats} == cats
    who = {a["annotator"]: a for a in st["annotators"]}
    assert set(who) == {"alice", "bob"}
    for name, events in (("alice", alice), ("bob", bob)):
        judged = {(e["source"], e["feature"]) for e in _live(events)
                  if e["kind"] in ("tier", "verdict", "preference", "gold_label")}
        assert who[name]["judged"] == len(judged), who[name]          # skips, flags and notes alone do not count
        assert who[name]["done"] == len({(e["source"], e["feature"]) for e in _live(events) if e["kind"] == "tier"})
        assert who[name]["skipped"] == sum(e["kind"] == "skip" for e in events)
        assert who[name]["flagged"] == sum(e["kind"] == "flag" for e in events)

    both = {(e["source"], e["feature"]) for e in alice} & {(e["source"], e["feature"]) for e in bob
                                                           if e["kind"] not in ("skip", "flag")}
    tiers = {(e["annotator"], e["source"], e["feature"]): e["value"] for e in _live(alice + bob) if e["kind"] == "tier"}
    assert len(tiers) < sum(e["kind"] == "tier" for e in alice + bob)     # one was retracted
    agreeing = sum(tiers[("alice", *k)] == tiers[("bob", *k)] for k in both)
    # the annotation queue (what `saegold annotate` hands out) counts the imported judgments:
    # a feature already judged by `overlap` (2) people goes to nobody else, and features one
    # person judged come first in each category, so pairs complete early
    from saegold.store import queue as store_queue
    judged_by: dict[int, set[str]] = {}
    for e in alice + bob:
        judged_by.setdefault(e["feature"], set()).add(e["annotator"])
    cli("backup", str(tmp_path / "queue.db"))                  # on a snapshot: the project stays as it is
    with open_project(tmp_path / "queue.db") as project:
        store_queue.assign_more(project, "dave", 1000)
        idx_of = {r["id"]: r["idx"] for r in project.query("SELECT id, idx FROM features")}
        dave = [idx_of[f] for f in store_queue.queue(project, "dave")]
        store_queue.assign_more(project, "alice", 1000)
        alice_queue = [idx_of[f] for f in store_queue.queue(project, "alice")]
    assert dave and not [f for f in dave if len(judged_by.get(f, ())) >= 2]
    for c in cats:
        taken = [len(judged_by.get(f, ())) > 0 for f in dave if got[f] == c]
        assert taken == sorted(taken, reverse=True), (c, taken)
    assert {f for f, who in judged_by.items() if "alice" in who} <= set(alice_queue)
    # ... and the lead's review queue holds exactly the features where alice and bob differ
    uuid_of = {(lab["feature"], lab["method"]): lab["uuid"] for lab in labels}
    said: dict[tuple[str, int], set] = {}
    for e in _live(alice + bob):
        if e["kind"] in ("tier", "verdict"):
            target = "tier" if e["kind"] == "tier" else e.get("label_uuid") or uuid_of[(e["feature"], e["method"])]
            said.setdefault((e["annotator"], e["feature"]), set()).add((target, e["value"]))
    differ = {f for (who, f), mine in said.items() if who == "alice" and ("bob", f) in said
              and {t for t, _ in mine} & {t for t, _ in said[("bob", f)]}
              and any(t == u and v != w for t, v in mine for u, w in said[("bob", f)])}
    with open_project(tmp_path / "queue.db") as project:
        review = sorted(idx_of[f] for f in store_queue.disagreements(project))
    assert review == sorted(differ) and differ
    agr = cli.json("agreement", "--json")
    assert agr["n_features_judged"] == len(expected) and agr["annotators"] == ["alice", "bob"]
    assert agr["raters_per_feature"] == {"1": len(expected) - len(both), "2": len(both)}
    assert agr["tier"]["n_items"] == len(both) == agr["tier"]["krippendorff_alpha"]["n_items"]
    assert agr["tier"]["percent_agreement"]["value"] == pytest.approx(agreeing / len(both))
    assert 0 < agreeing < len(both)            # the fixture has disagreements, and agreements
    doubly_labeled = [lab for lab in labels if (lab["source"], lab["feature"]) in both]
    assert agr["verdict"]["n_items"] == len(doubly_labeled)
    matrix = [[0] * 4 for _ in range(4)]
    order = agr["tier_vs_category"]["values"]
    for (_, src, f), tier in tiers.items():
        matrix[order.index(tier)][order.index(got[f])] += 1
    assert agr["tier_vs_category"]["matrix"] == matrix
    assert agr["tier_vs_category"]["n_judgments"] == len(tiers)

    cal = cli.json("calibrate", "--json")
    verdicts = [e for e in alice + bob if e["kind"] == "verdict"]
    assert cal["n_verdicts"] == len(verdicts)
    rate = {}
    uuid_method = {lab["uuid"]: lab["method"] for lab in labels}
    uuid_of_method = {(lab["feature"], lab["method"]): lab["uuid"] for lab in labels}
    for e in verdicts:
        m = e.get("method") or uuid_method[e["label_uuid"]]
        rate.setdefault(m, []).append(e["value"] == "correct")
    for row in cal["methods"]:
        assert row["n_rows"] == len(rate[row["method"]])
        assert row["correct"]["value"] == pytest.approx(sum(rate[row["method"]]) / len(rate[row["method"]]))
    n_true = {b["benchmark"]: b["n_true_scores"] for b in cal["benchmarks"]}
    assert n_true.pop("steering", 0) == 0   # calibrate lists steering too; this run benchmarked none
    assert n_true == {b: len(labels) for b in ("detection", "fuzzing", "embedding")}
    # the AUROC of each benchmark against human "correct", recomputed from the exported pieces
    from sklearn.metrics import roc_auc_score
    value_of = {(r[0], r[1]): r[2] for r in _rows(
        db, "SELECT l.uuid, b.benchmark, b.value FROM bench_scores b JOIN labels l ON l.id = b.label_id "
            "WHERE b.control = 'true' AND b.value IS NOT NULL")}
    verdict_rows = [(e.get("label_uuid") or uuid_of_method[(e["feature"], e["method"])], e["value"])
                    for e in _live(verdicts)]
    for cell in (c for c in cal["cells"] if c["category"] == "all"):
        rows = [(value_of[(u, cell["benchmark"])], v) for u, v in verdict_rows if (u, cell["benchmark"]) in value_of]
        assert cell["n_rows"] == len(rows)
        if not rows:   # steering: listed by calibrate, not benchmarked in this run
            assert cell["benchmark"] == "steering" and (cell.get("auroc_correct") or {}).get("value") is None
            continue
        assert cell["auroc_correct"]["value"] == pytest.approx(
            roc_auc_score([v == "correct" for _, v in rows], [x for x, _ in rows]))
    assert cal["thresholds"]["n_rows"] == len(tiers) and cal["thresholds"]["confusion"] == matrix

    # gold
    for fmt in ("jsonl", "csv", "parquet"):
        cli("export", "gold", "--format", fmt, "--output", str(tmp_path / f"gold.{fmt}"))
    from saegold.engine.gold import read_gold
    gold = {fmt: read_gold(tmp_path / f"gold.{fmt}", fmt) for fmt in ("jsonl", "csv", "parquet")}
    assert gold["jsonl"] == gold["csv"] == gold["parquet"]
    np_out = json.loads(cli("export", "gold", "--format", "neuronpedia"))
    graph = json.loads(cli("export", "gold", "--format", "graph-labels"))
    named = {k: v for k, v in expected_gold.items() if v}
    assert sorted((int(r["index"]), r["description"]) for r in np_out) == sorted((k[1], v) for k, v in named.items())
    layer = _rows(db, "SELECT layer FROM sources")[0][0]
    assert sorted(map(tuple, graph)) == sorted((f"{layer}_{k[1]}", v) for k, v in named.items())
    recs = {(r["source"], r["feature"]): r for r in gold["jsonl"]}
    assert set(recs) == set(expected)
    assert {k: r["tier"] for k, r in recs.items()} == expected
    assert {k: r["gold_label"] for k, r in recs.items()} == expected_gold
    assert len({k for k, v in expected.items() if v is None}) > 0
    assert {v for v in expected_gold.values()} > {None}
    for k, r in recs.items():
        assert r["n_annotators"] == (2 if k in both else 1), r
        assert r["annotators"] == (["alice", "bob"] if k in both else ["alice"])
        assert r["auto_category"] == got[k[1]]
    assert sum(r["n_skipped"] for r in recs.values()) == 1

    # exports; the exported judgments re-import as a no-op
    jpath = tmp_path / "judgments.jsonl"
    cli("export", "judgments", "--output", str(jpath))
    exported = _read_jsonl(jpath)
    assert len(exported) == n_events
    out = cli("import", "judgments", str(jpath))
    assert "0 new, " in out
    st = cli.json("status", "--json")
    for a in st["annotators"]:
        assert a["events"] == sum(e["annotator"] == a["annotator"] for e in alice + bob)
    assert {(e["annotator"], e["source"], e["feature"], e["kind"], e["value"]) for e in exported} == {
        (e["annotator"], e["source"], e["feature"], e["kind"], e["value"]) for e in alice + bob}
    assert _rows(db, "SELECT COUNT(*) FROM judgments")[0][0] == n_events
    for kind in ("scores", "labels"):
        for fmt in ("jsonl", "csv"):
            cli("export", kind, "--format", fmt, "--output", str(tmp_path / f"{kind}.{fmt}"))
    assert len(list(csv.DictReader((tmp_path / "scores.csv").open()))) == N_FIRST
    assert len(list(csv.DictReader((tmp_path / "labels.csv").open()))) == len(labels)
    assert _read_jsonl(tmp_path / "labels.jsonl") == labels

    # backup, then merge a copy with extra judgments
    copy = tmp_path / "copy.db"
    cli("backup", str(copy))
    extra = [dict(e, annotator="carol", created_at="2026-11-27T09:00:00Z") for e in alice
             if e["kind"] == "tier" and "uuid" not in e][:3]
    Cli(copy, capsys)("import", "judgments", str(_write_jsonl(tmp_path / "carol.jsonl", extra)))
    before = {t: _rows(db, f"SELECT COUNT(*) FROM {t}")[0][0] for t in st["tables"]}
    dry = cli("merge", "--dry-run", str(copy))
    assert {t: _rows(db, f"SELECT COUNT(*) FROM {t}")[0][0] for t in st["tables"]} == before
    cli("backup", str(copy), rc=2)                         # exists: --force needed
    out = cli("merge", str(copy))
    assert dry.splitlines()[1:] == out.splitlines()[1:], (dry, out)
    assert "judgments               3 new" in out and "annotators              1 new" in out, out
    assert _rows(db, "SELECT COUNT(*) FROM judgments")[0][0] == n_events + len(extra)
    out = cli("merge", str(copy))
    assert "nothing new" in out
    assert {a["annotator"] for a in cli.json("status", "--json")["annotators"]} == {"alice", "bob", "carol"}

    # the fitted thresholds become the project's: every category re-derived, and label --by-tier
    # plans exactly the routed pairs that have no label yet (--force: on these few features the
    # fit is not shown to beat the current pair, which alone refuses with exit 1)
    html = tmp_path / "report.html"
    cli("calibrate", "--store-thresholds", "--yes", "--force", "--html", str(html), "--grid", "8")
    assert html.stat().st_size > 1000
    with open_project(db) as project:
        cfg = all_settings(project)
    scores2 = [json.loads(x) for x in cli("export", "scores").splitlines()]
    for s in scores2:
        assert (s["input_threshold"], s["output_threshold"]) == (cfg["input_threshold"], cfg["output_threshold"])
        assert s["category"] == _category(s["input_score"], s["output_score"], s["input_threshold"],
                                          s["output_threshold"])
    have = {(lab["feature"], lab["method"]) for lab in labels}
    todo = [(s["feature"], m) for s in scores2 for m in cfg["label_routing"][s["category"]]
            if (s["feature"], m) not in have]
    with _standin() as server:
        out = cli("label", "--by-tier", *_endpoint(server), "--dry-run")
        assert f"{len(todo)} (feature, method) pairs to label" in out, out
        assert not server.requests

    # a project scored elsewhere under the default thresholds brings the last features in by a
    # merge: their categories follow this project's thresholds, as every other category here
    elsewhere = Cli(tmp_path / "elsewhere.db", capsys)
    elsewhere("init")
    elsewhere(*score_args)
    cli("merge", str(tmp_path / "elsewhere.db"))
    scores3 = [json.loads(x) for x in cli("export", "scores").splitlines()]
    assert len(scores3) == 48
    for s in scores3:
        assert (s["input_threshold"], s["output_threshold"]) == (cfg["input_threshold"], cfg["output_threshold"]), s
        assert s["category"] == _category(s["input_score"], s["output_score"], cfg["input_threshold"],
                                          cfg["output_threshold"])

    # a lead (registered as `saegold annotate --lead` does) adjudicates every tied tier
    from saegold.store.judgments import ensure_annotator
    with open_project(db) as project:
        ensure_annotator(project, "lea", "lead")
    votes: dict = {}
    for e in _live(alice + bob + extra):
        if e["kind"] == "tier":
            votes.setdefault((e["source"], e["feature"]), []).append(e["value"])
    majority = {}
    for k, v in votes.items():
        counts = sorted(((v.count(t), t) for t in set(v)), reverse=True)
        majority[k] = counts[0][1] if len(counts) == 1 or counts[0][0] > counts[1][0] else None
    unanimous = {k: v[0] if len(set(v)) == 1 else None for k, v in votes.items()}
    assert majority != expected           # carol broke a tie
    ties = sorted(k for k, v in majority.items() if v is None)
    assert ties
    alice_tier = {(e["source"], e["feature"]): e["value"] for e in _live(alice) if e["kind"] == "tier"}
    adj = [{"annotator": "lea", "source": k[0], "feature": k[1], "kind": "adj_tier", "value": alice_tier[k],
            "created_at": "2026-11-28T12:00:00Z"} for k in ties]
    cli("import", "judgments", str(_write_jsonl(tmp_path / "lea.jsonl", adj)))
    by_policy = {}
    for policy in ("majority", "unanimous", "adjudicated"):
        recs = [json.loads(x) for x in cli("export", "gold", "--policy", policy).splitlines()]
        by_policy[policy] = {(r["source"], r["feature"]): r["tier"] for r in recs}
    assert by_policy["majority"] == majority and by_policy["unanimous"] == unanimous
    assert by_policy["adjudicated"] == {**majority, **{k: alice_tier[k] for k in ties}}


# -- the Neuronpedia path --------------------------------------------------------------------
NP = _shared()
NP_SOURCE = "gemma-4-e2b/17-matryoshka-res-65k"


@pytest.mark.skipif(NP is None, reason="shared/data/neuronpedia is neither beside the repository nor at "
                                       "/work/shared (the real Neuronpedia samples)")
def test_neuronpedia_path_end_to_end(tmp_path, capsys):
    db = tmp_path / "np.db"
    cli = Cli(db, capsys)
    cli("init")
    out = cli("import", "neuronpedia", str(NP))
    assert "sources:  3 new" in out
    again = cli("import", "neuronpedia", str(NP))
    assert "features: 0 new" in again, again
    st = cli.json("status", "--json")
    n_feat = {s["name"]: s["features"] for s in st["sources"]}
    # recounted from the bulk export itself (the excerpt repeats 11 of its records)
    bulk = [rec for path in NP.glob("*explanations-export/*.json") for rec in json.loads(path.read_text())]
    bulk_source = "gemma-2-2b/20-gemmascope-res-16k"
    assert n_feat[bulk_source] == len({int(rec["index"]) for rec in bulk})
    assert _rows(db, "SELECT COUNT(*) FROM labels l JOIN features f ON f.id = l.feature_id JOIN sources s "
                     "ON s.id = f.source_id WHERE s.name = ?", [bulk_source])[0][0] == len(bulk)
    exported = list(csv.DictReader(io.StringIO(cli("export", "labels", "--source", bulk_source, "--format", "csv"),
                                               newline="")))
    assert sorted((int(r["feature"]), r["text"]) for r in exported) == sorted(
        (int(rec["index"]), rec["description"]) for rec in bulk)           # texts kept exactly, through CSV
    assert sum(n_feat.values()) == st["tables"]["features"] == _rows(db, "SELECT COUNT(*) FROM features")[0][0]

    # input scores from the stored activations: every feature with activations and logits
    with_evidence = {r[0] for r in _rows(
        db, "SELECT DISTINCT f.idx FROM features f JOIN sources s ON s.id = f.source_id "
            "JOIN examples e ON e.feature_id = f.id JOIN logit_tokens l ON l.feature_id = f.id "
            "WHERE s.name = ? AND e.kind = 'top' AND l.kind = 'promoted'", [NP_SOURCE])}
    assert with_evidence == {0, 5, 19}
    out = cli("score", "--from-stored", "--source", NP_SOURCE)
    assert f"{len(with_evidence)} features" in out
    scores = [json.loads(x) for x in cli("export", "scores", "--source", NP_SOURCE).splitlines()]
    assert {s["feature"] for s in scores} == with_evidence
    assert all(s["output_score"] is None and 0 <= s["input_score"] <= 1 for s in scores)
    assert "0 features" in cli("score", "--from-stored", "--source", NP_SOURCE)

    with _standin() as server:
        cli("label", "--methods", "eleuther_acts_top5", "--source", NP_SOURCE, "--features", "5,19",
            *_endpoint(server))
        labels = [json.loads(x) for x in cli("export", "labels", "--source", NP_SOURCE, "--method",
                                                 "eleuther_acts_top5").splitlines()]
        assert sorted(lab["feature"] for lab in labels) == [5, 19]
        assert all(lab["status"] == "ok" and lab["origin"] == "saegold" for lab in labels)
        # Neuronpedia's own explanations are kept beside them, under their own method
        theirs = [json.loads(x) for x in cli("export", "labels", "--source", NP_SOURCE).splitlines()]
        assert {lab["origin"] for lab in theirs} == {"saegold", "neuronpedia"}

        out = cli("bench", *_endpoint(server), "--methods", "eleuther_acts_top5", "--source", NP_SOURCE,
                  "--benchmarks", "detection,fuzzing,embedding", "--embedding-model", "standin-embed",
                  "--negatives", "other-features")
        rows = _rows(db, "SELECT l.uuid, b.benchmark, b.control, b.value FROM bench_scores b "
                         "JOIN labels l ON l.id = b.label_id")
        assert sorted((r[0], r[1]) for r in rows if r[2] == "true") == sorted(
            (lab["uuid"], b) for lab in labels for b in ("detection", "fuzzing", "embedding"))
        assert all(r[3] is None or 0 <= r[3] <= 1 for r in rows)
        assert f"stored {len(rows)} results" in out
        before = len(server.requests)
        cli("label", "--methods", "eleuther_acts_top5", "--source", NP_SOURCE, "--features", "5,19",
            *_endpoint(server))
        cli("bench", *_endpoint(server), "--methods", "eleuther_acts_top5", "--source", NP_SOURCE,
            "--benchmarks", "detection,fuzzing,embedding", "--embedding-model", "standin-embed",
            "--negatives", "other-features")
        assert len(server.requests) == before
    report = cli.json("bench", "--report", "--json")
    assert {(r["method"], r["benchmark"], r["n"]) for r in report["overall"]} == {
        ("eleuther_acts_top5", b, len(labels)) for b in ("detection", "fuzzing", "embedding")}

    # two annotators judge Neuronpedia's own explanation; the gold goes back out in
    # Neuronpedia's shape (which `import neuronpedia` reads) and as graph node labels
    np_labels = {lab["feature"]: lab for lab in theirs if lab["origin"] == "neuronpedia"}
    events = [{"annotator": who, "source": NP_SOURCE, "feature": f, "kind": kind, "value": value,
               "created_at": "2026-11-26T10:00:00Z", **extra}
              for who in ("ann", "ben") for f in (5, 19)
              for kind, value, extra in (("tier", "input", {"confidence": 2}),
                                         ("verdict", "correct", {"label_uuid": np_labels[f]["uuid"]}))]
    cli("import", "judgments", str(_write_jsonl(tmp_path / "np-judgments.jsonl", events)))
    gold_np = tmp_path / "gold-np.json"
    cli("export", "gold", "--format", "neuronpedia", "--output", str(gold_np))
    model, sae = NP_SOURCE.split("/")
    assert sorted((r["modelId"], r["layer"], r["index"], r["description"]) for r in json.loads(gold_np.read_text())) \
        == sorted((model, sae, str(f), np_labels[f]["text"]) for f in (5, 19))
    graph = json.loads(cli("export", "gold", "--format", "graph-labels"))
    layer = _rows(db, "SELECT layer FROM sources WHERE name = ?", [NP_SOURCE])[0][0]
    assert sorted(map(tuple, graph)) == sorted((f"{layer if layer is not None else sae}_{f}", np_labels[f]["text"])
                                               for f in (5, 19))
    out = cli("import", "neuronpedia", str(gold_np))
    assert "features: 0 new" in out and "labels:   2 new" in out, out


def _live(events: list[dict]) -> list[dict]:
    """The events not retracted (retractions themselves left out)."""
    gone = {e["target_uuid"] for e in events if e["kind"] == "retract"}
    return [e for e in events if e["kind"] != "retract" and e.get("uuid") not in gone]


def _category(i, o, ti, to):
    if i is None or o is None:
        return None
    return {(True, True): "cross", (True, False): "input", (False, True): "output"}.get((i >= ti, o >= to), "obscure")
