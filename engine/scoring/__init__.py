"""Taxonomy scoring: activation collection, logit lens, input/output scores, categories.

Modules: :mod:`.models` (loading a causal LM and an SAE, locating the hook),
:mod:`.corpus` (text into fixed-length contexts), :mod:`.collect` (the streamed top-K
pass), :mod:`.lens` (logit lens), :mod:`.output` (output score, fast and naive, and the
amplification evidence), :mod:`.inputscore` (input scores, from a run or from stored
Neuronpedia activations) and :mod:`.job` (the resumable score job that writes the store).
"""
