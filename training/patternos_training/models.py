"""The two candidate models: the seed's XGBoost configuration (the baseline) and a LightGBM of comparable capacity.

Both are trained on float32 features, the dtype the ONNX model and the scorer use. Candidates are compared on the
validation split; the test split is only ever used to report and to gate, never to choose.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import lightgbm
import numpy as np
import numpy.typing as npt
import xgboost

Algorithm = Literal["xgboost", "lightgbm"]
ALGORITHMS: tuple[Algorithm, ...] = ("xgboost", "lightgbm")

# The seed's baseline: 200 trees of depth 6, learning rate 0.1 (XGBoost defaults otherwise: lambda 1,
# min_child_weight 1, no subsampling).
XGBOOST_PARAMS: dict[str, Any] = {
    "n_estimators": 200,
    "max_depth": 6,
    "learning_rate": 0.1,
    "objective": "binary:logistic",
    "tree_method": "hist",
}
# LightGBM, regularized for what this data is: many correlated rows per customer (one per reference day) and ~5-8 %
# positives: small trees, many rows per leaf, row and column subsampling, a slow rate. Its shape is chosen per run on
# the validation split (the newest part of the training period, never the test split) from LIGHTGBM_SEARCH, each
# configuration with early stopping on that split's ROC-AUC; deterministic + force_row_wise make a rerun on the same
# data give the same model. Without a validation split (tests of the export) the first configuration is trained with
# LIGHTGBM_DEFAULT_TREES trees.
LIGHTGBM_PARAMS: dict[str, Any] = {
    "learning_rate": 0.03,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "objective": "binary",
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}
LIGHTGBM_SEARCH: tuple[dict[str, Any], ...] = (
    {"num_leaves": 15, "min_child_samples": 200, "reg_lambda": 1.0},
    {"num_leaves": 7, "min_child_samples": 500, "reg_lambda": 10.0},
    {"num_leaves": 31, "min_child_samples": 1000, "reg_lambda": 10.0},
)
LIGHTGBM_DEFAULT_TREES = 600
# Upper bound on trees with early stopping, and the rounds without a better validation ROC-AUC that stop it.
LIGHTGBM_MAX_TREES = 2000
EARLY_STOPPING_ROUNDS = 100

Validation = tuple[npt.NDArray[np.float32], npt.NDArray[np.int8]]


@dataclass
class TrainedModel:
    algorithm: Algorithm
    params: dict[str, Any]
    # What the ONNX converter takes: an XGBClassifier, or a LightGBM Booster.
    native: Any
    predict: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float64]]
    # Total gain per feature index, as a share of the model's total (sums to 1 unless the model never split).
    importance_gain: list[float]
    train_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def _shares(values: npt.NDArray[np.float64]) -> list[float]:
    total = float(values.sum())
    return [float(v) / total if total > 0 else 0.0 for v in values]


def train_xgboost(
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int8],
    seed: int,
    threads: int,
    validation: Validation | None = None,
) -> TrainedModel:
    """The seed's configuration as it was specified; `validation` is not used (nothing of it is tuned)."""
    started = time.perf_counter()
    model = xgboost.XGBClassifier(**XGBOOST_PARAMS, random_state=seed, n_jobs=threads)
    model.fit(x, y)
    elapsed = time.perf_counter() - started
    # Without feature names XGBoost keys importances "f<index>"; features that never split are absent.
    by_key = model.get_booster().get_score(importance_type="total_gain")
    gain = np.array([by_key.get(f"f{i}", 0.0) for i in range(x.shape[1])], dtype=np.float64)
    return TrainedModel(
        algorithm="xgboost",
        params={**XGBOOST_PARAMS, "random_state": seed},
        native=model,
        predict=lambda features: model.predict_proba(features)[:, 1].astype(np.float64),
        importance_gain=_shares(gain),
        train_seconds=elapsed,
    )


def snap_thresholds_to_float32(booster: lightgbm.Booster) -> tuple[lightgbm.Booster, int]:
    """A copy of `booster` whose numeric split thresholds are float32 values, with the same decisions on float32 input.

    LightGBM keeps thresholds as float64 and tests `x <= t`; ONNX TreeEnsemble stores them as float32, so the
    converter rounds t to the nearest float32 and an input exactly equal to a rounded-up t goes the other way (seen as
    1e-2 probability differences). Replacing t by the largest float32 f <= t changes nothing for float32 inputs
    (x <= t  <=>  x <= f when x is a float32) and converts exactly.
    Returns the new booster and how many thresholds moved.
    """
    lines = booster.model_to_string().split("\n")
    moved = 0
    threshold_line: int | None = None
    for i, line in enumerate(lines):
        if line.startswith("threshold="):
            threshold_line = i
        elif line.startswith("decision_type=") and threshold_line is not None:
            decision_types = [int(v) for v in line.split("=", 1)[1].split()]
            thresholds = lines[threshold_line].split("=", 1)[1].split()
            snapped = []
            for decision, text in zip(decision_types, thresholds, strict=True):
                # Bit 0 of decision_type marks a categorical split, whose "threshold" is an index, not a value.
                new = text if decision & 1 else _float32_floor_text(text)
                moved += new != text
                snapped.append(new)
            lines[threshold_line] = "threshold=" + " ".join(snapped)
            threshold_line = None
    # tree_sizes gives each tree's byte length for fast parallel loading; edited trees change length, and LightGBM
    # parses sequentially when the line is absent.
    text = "\n".join(line for line in lines if not line.startswith("tree_sizes="))
    return lightgbm.Booster(model_str=text), moved


