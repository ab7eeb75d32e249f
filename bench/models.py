"""The benchmark's models, built here from a seed (nothing is downloaded), and their inputs.

* ``mlp``: 784-512-512-10 (Gemm/Relu), dynamic batch, inputs in [0, 1] (flattened 28x28 images);
* ``cnn``: 2 conv + 2 fc on 1x28x28 (Conv 3x3 16 / Relu / MaxPool 2, Conv 3x3 32 / Relu / MaxPool 2,
  Flatten, Gemm 1568-128 / Relu, Gemm 128-10), dynamic batch, inputs in [0, 1];
* ``resnet18``: a ResNet-18-class network at 3x224x224 built with ``onnx.helper``: Conv 7x7/2 64,
  BatchNormalization, Relu, MaxPool 3x3/2, four stages of two basic blocks (64, 128, 256, 512
  channels; Conv 3x3 / BatchNormalization / Relu, a 1x1 Conv + BatchNormalization projection where
  the shape changes, Add, Relu), GlobalAveragePool, Flatten, Gemm 512-1000. Batch dimension
  DYNAMIC (``N``). He-normal weights, BatchNorm statistics near 1;
* ``resnet50``, ``vgg19``: the architectures of the onnx wheel's ``backend/test/data/light`` models
  (``light_resnet50.onnx``, ``light_vgg19.onnx``), whose weights are ``ConstantOfShape`` nodes (all
  one value); every one is replaced by seeded random values scaled like a trained network (the idea
  of ``tests/models.py: light_model``, copied here). The light files fix the batch at 1; the batch
  axis is made dynamic here (input and output ``N``, the one Reshape's leading 1 becomes -1) so that
  onnxruntime and the simulator both run the same batch in one call, and the files move from IR 3
  to IR 4 with the initializers no longer listed as graph inputs (as IR 3 requires), so that
  onnxruntime may treat them as constants (BatchNorm folding and the like), as for an exported model.

Images for the 224x224 models are normalised like ImageNet inputs (mean 0, std 1), so they are signed.
``macs(model)`` counts the multiply-accumulates of one sample from the Conv, Gemm and MatMul shapes.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

OPSET = 13
ONNX_DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")

# name -> (per-sample input shape, batch used by the benchmark, input distribution)
SPECS = {
    "mlp": ((784,), 256, "unit"),
    "cnn": ((1, 28, 28), 256, "unit"),
    "resnet18": ((3, 224, 224), 16, "normal"),
    "resnet50": ((3, 224, 224), 16, "normal"),
    "vgg19": ((3, 224, 224), 16, "normal"),
}
QUICK = ("mlp", "cnn")


# ---------------------------------------------------------------------------------------- helpers

class _Builder:
    """Collects nodes and initializers of a float32 graph with seeded He-normal weights."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def _name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, prefix: str, value: np.ndarray) -> str:
        name = self._name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self._name(op.lower() + "_")
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def he(self, shape, fan_in: int) -> np.ndarray:
        return self.rng.normal(0, np.sqrt(2.0 / fan_in), shape)

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, bias: bool = False) -> str:
        w = self.const("w", self.he((cout, cin, k, k), cin * k * k))
        inputs = [x, w] + ([self.const("b", self.rng.normal(0, 0.05, cout))] if bias else [])
        return self.node("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4)

    def bn(self, x: str, channels: int) -> str:
        r = self.rng
        scale = self.const("bn_scale", r.uniform(0.5, 1.5, channels))
        bias = self.const("bn_bias", r.normal(0, 0.05, channels))
        mean = self.const("bn_mean", r.normal(0, 0.05, channels))
        var = self.const("bn_var", r.uniform(0.5, 1.5, channels))
        return self.node("BatchNormalization", [x, scale, bias, mean, var], epsilon=1e-5)

    def gemm(self, x: str, k: int, m: int) -> str:
        w = self.const("w", self.he((m, k), k))
        b = self.const("b", self.rng.normal(0, 0.05, m))
        return self.node("Gemm", [x, w, b], transB=1)

    def model(self, name: str, x: str, in_shape, y: str, out_shape) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", *in_shape])],
            [helper.make_tensor_value_info(y, TensorProto.FLOAT, ["N", *out_shape])],
            self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="photoncc-bench")
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


# ---------------------------------------------------------------------------------------- models

def mlp(seed: int = 0) -> onnx.ModelProto:
    b = _Builder(seed)
    h = b.node("Relu", [b.gemm("input", 784, 512)])
    h = b.node("Relu", [b.gemm(h, 512, 512)])
    return b.model("mlp", "input", (784,), b.gemm(h, 512, 10), (10,))


def cnn(seed: int = 0) -> onnx.ModelProto:
    b = _Builder(seed)
    h = b.node("Relu", [b.conv("input", 1, 16, 3, bias=True)])
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.node("Relu", [b.conv(h, 16, 32, 3, bias=True)])
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = b.node("Flatten", [h], axis=1)
    h = b.node("Relu", [b.gemm(h, 32 * 7 * 7, 128)])
    return b.model("cnn", "input", (1, 28, 28), b.gemm(h, 128, 10), (10,))


