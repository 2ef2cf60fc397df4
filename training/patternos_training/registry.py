"""Model versions on disk, their registry (ClickHouse model_registry + the models/registry.json mirror) and the
`current` pointer the scorer follows.

Layout of MODEL_DIR (default <repo>/models):
  <version>/model.onnx, feature-manifest.json, model-card.md, parity-sample.json
  registry.json   every version's latest registry row, plus "current"
  current         one line: the version the scorer must serve

Order of a registration, so that a crash at any point leaves a consistent state (the pointer moves last):
  version directory (renamed into place whole) → ClickHouse rows → registry.json (atomic rename) → current (atomic
  rename). All of it happens under an exclusive lock on MODEL_DIR/.lock, so two trainings cannot both promote.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from .clickhouse import ClickHouse, ClickHouseError
from .manifest import MANIFEST_FILE

Status = Literal["current", "candidate", "retired"]
REGISTRY_TABLE = "model_registry"
REGISTRY_FILE = "registry.json"
CURRENT_FILE = "current"
# A UTC timestamp (sortable by time), optionally with a suffix: 20261124T101500Z, 20261124T101500Z-retrain.
VERSION_PATTERN = re.compile(r"^\d{8}T\d{6}Z(?:-[A-Za-z0-9][A-Za-z0-9-]*)?$")


class RegistryError(Exception):
    """The registry cannot do what was asked (unknown version, version exists, ClickHouse table missing)."""


def new_version(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def check_version(version: str) -> str:
    if not VERSION_PATTERN.match(version):
        raise RegistryError(
            f"model version {version!r} is not a UTC timestamp like 20261124T101500Z (optionally -suffix): versions "
            "must sort by time"
        )
    return version


@dataclass(frozen=True)
class Entry:
    """One model version's registry row (the columns of clickhouse/migrations/0009_model_registry.sql)."""

    version: str
    status: Status
    created_at: str  # ISO 8601 UTC, seconds: 2026-11-24T10:15:00Z
    algorithm: str
    roc_auc: float
    pr_auc: float
    test_rows: int
    test_positive_rate: float
    test_from_ms: int
    test_to_ms: int
    eval_period: str
    train_from_ms: int
    train_to_ms: int
    training_rows: int
    horizon_days: float
    feature_count: int
    baseline_version: str
    baseline_roc_auc: float
    baseline_pr_auc: float
    reason: str
    manifest_path: str  # relative to MODEL_DIR
    model_sha256: str
    updated_ms: int = 0

    def clickhouse_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["created_at"] = self.created_at.replace("T", " ").removesuffix("Z")
        return row


@dataclass
class Registry:
    current: str | None = None
    # The highest updated_ms written; the next write uses a larger one so it replaces every older state.
    revision: int = 0
    models: dict[str, Entry] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "current": self.current,
            "revision": self.revision,
            "models": [asdict(self.models[v]) for v in sorted(self.models)],
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Registry:
        models = {str(m["version"]): Entry(**m) for m in data.get("models", [])}
        return Registry(data.get("current"), int(data.get("revision", 0)), models)


