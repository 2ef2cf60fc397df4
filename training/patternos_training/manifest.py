"""feature-manifest.json: the contract between this model version and the TypeScript scorer (README "Training").

The scorer reads it at startup, checks it against its own FEATURE_NAMES and the ONNX file, and stamps
model_version on every score. Keys are only ever added (schema_version bumps on any incompatible change).
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import asdict, dataclass
from importlib.metadata import version as package_version
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from . import __version__
from .calibration import Calibration
from .dataset import Dataset, Splits
from .export import INPUT_NAME, OUTPUT_NAME, POSITIVE_COLUMN, Parity
from .metrics import THRESHOLD_HIGH, THRESHOLD_MEDIUM, Metrics
from .models import TrainedModel

SCHEMA_VERSION = 1
MODEL_FILE = "model.onnx"
MANIFEST_FILE = "feature-manifest.json"
PARITY_SAMPLE_FILE = "parity-sample.json"
PARITY_SAMPLE_ROWS = 100
LIBRARIES = ("xgboost-cpu", "lightgbm", "scikit-learn", "numpy", "onnx", "onnxmltools", "onnxruntime")


@dataclass(frozen=True)
class CandidateReport:
    model: TrainedModel
    validation: Metrics
    test: Metrics


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _opsets(model: onnx.ModelProto) -> dict[str, int]:
    return {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}


def _summary(metrics: Metrics) -> dict[str, Any]:
    return {
        "roc_auc": metrics.roc_auc,
        "pr_auc": metrics.pr_auc,
        "brier": metrics.brier,
        "rows": metrics.rows,
        "positives": metrics.positives,
        "at_thresholds": [asdict(t) for t in metrics.at_thresholds],
    }


def build_manifest(
    *,
    version: str,
    created_at: str,
    dataset: Dataset,
    splits: Splits,
    horizon_days: float,
    selected: CandidateReport,
    candidates: dict[str, CandidateReport],
    test_calibrated: Metrics,
    calibration: Calibration,
    exported: onnx.ModelProto,
    model_bytes: bytes,
    parity: Parity,
    seed: int,
    data_source: str | None = None,
    baselines: dict[str, Any] | None = None,
    comparison: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "model_version": version,
        "created_at": created_at,
        "algorithm": selected.model.algorithm,
        "model_file": MODEL_FILE,
        "model_sha256": sha256_hex(model_bytes),
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["N", len(dataset.features)]},
        "output": {
            "name": OUTPUT_NAME,
            "dtype": "float32",
            "shape": ["N", 2],
            "positive_index": POSITIVE_COLUMN,
        },
        "opsets": _opsets(exported),
        "features": [
            {"index": i, "name": f.name, "dtype": "float32", "kind": f.kind} for i, f in enumerate(dataset.features)
        ],
        "label": {
            "definition": "a PURCHASE transaction of the customer in [ref, ref + horizon); features as of ref - 1 ms",
            "horizon_days": horizon_days,
        },
        "scores": {
            "intent_score": f"{OUTPUT_NAME}[:, {POSITIVE_COLUMN}], the raw model probability",
            "purchase_probability_7d": "calibration.points applied to intent_score",
        },
        "calibration": {
            "method": "isotonic",
            "fitted_on": "validation",
            "interpolation": "linear between points; below the first x the first y, above the last x the last y",
            "points": calibration.to_json(),
        },
        "thresholds": {"high": THRESHOLD_HIGH, "medium": THRESHOLD_MEDIUM, "applies_to": "intent_score"},
        "training_data": {
            # What the data is (`train --data-source`, e.g. "online-retail"); null when the run did not say.
            "dataset": data_source,
            "source": dataset.source,
            "sha256": dataset.sha256,
            "rows": dataset.rows,
            "positives": int(dataset.y.sum()),
            "from_ms": int(dataset.ref_ms.min()),
            "to_ms": int(dataset.ref_ms.max()),
            "splits": {s.name: s.to_json() for s in (splits.train, splits.validation, splits.test)},
        },
        "metrics": {
            "selection": "higher validation ROC-AUC; a tie (1e-9) goes to the higher PR-AUC, then to xgboost",
            "test": selected.test.to_json(),
            "test_calibrated": test_calibrated.to_json(),
            "candidates": {
                name: {"validation": _summary(c.validation), "test": _summary(c.test)} for name, c in candidates.items()
            },
            "feature_importance_gain": importance_ranking(dataset, selected.model),
            # Fitted on the same rows as the candidates (baselines.py); the gate requires beating the logistic one.
            "baselines": baselines or {},
            # Every candidate and baseline on the test split with paired-bootstrap intervals (bootstrap.py).
            "comparison": comparison or {},
        },
        "parity": {
            "rows": parity.rows,
            "max_abs_diff": parity.max_abs_diff,
            "tolerance": parity.tolerance,
            "runtime": f"onnxruntime {package_version('onnxruntime')} (python)",
            "sample_file": PARITY_SAMPLE_FILE,
        },
        "training": {
            "package": f"patternos_training {__version__}",
            "python": platform.python_version(),
            "libraries": {name: package_version(name) for name in LIBRARIES},
            "params": selected.model.params,
            # How the selected model's hyperparameters were chosen (null: a fixed configuration).
            "search": selected.model.extra.get("search"),
            "seed": seed,
        },
    }


def importance_ranking(dataset: Dataset, model: TrainedModel) -> list[dict[str, Any]]:
    ranked = sorted(zip(dataset.feature_names, model.importance_gain, strict=True), key=lambda item: -item[1])
    return [{"name": name, "gain_share": share} for name, share in ranked]


def parity_sample(version: str, x: npt.NDArray[np.float32], expected: npt.NDArray[np.floating]) -> dict[str, Any]:
    """Evenly spaced test rows with the trained model's probabilities, for a cross-runtime check in Node.

    float32 features are written as the doubles they equal, so Float32Array.from(row) restores them bit for bit.
    """
    picks = np.unique(np.linspace(0, x.shape[0] - 1, num=min(PARITY_SAMPLE_ROWS, x.shape[0])).astype(np.int64))
    return {
        "model_version": version,
        "input": INPUT_NAME,
        "tolerance": 1e-5,
        "features": [[float(v) for v in x[i]] for i in picks],
        "probabilities": [float(expected[i]) for i in picks],
    }
