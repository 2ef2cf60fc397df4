"""The point-in-time training set and its temporal train / validation / test split.

A row is one (customer, reference time): features as of ref − 1 ms, label = a PURCHASE in [ref, ref + horizon).
Rows are split by reference time only (never at random): the newest period is the test split, the period before it
validation, the rest train. A label looks `horizon` ahead of its ref, so the last rows of train (and of validation)
would see into the next split's period; they are purged, which is what keeps the splits honest.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .contract import Feature, check_header

DAY_MS = 86_400_000


class DataError(Exception):
    """The training data cannot produce an honest model (bad values, too little history, one class only)."""


@dataclass(frozen=True)
class Dataset:
    features: tuple[Feature, ...]
    customer_ids: npt.NDArray[np.str_]
    ref_ms: npt.NDArray[np.int64]
    # float32, because that is what the ONNX model and the scorer feed it: training on the same values means the
    # model's decisions are the scorer's decisions.
    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int8]
    source: str
    sha256: str

    @property
    def rows(self) -> int:
        return int(self.y.shape[0])

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _numbers(rows: list[list[str]], column: slice, what: str, first_line: int) -> npt.NDArray[np.float64]:
    try:
        values = np.array([r[column] for r in rows], dtype=np.str_).astype(np.float64)
    except ValueError as err:
        raise DataError(f"{what}: a value is not a number ({err})") from err
    bad = ~np.isfinite(values)
    if bad.any():
        line = first_line + int(np.argwhere(bad)[0][0])
        raise DataError(f"{what}: non-finite value on line {line}; features are always finite numbers by contract")
    return values


def read_training_csv(path: Path, features: tuple[Feature, ...]) -> Dataset:
    """Reads and validates a training-set CSV; rows come back ordered by (ref_ms, customer_id)."""
    with path.open(newline="", encoding="utf8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path} is empty")
        check_header(header, features, str(path))
        rows = list(reader)
    if not rows:
        raise DataError(f"{path} has a header but no rows")
    width = len(header)
    short = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if short is not None:
        raise DataError(f"{path} line {short + 2} has {len(rows[short])} fields, the header {width}")

    n_features = len(features)
    x = _numbers(rows, slice(3, 3 + n_features), f"{path} features", 2)
    ref = _numbers(rows, slice(1, 2), f"{path} ref_ms", 2)[:, 0]
    label = _numbers(rows, slice(width - 1, width), f"{path} label", 2)[:, 0]
    if not np.isin(label, (0.0, 1.0)).all():
        raise DataError(f"{path}: label must be 0 or 1")
    if (ref != np.floor(ref)).any() or (ref < 0).any():
        raise DataError(f"{path}: ref_ms must be non-negative integers (epoch ms)")
    customers = np.array([r[0] for r in rows], dtype=np.str_)
    if (customers == "").any():
        raise DataError(f"{path}: empty customer_id")

    order = np.lexsort((customers, ref))
    ref_sorted = ref[order].astype(np.int64)
    customers_sorted = customers[order]
    duplicate = (ref_sorted[1:] == ref_sorted[:-1]) & (customers_sorted[1:] == customers_sorted[:-1])
    if duplicate.any():
        i = int(np.argmax(duplicate))
        raise DataError(f"{path}: customer {customers_sorted[i]} appears twice at ref_ms {ref_sorted[i]}")
    return Dataset(
        features=features,
        customer_ids=customers_sorted,
        ref_ms=ref_sorted,
        x=x[order].astype(np.float32),
        y=label[order].astype(np.int8),
        source=str(path),
        sha256=_sha256(path),
    )


@dataclass(frozen=True)
class SplitConfig:
    horizon_days: float = 7.0
    validation_fraction: float = 0.2
    test_fraction: float = 0.2

    @property
    def horizon_ms(self) -> int:
        return round(self.horizon_days * DAY_MS)


@dataclass(frozen=True)
class Split:
    name: str
    index: npt.NDArray[np.int64]
    # The reference times of its rows, both inclusive. Its labels look up to to_ms + horizon (exclusive).
    from_ms: int
    to_ms: int
    rows: int
    positives: int
    # Rows dropped because their label window reached into the next split.
    purged: int

    def describe(self, horizon_ms: int) -> str:
        """E.g. `refs 2026-02-10 … 2026-02-19 (labels through 2026-02-26), 1,500 rows, 20.3% positive`."""
        return (
            f"refs {iso_time(self.from_ms)} … {iso_time(self.to_ms)} "
            f"(labels through {iso_time(self.to_ms + horizon_ms)}), {self.rows:,} rows, "
            f"{self.positives / self.rows:.1%} positive"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "rows": self.rows,
            "positives": self.positives,
            "purged_rows": self.purged,
        }


@dataclass(frozen=True)
class Splits:
    train: Split
    validation: Split
    test: Split
    horizon_ms: int


def iso_time(ms: int) -> str:
    """UTC date of epoch ms, plus the time of day unless it is midnight (reference times usually are)."""
    at = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return at.strftime("%Y-%m-%d" if ms % DAY_MS == 0 else "%Y-%m-%d %H:%M:%S")


def _make_split(name: str, ds: Dataset, keep: npt.NDArray[np.bool_], purged: int) -> Split:
    index = np.flatnonzero(keep).astype(np.int64)
    if index.size == 0:
        raise DataError(
            f"the {name} split is empty after purging label windows that overlap the next split: the data needs more "
            "reference times (widen --from/--to, or lower --horizon-days)"
        )
    labels = ds.y[index]
    positives = int(labels.sum())
    if positives in (0, index.size):
        raise DataError(
            f"the {name} split has only {'positive' if positives else 'negative'} labels ({index.size} rows): "
            "ROC-AUC is undefined there; widen the data window"
        )
    refs = ds.ref_ms[index]
    return Split(name, index, int(refs.min()), int(refs.max()), int(index.size), positives, purged)


def temporal_split(ds: Dataset, config: SplitConfig) -> Splits:
    """Train < validation < test by reference time, with label-window purging at both boundaries."""
    for value, what in ((config.validation_fraction, "validation"), (config.test_fraction, "test")):
        if not 0 < value < 1:
            raise DataError(f"the {what} fraction must be in (0, 1), got {value}")
    if config.validation_fraction + config.test_fraction >= 1:
        raise DataError("validation and test fractions leave nothing to train on")
    refs = np.unique(ds.ref_ms)
    n_test = max(1, math.ceil(refs.size * config.test_fraction))
    n_validation = max(1, math.ceil(refs.size * config.validation_fraction))
    if refs.size < n_test + n_validation + 1:
        raise DataError(f"{refs.size} distinct reference times are too few for a train/validation/test split")
    test_start = int(refs[-n_test])
    validation_start = int(refs[-n_test - n_validation])
    horizon = config.horizon_ms

    in_train = ds.ref_ms < validation_start
    in_validation = (ds.ref_ms >= validation_start) & (ds.ref_ms < test_start)
    # A label covers [ref, ref + horizon): it must end at or before the next split's first reference time.
    train_ok = in_train & (ds.ref_ms + horizon <= validation_start)
    validation_ok = in_validation & (ds.ref_ms + horizon <= test_start)
    return Splits(
        train=_make_split("train", ds, train_ok, int(in_train.sum() - train_ok.sum())),
        validation=_make_split("validation", ds, validation_ok, int(in_validation.sum() - validation_ok.sum())),
        test=_make_split("test", ds, ds.ref_ms >= test_start, 0),
        horizon_ms=horizon,
    )
