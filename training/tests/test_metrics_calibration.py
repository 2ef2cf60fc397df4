"""Metrics and the exported calibration table."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from sklearn.isotonic import IsotonicRegression

from patternos_training.calibration import apply, fit_isotonic
from patternos_training.metrics import at_threshold, calibration_table, evaluate


def _scores(n: int = 4000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    y = (rng.random(n) < p**2).astype(np.int8)  # miscalibrated on purpose: true rate p^2
    return y, p.astype(np.float32)


def test_table_applied_by_linear_interpolation_equals_isotonic_regression() -> None:
    y, p = _scores()
    calibration = fit_isotonic(p, y)
    xs = [x for x, _ in calibration.points]
    ys = [v for _, v in calibration.points]
    assert all(b > a for a, b in pairwise(xs)) and all(b >= a for a, b in pairwise(ys))
    reference = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(p.astype(np.float64), y)
    probe = np.concatenate([np.linspace(-0.5, 1.5, 2001), p[:500]])  # includes values outside the fitted range
    assert np.allclose(apply(calibration, probe), reference.predict(probe), atol=1e-12)
    # It fixes the miscalibration: the calibrated mean tracks the observed rate.
    assert abs(apply(calibration, p).mean() - y.mean()) < 0.01


def test_calibration_table_bins_and_thresholds() -> None:
    y, p = _scores()
    table = calibration_table(y, p.astype(np.float64))
    assert len(table) == 10 and sum(b.count for b in table) == y.size
    assert table[-1].upper == 1.0 and all(b.mean_predicted is not None for b in table)
    high = at_threshold(y, p, 0.7)
    assert high.predicted_positive == int((p >= 0.7).sum())
    assert 0 < high.recall < 1 and high.precision is not None and high.precision > y.mean()
    assert at_threshold(y, p * 0.1, 0.7).precision is None  # nothing reaches 0.7: undefined, not 0


def test_evaluate_reports_both_aucs() -> None:
    y, p = _scores()
    m = evaluate(y, p)
    assert 0.7 < m.roc_auc < 1 and 0 < m.pr_auc < 1 and m.rows == y.size and m.positives == int(y.sum())
    assert [t.threshold for t in m.at_thresholds] == [0.4, 0.7]
