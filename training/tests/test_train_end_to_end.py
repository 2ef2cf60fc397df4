"""`train` end to end on synthetic CSVs: files, manifest contract, registry mirror, pointer, and the promotion gate."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from patternos_training.export import onnx_probabilities, session
from patternos_training.cli import main
from tests.conftest import run_cli, train_args
from patternos_training.contract import load_features

N_FEATURES = len(load_features())  # the model width follows definitions.ts

V1, V2 = "20260301T000000Z", "20260302T000000Z"

# The exact top-level shape the TypeScript scorer relies on (README "Training" documents each key).
MANIFEST_KEYS = {
    "schema_version",
    "model_version",
    "created_at",
    "algorithm",
    "model_file",
    "model_sha256",
    "input",
    "output",
    "opsets",
    "features",
    "label",
    "scores",
    "calibration",
    "thresholds",
    "training_data",
    "metrics",
    "parity",
    "training",
}


def _registry(models: Path) -> dict:
    return json.loads((models / "registry.json").read_text())


def _statuses(models: Path) -> dict[str, str]:
    return {m["version"]: m["status"] for m in _registry(models)["models"]}


def _pointer(models: Path) -> str:
    return (models / "current").read_text().strip()


def test_first_model_is_promoted_with_a_complete_version_directory(
    good_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    code, summary, err = run_cli(capsys, *train_args(good_csv, models, V1))
    assert code == 0, err
    assert summary is not None and summary["status"] == "current" and summary["promoted"] is True
    assert summary["reason"].startswith("first model") and set(summary["models"]) == {"xgboost", "lightgbm"}
    assert _pointer(models) == V1 and _registry(models)["current"] == V1

    version_dir = models / V1
    assert sorted(p.name for p in version_dir.iterdir()) == [
        "feature-manifest.json",
        "model-card.md",
        "model.onnx",
        "parity-sample.json",
    ]
    manifest = json.loads((version_dir / "feature-manifest.json").read_text())
    assert set(manifest) == MANIFEST_KEYS
    assert manifest["model_version"] == V1 and manifest["algorithm"] == summary["selected"]
    assert manifest["input"] == {"name": "features", "dtype": "float32", "shape": ["N", N_FEATURES]}
    assert manifest["output"] == {"name": "probabilities", "dtype": "float32", "shape": ["N", 2], "positive_index": 1}
    assert manifest["features"][0] == {"index": 0, "name": "recency_days", "dtype": "float32", "kind": "real"}
    assert manifest["thresholds"] == {"high": 0.7, "medium": 0.4, "applies_to": "intent_score"}
    points = manifest["calibration"]["points"]
    assert points and all(len(p) == 2 for p in points) and points == sorted(points)
    assert manifest["training_data"]["splits"]["test"]["rows"] == 1500
    assert manifest["parity"]["max_abs_diff"] <= 1e-5

    # The parity sample reproduces through onnxruntime, as the Node test does with onnxruntime-node.
    sample = json.loads((version_dir / "parity-sample.json").read_text())
    model_bytes = (version_dir / "model.onnx").read_bytes()
    got = onnx_probabilities(session(model_bytes), np.array(sample["features"], dtype=np.float32))
    assert np.abs(got - np.array(sample["probabilities"])).max() <= 1e-5

    card = (version_dir / "model-card.md").read_text()
    for heading in (
        "## Metrics",
        "## Against the baselines (test split)",
        "## Calibration (test split)",
        "## Feature importance",
        "## Reproduce",
    ):
        assert heading in card
    assert "| xgboost | test |" in card and "| lightgbm | validation |" in card

    # Every run fits the baselines on the same rows and compares all on the test split with paired intervals.
    selected = summary["selected"]
    comparison = manifest["metrics"]["comparison"]
    assert comparison["reference"] == selected and comparison["resamples"] == 1000
    assert set(comparison["models"]) == {"xgboost", "lightgbm", "logistic_regression", "rfm_quintiles"}
    for name, m in comparison["models"].items():
        assert m["roc_auc"]["ci_low"] <= m["roc_auc"]["estimate"] <= m["roc_auc"]["ci_high"]
        assert (m["roc_auc_minus_reference"] is None) == (name == selected)
        assert f"| {name} | {m['roc_auc']['estimate']:.4f} [" in card
    assert summary["comparison"] == comparison["models"]
    logistic = manifest["metrics"]["baselines"]["logistic_regression"]
    estimate = comparison["models"]["logistic_regression"]["roc_auc"]["estimate"]
    assert logistic["test"]["roc_auc"] == pytest.approx(estimate, abs=1e-12)
    assert "beats the logistic-regression baseline" in summary["reason"]
    # The synthetic signal is partly behavioural (views, add-to-carts), which the RFM-only baseline cannot see.
    assert comparison["models"][selected]["roc_auc"]["estimate"] > logistic["test"]["roc_auc"]
    # LightGBM's shape was chosen on the validation split, with early stopping there.
    if selected == "lightgbm":
        assert len(manifest["training"]["search"]["tried"]) >= 2
    assert manifest["training_data"]["dataset"] is None  # no --data-source given

    entry = _registry(models)["models"][0]
    assert entry["manifest_path"] == f"{V1}/feature-manifest.json" and entry["baseline_version"] == ""

    keep = os.environ.get("PATTERNOS_TEST_KEEP_MODELS")
    if keep:  # test/integration/training.test.ts checks this model with onnxruntime-node
        shutil.copytree(models, keep, dirs_exist_ok=True)


def test_a_worse_model_stays_candidate_and_says_why(
    good_csv: Path, noise_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    assert run_cli(capsys, *train_args(good_csv, models, V1))[0] == 0
    # --min-roc-auc 0: a model trained on coin flips must lose on the comparison, not merely on the floor.
    code, summary, err = run_cli(capsys, *train_args(noise_csv, models, V2, "--min-roc-auc", "0"))
    assert code == 0, err
    assert summary is not None and summary["status"] == "candidate" and summary["promoted"] is False
    assert summary["reason"].startswith(f"does not beat current {V1}: ROC-AUC ")
    assert summary["baseline_version"] == V1
    assert _pointer(models) == V1 and _statuses(models) == {V1: "current", V2: "candidate"}
    entry = next(m for m in _registry(models)["models"] if m["version"] == V2)
    assert entry["baseline_roc_auc"] > entry["roc_auc"] and entry["reason"] == summary["reason"]


def test_a_better_model_is_promoted_and_the_old_one_retired_then_rolled_back_by_hand(
    good_csv: Path, noise_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    # A model of coin flips becomes current only with both the floor and the logistic-regression requirement off
    # (a margin of -1 over it always passes): the point here is replacing a current model.
    noise_args = ("--min-roc-auc", "0", "--min-improvement-over-logistic", "-1")
    assert run_cli(capsys, *train_args(noise_csv, models, V1, *noise_args))[0] == 0
    assert _pointer(models) == V1
    code, summary, err = run_cli(capsys, *train_args(good_csv, models, V2))
    assert code == 0, err
    assert summary is not None and summary["status"] == "current"
    assert summary["reason"].startswith(f"beats current {V1}: ROC-AUC ")
    period = "refs 2026-02-10 … 2026-02-19 (labels through 2026-02-26), 1,500 rows, 23.1% positive"
    assert "beats the logistic-regression baseline: ROC-AUC " in summary["reason"]
    assert summary["reason"].endswith(f"all scored on the newest period, {period}")
    assert _pointer(models) == V2 and _statuses(models) == {V1: "retired", V2: "current"}
    retired = next(m for m in _registry(models)["models"] if m["version"] == V1)
    assert retired["reason"] == f"replaced by {V2}"

    code, _, err = run_cli(
        capsys, "promote", V1, "--reason", "rollback drill", "--models-dir", str(models), "--no-clickhouse"
    )
    assert code == 0, err
    assert _pointer(models) == V1 and _statuses(models) == {V1: "current", V2: "retired"}
    revisions = [m["updated_ms"] for m in _registry(models)["models"]]
    assert len(set(revisions)) == 1 and revisions[0] == _registry(models)["revision"]


def test_versions_are_immutable(good_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    models = tmp_path / "models"
    assert run_cli(capsys, *train_args(good_csv, models, V1))[0] == 0
    before = (models / "registry.json").read_text()
    code, _, err = run_cli(capsys, *train_args(good_csv, models, V1))
    assert code == 1 and "already exists" in err
    assert (models / "registry.json").read_text() == before


def test_version_names_must_sort_by_time(good_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, *train_args(good_csv, tmp_path / "models", "latest"))
    assert code == 1 and "UTC timestamp" in err and not (tmp_path / "models").exists()


def test_the_data_source_is_recorded_and_the_comparison_printed(
    good_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    code = main(train_args(good_csv, models, V1, "--data-source", "online-retail", "--bootstrap-resamples", "200"))
    out, err = capsys.readouterr()
    assert code == 0, err
    manifest = json.loads((models / V1 / "feature-manifest.json").read_text())
    assert manifest["training_data"]["dataset"] == "online-retail"
    assert manifest["metrics"]["comparison"]["resamples"] == 200
    assert "test split, 95 % paired-bootstrap intervals over customers" in out
    assert "logistic_regression" in out and "rfm_quintiles" in out and "Δ ROC-AUC" in out
    assert "--data-source online-retail" in (models / V1 / "model-card.md").read_text()
