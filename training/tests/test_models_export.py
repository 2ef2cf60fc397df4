"""Both candidates export to an ONNX graph the scorer can read, reproducing the trained model on every test row."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import lightgbm
import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType

from patternos_training.contract import Feature
from patternos_training.dataset import SplitConfig, read_training_csv, temporal_split
from patternos_training.export import ParityError, check_parity, onnx_probabilities, session, to_onnx
from patternos_training.models import TRAINERS, Algorithm, snap_thresholds_to_float32
from patternos_training.contract import load_features

N_FEATURES = len(load_features())  # the model width follows definitions.ts


class Data(NamedTuple):
    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.int8]
    x_test: npt.NDArray[np.float32]


@pytest.fixture(scope="module")
def data(good_csv: Path, features: tuple[Feature, ...]) -> Data:
    ds = read_training_csv(good_csv, features)
    splits = temporal_split(ds, SplitConfig())
    return Data(ds.x[splits.train.index], ds.y[splits.train.index], ds.x[splits.test.index])


@pytest.mark.parametrize("algorithm", ["xgboost", "lightgbm"])
def test_export_matches_the_trained_model_on_the_whole_test_split(data: Data, algorithm: Algorithm) -> None:
    x_train, y_train, x_test = data
    model = TRAINERS[algorithm](x_train, y_train, 42, 1)
    exported = to_onnx(model, x_train.shape[1], {"model_version": "20260101T000000Z"})

    graph = exported.graph
    assert [i.name for i in graph.input] == ["features"] and [o.name for o in graph.output] == ["probabilities"]
    assert not any(node.op_type == "ZipMap" for node in graph.node)
    dims = [
        [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in (graph.input[0], graph.output[0])
    ]
    assert dims == [["N", N_FEATURES], ["N", 2]]
    assert {p.key: p.value for p in exported.metadata_props}["model_version"] == "20260101T000000Z"

    parity = check_parity(exported.SerializeToString(), x_test, model.predict(x_test))
    assert parity.rows == x_test.shape[0] and parity.max_abs_diff <= 1e-5
    probabilities = session(exported.SerializeToString()).run(None, {"features": x_test[:3]})[0]
    assert probabilities.dtype == np.float32 and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert len(model.importance_gain) == N_FEATURES and abs(sum(model.importance_gain) - 1) < 1e-9


def test_parity_failure_is_loud(data: Data) -> None:
    x_train, y_train, x_test = data
    model = TRAINERS["xgboost"](x_train, y_train, 42, 1)
    model_bytes = to_onnx(model, x_train.shape[1], {}).SerializeToString()
    expected = model.predict(x_test)
    expected[3] += 1e-3
    with pytest.raises(ParityError, match=r"disagree on 1 of .* rows"):
        check_parity(model_bytes, x_test, expected)


def test_lightgbm_thresholds_between_float32_values_keep_their_decisions() -> None:
    """A split between two adjacent float32 values: LightGBM's float64 threshold rounds up to the larger one in a plain
    conversion (so that value goes left in ONNX, right in LightGBM); the snapped model agrees everywhere."""
    low = np.float32(1.0)
    high = np.nextafter(low, np.float32(2.0))
    x = np.repeat(np.array([[low], [high]], dtype=np.float32), 200, axis=0)
    y = np.repeat([0, 1], 200)
    model = lightgbm.LGBMClassifier(n_estimators=3, min_child_samples=5, verbose=-1).fit(x, y)
    initial = [("features", FloatTensorType([None, 1]))]

    plain = convert_lightgbm(model.booster_, initial_types=initial, target_opset=15, zipmap=False)
    plain_p = onnx_probabilities(session(plain.SerializeToString()), x)
    native = model.booster_.predict(x)
    assert np.abs(plain_p - native).max() > 1e-2, "the fixture no longer reproduces the float32 rounding problem"

    snapped, moved = snap_thresholds_to_float32(model.booster_)
    assert moved > 0 and np.array_equal(snapped.predict(x), native)
    converted = convert_lightgbm(snapped, initial_types=initial, target_opset=15, zipmap=False)
    assert isinstance(converted, onnx.ModelProto)
    assert np.abs(onnx_probabilities(session(converted.SerializeToString()), x) - native).max() < 1e-6
