"""A small deterministic project with every kind of evidence, for the app tests."""
from __future__ import annotations

import random

from saegold.store import features as sf
from saegold.store import labels as sl
from saegold.store.db import now

WORDS = ("the cat sat on a mat while the dog ran to the park and rain fell over "
         "Paris in the spring of a long year").split()
CATS = ("input", "output", "cross", "obscure")
METHODS = ("eleuther_acts_top5", "baez", "output_logits")

LABEL_TEXTS = ("animals in a sentence", "the word 'the' before nouns", "weather and seasons")
FIXED_TIME = "2026-01-01T00:00:00.000000Z"

# The queue tests' oracle of who holds a feature, written here apart from saegold.store.queue: an
# assignment (a lease or a judged feature), or a judgment that is not a retraction or a
# lead's adjudication.
NOT_HOLDING = "('retract', 'adj_tier', 'adj_verdict', 'adj_gold_label')"
HOLDERS = f"""
SELECT feature_id, COUNT(*) AS n FROM (
    SELECT feature_id, annotator FROM assignments
    UNION
    SELECT feature_id, annotator FROM judgments WHERE kind NOT IN {NOT_HOLDING}
) GROUP BY feature_id
"""


def fill(project, n_features: int = 12, *, seed: int = 0, texts: dict | None = None) -> list[int]:
    """Populate ``project`` with ``n_features`` features; return their ids in index order.

    ``texts`` overrides untrusted strings (token, label, continuation, logit token) to test
    that they stay inert.
    """
    rng = random.Random(seed)
    texts = texts or {}
    ids = []
    with project.write() as db:
        src = sf.get_or_create_source(db, "tiny-model", "layer1-res", layer=1, d_sae=n_features, width=16)
        for idx in range(n_features):
            fid = sf.upsert_feature(db, src, idx, density=0.001 * (idx + 1), max_act=5.0 + idx,
                                    n_tokens_seen=10_000)
            ids.append(fid)
            exs = []
            for r in range(7):
                toks = [" " + rng.choice(WORDS) for _ in range(12)]
                if texts.get("token"):
                    toks[3] = texts["token"]
                acts = [0.0] * 12
                mx = 3 + (r % 5)
                for k in range(max(0, mx - 2), mx + 1):
                    acts[k] = round((5.0 + idx) * (0.3 + 0.35 * (k - mx + 2)) * (1 - 0.08 * r), 3)
                exs.append({"tokens": toks, "acts": acts, "max_idx": mx})
            sf.put_examples(db, fid, "top", exs, origin="scored")
            tok = texts.get("logit")
            sf.put_logit_tokens(db, fid, "promoted", [(tok or f" up{idx}_{k}", k, 3.0 - k * 0.1) for k in range(6)])
            sf.put_logit_tokens(db, fid, "suppressed", [(tok or f" down{idx}_{k}", 50 + k, -2.0 + k * 0.1) for k in range(6)])
            sf.put_logit_tokens(db, fid, "amplified_next", [(tok or f" next{idx}_{k}", 90 + k, 0.3 / (k + 1)) for k in range(5)])
            cat = CATS[idx % 4]
            sf.put_score(db, fid, input_threshold=0.5, output_threshold=0.01, scorer_version="test",
                         input_score=0.9 if cat in ("input", "cross") else 0.1,
                         output_score=0.2 if cat in ("output", "cross") else 0.001,
                         continuation=texts.get("continuation") or f"From my experience, the {WORDS[idx % len(WORDS)]} ...")
            if cat == "obscure":
                continue
            for m, method in enumerate(METHODS[: 2 + (idx % 2)]):
                uuid = sl.content_uuid("test", fid, method)
                sl.add_label(db, fid, method, texts.get("label") or f"{LABEL_TEXTS[m]} ({idx})",
                             origin="saegold", uuid=uuid, created_at=FIXED_TIME)
                lid = db.execute("SELECT id FROM labels WHERE uuid = ?", [uuid]).fetchone()[0]
                for b, bench in enumerate(("detection", "fuzzing", "embedding")):
                    for control in ("true", "shuffled"):
                        db.execute(
                            "INSERT INTO bench_scores(label_id, benchmark, control, value, n, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            [lid, bench, control, 0.5 + 0.05 * (m + b) if control == "true" else 0.5, 20, now()],
                        )
    return ids
