"""Project-file size per feature and the cost of the examples pass against collection.

    .venv/bin/python tests/perf/perf_examples.py [--features 2048] [--contexts 1240] [--top-k 100]
    .venv/bin/python tests/perf/perf_examples.py --code /path/to/other/checkout   # the same world, other code

The world: a random Llama (word-level demo tokenizer) and a random SAE whose encoder biases
are set per feature so that each feature fires on ``--density`` of the corpus tokens (1% by
default, a realistic SAE density), so that every feature fills its top ``--top-k`` contexts
(checked and printed).  ``saegold score`` runs on ``--contexts`` contexts of 64 tokens of a
corpus made of the bundled demo corpus's sentences recombined at random (enough text for
that many distinct contexts).  Prints the project file's bytes per feature (target <= 16 KB) and the
score job's "examples + input scores" seconds against its "collect" seconds (target <= 1.5x),
with and without model-verified negatives (``--verified-negatives both``, the default: their cost).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def _corpus(path: Path, demo: Path, words: int, seed: int = 0) -> Path:
    """A text corpus of about ``words`` words: the demo corpus's sentences recombined at
    random into paragraphs (its vocabulary, distinct contexts however many are asked for)."""
    import random
    import re

    sentences = [s for s in re.split(r"(?<=[.!?])\s+", demo.read_text()) if s.strip()]
    rng = random.Random(seed)
    out, n = [], 0
    while n < words * 1.2:
        para = " ".join(rng.choice(sentences) for _ in range(rng.randint(3, 6)))
        out.append(para)
        n += len(para.split())
    path.write_text("\n\n".join(out) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=int, default=2048)
    ap.add_argument("--contexts", type=int, default=1240)
    ap.add_argument("--top-k", type=int, default=100)
    ap.add_argument("--density", type=float, default=0.01)
    ap.add_argument("--verified-negatives", choices=("on", "off", "both"), default="both",
                    help="score with model-verified hard/other negatives (on, score's default), without, "
                         "or both one after the other in the same world to measure their cost (default)")
    ap.add_argument("--code", default=str(Path(__file__).resolve().parents[2]),
                    help="the saegold checkout to measure (default: this one)")
    args = ap.parse_args(argv)
    sys.path.insert(0, args.code)

    import torch

    from saegold.engine.planted import demo_corpus_path
    from saegold.engine.scoring import corpus as corpus_mod
    from saegold.engine.scoring.job import score
    from saegold.engine.scoring.models import load_model, resolve_hook, run_to_site
    from saegold.engine.scoring.collect import pad_batch
    from saegold.engine.scoring.random_models import random_sae, save_random_model
    from saegold.store.db import open_project

    print(f"code: {Path(sys.modules['saegold.engine'].__file__).resolve().parents[1]}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = save_random_model(tmp, "llama", d_model=64, n_layers=2, seed=3)
        lm = load_model(str(model_dir), "cpu", "float32")
        sae = random_sae(64, args.features, "blocks.1.hook_resid_post", seed=4, bias=0.0)
        site = resolve_hook(lm, sae)
        corpus = _corpus(tmp / "corpus.txt", demo_corpus_path(), args.contexts * 64)
        spec = corpus_mod.resolve(str(corpus))
        ctxs = list(corpus_mod.contexts(spec, lm.tokenizer, 64, lm.bos_id, max_contexts=args.contexts))
        # Per-feature bias: fire on `density` of the (non-BOS) tokens of this corpus.
        with torch.inference_mode():
            pre = []
            for i in range(0, len(ctxs), 64):
                ids, mask = pad_batch(ctxs[i:i + 64], lm.bos_id, lm.device)
                h = run_to_site(lm, site, ids)
                pre.append(((h - sae.b_dec) @ sae.W_enc)[mask])
            pre = torch.cat(pre)
            k = max(1, int(round((1 - args.density) * pre.shape[0])))
            thr = pre.kthvalue(k, dim=0).values
            sae.b_enc.copy_(-thr)
        sae_dir = tmp / "sae"
        sae.save_model(sae_dir)
        modes = {"on": [True], "off": [False], "both": [False, True]}[args.verified_negatives]
        done = {}
        for verified in modes:
            db = tmp / f"p-{verified}.db"
            p = open_project(db, create=True)
            empty = db.stat().st_size
            t = time.perf_counter()
            # steering is left out: tests/perf/perf_steering.py measures it
            rep = score(p, model=str(model_dir), sae=str(sae_dir), corpus=str(corpus), ctx_len=64,
                        top_k=args.top_k, max_contexts=args.contexts, continuation_tokens=0, device="cpu",
                        verified_negatives=verified, steering=False)
            total = time.perf_counter() - t
            full = p.scalar("SELECT count(*) FROM (SELECT feature_id FROM examples WHERE kind = 'top' "
                            "GROUP BY feature_id HAVING count(*) = ?)", [args.top_k])
            n_top = p.scalar("SELECT count(*) FROM examples WHERE kind = 'top'")
            n_neg = {r["origin"]: r["n"] for r in p.query(
                "SELECT origin, count(*) AS n FROM examples WHERE kind = 'negative' GROUP BY origin")}
            p.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            p.close()
            size = db.stat().st_size
            per = (size - empty) / args.features / 1024
            print(f"-- verified negatives {'on' if verified else 'off'}")
            print(f"world: {args.features:,} features, {rep.n_contexts:,} contexts x 64 tokens, top {args.top_k}; "
                  f"{full:,} of {args.features:,} features fill their top {args.top_k} ({n_top:,} top examples); "
                  f"negatives stored by origin: {n_neg}")
            print(f"project file: {size / 1e6:.1f} MB = {per:.1f} KB per feature (target <= 16 KB)")
            col, ex = rep.seconds.get("collect", 0.0), rep.seconds.get("examples + input scores", 0.0)
            print(f"score: collect {col:.2f} s, examples + input scores {ex:.2f} s = {ex / col:.2f}x collect "
                  f"(target <= 1.5x); output scores {rep.seconds.get('output scores', 0):.1f} s; total {total:.1f} s")
            done[verified] = (ex, col, per, total)
        if len(done) == 2:
            (ex0, col0, per0, tot0), (ex1, col1, per1, tot1) = done[False], done[True]
            print(f"verified negatives cost: examples + input scores {ex0:.2f} -> {ex1:.2f} s "
                  f"({ex1 / ex0 - 1:+.0%}; {ex0 / col0:.2f}x -> {ex1 / col1:.2f}x collect), project file "
                  f"{per0:.1f} -> {per1:.1f} KB per feature, score total {tot0:.1f} -> {tot1:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
