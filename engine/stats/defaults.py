"""The statistics' default settings, in one light module (no NumPy, SciPy or scikit-learn),
so that `saegold agreement --help` and `saegold calibrate --help` can show them without
loading the statistics stack (tests/cli/test_help_imports.py).  The modules that use them
import them from here."""
from __future__ import annotations

DEFAULT_BOOT = 1000        # bootstrap resamples for every CI (engine.stats.resample)
DEFAULT_SEED = 0           # bootstrap seed
DEFAULT_MIN_ITEMS = 5      # fewest shared items for an agreement figure (engine.stats.agreement)
DEFAULT_MIN_ROWS = 10      # fewest verdicts for a calibration figure (engine.stats.calibration)
GRID = 40                  # candidate values per threshold in the grid search (engine.stats.thresholds)