def _write_atomically(path: Path, text: str) -> None:
    """Write to a sibling temp file, fsync, rename: readers (the scorer) see the old or the new file, never half."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def version_dir(self, version: str) -> Path:
        return self.root / check_version(version)

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, also if the process dies
            yield

    def write_version(self, version: str, files: dict[str, bytes]) -> Path:
        """Creates <version>/ with `files`, all at once (built in a temp dir, then renamed); never overwrites."""
        target = self.version_dir(version)
        if target.exists():
            raise RegistryError(f"{target} already exists: model versions are immutable, pick another --version")
        staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{version}."))
        try:
            for name, content in files.items():
                (staging / name).write_bytes(content)
            staging.chmod(0o755)
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def remove_version(self, version: str) -> None:
        shutil.rmtree(self.version_dir(version), ignore_errors=True)

    def read_registry(self) -> Registry:
        path = self.root / REGISTRY_FILE
        if not path.exists():
            return Registry()
        try:
            return Registry.from_json(json.loads(path.read_text(encoding="utf8")))
        except (ValueError, KeyError, TypeError) as err:
            raise RegistryError(f"{path} is not a registry file: {err}") from err

    def read_pointer(self) -> str | None:
        path = self.root / CURRENT_FILE
        if not path.exists():
            return None
        return path.read_text(encoding="utf8").strip() or None

    def write_registry(self, registry: Registry) -> None:
        _write_atomically(self.root / REGISTRY_FILE, json.dumps(registry.to_json(), indent=2) + "\n")

    def write_pointer(self, version: str) -> None:
        _write_atomically(self.root / CURRENT_FILE, check_version(version) + "\n")


def _next_revision(registry: Registry, clickhouse: ClickHouse | None) -> int:
    """Larger than every updated_ms already written here or in ClickHouse (another machine may share the table)."""
    floor = registry.revision
    if clickhouse is not None:
        rows = clickhouse.select(f"SELECT max(updated_ms) AS m FROM {REGISTRY_TABLE}")
        floor = max(floor, int(rows[0]["m"]) if rows else 0)
    return max(int(time.time() * 1000), floor + 1)


def publish(store: ModelStore, clickhouse: ClickHouse | None, registry: Registry, entries: list[Entry]) -> Registry:
    """Records new states of versions (call under `store.locked()`); moves the pointer when one becomes current."""
    try:
        revision = _next_revision(registry, clickhouse)
        stamped = [replace(e, updated_ms=revision) for e in entries]
        if clickhouse is not None:
            clickhouse.insert(REGISTRY_TABLE, [e.clickhouse_row() for e in stamped])
    except ClickHouseError as err:
        raise RegistryError(f"cannot write {REGISTRY_TABLE}{_hint(err)}: {err}") from err
    models = dict(registry.models)
    current = registry.current
    for entry in stamped:
        models[entry.version] = entry
        if entry.status == "current":
            current = entry.version
        elif current == entry.version:
            current = None
    updated = Registry(current, revision, models)
    store.write_registry(updated)
    if current is not None and current != store.read_pointer():
        store.write_pointer(current)
    return updated


def repair_pointer(store: ModelStore, registry: Registry) -> str | None:
    """A run that died between registry.json and the pointer leaves them apart; the registry is the decision record.

    Returns a warning when it had to move the pointer.
    """
    pointer = store.read_pointer()
    if registry.current is None or pointer == registry.current:
        return None
    store.write_pointer(registry.current)
    return f"{store.root / CURRENT_FILE} said {pointer!r} but the registry says {registry.current!r}: pointer repaired"


def promote_by_hand(
    store: ModelStore, clickhouse: ClickHouse | None, version: str, reason: str
) -> tuple[Registry, list[Entry]]:
    """Makes a registered version current (a rollback, or a candidate the gate could not compare)."""
    with store.locked():
        registry = store.read_registry()
        entry = registry.models.get(check_version(version))
        if entry is None:
            raise RegistryError(f"{version} is not in {store.root / REGISTRY_FILE}")
        if registry.current == version:
            raise RegistryError(f"{version} is already current")
        if not (store.version_dir(version) / MANIFEST_FILE).exists():
            raise RegistryError(f"{store.version_dir(version)} has no {MANIFEST_FILE}: cannot serve it")
        entries = [replace(entry, status="current", reason=f"promoted by hand: {reason}")]
        if registry.current is not None and registry.current in registry.models:
            entries.append(
                replace(registry.models[registry.current], status="retired", reason=f"replaced by {version} (by hand)")
            )
        return publish(store, clickhouse, registry, entries), entries


def check_table(clickhouse: ClickHouse) -> None:
    """Fails fast (before minutes of training) when the table is missing or ClickHouse is unreachable."""
    try:
        clickhouse.select(f"SELECT count() AS n FROM {REGISTRY_TABLE} WHERE 0")
    except ClickHouseError as err:
        raise RegistryError(
            f"cannot use {REGISTRY_TABLE} in {clickhouse.config.describe()}{_hint(err)}: {err} "
            "(--no-clickhouse trains without it)"
        ) from err


def fetch_clickhouse_registry(clickhouse: ClickHouse) -> list[dict[str, Any]]:
    """The table's current state (one row per version), for `status` and tests."""
    try:
        return clickhouse.select(
            f"SELECT version, status, algorithm, roc_auc, pr_auc, reason, updated_ms FROM {REGISTRY_TABLE} FINAL "
            "ORDER BY version"
        )
    except ClickHouseError as err:
        raise RegistryError(f"cannot read {REGISTRY_TABLE}{_hint(err)}: {err}") from err


def _hint(err: ClickHouseError) -> str:
    # 60 UNKNOWN_TABLE, 81 UNKNOWN_DATABASE: the warehouse was not migrated.
    return " (run `npm run migrate`)" if err.code in (60, 81) else ""
