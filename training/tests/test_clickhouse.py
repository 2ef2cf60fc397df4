"""The model_registry table and the warehouse window on a real ClickHouse (18.16 locally, any newer in CI).

Each run uses its own database with migration 0009 applied, and drops it afterwards. Without a reachable ClickHouse
these tests are skipped with the reason shown, unless PATTERNOS_TEST_CLICKHOUSE=required (set by
test/integration/training.test.ts), which turns that into a failure.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from patternos_training.clickhouse import ClickHouse, ClickHouseConfig, ClickHouseError
from patternos_training.contract import REPO_ROOT
from patternos_training.registry import fetch_clickhouse_registry
from patternos_training.source import warehouse_window
from tests.conftest import run_cli
from patternos_training.contract import load_features

N_FEATURES = len(load_features())  # the model width follows definitions.ts

MIGRATION = REPO_ROOT / "clickhouse" / "migrations" / "0009_model_registry.sql"


def _statements(sql: str) -> list[str]:
    without_comments = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in without_comments.split(";") if s.strip()]


@pytest.fixture
def clickhouse(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClickHouse]:
    base = ClickHouseConfig.from_env()
    database = f"t_training_{secrets.token_hex(4)}"
    server = ClickHouse(base)
    try:
        server.command(f"CREATE DATABASE {database}", database=False)
    except ClickHouseError as err:
        if os.environ.get("PATTERNOS_TEST_CLICKHOUSE") == "required":
            pytest.fail(f"ClickHouse is required for these tests: {err}")
        pytest.skip(f"no ClickHouse at {base.url}: {err}")
    monkeypatch.setenv("CLICKHOUSE_DATABASE", database)
    client = ClickHouse(ClickHouseConfig.from_env())
    try:
        for statement in _statements(MIGRATION.read_text()):
            client.command(statement)
        yield client
    finally:
        server.command(f"DROP DATABASE IF EXISTS {database}", database=False)


def test_registry_rows_replace_on_status_change(
    clickhouse: ClickHouse, good_csv: Path, noise_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = str(tmp_path / "models")
    common = ["--models-dir", models, "--threads", "1"]
    # A model of coin flips becomes current only with the floor and the logistic-regression requirement off.
    lenient = ["--min-roc-auc", "0", "--min-improvement-over-logistic", "-1"]
    first = ["train", "--csv", str(noise_csv), "--version", "20260301T000000Z", *lenient, *common]
    assert run_cli(capsys, *first)[0] == 0
    code, summary, err = run_cli(capsys, "train", "--csv", str(good_csv), "--version", "20260302T000000Z", *common)
    assert code == 0, err
    assert summary is not None and summary["status"] == "current"

    rows = {r["version"]: r for r in fetch_clickhouse_registry(clickhouse)}
    assert {v: r["status"] for v, r in rows.items()} == {"20260301T000000Z": "retired", "20260302T000000Z": "current"}
    assert rows["20260301T000000Z"]["reason"] == "replaced by 20260302T000000Z"
    assert rows["20260302T000000Z"]["reason"] == summary["reason"]
    # Both states come from one registration; FINAL picked them over the older "current" row of the first version.
    assert int(rows["20260301T000000Z"]["updated_ms"]) == int(rows["20260302T000000Z"]["updated_ms"])
    detail = clickhouse.select(
        "SELECT created_at, test_from_ms, test_to_ms, eval_period, baseline_version, feature_count, manifest_path "
        "FROM model_registry FINAL WHERE version = '20260302T000000Z'"
    )[0]
    assert detail["baseline_version"] == "20260301T000000Z" and int(detail["feature_count"]) == N_FEATURES
    assert re.match(r"^refs 2026-02-10 … 2026-02-19 ", detail["eval_period"])
    assert detail["manifest_path"] == "20260302T000000Z/feature-manifest.json"

    code, _, err = run_cli(capsys, "status", "--models-dir", models)
    assert code == 0 and "differs" not in capsys.readouterr().out + err


def test_missing_table_is_reported_with_the_fix(
    clickhouse: ClickHouse, good_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clickhouse.command("DROP TABLE model_registry")
    args = ["train", "--csv", str(good_csv), "--version", "20260301T000000Z", "--models-dir", str(tmp_path / "m")]
    code, _, err = run_cli(capsys, *args, "--threads", "1")
    assert code == 1 and "npm run migrate" in err
    # Nothing half-registered is left behind: the version can be trained again once the table exists.
    assert not (tmp_path / "m" / "20260301T000000Z").exists() and not (tmp_path / "m" / "current").exists()


def test_warehouse_window_leaves_warm_up_and_horizon(clickhouse: ClickHouse) -> None:
    # Only the column the query reads; the real fact_transaction (migration 0003) has it with the same type.
    clickhouse.command("CREATE TABLE fact_transaction (event_time_ms UInt64) ENGINE = MergeTree ORDER BY event_time_ms")
    clickhouse.command("INSERT INTO fact_transaction VALUES (1291161600000), (1320710400000)")  # 2010-12-01, 2011-11-08
    window = warehouse_window(clickhouse, horizon_days=7)
    # Refs 2010-12-31 … 2011-11-01: the last one's label window [11-01, 11-08) ends where the (partial) last day starts.
    assert (window.start.isoformat(), window.end.isoformat()) == ("2010-12-31", "2011-11-02")
