"""Reading ONNX files as real exporters write them, shared by the importer and the verifier.

* external data (PyTorch's dynamo exporter writes weights to ``model.onnx.data``) is loaded from the
  model's folder, and a missing data file is named in the error;
* a file that is not a protobuf, is truncated, or fails onnx's checker is refused with one line;
* models older than opset 9 (the pytorch-converted backend tests are opset 6) are upgraded with
  onnx's version converter; before that, an opset < 7 PRelu whose slope has one value per channel is
  given the trailing unit axes that later opsets' numpy broadcasting needs (what the exporter meant).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, version_converter

from .errors import UserError, quoted

MIN_OPSET = 9


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_model(path: str | Path) -> onnx.ModelProto:
    """Read, check and (for opsets < 9) upgrade an ONNX model; every failure is a one-line UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected an ONNX model file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror or e}") from e
    except Exception as e:  # protobuf's DecodeError and friends
        raise UserError(f"{path}: not an ONNX model, or a truncated one (the file does not parse as ONNX "
                        f"protobuf: {e})") from e
    if not model.HasField("graph") or not model.graph.node:
        raise UserError(f"{path}: not an ONNX model (no graph or no nodes)")
    _load_external_data(model, path)
    try:  # from the file: the checker parses it in C++ (and its external data), not a re-serialised copy
        onnx.checker.check_model(str(path))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: invalid or truncated ONNX model: {first}") from e
    if default_opset(model) < MIN_OPSET and any(e.domain in ("", "ai.onnx") for e in model.opset_import):
        model = _upgrade(model, path)  # (a model of ai.onnx.ml operators alone has nothing to upgrade)
    return model


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    for tensor in onnx.external_data_helper._get_all_tensors(model):
        if onnx.external_data_helper.uses_external_data(tensor):
            try:
                info = onnx.external_data_helper.ExternalDataInfo(tensor)
            except (ValueError, TypeError) as e:  # a non-numeric offset or length; a key that is not UTF-8 text
                raise UserError(f"{path}: external data of tensor {tensor.name!r} is malformed: {quoted(e)}") from e
            if not isinstance(info.location, str):  # protobuf hands over bytes that are not UTF-8 as bytes
                raise UserError(f"{path}: the external data location of tensor {tensor.name!r} is not UTF-8 text")
            location = path.parent / info.location
            if not location.is_file():
                raise UserError(f"{path}: external data file {info.location!r} of tensor "
                                f"{tensor.name!r} not found next to the model")
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except Exception as e:
        raise UserError(f"{path}: cannot load external data: {quoted(e)}") from e


def _upgrade(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    if default_opset(model) < 7:
        _fix_legacy_prelu(model)
    try:
        return version_converter.convert_version(model, MIN_OPSET)
    except Exception as e:
        raise UserError(f"{path}: opset {default_opset(model)} model could not be upgraded to opset "
                        f"{MIN_OPSET} by onnx's version converter: {str(e).splitlines()[0]}") from e


def _fix_legacy_prelu(model: onnx.ModelProto) -> None:
    """Opset-6 PRelu applies a (C,) slope per channel (axis 1); give it shape (C, 1, ..., 1)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - shapes that contradict each other: the declared ranks, and later checks say what is wrong
        inferred = model
    values = list(inferred.graph.input) + list(inferred.graph.value_info)
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in values}
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "PRelu" and node.input[1] in inits and ranks.get(node.input[0], 0) > 2:
            slope = numpy_helper.to_array(inits[node.input[1]])
            if slope.ndim == 1 and slope.size > 1:
                shaped = slope.reshape((slope.size,) + (1,) * (ranks[node.input[0]] - 2))
                inits[node.input[1]].CopyFrom(numpy_helper.from_array(shaped, node.input[1]))
                for value in model.graph.input:  # IR < 4 lists the initializer as an input too
                    if value.name == node.input[1]:
                        value.type.tensor_type.shape.CopyFrom(
                            onnx.helper.make_tensor_type_proto(1, shaped.shape).tensor_type.shape)


def np_dtype(elem_type: int) -> np.dtype:
    """The NumPy dtype of an ONNX element type; ValueError for a number that names none (0,
    UNDEFINED, or one ONNX does not define)."""
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"element type {elem_type!r} is not an ONNX tensor type with a NumPy dtype") from e
