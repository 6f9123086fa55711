"""Active statistical inference (issue 16, point 3): the reweighted estimator's coverage and the
judgments the active queue saves, in seeded simulations (tests/validity/active_checks.py runs
the long versions)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from saegold.engine.stats import active

_spec = importlib.util.spec_from_file_location("active_checks",
                                               Path(__file__).parents[1] / "validity" / "active_checks.py")
checks = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("active_checks", checks)
_spec.loader.exec_module(checks)


def test_draw_probabilities_mix_a_uniform_share():
    q = active.draw_probabilities(np.array([0.0, 0.0, 1.0, 3.0]))
    assert q.sum() == pytest.approx(1.0) and q.min() == pytest.approx(0.2 / 4)
    assert q[3] == pytest.approx(0.8 * 0.75 + 0.05)
    assert active.draw_probabilities(np.zeros(5)) == pytest.approx(np.full(5, 0.2))


def test_weights_follow_the_residuals_where_the_map_is_wrong():
    """Judged items where the map says 0.02 but humans say 1 half the time: their bin's
    weight rises well above sqrt(0.02 * 0.98)."""
    f = np.r_[np.full(50, 0.02), np.linspace(0.1, 0.9, 50)]
    y = np.r_[np.tile([0.0, 1.0], 25), (np.linspace(0.1, 0.9, 50) > 0.5).astype(float)]
    w = active.weights(f, f, y)
    assert w[0] > 3 * np.sqrt(0.02 * 0.98)
    assert active.weights(f)[0] == pytest.approx(np.sqrt(0.02 * 0.98))


def test_reweighted_estimate_covers_over_1000_worlds():
    """Hansen-Hurwitz PPI over draws with probabilities favouring uncertain predictions (80%
    sqrt(f(1-f)), 20% uniform), 300 draws from 2,000 labels judged by 2, fixed predictions:
    the 90% interval covers the mean of P(correct) in 87-93% of 1,000 worlds and is narrower than
    with uniform draws (the same estimator)."""
    rng = np.random.default_rng(1616)
    hit, width = {"u": 0, "a": 0}, {"u": 0.0, "a": 0.0}
    reps, n_pop = 1000, 2000
    for _ in range(reps):
        p, score = checks.world(rng)
        f = 1 / (1 + np.exp(-5 * score))
        y = (rng.random((n_pop, 2)) < p[:, None]).mean(axis=1)
        for name in ("u", "a"):
            q = np.full(n_pop, 1 / n_pop) if name == "u" else active.draw_probabilities(active.weights(f))
            d = rng.choice(n_pop, size=300, p=q)
            e = active.hh_ppi(y[d], f[d], q[d], float(f.sum()), n_pop, level=0.9,
                              verdict_var=float((f * (1 - f)).sum() / 2))
            hit[name] += e.ppi.ci[0] <= p.mean() <= e.ppi.ci[1]
            width[name] += e.ppi.ci[1] - e.ppi.ci[0]
    assert 0.87 <= hit["a"] / reps <= 0.93, hit
    assert 0.87 <= hit["u"] / reps <= 0.93, hit
    assert width["a"] < 0.9 * width["u"], width


def test_active_queue_needs_fewer_judgments_small():
    """The adaptive simulation (maps refitted every 25 draws from the verdicts so far) on 3
    worlds: the active queue reaches the target width with fewer judged features than the
    uniform one (the validity script measures the saving over many worlds)."""
    c = checks.compare(3, 7)  # ~10 s
    assert c["active judged to target"] < c["uniform judged to target"], c


def test_active_stopping_rule_projects_the_draws_to_the_target():
    """The stopping rule of a reweighted estimate projects from its own (Hansen-Hurwitz)
    variance: over 60 seeded worlds, 150 active draws, a target 0.6 x the width now; drawing
    the projected number of further draws (same probabilities) gives a width within 10% of
    the target on average (the draws' variance is itself estimated from 150 draws: a few
    percent of noise per world, averaged out), and the new features are the draws' share."""
    rng = np.random.default_rng(1617)
    n_pop, ratios = 2000, []
    for _ in range(60):
        p, score = checks.world(rng)
        f = 1 / (1 + np.exp(-5 * score))
        y = (rng.random((n_pop, 2)) < p[:, None]).mean(axis=1)
        q = active.draw_probabilities(active.weights(f))
        vv = float((f * (1 - f)).sum() / 2)
        d = rng.choice(n_pop, size=150, p=q)
        e = active.hh_ppi(y[d], f[d], q[d], float(f.sum()), n_pop, verdict_var=vv)
        target = 0.6 * (e.ppi.ci[1] - e.ppi.ci[0])
        stop = active.more_draws(e, n_pop, target, new_share=0.5)
        assert stop.reachable and stop.more_draws > 0 and stop.more_features == -(-stop.more_draws // 2)
        d2 = np.r_[d, rng.choice(n_pop, size=stop.more_draws, p=q)]
        e2 = active.hh_ppi(y[d2], f[d2], q[d2], float(f.sum()), n_pop, verdict_var=vv)
        ratios.append((e2.ppi.ci[1] - e2.ppi.ci[0]) / target)
    print(f"achieved width / target: mean {np.mean(ratios):.3f}, sd {np.std(ratios):.3f}")
    assert 0.9 <= float(np.mean(ratios)) <= 1.1, np.mean(ratios)
    reached = active.more_draws(e2, n_pop, 2 * (e2.ppi.ci[1] - e2.ppi.ci[0]))
    assert (reached.more_draws, reached.more_features) == (0, 0)
    never = active.more_draws(e2, n_pop, 1e-6)
    assert not never.reachable and "verdicts' own noise" in never.reason
