"""Evaluation of probability scores against binary labels: ranking, calibration and the scorer's thresholds."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

# The scorer's intent levels: HIGH at >= 0.7, MEDIUM at >= 0.4 (clickhouse/migrations/0004 intent_score).
THRESHOLD_HIGH = 0.7
THRESHOLD_MEDIUM = 0.4
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class CalibrationBin:
    lower: float
    upper: float
    count: int
    # None for an empty bin: there is nothing to average.
    mean_predicted: float | None
    observed_rate: float | None


@dataclass(frozen=True)
class AtThreshold:
    threshold: float
    # Rows scored >= threshold.
    predicted_positive: int
    # None when nothing reaches the threshold (precision is undefined, not zero).
    precision: float | None
    recall: float


@dataclass(frozen=True)
class Metrics:
    rows: int
    positives: int
    roc_auc: float
    # Average precision: the step-wise area under the precision–recall curve (no optimistic interpolation).
    pr_auc: float
    brier: float
    calibration: list[CalibrationBin]
    at_thresholds: list[AtThreshold]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def calibration_table(y: npt.NDArray[np.integer], p: npt.NDArray[np.floating]) -> list[CalibrationBin]:
    """Equal-width bins over [0, 1]; the last bin includes 1.0."""
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, CALIBRATION_BINS - 1)
    table = []
    for b in range(CALIBRATION_BINS):
        mask = which == b
        count = int(mask.sum())
        table.append(
            CalibrationBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=count,
                mean_predicted=float(p[mask].mean()) if count else None,
                observed_rate=float(y[mask].mean()) if count else None,
            )
        )
    return table


def at_threshold(y: npt.NDArray[np.integer], p: npt.NDArray[np.floating], threshold: float) -> AtThreshold:
    predicted = p >= threshold
    true_positive = int((predicted & (y == 1)).sum())
    n_predicted = int(predicted.sum())
    return AtThreshold(
        threshold=threshold,
        predicted_positive=n_predicted,
        precision=true_positive / n_predicted if n_predicted else None,
        recall=true_positive / int((y == 1).sum()),
    )


def evaluate(y: npt.NDArray[np.integer], p: npt.NDArray[np.floating]) -> Metrics:
    """Metrics of probabilities `p` for labels `y`; `y` must hold both classes (the splits guarantee it)."""
    p64 = np.asarray(p, dtype=np.float64)
    return Metrics(
        rows=int(y.size),
        positives=int(y.sum()),
        roc_auc=float(roc_auc_score(y, p64)),
        pr_auc=float(average_precision_score(y, p64)),
        brier=float(brier_score_loss(y, np.clip(p64, 0.0, 1.0))),
        calibration=calibration_table(y, p64),
        at_thresholds=[at_threshold(y, p64, t) for t in (THRESHOLD_MEDIUM, THRESHOLD_HIGH)],
    )
