"""Label benchmarks: detection, fuzzing, embedding and steering, each with a shuffled-label control.

Definitions in DESIGN.md (after EleutherAI Delphi).  The pieces:

- :mod:`.examples`   which held-out activating and non-activating examples a label is judged on;
- :mod:`.prompts`    the judge prompts and the strict parser of the judge's answers;
- :mod:`.metrics`    balanced accuracy, AUROC, bootstrap confidence intervals;
- :mod:`.embedders`  label/example embeddings (OpenAI-compatible endpoint or a local model);
- :mod:`.scorers`    one benchmark of one label text on one example set;
- :mod:`.steering`   the output-side benchmark: which of three sets of steered continuations is the feature's;
- :mod:`.results`    the ``bench_scores`` rows;
- :mod:`.job`        the ``saegold bench`` job (selection, controls, concurrency, resume);
- :mod:`.report`     method x benchmark (x category) summary with CIs and true-minus-shuffled gaps;
- :mod:`.demo_judge` a deterministic DEMO STAND-IN judge and embedder for ``saegold demo``.
"""
from __future__ import annotations

from saegold.store.benchmarks import BENCHMARKS as BENCHMARKS  # re-exported: the bench job's list

JUDGED = ("detection", "fuzzing", "steering")  # benchmarks answered by an LLM judge
# Chance level of each benchmark's score: balanced accuracy and AUROC 0.5; steering picks one
# set of three.
CHANCE = {"detection": 0.5, "fuzzing": 0.5, "embedding": 0.5, "steering": 1 / 3}
