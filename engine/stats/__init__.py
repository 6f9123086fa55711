"""Statistics on human judgments: agreement between annotators, calibration of the automatic
benchmarks and taxonomy against humans, and the fitted taxonomy thresholds.

Every figure is an :class:`engine.stats.resample.Estimate`: a value (or None with a reason,
never NaN), the number of items it rests on, and a seeded 95% bootstrap CI over items.
"""
