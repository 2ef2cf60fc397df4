"""Where training data comes from when no CSV is given: the warehouse, through the features CLI.

`npm run -s features -- training-set` (processors/features) computes the point-in-time features with the same code
the streaming processors use, so training sees what scoring sees; this module only picks the window and runs it.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from .clickhouse import ClickHouse
from .contract import REPO_ROOT
from .dataset import DataError

# History a reference time needs before its features mean something (the 30-day windows are full).
DEFAULT_WARMUP_DAYS = 30


@dataclass(frozen=True)
class Window:
    """Reference dates (UTC midnights) from `start` up to but excluding `end`: the features CLI's --from/--to."""

    start: date
    end: date

    def describe(self) -> str:
        return f"{self.start.isoformat()} (inclusive) to {self.end.isoformat()} (exclusive)"


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as err:
        raise DataError(f"not a date (YYYY-MM-DD): {text!r}") from err


def _utc_date(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).date()


def warehouse_window(clickhouse: ClickHouse, horizon_days: int, warmup_days: int = DEFAULT_WARMUP_DAYS) -> Window:
    """From the first transaction's day + warm-up to the last one's day − horizon, so every label is fully observed.

    The newest day is treated as incomplete (the data may stop mid-day): a reference date d needs every transaction in
    [d, d + horizon), so the last usable d is that day − horizon, and the exclusive end is one day later.
    """
    rows = clickhouse.select(
        "SELECT count() AS n, min(event_time_ms) AS first_ms, max(event_time_ms) AS last_ms FROM fact_transaction"
    )
    if not rows or int(rows[0]["n"]) == 0:
        raise DataError(f"fact_transaction in {clickhouse.config.describe()} is empty: nothing to train on")
    start = _utc_date(int(rows[0]["first_ms"])) + timedelta(days=warmup_days)
    end = _utc_date(int(rows[0]["last_ms"])) - timedelta(days=horizon_days - 1)
    if end <= start:
        raise DataError(
            f"the warehouse holds transactions from {_utc_date(int(rows[0]['first_ms']))} to "
            f"{_utc_date(int(rows[0]['last_ms']))}: too short for {warmup_days} days of history plus a "
            f"{horizon_days}-day label horizon"
        )
    return Window(start, end)


def build_training_set(window: Window, step_days: int, horizon_days: int, out: Path, ref_times: str = "random") -> None:
    """Runs the features CLI; its progress goes to stderr so this process's stdout stays machine-readable."""
    command = [
        "npm",
        "run",
        "-s",
        "features",
        "--",
        "training-set",
        "--from",
        window.start.isoformat(),
        "--to",
        window.end.isoformat(),
        "--step-days",
        str(step_days),
        "--horizon-days",
        str(horizon_days),
        "--ref-times",
        ref_times,
        "--out",
        str(out),
    ]
    print(f"[train] building the training set: {' '.join(command)}", file=sys.stderr)
    try:
        result = subprocess.run(command, cwd=REPO_ROOT, stdout=sys.stderr, stderr=sys.stderr, check=False)
    except OSError as err:
        raise DataError(f"cannot run npm: {err}") from err
    if result.returncode != 0:
        raise DataError(f"`{' '.join(command)}` failed with exit code {result.returncode}")
    if not out.exists():
        raise DataError(f"`{' '.join(command)}` succeeded but wrote no {out}")
