"""The tape (photoncc/train/tape.py) on whole graphs, and the way back into the ONNX file
(photoncc/train/model.py)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from photoncc.ir import Graph, Node, TensorType
from photoncc.profile import load_profile
from photoncc.train import model, tape

from helpers import DATA

MODELS = ["digits_mlp.onnx", "torch_legacy_cnn_nofold.onnx", "torch_dynamo_cnn.onnx", "skl2onnx_mlp.onnx",
          "torch_legacy_mlp_tanh.onnx"]


def float64(trainable):
    g = trainable.graph
    consts = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in g.consts.items()}
    return g.replace(consts=consts), {k: v.astype(np.float64) for k, v in trainable.params.items()}


@pytest.mark.parametrize("name", ["digits_mlp.onnx", "torch_legacy_cnn_nofold.onnx"])
def test_whole_graph_gradients_match_finite_differences(name):
    g, params = float64(model.prepare(DATA / name, load_profile("ideal")))
    rng = np.random.default_rng(0)
    feeds = {i: rng.normal(size=(3,) + g.types[i].shape[1:]) for i in g.inputs}
    out = g.outputs[0]
    c = rng.normal(size=(3,) + g.types[out].shape[1:])
    grads = tape.gradients(tape.forward(g, feeds, params, targets=[out]), {out: c}, params)
    assert all(grads[p] is not None for p in params)
    for p in params:
        v, h = rng.normal(size=params[p].shape), 1e-6
        f = [float((tape.forward(g, feeds, {**params, p: params[p] + s * h * v}).values[out] * c).sum())
             for s in (1, -1)]
        exact = float((grads[p] * v).sum())
        assert abs((f[0] - f[1]) / (2 * h) - exact) <= 1e-6 * (1 + abs(exact)), p


def test_the_tape_keeps_only_what_the_rules_read():
    t = model.prepare(DATA / "digits_mlp.onnx", load_profile("ideal"))
    feeds = {"pixels": np.random.default_rng(0).uniform(0, 16, (4, 64)).astype(np.float32)}
    weights = {k: v for k, v in t.params.items() if t.links[k].kind != "same"}  # not the standardisation
    record = tape.forward(t.graph, feeds, weights, targets=[t.graph.outputs[0]])
    by_op = {}
    for n, ins, outs, _ in record.steps:
        by_op.setdefault(n.op, (ins, outs))
    relu_in, relu_out = by_op["Relu"]  # Relu's rule reads its output only
    assert relu_in[0].shape == (4, 64) and relu_in[0].strides == (0, 0)  # a stand-in holding no memory
    assert relu_out[0].strides != (0, 0)
    assert "Sub" not in by_op and "Div" not in by_op  # before any parameter: not on a gradient path


def test_every_node_without_a_rule_is_listed():
    t = TensorType((1, 4), "float32")
    g = Graph((Node("Linear", ("x", "w", "b"), ("y",), {}, "fc"), Node("PhotonicSigmoid", ("y",), ("z",), {}, "act1"),
               Node("Relu", ("z",), ("r",), {}, "relu"), Node("PhotonicSigmoid", ("r",), ("out",), {}, "act2")),
              ("x",), ("out",), {n: t for n in ("x", "y", "z", "r", "out")} | {"w": TensorType((4, 4), "float32"),
                                                                           "b": TensorType((4,), "float32")},
              {"w": np.eye(4, dtype=np.float32), "b": np.zeros(4, np.float32)})
    found = tape.missing_rules(g, {"w", "b"}, ["out"])
    assert [p.node for p in found] == ["act1", "act2"] and "no VJP rule" in str(found[0])


def structure(m: onnx.ModelProto):
    return ([(n.name, n.op_type, list(n.input), list(n.output)) for n in m.graph.node],
            [(t.name, list(t.dims), t.data_type) for t in m.graph.initializer],
            [i.name for i in m.graph.input], [o.name for o in m.graph.output])


@pytest.mark.parametrize("name", MODELS)
def test_tuned_model_is_the_same_graph_with_the_trained_weights(name):
    path = DATA / name
    t = model.prepare(path, load_profile("ideal"))
    assert t.params and not t.frozen
    rng = np.random.default_rng(1)
    params = {k: v + 0.05 * rng.normal(size=v.shape).astype(np.float32) for k, v in t.params.items()}
    data = model.tuned_model(path, t, params)
    tuned = onnx.load_from_string(data)
    original = onnx.load(str(path))
    assert structure(tuned) == structure(original)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    feeds = {i.name: rng.normal(size=[3] + [d for d in t.graph.types[i.name].shape[1:]]).astype(np.float32)
             for i in session.get_inputs()}
    record = tape.forward(t.graph, feeds, params)
    for out, value in zip([o.name for o in session.get_outputs()], session.run(None, feeds)):
        if out in record.values and value.dtype.kind == "f":
            np.testing.assert_allclose(value, record.values[out], rtol=1e-4, atol=1e-5 * np.abs(value).max())
    unchanged = ort.InferenceSession(model.tuned_model(path, t, t.params), providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for a, b in zip(unchanged.run(None, feeds), reference.run(None, feeds)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
