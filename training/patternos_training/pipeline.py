"""One training run: split → train both candidates → choose on validation → calibrate → export → parity → gate →
register. Pure orchestration; each step lives in its own module."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import card
from .baselines import LOGISTIC, RFM_QUINTILES, LogisticBaseline, fit_logistic, rfm_quintile_scores
from .bootstrap import DEFAULT_RESAMPLES, ModelComparison, compare
from .calibration import apply as apply_calibration
from .calibration import fit_isotonic
from .clickhouse import ClickHouse
from .dataset import Dataset, SplitConfig, Splits, temporal_split
from .export import check_parity, onnx_probabilities, session, to_onnx
from .gate import Decision, GateConfig, Score, better, decide, score_of, score_stored_model
from .manifest import MANIFEST_FILE, MODEL_FILE, PARITY_SAMPLE_FILE, CandidateReport, build_manifest, parity_sample
from .metrics import Metrics, evaluate
from .models import ALGORITHMS, TRAINERS
from .registry import Entry, ModelStore, Registry, RegistryError, Status, publish, repair_pointer


def log(message: str) -> None:
    print(f"[train] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class TrainOptions:
    models_dir: Path
    version: str
    split: SplitConfig = field(default_factory=SplitConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    seed: int = 42
    threads: int = 2
    clickhouse: ClickHouse | None = None
    # The command that rebuilds this model (printed in the model card).
    reproduce: str = ""
    # Customer resamples of the paired bootstrap behind the comparison's confidence intervals.
    bootstrap_resamples: int = DEFAULT_RESAMPLES
    # What the training data is (e.g. "online-retail"), recorded as training_data.dataset; None: not said.
    data_source: str | None = None


@dataclass
class TrainResult:
    version: str
    version_dir: Path
    status: Status
    decision: Decision
    selected: str
    candidates: dict[str, CandidateReport]
    new_score: Score
    manifest: dict[str, Any]
    comparison: list[ModelComparison] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)

    def summary_json(self) -> dict[str, Any]:
        """The final machine-readable line of `train`."""
        metrics = self.manifest["metrics"]
        return {
            "version": self.version,
            "status": self.status,
            "promoted": self.decision.promote,
            "reason": self.decision.reason,
            "baseline_version": self.decision.baseline.version if self.decision.baseline else None,
            "selected": self.selected,
            "models": {
                name: {
                    split: {"roc_auc": getattr(c, split).roc_auc, "pr_auc": getattr(c, split).pr_auc}
                    for split in ("validation", "test")
                }
                for name, c in self.candidates.items()
            },
            "gate": {"roc_auc": self.new_score.roc_auc, "pr_auc": self.new_score.pr_auc},
            "comparison": {c.name: c.to_json() for c in self.comparison},
            "test_calibrated": {
                "roc_auc": metrics["test_calibrated"]["roc_auc"],
                "pr_auc": metrics["test_calibrated"]["pr_auc"],
                "brier": metrics["test_calibrated"]["brier"],
            },
            "model_dir": str(self.version_dir),
            "timings_s": self.timings_s,
        }


class Stopwatch:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def lap(self, name: str, started: float) -> None:
        self.timings[name] = round(time.perf_counter() - started, 3)


def _train_candidates(
    ds: Dataset, splits: Splits, options: TrainOptions, watch: Stopwatch
) -> dict[str, CandidateReport]:
    x_train, y_train = ds.x[splits.train.index], ds.y[splits.train.index]
    validation = (ds.x[splits.validation.index], ds.y[splits.validation.index])
    reports: dict[str, CandidateReport] = {}
    for algorithm in ALGORITHMS:
        started = time.perf_counter()
        model = TRAINERS[algorithm](x_train, y_train, options.seed, options.threads, validation)
        watch.lap(f"train_{algorithm}", started)
        reports[algorithm] = CandidateReport(
            model=model,
            validation=evaluate(ds.y[splits.validation.index], model.predict(ds.x[splits.validation.index])),
            test=evaluate(ds.y[splits.test.index], model.predict(ds.x[splits.test.index])),
        )
        log(
            f"{algorithm}: trained in {model.train_seconds:.1f} s; validation ROC-AUC "
            f"{reports[algorithm].validation.roc_auc:.4f} PR-AUC {reports[algorithm].validation.pr_auc:.4f}; "
            f"test ROC-AUC {reports[algorithm].test.roc_auc:.4f} PR-AUC {reports[algorithm].test.pr_auc:.4f}"
        )
    return reports


def choose(reports: dict[str, CandidateReport]) -> str:
    """The candidate with the better validation score; the baseline (first in ALGORITHMS) keeps a tie."""
    best = ALGORITHMS[0]
    for algorithm in ALGORITHMS[1:]:
        challenger = Score(reports[algorithm].validation.roc_auc, reports[algorithm].validation.pr_auc)
        incumbent = Score(reports[best].validation.roc_auc, reports[best].validation.pr_auc)
        if better(challenger, incumbent, 0.0):
            best = algorithm
    return best


def _entry(manifest: dict[str, Any], splits: Splits, score: Score, decision: Decision, horizon_days: float) -> Entry:
    """The registry row of a new version; its metrics are the ones the gate compared (ONNX, new test split)."""
    test = splits.test
    baseline = decision.baseline
    version = str(manifest["model_version"])
    return Entry(
        version=version,
        status="current" if decision.promote else "candidate",
        created_at=manifest["created_at"],
        algorithm=manifest["algorithm"],
        roc_auc=score.roc_auc,
        pr_auc=score.pr_auc,
        test_rows=test.rows,
        test_positive_rate=test.positives / test.rows,
        test_from_ms=test.from_ms,
        test_to_ms=test.to_ms,
        eval_period=test.describe(splits.horizon_ms),
        train_from_ms=splits.train.from_ms,
        train_to_ms=splits.train.to_ms,
        training_rows=splits.train.rows,
        horizon_days=horizon_days,
        feature_count=len(manifest["features"]),
        baseline_version=baseline.version if baseline else "",
        baseline_roc_auc=baseline.score.roc_auc if baseline and baseline.score else 0.0,
        baseline_pr_auc=baseline.score.pr_auc if baseline and baseline.score else 0.0,
        reason=decision.reason,
        manifest_path=f"{version}/{MANIFEST_FILE}",
        model_sha256=manifest["model_sha256"],
    )


@dataclass(frozen=True)
class Fitted:
    """Everything a run produced before it touches the registry."""

    splits: Splits
    candidates: dict[str, CandidateReport]
    selected: str
    test_raw: npt.NDArray[np.float64]
    test_calibrated: Metrics
    model_bytes: bytes
    # The exported model's score on the test split, through onnxruntime: what the gate compares.
    score: Score
    manifest: dict[str, Any]
    # The logistic-regression baseline's score on the same test rows (the gate requires beating it).
    logistic_score: Score
    comparison: list[ModelComparison]


def fit(ds: Dataset, options: TrainOptions, watch: Stopwatch) -> Fitted:
    """Split, train both candidates, choose on validation, calibrate, export and prove the export."""
    splits = temporal_split(ds, options.split)
    for split in (splits.train, splits.validation, splits.test):
        purged = f", {split.purged:,} purged" if split.purged else ""
        log(f"{split.name}: {split.describe(splits.horizon_ms)}{purged}")

    candidates = _train_candidates(ds, splits, options, watch)
    selected_name = choose(candidates)
    selected = candidates[selected_name]
    log(f"selected {selected_name} on validation")

    x_val, y_val = ds.x[splits.validation.index], ds.y[splits.validation.index]
    x_test, y_test = ds.x[splits.test.index], ds.y[splits.test.index]
    calibration = fit_isotonic(selected.model.predict(x_val), y_val)
    test_raw = selected.model.predict(x_test)
    test_calibrated = evaluate(y_test, apply_calibration(calibration, test_raw))

    started = time.perf_counter()
    logistic = fit_logistic(ds.feature_names, ds.x[splits.train.index], ds.y[splits.train.index], x_val, y_val)
    watch.lap("train_logistic_regression", started)
    test_scores = {
        selected_name: test_raw,
        **{name: c.model.predict(x_test) for name, c in candidates.items() if name != selected_name},
        LOGISTIC: logistic.predict(x_test),
        RFM_QUINTILES: rfm_quintile_scores(ds.feature_names, x_test),
    }
    started = time.perf_counter()
    comparison = compare(
        test_scores,
        y_test,
        ds.customer_ids[splits.test.index],
        reference=selected_name,
        resamples=options.bootstrap_resamples,
        seed=options.seed,
    )
    watch.lap("bootstrap", started)
    baselines = _baselines_json(ds, splits, logistic)

    started = time.perf_counter()
    metadata = {"model_version": options.version, "feature_names": ",".join(ds.feature_names)}
    exported = to_onnx(selected.model, len(ds.features), {**metadata, "algorithm": selected_name})
    model_bytes = exported.SerializeToString()
    watch.lap("export", started)
    started = time.perf_counter()
    parity = check_parity(model_bytes, x_test, test_raw)
    watch.lap("parity", started)
    log(f"ONNX parity on {parity.rows:,} test rows: max |diff| {parity.max_abs_diff:.2e} (limit {parity.tolerance:g})")

    manifest = build_manifest(
        version=options.version,
        created_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        dataset=ds,
        splits=splits,
        horizon_days=options.split.horizon_days,
        selected=selected,
        candidates=candidates,
        test_calibrated=test_calibrated,
        calibration=calibration,
        exported=exported,
        model_bytes=model_bytes,
        parity=parity,
        seed=options.seed,
        data_source=options.data_source,
        baselines=baselines,
        comparison={
            "split": "test",
            "reference": selected_name,
            "method": f"paired bootstrap over customers: {options.bootstrap_resamples} resamples of the test split's "
            "customers with replacement, each with all of its rows, every model scored on the same resamples; 95 % "
            "percentile intervals; estimate = the full test split",
            "resamples": options.bootstrap_resamples,
            "seed": options.seed,
            "models": {c.name: c.to_json() for c in comparison},
        },
    )
    return Fitted(
        splits=splits,
        candidates=candidates,
        selected=selected_name,
        test_raw=test_raw,
        test_calibrated=test_calibrated,
        model_bytes=model_bytes,
        score=score_of(y_test, onnx_probabilities(session(model_bytes), x_test)),
        manifest=manifest,
        logistic_score=score_of(y_test, test_scores[LOGISTIC]),
        comparison=comparison,
    )


def _baselines_json(ds: Dataset, splits: Splits, logistic: LogisticBaseline) -> dict[str, Any]:
    """The baselines as the manifest records them: enough to apply the logistic regression anywhere."""
    x_val, y_val = ds.x[splits.validation.index], ds.y[splits.validation.index]
    x_test, y_test = ds.x[splits.test.index], ds.y[splits.test.index]
    rfm = {
        "definition": "r_score + f_score + m_score (quintiles against the RFM cut points); nothing fitted",
        "validation": _short(evaluate(y_val, rfm_quintile_scores(ds.feature_names, x_val))),
        "test": _short(evaluate(y_test, rfm_quintile_scores(ds.feature_names, x_test))),
    }
    return {
        LOGISTIC: {
            **logistic.to_json(),
            "fitted_on": "train",
            "validation": _short(evaluate(y_val, logistic.predict(x_val))),
            "test": _short(evaluate(y_test, logistic.predict(x_test))),
        },
        RFM_QUINTILES: rfm,
    }


def _short(m: Metrics) -> dict[str, Any]:
    return {"roc_auc": m.roc_auc, "pr_auc": m.pr_auc, "rows": m.rows, "positives": m.positives}


def comparison_lines(comparison: list[ModelComparison], reference: str, what: str = "test split") -> list[str]:
    """The side-by-side table `train` prints: estimate [95 % CI], and the difference to the reference."""
    lines = [f"{what}, 95 % paired-bootstrap intervals over customers; differences are model − {reference}:"]
    for c in comparison:
        diff = (
            f" | Δ ROC-AUC {c.roc_auc_diff.text(signed=True)}, Δ PR-AUC {c.pr_auc_diff.text(signed=True)}"
            if c.roc_auc_diff and c.pr_auc_diff
            else " | (reference)"
        )
        lines.append(f"  {c.name:<19} ROC-AUC {c.roc_auc.text()}  PR-AUC {c.pr_auc.text()}{diff}")
    return lines


def register(ds: Dataset, fitted: Fitted, options: TrainOptions) -> tuple[Decision, Path]:
    """Gate against the current model and record the result, all under the store's lock."""
    store = ModelStore(options.models_dir)
    splits = fitted.splits
    with store.locked():
        registry = store.read_registry()
        warning = repair_pointer(store, registry)
        if warning:
            log(f"warning: {warning}")
        decision = _gate(store, registry, ds, splits, fitted.score, fitted.logistic_score, options)
        log(f"promotion: {'current' if decision.promote else 'candidate'}: {decision.reason}")
        selected = fitted.candidates[fitted.selected]
        model_card = card.render(
            fitted.manifest, splits, selected.test, fitted.test_calibrated, decision, options.reproduce
        )
        x_test = ds.x[splits.test.index]
        version_dir = store.write_version(
            options.version,
            {
                MODEL_FILE: fitted.model_bytes,
                MANIFEST_FILE: (json.dumps(fitted.manifest, indent=2) + "\n").encode("utf8"),
                "model-card.md": model_card.encode("utf8"),
                PARITY_SAMPLE_FILE: (json.dumps(parity_sample(options.version, x_test, fitted.test_raw)) + "\n").encode(
                    "utf8"
                ),
            },
        )
        entries = [_entry(fitted.manifest, splits, fitted.score, decision, options.split.horizon_days)]
        previous = registry.models.get(registry.current) if registry.current else None
        if decision.promote and previous is not None:
            entries.append(replace(previous, status="retired", reason=f"replaced by {options.version}"))
        try:
            publish(store, options.clickhouse, registry, entries)
        except BaseException:
            # Unregistered files would block a rerun with the same version and look like a real model.
            store.remove_version(options.version)
            raise
    return decision, version_dir


