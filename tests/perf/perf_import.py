"""Import throughput: the real 17,008-record explanations export, and a synthetic bulk export.

Run: .venv/bin/python tests/perf/perf_import.py [--features N]
Prints wall-clock figures (not asserted anywhere); compare within one run.
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from saegold.store.db import open_project  # noqa: E402
from saegold.store.importers.judgments import import_judgments  # noqa: E402
from saegold.store.importers.neuronpedia import import_neuronpedia  # noqa: E402

EXPORT = Path("/work/shared/data/neuronpedia/gemma-2-2b__20-gemmascope-res-16k__explanations-export/"
              "gemma-2-2b_20-gemmascope-res-16k.json")


def timed(label: str, fn) -> object:
    t = time.perf_counter()
    out = fn()
    print(f"{label:<58} {time.perf_counter() - t:7.2f} s")
    return out


def synthetic(base: Path, n_features: int, n_contexts: int = 20, n_tokens: int = 64) -> int:
    """Write features/, activations/ and explanations/ batches like Neuronpedia's export."""
    rng = random.Random(0)
    vocab = [f"▁w{i}" for i in range(5000)]
    for sub in ("features", "activations", "explanations"):
        (base / sub).mkdir(parents=True)
    ids = dict(modelId="synth-model", layer="6-res-synth")
    with gzip.open(base / "features" / "batch-0.jsonl.gz", "wt", encoding="utf-8") as f:
        for i in range(n_features):
            f.write(json.dumps({**ids, "index": str(i), "frac_nonzero": rng.random() / 100,
                                "maxActApprox": 10.0, "pos_str": vocab[:10], "pos_values": [1.0] * 10,
                                "neg_str": vocab[10:20], "neg_values": [-1.0] * 10}) + "\n")
    n = 0
    with gzip.open(base / "activations" / "batch-0.jsonl.gz", "wt", encoding="utf-8") as f:
        for i in range(n_features):
            for _ in range(n_contexts):
                vals = [round(rng.random() * 10, 3) for _ in range(n_tokens)]
                f.write(json.dumps({**ids, "index": str(i), "tokens": rng.choices(vocab, k=n_tokens),
                                    "values": vals, "maxValue": max(vals),
                                    "maxValueTokenIndex": vals.index(max(vals))}) + "\n")
                n += 1
    with gzip.open(base / "explanations" / "batch-0.jsonl.gz", "wt", encoding="utf-8") as f:
        for i in range(n_features):
            f.write(json.dumps({**ids, "index": str(i), "description": f"feature {i} text",
                                "explanationModelName": "gpt-4o-mini", "typeName": "oai_token-act-pair"}) + "\n")
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--features", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        p = open_project(tmp / "a.db", create=True)
        r = timed(f"explanations export, {EXPORT.stat().st_size / 1e6:.1f} MB, fresh DB",
                  lambda: import_neuronpedia(p, [EXPORT]))
        print(f"  -> {r.records:,} records, {r.counts['features_new']:,} features, "
              f"{r.counts['labels_new']:,} labels")
        timed("same file again (no-op)", lambda: import_neuronpedia(p, [EXPORT]))
        jpath = tmp / "j.jsonl"
        with open(jpath, "w", encoding="utf-8") as f:
            for a in range(4):
                for i in range(2500):
                    f.write(json.dumps({"uuid": f"{a}-{i}", "annotator": f"ann{a}",
                                        "source": "gemma-2-2b/20-gemmascope-res-16k", "feature": i,
                                        "kind": "tier", "value": "input", "confidence": 2,
                                        "created_at": "2026-11-26T10:00:00Z"}) + "\n")
        r = timed("10,000 judgments (4 annotators x 2,500 features)", lambda: import_judgments(p, [jpath]))
        print(f"  -> {r.new:,} new")
        timed("same judgments again (no-op)", lambda: import_judgments(p, [jpath]))
        p.close()
        n_ctx = timed(f"write synthetic export ({args.features:,} features)",
                      lambda: synthetic(tmp / "v1", args.features))
        q = open_project(tmp / "b.db", create=True)
        r = timed(f"synthetic export: {args.features:,} features, {n_ctx:,} contexts x 64 tokens",
                  lambda: import_neuronpedia(q, [tmp / "v1"]))
        print(f"  -> {r.records:,} records, {r.counts['examples_written']:,} examples, "
              f"{r.counts['logit_tokens_written']:,} logit tokens, {r.counts['labels_new']:,} labels")
        timed("synthetic export again (no-op)", lambda: import_neuronpedia(q, [tmp / "v1"]))
        print(f"  database size {(tmp / 'b.db').stat().st_size / 1e6:.1f} MB")
        q.close()


if __name__ == "__main__":
    main()