def _float32_floor_text(text: str) -> str:
    value = float(text)
    snapped = np.float32(value)
    if float(snapped) > value:
        snapped = np.nextafter(snapped, np.float32(-np.inf))
    if not np.isfinite(snapped):
        raise ValueError(f"LightGBM threshold {text} has no finite float32 floor")
    return text if float(snapped) == value else repr(float(snapped))


def _fit_lightgbm(
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int8],
    params: dict[str, Any],
    validation: Validation | None,
) -> tuple[lightgbm.LGBMClassifier, int, float | None]:
    """One LightGBM fit; with a validation split it stops early on ROC-AUC there. Returns the model, its number of
    trees and the validation ROC-AUC at that number (None without validation)."""
    if validation is None:
        model = lightgbm.LGBMClassifier(**params, n_estimators=LIGHTGBM_DEFAULT_TREES)
        model.fit(x, y)
        return model, LIGHTGBM_DEFAULT_TREES, None
    model = lightgbm.LGBMClassifier(**params, n_estimators=LIGHTGBM_MAX_TREES, metric="auc")
    model.fit(
        x,
        y,
        eval_X=(validation[0],),
        eval_y=(validation[1],),
        callbacks=[lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False)],
    )
    trees = int(model.best_iteration_ or LIGHTGBM_MAX_TREES)
    auc = float(model.best_score_["valid_0"]["auc"])
    return model, trees, auc


def train_lightgbm(
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int8],
    seed: int,
    threads: int,
    validation: Validation | None = None,
) -> TrainedModel:
    started = time.perf_counter()
    base = {**LIGHTGBM_PARAMS, "random_state": seed, "n_jobs": threads}
    search: list[dict[str, Any]] = []
    best: tuple[lightgbm.LGBMClassifier, int, float | None, dict[str, Any]] | None = None
    for shape in LIGHTGBM_SEARCH if validation is not None else LIGHTGBM_SEARCH[:1]:
        model, trees, auc = _fit_lightgbm(x, y, {**base, **shape}, validation)
        search.append({**shape, "trees": trees, "validation_roc_auc": auc})
        # The first configuration keeps a tie: it is the most conventional one.
        if best is None or (auc is not None and best[2] is not None and auc > best[2] + 1e-9):
            best = (model, trees, auc, shape)
    assert best is not None
    model, trees, _, shape = best
    elapsed = time.perf_counter() - started
    # Only the trees up to the early-stopping point are kept (and exported).
    booster = lightgbm.Booster(model_str=model.booster_.model_to_string(num_iteration=trees))
    booster, moved = snap_thresholds_to_float32(booster)
    # The snap is exact by construction; checking it on the training rows costs one prediction pass and turns a
    # LightGBM model-format change into a loud failure instead of a quietly different model.
    before = np.asarray(model.booster_.predict(x, num_iteration=trees, num_threads=threads))
    after = np.asarray(booster.predict(x, num_threads=threads))
    if not np.array_equal(before, after):
        raise RuntimeError(
            "snapping LightGBM thresholds to float32 changed predictions "
            f"(max difference {float(np.abs(before - after).max()):.3g}); refusing to export a different model"
        )
    gain = np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64)
    return TrainedModel(
        algorithm="lightgbm",
        params={**LIGHTGBM_PARAMS, **shape, "n_estimators": trees, "random_state": seed},
        native=booster,
        predict=lambda features: np.asarray(booster.predict(features, num_threads=threads), dtype=np.float64),
        importance_gain=_shares(gain),
        train_seconds=elapsed,
        extra={
            "original": model,
            "thresholds_snapped_to_float32": moved,
            "search": {
                "chosen_on": "validation split (the newest part of the training period), ROC-AUC, early stopping "
                f"after {EARLY_STOPPING_ROUNDS} rounds without improvement, at most {LIGHTGBM_MAX_TREES} trees"
                if validation is not None
                else "no validation split: first configuration, fixed number of trees",
                "tried": search,
            },
        },
    )


class Trainer(Protocol):
    def __call__(
        self,
        x: npt.NDArray[np.float32],
        y: npt.NDArray[np.int8],
        seed: int,
        threads: int,
        validation: Validation | None = None,
    ) -> TrainedModel: ...


TRAINERS: dict[Algorithm, Trainer] = {
    "xgboost": train_xgboost,
    "lightgbm": train_lightgbm,
}