def train(ds: Dataset, options: TrainOptions) -> TrainResult:
    watch = Stopwatch()
    started = time.perf_counter()
    # Fail before minutes of work, not after (write_version checks again, under the lock).
    if ModelStore(options.models_dir).version_dir(options.version).exists():
        raise RegistryError(f"model version {options.version} already exists in {options.models_dir}")
    fitted = fit(ds, options, watch)
    decision, version_dir = register(ds, fitted, options)
    watch.lap("total", started)
    return TrainResult(
        version=options.version,
        version_dir=version_dir,
        status="current" if decision.promote else "candidate",
        decision=decision,
        selected=fitted.selected,
        candidates=fitted.candidates,
        new_score=fitted.score,
        manifest=fitted.manifest,
        comparison=fitted.comparison,
        timings_s=watch.timings,
    )


def _gate(
    store: ModelStore,
    registry: Registry,
    ds: Dataset,
    splits: Splits,
    new_score: Score,
    logistic_score: Score,
    options: TrainOptions,
) -> Decision:
    period = f"the newest period, {splits.test.describe(splits.horizon_ms)}"
    baseline = None
    if registry.current is not None:
        baseline = score_stored_model(store.version_dir(registry.current), registry.current, ds, splits.test.index)
        if baseline.score is not None:
            log(f"current {registry.current} on the same test split: {baseline.score.text()}")
    log(f"logistic-regression baseline on the same test split: {logistic_score.text()}")
    return decide(new_score, baseline, options.gate, period, logistic_score)
