"""The two candidate models: the seed's XGBoost configuration (the baseline) and a LightGBM of comparable capacity.

Both are trained on float32 features, the dtype the ONNX model and the scorer use. Candidates are compared on the
validation split; the test split is only ever used to report and to gate, never to choose.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

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
# positives. Small trees (15 leaves), at least 200 rows per leaf, row and column subsampling and a slower rate with more
# trees. On Online Retail (refs 2010-12-31 … 2011-09-26, train on the oldest 60 %) this scored ROC-AUC 0.728 on
# Aug–Sep and 0.718 on held-out October, against 0.714 / 0.708 for the seed-sized LightGBM (63 leaves, 200 trees,
# rate 0.1). deterministic + force_row_wise make a rerun on the same data give the same model.
LIGHTGBM_PARAMS: dict[str, Any] = {
    "n_estimators": 600,
    "num_leaves": 15,
    "learning_rate": 0.03,
    "min_child_samples": 200,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "objective": "binary",
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}


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


def train_xgboost(x: npt.NDArray[np.float32], y: npt.NDArray[np.int8], seed: int, threads: int) -> TrainedModel:
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


def train_lightgbm(x: npt.NDArray[np.float32], y: npt.NDArray[np.int8], seed: int, threads: int) -> TrainedModel:
    started = time.perf_counter()
    model = lightgbm.LGBMClassifier(**LIGHTGBM_PARAMS, random_state=seed, n_jobs=threads)
    model.fit(x, y)
    elapsed = time.perf_counter() - started
    booster, moved = snap_thresholds_to_float32(model.booster_)
    # The snap is exact by construction; checking it on the training rows costs one prediction pass and turns a
    # LightGBM model-format change into a loud failure instead of a quietly different model.
    before = np.asarray(model.booster_.predict(x, num_threads=threads))
    after = np.asarray(booster.predict(x, num_threads=threads))
    if not np.array_equal(before, after):
        raise RuntimeError(
            "snapping LightGBM thresholds to float32 changed predictions "
            f"(max difference {float(np.abs(before - after).max()):.3g}); refusing to export a different model"
        )
    gain = np.asarray(booster.feature_importance(importance_type="gain"), dtype=np.float64)
    return TrainedModel(
        algorithm="lightgbm",
        params={**LIGHTGBM_PARAMS, "random_state": seed},
        native=booster,
        predict=lambda features: np.asarray(booster.predict(features, num_threads=threads), dtype=np.float64),
        importance_gain=_shares(gain),
        train_seconds=elapsed,
        extra={"original": model, "thresholds_snapped_to_float32": moved},
    )


TRAINERS: dict[Algorithm, Callable[[npt.NDArray[np.float32], npt.NDArray[np.int8], int, int], TrainedModel]] = {
    "xgboost": train_xgboost,
    "lightgbm": train_lightgbm,
}
