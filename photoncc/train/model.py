"""The graph fine-tuning trains, its parameters, and the way back into the ONNX file.

Training runs on the compile's own graph after ``fold_affine``: every matrix product is a
``Linear`` y = W2 x + b2 with BatchNormalization and constant Add / Sub / Mul / Div after it
folded in, which is what the device runs. Its parameters are W2 and b2 of every Linear whose
weights the file holds as a constant of that node alone. The way back (``Link``) is found by
execution, not by re-deriving each fold: ``fold_affine`` is affine in the bias it starts from,
b2 = s b1 + t per output channel, and scales the weight's rows by the same s, W2 = diag(s) W1;
running it with b1 = 0 and b1 = 1 gives s and t. W1 is the lowering of the node's weight B
(Conv: B; MatMul: B^T; Gemm: alpha B'^T), so

    B = lowering^-1(diag(1/s) W2)

and the bias goes back into one constant that can carry it (its *carrier*): the node's own bias
(Gemm's C, Conv's B) or else the last per-channel constant of the folded chain (a BatchNorm's
beta, an Add's constant), found the same way: b2 = s_c c + t_c. The tuned file is the same graph
with new values in those initializers: a folded BatchNorm keeps its statistics, and the Conv
before it holds weights that, through it, give W2. A Linear without a writable weight, or a bias
without a carrier, stays as it is (``frozen`` says which and why).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from ..compiler import run_pipeline
from ..errors import UserError
from ..importer import import_model
from ..ir import Graph
from ..passes.context import Context
from ..passes.fold_affine import fold_affine

TRAIN_STAGE = "fold_affine"


@dataclass
class Link:
    """How a trained tensor goes back into the file: ``initializer`` = ``reshape(transform(value))``."""
    initializer: str
    kind: str                # "weight", "bias" or "same" (a constant of the file as it is)
    scale: np.ndarray        # per output channel s (weights: rows of W2 over s; biases: (b2 - offset) / s)
    offset: np.ndarray | None = None
    op: str = ""             # the origin node's op (weights: Conv, MatMul or Gemm)
    attrs: dict = field(default_factory=dict)


@dataclass
class Trainable:
    graph: Graph                    # the graph after fold_affine
    params: dict                    # trained tensor name (a constant of ``graph``) -> its value
    links: dict                     # trained tensor name -> Link
    frozen: list = field(default_factory=list)  # lines: what is not trained and why
    layers: list = field(default_factory=list)  # the Linear nodes' names, in order
    node_names: tuple = ()                      # per node of the file, its name in the graph
    absorbers: tuple = ()                       # activations replaced by saturable absorbers (absorber.py)
    od: float = 0.0                             # their optical depth


def prepare(path, profile) -> Trainable:
    """Import the model, run the pipeline to ``fold_affine`` and link every trainable tensor to
    its initializer. Raises UnsupportedModel (every node at once) as ``check`` does."""
    model = onnx.load(str(path), load_external_data=False)
    stages = {}
    graph = run_pipeline(import_model(path), Context(profile), until=TRAIN_STAGE,
                         on_stage=lambda name, g: stages.__setitem__(name, g))
    lowered = stages["lower_linear"]
    names = lowered.meta["node_names"]
    protos = {names[i]: node for i, node in enumerate(model.graph.node)} if len(names) == len(model.graph.node) else {}
    usable = _usable_initializers(model)
    trainable = Trainable(graph, {}, {}, node_names=tuple(names))
    scale_w, offset_w = _bias_response(lowered, [n.inputs[2] for n in lowered.nodes if n.op == "Linear"], graph)
    carriers = {}
    for n in graph.nodes:
        if n.op != "Linear":
            continue
        trainable.layers.append(n.name)
        proto = protos.get(n.name)
        w_link, b_link = _weight_link(n, proto, usable, scale_w[n.name], offset_w[n.name])
        _add(trainable, n.inputs[1], w_link, f"layer {n.name!r}: its weights are not a constant of its own in the file")
        if b_link is not None:
            _add(trainable, n.inputs[2], b_link, "")
        else:
            carriers[n.name] = _folded_carrier(lowered, n.name, graph, usable)
    folded = {name: c for name, c in carriers.items() if c is not None}
    scale_c, offset_c = _bias_response(lowered, list(folded.values()), graph)
    for n in graph.nodes:
        if n.name in carriers:
            c = folded.get(n.name)
            link = None if c is None else Link(c, "bias", scale_c[n.name], offset_c[n.name])
            _add(trainable, n.inputs[2], link, f"layer {n.name!r}: no constant in the file can carry its bias")
    for name in _electronic_constants(graph, usable, model):
        _add(trainable, name, Link(name, "same", np.ones(1)), "")
    return trainable


# the electronic ops whose constant operands are trained too, and which of their inputs those are
ELECTRONIC = {"Sub": (0, 1), "Div": (1,), "Add": (0, 1), "Mul": (0, 1), "PRelu": (1,), "BatchNormalization": (1, 2),
              "LayerNormalization": (1, 2)}


def _electronic_constants(graph: Graph, usable: dict, model: onnx.ModelProto) -> list:
    """Float constants of the file read by one electronic op of ELECTRONIC (a standardisation's
    mean and scale, an unfolded BatchNorm's scale and shift...), still as the file holds them."""
    stored = {t.name: t for t in model.graph.initializer if t.name in usable}
    found = []
    for n in graph.nodes:
        for slot in ELECTRONIC.get(n.op, ()):
            name = n.inputs[slot] if slot < len(n.inputs) else ""
            if name in stored and name in graph.consts and graph.consts[name].dtype.kind == "f" and \
                    np.array_equal(graph.consts[name], numpy_helper.to_array(stored[name])):
                found.append(name)
    return found


def _add(trainable: Trainable, name: str, link: Link | None, why: str) -> None:
    if link is None or not np.all(link.scale != 0):
        trainable.frozen.append(why if link is None else f"{why or name}: a folded scale of 0 cannot be undone")
        return
    trainable.links[name] = link
    trainable.params[name] = np.array(trainable.graph.consts[name], dtype=np.float32)


def _usable_initializers(model: onnx.ModelProto) -> dict:
    """Float initializers that one node reads once and that are no graph input or output (new
    values can be written into them without changing anything else), with their sizes."""
    reads: dict[str, int] = {}
    for node in model.graph.node:
        for i in node.input:
            reads[i] = reads.get(i, 0) + 1
    ends = {v.name for v in model.graph.output} | {v.name for v in model.graph.input}
    return {t.name: int(np.prod(t.dims, dtype=np.int64)) for t in model.graph.initializer
            if reads.get(t.name) == 1 and t.name not in ends and t.data_type in
            (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16)}


def _weight_link(n, proto, usable, scale, offset):
    """(the weight's Link or None, the bias's Link when the node's own bias carries it, else None)."""
    if proto is None or proto.op_type not in ("Conv", "MatMul", "Gemm") or len(proto.input) < 2 \
            or proto.input[1] not in usable:
        return None, None
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in proto.attribute}
    w = Link(proto.input[1], "weight", scale, op=proto.op_type, attrs=attrs)
    own = proto.input[2] if len(proto.input) > 2 and proto.input[2] else None
    beta = attrs.get("beta", 1.0) if proto.op_type == "Gemm" else 1.0
    if own is None or usable.get(own) != len(scale) or beta == 0:
        return w, None
    # b2 = s b1 + t with b1 = beta C: C = (b2 - t) / (s beta)
    return w, Link(own, "bias", scale * beta, offset, op=proto.op_type)


