"""ONNX ModelProto -> IR Graph. The only module (with onnx_load) that sees protobufs.

Every ONNX quirk is resolved here, once:
* initializers (and ``Constant`` nodes) become constants, also when an old (IR version < 4) file
  lists them as graph inputs too: they are never user inputs;
* a symbolic batch dimension is bound to 1 (see ir.py); any other symbolic dimension is an error;
* attributes get their defaults and one canonical spelling per op, whatever the opset: the config
  that opset-9 files carry as attributes (Clip min/max, Pad pads, Squeeze axes, Slice starts...) is
  stored under the same attribute names that ``fold_constants`` later gives the constant inputs of
  newer opsets; Softmax gets ``legacy=True`` for the opset < 13 coerce-to-2-D semantics;
* node names are made unique and non-empty (``<op>_<index>`` when the exporter left them empty), so
  every error can name its node; ``meta["node_names"]`` lists them in the file's node order, so
  that fine-tuning can write a node's new weights back into the file.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from . import interp, ops
from .errors import UnsupportedModel, UserError
from .ir import Graph, Node, TensorType, UnsupportedNode, prune, type_of
from .onnx_load import default_opset, load_model, np_dtype, sha256_of

IGNORED_ATTRS = {"consumed_inputs", "is_test", "spatial", "momentum", "storage_order", "seed",
                 "ratio", "broadcast"}


def import_model(path: str | Path) -> Graph:
    with ThreadPoolExecutor(1) as pool:  # the file's sha256 while onnx parses and checks it
        digest = pool.submit(sha256_of, path)
        model = load_model(path)
        sha256 = digest.result()
    return import_proto(model, source=str(path), sha256=sha256)


def import_proto(model: onnx.ModelProto, source: str = "<model>", sha256: str = "") -> Graph:
    opset = default_opset(model)
    graph = model.graph
    consts = {t.name: _tensor(t, f"initializer {t.name!r}", source) for t in graph.initializer}
    if graph.sparse_initializer:
        raise UserError(f"{source}: sparse initializers are not supported")
    inputs, types = [], {}
    for value in graph.input:
        if value.name in consts:
            continue
        inputs.append(value.name)
        types[value.name] = _input_type(value, source)
    nodes, problems, names, order = [], [], set(), []
    for index, proto in enumerate(graph.node):
        name = proto.name or f"{proto.op_type}_{index}"
        while name in names:
            name += "_"
        names.add(name)
        order.append(name)
        if proto.op_type == "Constant" and proto.domain in ("", "ai.onnx"):
            consts[proto.output[0]] = _constant_value(proto, source)
            continue
        problem = _unsupported(proto, name, consts)
        if problem:
            problems.append(problem)
            nodes.append(Node(proto.op_type, tuple(proto.input), tuple(proto.output), {}, name))
            continue
        attrs = _attrs(proto, opset, consts)
        nodes.append(Node(proto.op_type, _inputs(proto, opset), tuple(proto.output), attrs, name))
    if not inputs:
        raise UserError(f"{source}: the model has no inputs: every output is a constant, nothing runs on a device")
    for name, value in consts.items():
        if value.dtype == object:
            raise UserError(f"{source}: constant {name!r} holds strings or objects, which photoncc cannot place")
        types[name] = type_of(value)
    g = Graph(tuple(nodes), tuple(inputs), tuple(o.name for o in graph.output), types, consts,
              meta={"source": source, "sha256": sha256, "opset": opset,
                    "producer": f"{model.producer_name} {model.producer_version}".strip(),
                    "dynamic_batch": any(_symbolic_batch(v) for v in graph.input if v.name not in consts),
                    "model_constants": tuple(sorted(consts)),
                    "node_names": tuple(order)})  # per ONNX node, in the file's order: the name it has here
    g = prune(g)
    live = {n.name for n in g.nodes}
    problems = [p for p in problems if p.node in live]
    if problems:
        raise UnsupportedModel(source, problems)
    try:
        return interp.infer_types(g)
    except interp.NodeError as e:
        raise UserError(f"{source}: {e}") from e


MAX_SAMPLE_VALUES = 1 << 28  # values in one sample of an input (1 GiB of float32)
NUMERIC = "fiub"  # the dtype kinds photoncc computes with: floats, signed and unsigned integers, booleans


def computable(dtype: np.dtype) -> bool:
    """Whether photoncc computes with ``dtype``: NumPy's own numbers and booleans (not the float8,
    bfloat16 and int4 types that ml_dtypes adds, nor strings or records)."""
    return dtype.kind in NUMERIC and dtype.isbuiltin == 1


def _tensor(proto: onnx.TensorProto, what: str, source: str) -> np.ndarray:
    """A constant of the model as an array; one that does not decode (its dims disagree with its
    values, an unknown data type) or is not numeric is a UserError naming it."""
    try:
        value = numpy_helper.to_array(proto)
    except Exception as e:  # onnx's decoding errors: ValueError, KeyError, TypeError...
        raise UserError(f"{source}: {what} cannot be read: {str(e).strip() or type(e).__name__}") from e
    if not computable(value.dtype):
        raise UserError(f"{source}: {what} holds {value.dtype} values, which photoncc cannot place "
                        "(numbers and booleans only)")
    return value


def _input_type(value: onnx.ValueInfoProto, source: str) -> TensorType:
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type"):
        raise UserError(f"{source}: input {value.name!r} is not a tensor")
    shape = []
    for axis, dim in enumerate(tensor.shape.dim):
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(dim.dim_value)
        elif axis == 0:
            shape.append(1)  # the batch, bound to 1
        else:
            raise UserError(f"{source}: input {value.name!r} has a symbolic dimension "
                            f"{dim.dim_param or '?'!r} at axis {axis}; only the batch (axis 0) may be "
                            "symbolic (export with static shapes)")
    if not shape:
        raise UserError(f"{source}: input {value.name!r} has no batch axis (rank 0)")
    per_sample = math.prod(shape[1:])
    if per_sample > MAX_SAMPLE_VALUES:
        raise UserError(f"{source}: input {value.name!r} has shape {['N'] + shape[1:]}: {per_sample:.3g} values per "
                        f"sample, more than photoncc takes ({MAX_SAMPLE_VALUES:,})")
    if shape[0] * per_sample > MAX_SAMPLE_VALUES:  # a fixed batch: type inference runs the model on it
        raise UserError(f"{source}: input {value.name!r} has a fixed batch of {shape[0]:,} (shape {shape}): "
                        f"{shape[0] * per_sample:.3g} values, more than photoncc takes ({MAX_SAMPLE_VALUES:,}); "
                        "export with a symbolic or smaller batch")
    dtype = _computable_type(tensor.elem_type)
    if dtype is None:
        raise UserError(f"{source}: input {value.name!r} has element type {_type_name(tensor.elem_type)}, which "
                        "photoncc cannot feed (numbers and booleans only)")
    return TensorType(tuple(shape), dtype.name)


def _computable_type(elem_type: int) -> np.dtype | None:
    """The NumPy dtype of an ONNX element type photoncc computes with, else None."""
    try:
        dtype = np_dtype(elem_type)
    except (KeyError, TypeError, ValueError):
        return None
    return dtype if computable(dtype) else None


def _type_name(elem_type: int) -> str:
    return onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() \
        else str(elem_type)


def _symbolic_batch(value: onnx.ValueInfoProto) -> bool:
    dims = value.type.tensor_type.shape.dim
    return bool(dims) and not (dims[0].HasField("dim_value") and dims[0].dim_value > 0)


def _constant_value(proto: onnx.NodeProto, source: str) -> np.ndarray:
    if len(proto.attribute) != 1:
        raise UserError(f"{source}: Constant node {proto.name or proto.output[0]!r} needs exactly one value attribute")
    attr = proto.attribute[0]
    value = onnx.helper.get_attribute_value(attr)
    if attr.name == "value":
        return _tensor(value, f"Constant node {proto.name or proto.output[0]!r}", source)
    if attr.name in ("value_float", "value_int"):
        return np.array(value, np.float32 if attr.name == "value_float" else np.int64)
    if attr.name in ("value_floats", "value_ints"):
        return np.array(value, np.float32 if attr.name == "value_floats" else np.int64)
    raise UserError(f"{source}: Constant node {proto.name or proto.output[0]!r} of kind {attr.name!r} "
                    "is not supported")


def _unsupported(proto: onnx.NodeProto, name: str, consts: dict | None = None) -> UnsupportedNode | None:
    """Why the node cannot be imported (None: it can); ``consts``: the model's constants so far."""
    consts = consts or {}
    op, found = proto.op_type, ops.get(proto.op_type)
    hint = ops.REFUSED.get(op, "see `photoncc ops` for what is supported")
    if proto.domain not in ("", "ai.onnx") and not (found and found.onnx_op and found.domain == proto.domain):
        return UnsupportedNode(name, op, f"operator of domain {proto.domain!r} is not supported", hint)
    if found is None or not found.onnx_op or (found.kernel is None and found.onnx is None):
        return UnsupportedNode(name, op, "no photonic or electronic mapping for this operator", hint)
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in proto.attribute):
        return UnsupportedNode(name, op, "control flow with sub-graphs is not supported")
    if op == "BatchNormalization" and any(
            a.name == "training_mode" and a.i for a in proto.attribute):
        return UnsupportedNode(name, op, "training-mode BatchNormalization", "export the model in eval mode")
    if op == "MaxPool" and len(proto.output) > 1 and proto.output[1]:
        return UnsupportedNode(name, op, "the Indices output of MaxPool is not supported")
    if op == "Dropout" and len(proto.input) > 2 and proto.input[2] in consts and consts[proto.input[2]].any():
        return UnsupportedNode(name, op, "training-mode Dropout (random)", "export the model in eval mode")
    to = next((a.i for a in proto.attribute if a.name == "to" or (a.name == "output_dtype" and a.i)), None)
    if to is not None and _computable_type(to) is None:  # Cast, QuantizeLinear, DequantizeLinear
        return UnsupportedNode(name, op, f"computes in {_type_name(to)}, a type photoncc does not compute with "
                                         "(numbers and booleans of NumPy's types only)")
    return None


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _inputs(proto: onnx.NodeProto, opset: int) -> tuple[str, ...]:
    """The node's inputs, in the order of the op's newest form: an opset-10 Resize (X, scales)
    gets the empty roi input that opset 11 placed before scales."""
    if proto.op_type == "Resize" and opset < 11:
        return (proto.input[0], "") + tuple(proto.input[1:])
    return tuple(proto.input)


