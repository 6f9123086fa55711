"""The benchmarks a candidate label is scored on (the ``benchmark`` of ``bench_scores``), as
every layer names them: the store's exports, the bench job, the statistics and the app."""
from __future__ import annotations

BENCHMARKS = ("detection", "fuzzing", "embedding", "steering")   # in the order reports show them
EXAMPLE_BENCHMARKS = ("detection", "fuzzing", "embedding")       # judged on stored examples


def sampler_sql(alias: str = "b") -> str:
    """SQL for the example sampler a result of ``alias`` (a ``bench_scores`` row) used: its
    recorded one, ``top`` for results from before samplers were recorded, NULL for a
    benchmark not judged on examples."""
    kinds = ", ".join(f"'{b}'" for b in EXAMPLE_BENCHMARKS)
    return (f"CASE WHEN {alias}.benchmark IN ({kinds}) "
            f"THEN COALESCE(json_extract({alias}.details, '$.selection.sampler'), 'top') END")