def _folded_carrier(lowered: Graph, layer: str, graph: Graph, usable) -> str | None:
    """The last constant of the chain folded into ``layer`` that holds one value per channel."""
    users = lowered.consumers()
    start = next(n for n in lowered.nodes if n.op == "Linear" and n.name == layer)
    value, found = start.outputs[0], None
    kept = {n.name for n in graph.nodes}
    m = lowered.consts[start.inputs[1]].shape[0]
    while len(users.get(value, [])) == 1 and users[value][0].name not in kept:
        n = users[value][0]
        candidates = [n.inputs[2]] if n.op == "BatchNormalization" else \
            [i for i in n.inputs if i != value] if n.op in ("Add", "Sub") else []
        for c in candidates:
            if usable.get(c) == m and c in lowered.consts:
                found = c
        value = n.outputs[0]
    return found


def _bias_response(lowered: Graph, names: list, graph: Graph):
    """Per Linear of ``graph``, (s, t) of b2 = s c + t, c the constants ``names`` of ``lowered``
    (each read by one chain), by running fold_affine with them at 0 and at 1."""
    runs = []
    for fill in (0.0, 1.0):
        consts = dict(lowered.consts)
        for name in names:
            consts[name] = np.full(consts[name].shape, fill, consts[name].dtype)
        folded = fold_affine(lowered.replace(consts=consts))
        runs.append({n.name: folded.consts[n.inputs[2]].astype(np.float64).reshape(-1)
                     for n in folded.nodes if n.op == "Linear"})
    return ({k: runs[1][k] - runs[0][k] for k in runs[0]}, runs[0])


# ---------------------------------------------------------------------------- writing the file back

def initializer_values(trainable: Trainable, params: dict) -> dict:
    """Initializer name -> its new value (float64) from the trained tensors."""
    out = {}
    for name, link in trainable.links.items():
        value = np.asarray(params[name], np.float64)
        if link.kind == "weight":
            rows = value / link.scale.reshape((-1,) + (1,) * (value.ndim - 1))
            out[link.initializer] = _unlower(rows, link)
        elif link.kind == "same":
            out[link.initializer] = value
        else:
            out[link.initializer] = (value.reshape(-1) - link.offset) / link.scale
    return out


def _unlower(w1: np.ndarray, link: Link) -> np.ndarray:
    if link.op == "Conv":
        return w1
    if link.op == "MatMul":
        return w1.T
    b = w1 / link.attrs.get("alpha", 1.0)          # Gemm: W1 = alpha B'^T
    return b if link.attrs.get("transB", 0) else b.T


def tuned_model(path, trainable: Trainable, params: dict) -> bytes:
    """The ONNX file at ``path`` with the trained values written into its initializers (same
    graph, names and shapes; every tensor stored in the one file), and the saturable absorbers
    trained in place of its activations, if any, written in (``absorber.write``)."""
    model = onnx.load(str(path), load_external_data=True)
    if len(model.graph.node) != len(trainable.node_names):
        raise UserError(f"{path}: the file's nodes are not the ones photoncc imported (an opset upgrade rewrote "
                        "them): its tuned weights cannot be written back; convert the model to opset 9 or newer")
    values = initializer_values(trainable, params)
    for index, t in enumerate(model.graph.initializer):
        if t.name in values:
            old = numpy_helper.to_array(t)
            new = values[t.name].reshape(old.shape).astype(old.dtype)
            if not np.isfinite(new).all():
                raise UserError(f"initializer {t.name!r}: the tuned values are not finite")
            model.graph.initializer[index].CopyFrom(numpy_helper.from_array(new, t.name))
    if trainable.absorbers:
        from .absorber import write
        write(model, trainable.absorbers, trainable.od, trainable.node_names)
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            t.data_location = onnx.TensorProto.DEFAULT
            del t.external_data[:]
    return model.SerializeToString()
