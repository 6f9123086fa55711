"""One-line errors of the scoring engine."""
from __future__ import annotations

from saegold.store.errors import SaegoldError


class ScoringError(SaegoldError):
    """A model, SAE or corpus cannot be used as asked; nothing was written."""


class ModelLoadError(ScoringError):
    """The language model cannot be loaded."""


class SAELoadError(ScoringError):
    """The SAE cannot be loaded or does not fit the model (width, hook)."""


class CorpusError(ScoringError):
    """The corpus cannot be read or is empty."""