def _attrs(proto: onnx.NodeProto, opset: int, consts: dict) -> dict:
    """Attributes with defaults filled and one spelling per op."""
    a = {attr.name: _plain(onnx.helper.get_attribute_value(attr)) for attr in proto.attribute}
    for key in IGNORED_ATTRS:
        a.pop(key, None)
    op = proto.op_type
    if op in ("Conv", "MaxPool", "AveragePool", "LpPool"):
        kernel = a.get("kernel_shape")
        if kernel is None:  # Conv may omit it: the weight's spatial shape
            kernel = list(consts[proto.input[1]].shape[2:]) if proto.input[1] in consts else None
        if kernel is None:
            raise UserError(f"node {proto.name or op!r} ({op}): kernel_shape missing and weight not constant")
        rank = len(kernel)
        a["kernel_shape"] = [int(k) for k in kernel]
        a.setdefault("strides", [1] * rank)
        a.setdefault("pads", [0] * (2 * rank))
        auto_pad = a.pop("auto_pad", "NOTSET")
        if auto_pad not in ("NOTSET", "VALID", ""):
            a["auto_pad"] = auto_pad
        a.setdefault("dilations", [1] * rank)
        if op == "AveragePool":
            a.setdefault("count_include_pad", 0)
        if op == "Conv":
            a.setdefault("group", 1)
        else:
            a.setdefault("ceil_mode", 0)
    elif op in ("Softmax", "LogSoftmax", "Hardmax"):
        a["legacy"] = opset < 13
        a.setdefault("axis", 1 if opset < 13 else -1)
    elif op == "Upsample" or (op == "Resize" and opset < 11):  # as onnxruntime runs them (ops/resample.py)
        a.update(coordinate_transformation_mode="asymmetric", nearest_mode="simple")
    elif op == "TopK" and "k" in a:  # opset < 10: an attribute
        a["K"] = a.pop("k")
    elif op in ("ArgMax", "ArgMin"):
        a = {"axis": a.get("axis", 0), "keepdims": a.get("keepdims", 1),
             "select_last_index": a.get("select_last_index", 0)}
    elif op == "Cast":
        a["to"] = np_dtype(a["to"]).name
        a.pop("saturate", None)
    elif op in ("QuantizeLinear", "DequantizeLinear") and a.get("output_dtype"):
        a["output_dtype"] = np_dtype(a["output_dtype"]).name
    elif op == "BatchNormalization":
        a = {"epsilon": a.get("epsilon", 1e-5)}
    elif op == "Pad" and "value" in a:
        a["value"] = float(a["value"])
    elif op == "Pad":
        a.setdefault("mode", "constant")
    elif op == "ConstantOfShape" and "value" not in a:
        a["value"] = np.zeros(1, np.float32)
    if op == "Pad":
        a.setdefault("mode", "constant")
    return a
