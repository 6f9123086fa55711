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


def negatives_verified_sql(alias: str = "b") -> str:
    """SQL for whether a result's negatives were checked by a model to be non-activating for
    the target: 1, or 0 for other features' examples no model checked (imports, a score run
    with --no-verified-negatives, or results from before the check was recorded); NULL for a
    benchmark without negatives.  One rule for the bench report, the export and calibrate."""
    neg = f"json_extract({alias}.details, '$.selection.negatives')"
    flag = f"json_extract({alias}.details, '$.negatives_verified')"
    return (f"(CASE WHEN {neg} IS NULL THEN NULL WHEN {flag} IS NOT NULL THEN {flag} "
            f"WHEN {neg} = 'other-features' THEN 0 ELSE 1 END)")
