"""Small real projects for the label tests: features with examples, logit tokens, categories."""
from __future__ import annotations

from saegold.store import features as F

SOURCE = "tiny-model/0-res-test"


def add_feature(project, idx: int, *, category: str | None = None, examples=None, promoted=None,
                amplified=None, suppressed=None, continuation: str | None = None) -> int:
    """One feature; ``examples`` are (tokens, acts) pairs, stored as top examples by rank."""
    model, sae = SOURCE.split("/")
    with project.write() as db:
        sid = F.get_or_create_source(db, model, sae)
        fid = F.upsert_feature(db, sid, idx)
        if examples:
            F.put_examples(db, fid, "top", [{"tokens": t, "acts": a} for t, a in examples], "scored")
        for kind, toks in (("promoted", promoted), ("amplified_next", amplified), ("suppressed", suppressed)):
            if toks:
                F.put_logit_tokens(db, fid, kind, [(t, None, v) for t, v in toks])
        if category is not None or continuation is not None:
            scores = {"input": (0.9, 0.0), "output": (0.0, 0.5), "cross": (0.9, 0.5), "obscure": (0.0, 0.0)}
            i, o = scores[category or "obscure"]
            F.put_score(db, fid, input_threshold=0.5, output_threshold=0.01, scorer_version="test",
                        input_score=i, output_score=o, continuation=continuation)
    return fid


def word_examples(word: str, n: int = 5, *, bos: bool = True) -> list[tuple[list[str], list[float]]]:
    """n examples where ``word`` fires, with decreasing strength."""
    out = []
    for k in range(n):
        subject = ["I", "We", "They", "You", "She", "He", "It"][k % 7]
        tokens = (["<bos>"] if bos else []) + [subject, " saw", " a", f" {word}", " today", " near", " home"]
        acts = [0.0] * len(tokens)
        i = tokens.index(f" {word}")
        acts[i] = 10.0 - k
        acts[i - 1] = 0.65 * (10.0 - k)     # marked too (>= 0.6 x max)
        acts[i + 1] = 0.5 * (10.0 - k)      # not marked
        out.append((tokens, acts))
    return out
