"""The baselines every training run fits on the same rows as the candidates, to say whether the model earns its keep.

- **Logistic regression on log-transformed RFM-style features**: what a careful analyst gets from the purchase
  history alone in an afternoon. Nine features of the contract (recency, 30/90-day and lifetime purchase counts and
  spend, tenure, average order value), each as log1p(max(x, 0)), plus an indicator of "no purchase yet" (recency and
  tenure are −1 then, which log1p would otherwise read as "bought today"); standardised on the train split, L2
  penalty, its strength C chosen on the validation split like the candidates' hyperparameters.
- **RFM quintiles**: the marketer's heuristic, r_score + f_score + m_score (quintiles against the cut points, as the
  features define them); nothing is fitted.

The gate requires a new model to beat the logistic regression on the newest period (gate.py); the comparison with
paired-bootstrap intervals is in the manifest and the model card.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from .contract import ContractError

LOGISTIC_FEATURES = (
    "recency_days",
    "frequency_30d",
    "frequency_90d",
    "orders_lifetime",
    "monetary_30d_minor",
    "monetary_90d_minor",
    "monetary_lifetime_minor",
    "days_since_first_purchase",
    "avg_order_value_90d_minor",
)
NO_PURCHASE_FLAG = "no_purchase"
RFM_FEATURES = ("r_score", "f_score", "m_score")
C_GRID = (0.01, 0.1, 1.0, 10.0)

LOGISTIC = "logistic_regression"
RFM_QUINTILES = "rfm_quintiles"


def _columns(feature_names: list[str], wanted: tuple[str, ...]) -> list[int]:
    index = {name: i for i, name in enumerate(feature_names)}
    missing = [name for name in wanted if name not in index]
    if missing:
        raise ContractError(f"the baselines need features the data lacks: {missing}")
    return [index[name] for name in wanted]


@dataclass(frozen=True)
class LogisticBaseline:
    """A fitted logistic regression and everything needed to apply it elsewhere (the manifest keeps all of it)."""

    columns: list[int]
    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    coefficients: npt.NDArray[np.float64]
    intercept: float
    c: float
    # Validation ROC-AUC of every C tried.
    c_search: dict[float, float]

    def design(self, x: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        return (_transform(x, self.columns) - self.mean) / self.scale

    def predict(self, x: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        z = self.design(x) @ self.coefficients + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> dict[str, Any]:
        names = [*LOGISTIC_FEATURES, NO_PURCHASE_FLAG]
        return {
            "features": names,
            "transform": "log1p(max(x, 0)) for each feature; no_purchase = 1 when recency_days < 0, else 0; then "
            "(value - mean) / scale with the train split's mean and standard deviation",
            "mean": dict(zip(names, self.mean.tolist(), strict=True)),
            "scale": dict(zip(names, self.scale.tolist(), strict=True)),
            "coefficients": dict(zip(names, self.coefficients.tolist(), strict=True)),
            "intercept": self.intercept,
            "penalty": "l2",
            "c": self.c,
            "c_search_validation_roc_auc": {str(c): auc for c, auc in self.c_search.items()},
        }


def _transform(x: npt.NDArray[np.floating], columns: list[int]) -> npt.NDArray[np.float64]:
    raw = np.asarray(x[:, columns], dtype=np.float64)
    no_purchase = (raw[:, 0] < 0).astype(np.float64)
    return np.column_stack([np.log1p(np.maximum(raw, 0.0)), no_purchase])


def fit_logistic(
    feature_names: list[str],
    x_train: npt.NDArray[np.floating],
    y_train: npt.NDArray[np.integer],
    x_validation: npt.NDArray[np.floating],
    y_validation: npt.NDArray[np.integer],
) -> LogisticBaseline:
    """Fits one model per C on train, keeps the one with the best validation ROC-AUC (ties: the stronger penalty)."""
    columns = _columns(feature_names, LOGISTIC_FEATURES)
    design = _transform(x_train, columns)
    mean = design.mean(axis=0)
    scale = design.std(axis=0)
    scale[scale == 0] = 1.0  # a constant column (e.g. no customer without a purchase) carries nothing
    z_train = (design - mean) / scale
    z_validation = (_transform(x_validation, columns) - mean) / scale
    best: tuple[float, float, LogisticRegression] | None = None
    search: dict[float, float] = {}
    for c in C_GRID:
        model = LogisticRegression(C=c, max_iter=2000)
        model.fit(z_train, y_train)
        auc = float(roc_auc_score(y_validation, model.decision_function(z_validation)))
        search[c] = auc
        if best is None or auc > best[1] + 1e-9:
            best = (c, auc, model)
    assert best is not None
    c, _, model = best
    return LogisticBaseline(
        columns=columns,
        mean=mean,
        scale=scale,
        coefficients=np.asarray(model.coef_[0], dtype=np.float64),
        intercept=float(model.intercept_[0]),
        c=c,
        c_search=search,
    )


def rfm_quintile_scores(feature_names: list[str], x: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """r_score + f_score + m_score (3–15 with a purchase in 90 days; lower without)."""
    return np.asarray(x[:, _columns(feature_names, RFM_FEATURES)], dtype=np.float64).sum(axis=1)
