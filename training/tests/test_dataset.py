"""Reading the training set and splitting it by time without label leakage."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from patternos_training.contract import Feature
from patternos_training.dataset import DAY_MS, DataError, SplitConfig, read_training_csv, temporal_split
from patternos_training.contract import load_features

N_FEATURES = len(load_features())  # the model width follows definitions.ts


def test_reads_rows_ordered_by_time_as_float32(good_csv: Path, features: tuple[Feature, ...]) -> None:
    ds = read_training_csv(good_csv, features)
    assert ds.rows == 150 * 50
    assert ds.x.dtype == np.float32 and ds.x.shape == (ds.rows, N_FEATURES)
    assert (np.diff(ds.ref_ms) >= 0).all()
    assert set(np.unique(ds.y)) == {0, 1}
    assert len(ds.sha256) == 64


def _rewrite(source: Path, target: Path, edit: dict[tuple[int, str], str]) -> Path:
    with source.open() as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    for (row, column), value in edit.items():
        rows[row][header.index(column)] = value
    with target.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return target


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({(5, "views_1h"): "nan"}, "non-finite value on line 6"),
        ({(5, "views_1h"): ""}, "not a number"),
        ({(5, "label"): "2"}, "label must be 0 or 1"),
        ({(2, "customer_id"): "c-00000", (2, "ref_ms"): "1767225600000"}, "appears twice"),
    ],
)
def test_refuses_bad_rows(
    good_csv: Path, tmp_path: Path, features: tuple[Feature, ...], edit: dict, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        read_training_csv(_rewrite(good_csv, tmp_path / "bad.csv", edit), features)


def test_splits_are_ordered_in_time_and_purged(good_csv: Path, features: tuple[Feature, ...]) -> None:
    ds = read_training_csv(good_csv, features)
    splits = temporal_split(ds, SplitConfig(horizon_days=7, validation_fraction=0.2, test_fraction=0.2))
    train, validation, test = splits.train, splits.validation, splits.test
    # No row in two splits, strictly increasing reference times across them.
    assert not set(train.index) & set(validation.index) and not set(validation.index) & set(test.index)
    assert train.to_ms < validation.from_ms and validation.to_ms < test.from_ms
    # No label window [ref, ref + 7 d) reaches into the next split.
    assert train.to_ms + 7 * DAY_MS <= validation.from_ms
    assert validation.to_ms + 7 * DAY_MS <= test.from_ms
    # 50 daily refs: test = the 10 newest, validation = the 10 before, train = the first 30. A split keeps a ref d
    # only if d + 7 days <= the next split's first ref, so each of train and validation loses its last 6 days.
    assert (test.rows, validation.rows, train.rows) == (10 * 150, 4 * 150, 24 * 150)
    assert (validation.purged, train.purged) == (6 * 150, 6 * 150)


def test_too_little_history_is_an_error(good_csv: Path, features: tuple[Feature, ...]) -> None:
    ds = read_training_csv(good_csv, features)
    with pytest.raises(DataError, match="validation split is empty"):
        temporal_split(ds, SplitConfig(horizon_days=14))


def test_a_split_with_one_class_is_an_error(good_csv: Path, tmp_path: Path, features: tuple[Feature, ...]) -> None:
    ds = read_training_csv(good_csv, features)
    newest = ds.ref_ms >= np.unique(ds.ref_ms)[-10]
    no_positive_test = type(ds)(**{**ds.__dict__, "y": np.where(newest, 0, ds.y).astype(np.int8)})
    with pytest.raises(DataError, match="test split has only negative labels"):
        temporal_split(no_positive_test, SplitConfig())
