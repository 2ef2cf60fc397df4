"""The promotion gate: a new model replaces the current one only if it is better on the same, newest data.

Both models are scored through onnxruntime on the new training set's test split (its newest reference period), so
the comparison is on identical rows and labels and with the artifacts that would actually be served. Better means a
higher ROC-AUC by more than the margin; when ROC-AUC ties, a higher PR-AUC by more than the margin. Every model must
also clear a floor (ROC-AUC above 0.5 by default: better than chance) and beat the run's logistic-regression baseline
(baselines.py: RFM-style features, fitted on the same train rows) on the same test rows to become current, the first
one included: a model that a logistic regression on purchase history matches is not worth serving.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .dataset import Dataset
from .export import onnx_probabilities, session
from .metrics import evaluate

# ROC-AUCs closer than this are a tie (they are ratios of pair counts; anything smaller is float noise).
TIE_EPSILON = 1e-9


@dataclass(frozen=True)
class Score:
    roc_auc: float
    pr_auc: float

    def text(self) -> str:
        return f"ROC-AUC {self.roc_auc:.4f}, PR-AUC {self.pr_auc:.4f}"


@dataclass(frozen=True)
class GateConfig:
    min_improvement: float = 0.0
    min_roc_auc: float = 0.5
    # Margin by which the new model must beat the logistic-regression baseline (same ordering as `better`).
    min_improvement_over_logistic: float = 0.0


@dataclass(frozen=True)
class Baseline:
    """The current model as the gate saw it: its score on the new test split, or why it could not be scored."""

    version: str
    score: Score | None
    problem: str | None = None


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    baseline: Baseline | None


def better(new: Score, old: Score, margin: float) -> bool:
    """The one ordering used for choosing between candidates and for promotion."""
    if abs(new.roc_auc - old.roc_auc) <= TIE_EPSILON:
        return new.pr_auc - old.pr_auc > margin
    return new.roc_auc - old.roc_auc > margin


def decide(
    new: Score, baseline: Baseline | None, config: GateConfig, period: str, logistic: Score | None = None
) -> Decision:
    """Promote or not, with the reason recorded in the registry. `period` describes the rows all were scored on;
    `logistic` is the run's logistic-regression baseline on the same rows (None: no such requirement).

    The reason starts with what decided it: the floor, then the comparison with the current model when that fails,
    else the logistic regression when that fails; both comparisons are in it whenever both were made.
    """
    floor = config.min_roc_auc
    if new.roc_auc <= floor:
        return Decision(False, f"below the floor: ROC-AUC {new.roc_auc:.4f} <= {floor}; scored on {period}", baseline)
    beats_logistic = True
    versus_logistic = ""
    if logistic is not None:
        margin = config.min_improvement_over_logistic
        beats_logistic = better(new, logistic, margin)
        versus_logistic = (
            f"{'beats' if beats_logistic else 'does not beat'} the logistic-regression baseline: ROC-AUC "
            f"{new.roc_auc:.4f} vs {logistic.roc_auc:.4f}, PR-AUC {new.pr_auc:.4f} vs {logistic.pr_auc:.4f} "
            f"(margin {margin})"
        )
    if baseline is None:
        first = f"first model: {new.text()} (floor ROC-AUC > {floor})"
        if not beats_logistic:
            return Decision(False, f"{versus_logistic}; {first}, none is current; scored on {period}", None)
        return Decision(True, "; ".join(x for x in (first, versus_logistic) if x) + f"; scored on {period}", None)
    old = baseline.score
    if old is None:
        return Decision(
            False,
            f"current model {baseline.version} could not be scored on the same data ({baseline.problem}); "
            "not replacing it automatically: promote by hand if intended"
            + (f"; {versus_logistic}" if versus_logistic else ""),
            baseline,
        )
    beats_current = better(new, old, config.min_improvement)
    rule = "ROC-AUC tie, decided on PR-AUC" if abs(new.roc_auc - old.roc_auc) <= TIE_EPSILON else "decided on ROC-AUC"
    versus_current = (
        f"{'beats' if beats_current else 'does not beat'} current {baseline.version}: ROC-AUC {new.roc_auc:.4f} vs "
        f"{old.roc_auc:.4f}, PR-AUC {new.pr_auc:.4f} vs {old.pr_auc:.4f} ({rule}, margin {config.min_improvement})"
    )
    decided_by_logistic = beats_current and not beats_logistic
    parts = [versus_logistic, versus_current] if decided_by_logistic else [versus_current, versus_logistic]
    scope = "all" if logistic is not None else "both"
    return Decision(
        beats_current and beats_logistic,
        "; ".join(x for x in parts if x) + f"; {scope} scored on {period}",
        baseline,
    )


def score_of(y: npt.NDArray[np.integer], p: npt.NDArray[np.floating]) -> Score:
    metrics = evaluate(y, p)
    return Score(metrics.roc_auc, metrics.pr_auc)


def score_stored_model(version_dir: Path, version: str, dataset: Dataset, index: npt.NDArray[np.int64]) -> Baseline:
    """Scores a registered model on rows of `dataset`, using its own manifest's feature order.

    A model trained on an older feature list can still be compared when every feature it needs is in the new data;
    otherwise the comparison is impossible and the gate says so instead of guessing.
    """
    try:
        manifest = json.loads((version_dir / "feature-manifest.json").read_text(encoding="utf8"))
        model_bytes = (version_dir / str(manifest["model_file"])).read_bytes()
        wanted = [str(f["name"]) for f in manifest["features"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return Baseline(version, None, f"cannot read its files in {version_dir}: {err}")
    columns = {name: i for i, name in enumerate(dataset.feature_names)}
    missing = [name for name in wanted if name not in columns]
    if missing:
        return Baseline(version, None, f"it uses features the new data lacks: {missing}")
    x = dataset.x[np.ix_(index, np.array([columns[name] for name in wanted], dtype=np.int64))]
    try:
        p = onnx_probabilities(session(model_bytes), x)
    except Exception as err:
        return Baseline(version, None, f"onnxruntime failed on it: {err}")
    return Baseline(version, score_of(dataset.y[index], p))
