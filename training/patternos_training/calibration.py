"""Isotonic calibration exported as a piecewise-linear table the TypeScript scorer can apply without a library.

The scorer maps the raw model probability (intent_score) through the table to get purchase_probability_7d:
linear interpolation between consecutive points, clamped to the first/last y outside [x_first, x_last]. That is exactly
what scikit-learn's IsotonicRegression(out_of_bounds="clip") predicts, and what `apply` below computes (np.interp).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression


@dataclass(frozen=True)
class Calibration:
    # (raw probability, calibrated probability), x strictly increasing, y non-decreasing, both in [0, 1].
    points: tuple[tuple[float, float], ...]

    def to_json(self) -> list[list[float]]:
        return [[x, y] for x, y in self.points]


def fit_isotonic(p: npt.NDArray[np.floating], y: npt.NDArray[np.integer]) -> Calibration:
    """Fits on held-out (validation) predictions: calibrating on training predictions would learn overfit scores."""
    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(np.asarray(p, dtype=np.float64), np.asarray(y, dtype=np.float64))
    xs = np.asarray(model.X_thresholds_, dtype=np.float64)
    ys = np.asarray(model.y_thresholds_, dtype=np.float64)
    points = tuple((float(x), float(v)) for x, v in zip(xs, ys, strict=True))
    check(points)
    return Calibration(points)


def check(points: tuple[tuple[float, float], ...]) -> None:
    """The invariants the scorer relies on; a violation is a bug here, never something to pass along."""
    if not points:
        raise ValueError("calibration table is empty")
    xs = np.array([x for x, _ in points])
    ys = np.array([v for _, v in points])
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise ValueError("calibration table has a non-finite value")
    if (np.diff(xs) <= 0).any() or (np.diff(ys) < 0).any():
        raise ValueError("calibration table is not increasing")
    if ys.min() < 0 or ys.max() > 1:
        raise ValueError("calibrated probability outside [0, 1]")


def apply(calibration: Calibration, p: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    xs = np.array([x for x, _ in calibration.points])
    ys = np.array([v for _, v in calibration.points])
    return np.interp(np.asarray(p, dtype=np.float64), xs, ys)