def resnet18(seed: int = 0) -> onnx.ModelProto:
    b = _Builder(seed)
    h = b.node("Relu", [b.bn(b.conv("input", 3, 64, 7, stride=2), 64)])
    h = b.node("MaxPool", [h], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for cout, first_stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            stride = first_stride if block == 0 else 1
            y = b.node("Relu", [b.bn(b.conv(h, cin, cout, 3, stride), cout)])
            y = b.bn(b.conv(y, cout, cout, 3), cout)
            skip = h if (stride == 1 and cin == cout) else b.bn(b.conv(h, cin, cout, 1, stride), cout)
            h = b.node("Relu", [b.node("Add", [y, skip])])
            cin = cout
    h = b.node("Flatten", [b.node("GlobalAveragePool", [h])], axis=1)
    return b.model("resnet18", "input", (3, 224, 224), b.gemm(h, 512, 1000), (1000,))


def light_model(name: str, seed: int = 0) -> onnx.ModelProto:
    """An onnx ``light`` architecture with seeded random weights and a dynamic batch axis."""
    model = onnx.load(os.path.join(ONNX_DATA, "light", f"light_{name}.onnx"))
    rng = np.random.default_rng(seed)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    uses = {}
    for node in model.graph.node:
        for index, name_ in enumerate(node.input):
            uses.setdefault(name_, (node.op_type, index))
    for node in model.graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in inits:
            continue
        shape = tuple(int(d) for d in inits[node.input[0]])
        value = _random_value(uses.get(node.output[0], ("", 0)), shape, rng)
        node.op_type = "Constant"
        del node.input[:]
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(value)))
    data = data_input(model)
    used = {name_ for node in model.graph.node for name_ in node.input}
    kept = [t for t in model.graph.initializer if t.name in used]  # the replaced nodes' shapes go
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    kept_inputs = [i for i in model.graph.input if i.name == data]
    del model.graph.input[:]  # IR 3 lists every initializer as an input too; onnxruntime then
    model.graph.input.extend(kept_inputs)  # cannot treat them as constants (no BatchNorm fusion)
    model.ir_version = max(model.ir_version, 4)
    _dynamic_batch(model)
    return model


def _random_value(use, shape, rng) -> np.ndarray:
    op, index = use
    if op in ("Conv", "Gemm") and index == 1:
        fan_in = int(np.prod(shape[1:])) if op == "Conv" else shape[-1]
        return rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
    if (op == "BatchNormalization" and index in (1, 4)) or op == "Mul":
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    return rng.normal(0, 0.05, shape).astype(np.float32)


def _dynamic_batch(model: onnx.ModelProto) -> None:
    """Batch axis of the data input and the outputs -> ``N``; a Reshape's constant leading 1 -> -1."""
    data = data_input(model)
    for value in [i for i in model.graph.input if i.name == data] + list(model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    del model.graph.value_info[:]
    shapes = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Reshape" and node.input[1] in shapes:
            target = numpy_helper.to_array(shapes[node.input[1]]).copy()
            if target.size and target[0] == 1:
                target[0] = -1
                shapes[node.input[1]].CopyFrom(numpy_helper.from_array(target, node.input[1]))


def data_input(model: onnx.ModelProto) -> str:
    """The one graph input that is not an initializer (old IRs list initializers as inputs too)."""
    inits = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    if len(names) != 1:
        raise ValueError(f"expected one data input, got {names}")
    return names[0]


BUILDERS = {
    "mlp": mlp,
    "cnn": cnn,
    "resnet18": resnet18,
    "resnet50": lambda seed=0: light_model("resnet50", seed),
    "vgg19": lambda seed=0: light_model("vgg19", seed),
}


def build(name: str, seed: int = 0) -> onnx.ModelProto:
    return BUILDERS[name](seed)


def inputs(name: str, count: int, seed: int) -> np.ndarray:
    """``count`` seeded samples for model ``name``: [0, 1] pixels or ImageNet-normalised images."""
    shape, _, kind = SPECS[name]
    rng = np.random.default_rng(seed)
    if kind == "unit":
        return rng.uniform(0, 1, (count, *shape)).astype(np.float32)
    return rng.normal(0, 1, (count, *shape)).astype(np.float32)


# ---------------------------------------------------------------------------------------- MACs

def macs(model: onnx.ModelProto) -> dict:
    """Multiply-accumulates of ONE sample: {"total": n, "Conv": n, "Gemm": n, "MatMul": n}.

    Shapes come from onnx shape inference with the batch bound to 1. Conv: output elements x
    (input channels / group) x kernel size; Gemm: output elements x K; MatMul: output elements x
    the last axis of A.
    """
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for value in model.graph.input:
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for v in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = v.type.tensor_type.shape.dim
        shapes[v.name] = [d.dim_value if d.HasField("dim_value") else 1 for d in dims]
    for t in inferred.graph.initializer:
        shapes[t.name] = list(t.dims)
    for node in inferred.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    shapes[node.output[0]] = list(a.t.dims)
    counts = {"Conv": 0, "Gemm": 0, "MatMul": 0}
    for node in inferred.graph.node:
        if node.op_type not in counts:
            continue
        out = int(np.prod(shapes[node.output[0]]))
        if node.op_type == "Conv":
            k = int(np.prod(shapes[node.input[1]][1:]))
        elif node.op_type == "Gemm":
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            a_shape = shapes[node.input[0]]
            k = a_shape[0] if trans_a else a_shape[1]
        else:
            k = shapes[node.input[0]][-1]
        counts[node.op_type] += out * k
    counts["total"] = sum(counts.values())
    return counts
