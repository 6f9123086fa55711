"""Taxonomy scoring: activation collection, logit lens, input/output scores, categories.

Modules: :mod:`.models` (loading a causal LM and an SAE, locating the hook),
:mod:`.corpus` (text into fixed-length contexts), :mod:`.collect` (the streamed top-K
pass), :mod:`.lens` (logit lens), :mod:`.output` (output score, fast and naive, and the
amplification evidence), :mod:`.inputscore` (input scores, from a run or from stored
Neuronpedia activations), :mod:`.job` (the resumable score job that writes the store),
:mod:`.errors` (one-line errors) and :mod:`.random_models` (random models and SAEs of a
chosen shape for tests and benchmarks).  The planted-feature model lives in
:mod:`engine.planted`.
"""
