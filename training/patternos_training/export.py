"""ONNX export for onnxruntime-node, and the parity check that makes the export trustworthy.

The exported graph has one input and one output, nothing else (no ZipMap, no label output) so the scorer reads plain
tensors:
  input  "features"       float32 [N, len(FEATURE_NAMES)]  columns in FEATURE_NAMES order
  output "probabilities"  float32 [N, 2]                   column 1 = P(purchase within the horizon), raw model output
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
import onnx.checker
import onnx.utils
import onnxruntime
from onnxmltools import convert_lightgbm, convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType

from . import __version__
from .models import TrainedModel

INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
POSITIVE_COLUMN = 1
# Upper bound handed to the converters. The trees need only ai.onnx.ml TreeEnsembleClassifier v1 and a few
# default-domain ops (opset 9 today); the cap keeps a converter upgrade from emitting ops an older runtime lacks.
TARGET_OPSET = 15
PARITY_TOLERANCE = 1e-5


class ParityError(Exception):
    """The ONNX model does not reproduce the trained model's probabilities."""


@dataclass(frozen=True)
class Parity:
    rows: int
    max_abs_diff: float
    tolerance: float


def _convert(model: TrainedModel, n_features: int) -> onnx.ModelProto:
    initial_types = [(INPUT_NAME, FloatTensorType([None, n_features]))]
    if model.algorithm == "xgboost":
        return convert_xgboost(model.native, initial_types=initial_types, target_opset=TARGET_OPSET)
    return convert_lightgbm(model.native, initial_types=initial_types, target_opset=TARGET_OPSET, zipmap=False)


def _only_probabilities(converted: onnx.ModelProto) -> onnx.ModelProto:
    """The subgraph from the input to the probabilities: drops the label output and the nodes only it needed."""
    outputs = [o.name for o in converted.graph.output]
    if OUTPUT_NAME not in outputs:
        raise ParityError(f"converter produced outputs {outputs}, expected one named {OUTPUT_NAME!r}")
    extracted = onnx.utils.Extractor(converted).extract_model([INPUT_NAME], [OUTPUT_NAME])
    # Name the batch dimension so tools and the scorer's startup check read [N, …] rather than an anonymous dim.
    for value in (*extracted.graph.input, *extracted.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    return extracted


def to_onnx(model: TrainedModel, n_features: int, metadata: dict[str, str]) -> onnx.ModelProto:
    """Converts `model` and stamps `metadata` (model version, feature names) into the file itself."""
    exported = _only_probabilities(_convert(model, n_features))
    ops = {node.op_type for node in exported.graph.node}
    if "ZipMap" in ops:
        raise ParityError("exported graph contains a ZipMap (a map output onnxruntime-node cannot read as a tensor)")
    exported.producer_name = "patternos_training"
    exported.producer_version = __version__
    del exported.metadata_props[:]
    for key, value in sorted(metadata.items()):
        exported.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(exported, full_check=True)
    _check_signature(exported, n_features)
    return exported


def _check_signature(exported: onnx.ModelProto, n_features: int) -> None:
    graph = exported.graph
    if [i.name for i in graph.input] != [INPUT_NAME] or [o.name for o in graph.output] != [OUTPUT_NAME]:
        raise ParityError(
            f"exported signature is {[i.name for i in graph.input]} -> {[o.name for o in graph.output]}, "
            f"expected [{INPUT_NAME!r}] -> [{OUTPUT_NAME!r}]"
        )
    for value, width in ((graph.input[0], n_features), (graph.output[0], 2)):
        tensor = value.type.tensor_type
        dims = [d.dim_value or d.dim_param for d in tensor.shape.dim]
        if tensor.elem_type != onnx.TensorProto.FLOAT or dims != ["N", width]:
            raise ParityError(f"{value.name} is {onnx.TensorProto.DataType.Name(tensor.elem_type)} {dims}")


def session(model_bytes: bytes) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are noise here; errors still raise
    return onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def onnx_probabilities(sess: onnxruntime.InferenceSession, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """P(positive) per row, through onnxruntime: the same C++ runtime as the scorer's onnxruntime-node."""
    (probabilities,) = sess.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})
    return np.asarray(probabilities[:, POSITIVE_COLUMN], dtype=np.float64)


def check_parity(
    model_bytes: bytes,
    x: npt.NDArray[np.float32],
    expected: npt.NDArray[np.floating],
    tolerance: float = PARITY_TOLERANCE,
) -> Parity:
    """ONNX probabilities must equal the trained model's on every row of `x` within `tolerance` (absolute)."""
    got = onnx_probabilities(session(model_bytes), x)
    diff = np.abs(got - np.asarray(expected, dtype=np.float64))
    worst = int(np.argmax(diff)) if diff.size else 0
    max_diff = float(diff[worst]) if diff.size else 0.0
    if not np.isfinite(got).all() or max_diff > tolerance:
        raise ParityError(
            f"ONNX and trained model disagree on {int((diff > tolerance).sum())} of {diff.size} rows: max |diff| "
            f"{max_diff:.3g} > {tolerance:g} (row {worst}: onnx {got[worst]:.8f}, model {float(expected[worst]):.8f})"
        )
    return Parity(rows=int(diff.size), max_abs_diff=max_diff, tolerance=tolerance)
