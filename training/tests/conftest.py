"""Shared fixtures: the real feature contract and small synthetic training sets (see synthetic.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from patternos_training.cli import main
from patternos_training.contract import Feature, load_features
from tests.synthetic import write_synthetic_csv

# Small enough for a fast suite, large enough that both models learn the signal: 150 customers x 50 daily refs.
CUSTOMERS = 150
DAYS = 50


@pytest.fixture(scope="session")
def features() -> tuple[Feature, ...]:
    return load_features()


@pytest.fixture(scope="session")
def good_csv(tmp_path_factory: pytest.TempPathFactory, features: tuple[Feature, ...]) -> Path:
    path = tmp_path_factory.mktemp("data") / "good.csv"
    return write_synthetic_csv(path, features, customers=CUSTOMERS, days=DAYS, seed=7)


@pytest.fixture(scope="session")
def noise_csv(tmp_path_factory: pytest.TempPathFactory, features: tuple[Feature, ...]) -> Path:
    """The same generator and seed, so the test period (the newest days) is identical to good_csv's, but every earlier
    label is a coin flip: a model trained on it has learnt nothing useful."""
    path = tmp_path_factory.mktemp("data") / "noise.csv"
    return write_synthetic_csv(
        path, features, customers=CUSTOMERS, days=DAYS, seed=7, noise_labels_before_day=DAYS - 10
    )


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any] | None, str]:
    """Runs the CLI in-process; returns the exit code, the final JSON line (if any) and stderr."""
    code = main(list(args))
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if line.strip()]
    summary = json.loads(lines[-1]) if code == 0 and lines else None
    return code, summary, err


def train_args(csv: Path, models: Path, version: str, *extra: str) -> list[str]:
    return [
        "train",
        "--csv",
        str(csv),
        "--models-dir",
        str(models),
        "--version",
        version,
        "--threads",
        "1",
        "--no-clickhouse",
        *extra,
    ]
