"""Each pass, checked by execution: the IR interpreter runs the graph before and after it on seeded
inputs and the outputs agree; plus the ops left after it, idempotence and the exact text of errors."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from photoncc import interp, ir
from photoncc.compiler import PIPELINE, Context, run_pipeline
from photoncc.passes.to_banks import banks_from_linears
from photoncc.errors import UnsupportedModel
from photoncc.importer import import_model
from photoncc.passes.canonicalize import canonicalize
from photoncc.passes.fold_affine import fold_affine
from photoncc.passes.fold_constants import fold_constants
from photoncc.passes.lower_linear import lower_linear
from photoncc.passes.tile_banks import tile_banks
from photoncc.profile import load_profile
from photoncc.ranges import measure_ranges

DATA = os.path.join(os.path.dirname(__file__), "data")
GOLDEN = os.path.join(os.path.dirname(__file__), "golden")
RNG = np.random.default_rng(7)


def feeds_for(g, batch, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    return {i: (scale * rng.standard_normal((batch,) + g.types[i].shape[1:])).astype(g.types[i].dtype)
            for i in g.inputs}


def assert_same(before, after, feeds, rtol=1e-5):
    a, b = interp.run(before, feeds), interp.run(after, feeds)
    for name in before.outputs:
        ref = a[name].astype(np.float64)
        scale = float(np.ptp(ref)) or float(np.abs(ref).max()) or 1.0
        assert np.abs(b[name] - ref).max() / scale <= rtol, name


def save(model, tmp_path, name="m.onnx"):
    path = str(tmp_path / name)
    onnx.save(model, path)
    return path


def make_model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def conv_bn_model():
    """Conv -> BatchNorm -> Mul(const) -> Add(const) -> Relu -> Concat(with input) -> BatchNorm -> Flatten -> Gemm."""
    c, m = 3, 4
    inits = [
        ("w", RNG.normal(0, 0.5, (m, c, 3, 3)).astype(np.float32)), ("b", RNG.normal(0, 0.1, m).astype(np.float32)),
        ("g", RNG.uniform(0.5, 1.5, m).astype(np.float32)), ("be", RNG.normal(0, 0.1, m).astype(np.float32)),
        ("mu", RNG.normal(0, 0.1, m).astype(np.float32)), ("var", RNG.uniform(0.5, 1.5, m).astype(np.float32)),
        ("s", RNG.uniform(0.5, 2, (1, m, 1, 1)).astype(np.float32)), ("t", RNG.normal(0, 1, (m, 1, 1)).astype(np.float32)),
        ("g2", RNG.uniform(0.5, 1.5, m + c).astype(np.float32)), ("be2", RNG.normal(0, 0.1, m + c).astype(np.float32)),
        ("mu2", RNG.normal(0, 0.1, m + c).astype(np.float32)), ("var2", RNG.uniform(0.5, 1.5, m + c).astype(np.float32)),
        ("fc", RNG.normal(0, 0.1, (5, (m + c) * 36)).astype(np.float32)), ("fcb", RNG.normal(0, 0.1, 5).astype(np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c1"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "be", "mu", "var"], ["n1"], name="bn1"),
        helper.make_node("Mul", ["n1", "s"], ["m1"], name="scale"),
        helper.make_node("Add", ["t", "m1"], ["a1"], name="shift"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu"),
        helper.make_node("Concat", ["r1", "x"], ["cat"], name="cat", axis=1),
        helper.make_node("BatchNormalization", ["cat", "g2", "be2", "mu2", "var2"], ["n2"], name="bn2"),
        helper.make_node("Flatten", ["n2"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], name="fc", transB=1),
    ]
    return make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, 6, 6])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])], inits)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    return import_model(save(conv_bn_model(), tmp_path_factory.mktemp("cnn")))


def test_fold_constants_collapses_the_shape_subgraph_of_the_legacy_exporter():
    g = import_model(os.path.join(DATA, "torch_legacy_mlp_tanh.onnx"))
    assert {"Shape", "Gather", "Concat"} <= g.ops()
    folded = fold_constants(g)
    assert not {"Shape", "Gather", "Concat", "Unsqueeze"} & folded.ops()
    assert_same(g, folded, feeds_for(g, 1))  # the raw graph holds batch-1 shapes
    assert ir.to_text(fold_constants(folded)) == ir.to_text(folded)


def test_canonicalize_makes_the_graph_run_on_any_batch():
    g = fold_constants(import_model(os.path.join(DATA, "torch_legacy_mlp_tanh.onnx")))
    c = canonicalize(g)
    reshapes = [n for n in c.nodes if n.op == "Reshape"]
    assert reshapes and all(n.inputs == (n.inputs[0],) and n.attrs["shape"] == [20] for n in reshapes)
    out = interp.run(c, feeds_for(c, 7))
    assert next(iter(out.values())).shape == (7, 5)
    assert_same(g, c, feeds_for(g, 1))
    assert ir.to_text(canonicalize(c)) == ir.to_text(c)


def test_canonicalize_annotates_every_node_that_touches_the_batch_axis(tmp_path):
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="swap", perm=[1, 0]),
             helper.make_node("Softmax", ["t"], ["y"], name="soft", axis=0)]
    model = make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 1])])
    with pytest.raises(UnsupportedModel) as e:
        run_pipeline(import_model(save(model, tmp_path)), Context(load_profile("ideal")), until="canonicalize")
    text = str(e.value)
    assert "2 unsupported node(s)" in text
    assert "node 'swap' (Transpose): moves the batch axis (perm [1, 0])" in text
    assert "node 'soft' (Softmax): works across the batch axis (axis 0)" in text


def test_lower_linear_and_fold_affine_leave_one_linear_per_matrix_product(cnn):
    g = canonicalize(fold_constants(cnn))
    lowered = lower_linear(g)
    assert not {"Conv", "Gemm"} & lowered.ops() and [n.op for n in lowered.nodes].count("Linear") == 2
    feeds = feeds_for(lowered, 3)
    assert_same(g, lowered, feeds)
    folded = fold_affine(lowered)
    ops = [n.op for n in folded.nodes]
    # Conv+BN+Mul+Add collapse into the first Linear; the BN after the Concat stays electronic
    assert ops == ["Linear", "Relu", "Concat", "BatchNormalization", "Reshape", "Linear"]
    assert_same(lowered, folded, feeds)
    assert ir.to_text(fold_affine(folded)) == ir.to_text(folded)


@pytest.mark.parametrize("op", ["BatchNormalization", "Mul", "Div", "SubFrom"])
def test_fold_affine_rounds_each_weight_once_from_float64(op):
    """W' = W x s (or W / c, or -W) per output row, computed in float64 and rounded to float32 once,
    not in float32; the bias in float64 too. A Linear 3 -> 5 then one per-channel op."""
    rng = np.random.default_rng(4)
    w, b = rng.standard_normal((5, 3)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    c = rng.uniform(0.5, 2, 5).astype(np.float32)
    stats = [rng.uniform(0.5, 2, 5).astype(np.float32) for _ in range(4)]  # gamma, beta, mean, var
    consts = {"w": w, "b": b, "c": c, **{f"s{i}": v for i, v in enumerate(stats)}}
    node = {"BatchNormalization": ir.Node("BatchNormalization", ("y", "s0", "s1", "s2", "s3"), ("z",), {"epsilon": 1e-5}, "bn"),
            "Mul": ir.Node("Mul", ("y", "c"), ("z",), {}, "mul"), "Div": ir.Node("Div", ("y", "c"), ("z",), {}, "div"),
            "SubFrom": ir.Node("Sub", ("c", "y"), ("z",), {}, "sub")}[op]
    types = {name: ir.type_of(v) for name, v in consts.items()}
    types.update(x=ir.TensorType((1, 3), "float32"), y=ir.TensorType((1, 5), "float32"), z=ir.TensorType((1, 5), "float32"))
    g = ir.Graph(nodes=(ir.Node("Linear", ("x", "w", "b"), ("y",), {}, "lin"), node), inputs=("x",), outputs=("z",),
                 types=types, consts=consts, meta={})
    folded = fold_affine(g)
    assert [n.op for n in folded.nodes] == ["Linear"]
    w64, b64, c64 = w.astype(np.float64), b.astype(np.float64), c.astype(np.float64)
    gamma, beta, mean, var = (v.astype(np.float64) for v in stats)
    s = gamma / np.sqrt(var + 1e-5)
    want_w, want_b = {"BatchNormalization": (w64 * s[:, None], s * (b64 - mean) + beta), "Mul": (w64 * c64[:, None], b64 * c64),
                      "Div": (w64 / c64[:, None], b64 / c64), "SubFrom": (-w64, c64 - b64)}[op]
    lin = folded.nodes[0]
    np.testing.assert_array_equal(folded.consts[lin.inputs[1]], want_w.astype(np.float32))
    np.testing.assert_array_equal(folded.consts[lin.inputs[2]], want_b.astype(np.float32))


def test_batch_probe_does_not_run_the_products_but_checks_their_input_shapes(cnn, monkeypatch):
    """canonicalize's probe at batch 2 (dynamic batch axes) gives a Conv, Gemm or MatMul with
    constant weights zeros of its recorded shape instead of running it, after checking that its
    input has its recorded shape: a graph that would fail there is still reported at that node."""
    from photoncc.passes import canonicalize as module
    g = canonicalize(fold_constants(cnn))
    assert g.meta.get("dynamic_batch") and {"Conv", "Gemm"} & g.ops()
    monkeypatch.setitem(module.OPS, "Conv", None)  # would raise TypeError if called
    monkeypatch.setitem(module.OPS, "Gemm", None)
    assert module._batch_probe(g) is None
    x = ir.TensorType((1, 4), "float32")
    tile = ir.Graph(nodes=(ir.Node("Tile", ("x", "reps"), ("t",), {}, "tile"), ir.Node("Gemm", ("t", "W"), ("y",), {"transB": 1}, "fc")),
                    inputs=("x",), outputs=("y",), consts={"reps": np.array([2, 1]), "W": np.ones((3, 4), np.float32)},
                    types={"x": x, "reps": ir.type_of(np.array([2, 1])), "W": ir.TensorType((3, 4), "float32"),
                           "t": ir.TensorType((2, 4), "float32"), "y": ir.TensorType((2, 3), "float32")},
                    meta={"dynamic_batch": True})
    assert module._batch_probe(tile) == "fc"  # Tile repeats the batch: (4, 4) at batch 2, recorded (2, 4)


def test_per_sample_products_are_the_products_by_constant_weights_that_keep_the_batch():
    """Conv/Gemm/MatMul of data by constants, batch kept: outlined by type inference and the batch
    probe; a transposed Gemm input, data weights, batched (rank-3) MatMul weights or a rank-1
    input mix or broadcast the batch, so those run."""
    consts = {"W": np.ones((4, 3)), "W3": np.ones((2, 4, 3)), "b": np.ones(3)}
    node = ir.Node
    assert interp.per_sample_product(node("Gemm", ("x", "W", "b"), ("y",), {}, "a"), consts, 2)
    assert interp.per_sample_product(node("MatMul", ("x", "W"), ("y",), {}, "b"), consts, 3)
    assert interp.per_sample_product(node("Conv", ("x", "W"), ("y",), {}, "c"), consts, 4)
    assert not interp.per_sample_product(node("Gemm", ("x", "W", "b"), ("y",), {"transA": 1}, "d"), consts, 2)
    assert not interp.per_sample_product(node("MatMul", ("x", "v"), ("y",), {}, "e"), consts, 2)
    assert not interp.per_sample_product(node("MatMul", ("x", "W3"), ("y",), {}, "f"), consts, 3)
    assert not interp.per_sample_product(node("MatMul", ("x", "W"), ("y",), {}, "g"), consts, 1)
    assert not interp.per_sample_product(node("MatMul", ("W", "x"), ("y",), {}, "h"), consts, 2)
    assert not interp.per_sample_product(node("Add", ("x", "W"), ("y",), {}, "i"), consts, 2)


@pytest.mark.parametrize("name", ["torch_legacy_cnn", "torch_dynamo_cnn", "torch_legacy_mlp_tanh", "skl2onnx_mlp",
                                  "digits_mlp"])
def test_infer_types_outlines_the_products_and_finds_the_same_types(name, monkeypatch):
    """infer_types runs a Conv, Gemm or MatMul with constant weights on 0 samples: the same type
    table as running every node on the batch-1 ones, and no product computes a sample."""
    g = import_model(os.path.join(DATA, f"{name}.onnx"))
    feeds = {i: np.ones(g.types[i].shape, g.types[i].dtype) for i in g.inputs}
    full = dict(g.types)
    interp.run(g, feeds, watch=lambda value, array: full.__setitem__(value, ir.type_of(np.asarray(array))))
    rows = []
    for op_name in ("Conv", "Gemm", "MatMul"):
        fn = interp.OPS[op_name]
        monkeypatch.setitem(interp.OPS, op_name, lambda node, x, *w, fn=fn: rows.append(len(x)) or fn(node, x, *w))
    again = interp.infer_types(g)
    assert again.types == full
    assert rows and set(rows) == {0}


def test_lower_linear_refuses_a_product_of_two_data_tensors_that_mixes_the_batch(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "x2"], ["y"], name="attn")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    x2 = helper.make_tensor_value_info("x2", TensorProto.FLOAT, [4, 4])
    model = make_model(nodes, [x, x2], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    with pytest.raises(UnsupportedModel, match=r"node 'attn' \(MatMul\): multiplies two data tensors"):
        run_pipeline(import_model(save(model, tmp_path)), Context(load_profile("ideal")), until="lower_linear")


def test_lower_linear_keeps_a_batch_first_product_of_two_data_tensors(tmp_path):
    """(N, 4, 4) @ (N, 4, 4), attention's scores: electronic, exact, the batch left alone."""
    nodes = [helper.make_node("MatMul", ["x", "x2"], ["y"], name="attn")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 4])
    x2 = helper.make_tensor_value_info("x2", TensorProto.FLOAT, ["N", 4, 4])
    model = make_model(nodes, [x, x2], [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 4])])
    g = run_pipeline(import_model(save(model, tmp_path)), Context(load_profile("ideal")), until="lower_linear")
    assert [n.op for n in g.nodes] == ["MatMul"]


def _pre_transform(cnn):
    return fold_affine(lower_linear(canonicalize(fold_constants(cnn))))


def to_nonnegative(g, ranges):
    """The incoherent bank form of every Linear for these input ranges (to_banks' second step)."""
    from photoncc.devices import incoherent
    return banks_from_linears(g, ranges, lambda w, b, lo, alpha, dtype: incoherent.split(w, b, lo, alpha, dtype, {}))


def tile_for(banks, rings):
    """A context whose profile has banks of ``banks`` x ``rings``."""
    from photoncc.profile import Profile
    return Context(Profile({**load_profile("ideal"), "bank": {"banks": banks, "rings": rings}}))


def test_to_nonnegative_is_exact_inside_the_ranges_and_non_negative(cnn):
    g = _pre_transform(cnn)
    feeds = feeds_for(g, 4, scale=2.0)
    ranges, _ = measure_ranges(g, feeds, headroom=0.0)
    nn = to_nonnegative(g, ranges)
    assert "Linear" not in nn.ops()
    for n in nn.nodes:
        if n.op == "Bank":
            t, gain, _, alpha = (nn.consts[i] for i in n.inputs[1:])
            assert t.min() >= 0 and t.max() <= 1 and gain.min() > 0 and alpha.min() >= 0
            assert n.attrs["shift"] >= 0
    assert_same(g, nn, feeds, rtol=1e-5)
    assert ir.to_text(to_nonnegative(nn, ranges)) == ir.to_text(nn)


def test_tile_banks_cuts_matrices_into_bank_tiles_without_changing_numerics(cnn):
    g = _pre_transform(cnn)
    feeds = feeds_for(g, 2)
    ranges, _ = measure_ranges(g, feeds)
    nn = to_nonnegative(g, ranges)
    tiled = tile_banks(nn, tile_for(3, 5))
    for n in tiled.nodes:
        if n.op == "Bank":
            assert tiled.consts[n.inputs[1]].shape[3:] == (3, 5)
    assert_same(nn, tiled, feeds, rtol=1e-6)
    assert ir.to_text(tile_banks(tiled, tile_for(3, 5))) == ir.to_text(tiled)


def test_every_stage_of_the_pipeline_computes_the_same_function(cnn):
    """The per-stage check ``verify --per-stage`` is built on: run each stage's graph on the same data."""
    feeds = feeds_for(cnn, 1, scale=1.5)
    results = {}

    def record(stage, g):
        results[stage] = interp.run(g, feeds)["y"]

    run_pipeline(cnn, Context(load_profile("ideal"), calibration=feeds), on_stage=record)
    assert list(results) == ["import"] + [name for name, _, _ in PIPELINE]
    for stage, y in results.items():
        np.testing.assert_allclose(y, results["import"], rtol=1e-4, atol=1e-5, err_msg=stage)


def test_range_analysis_uses_guaranteed_bounds_and_asks_for_calibration_otherwise(tmp_path):
    w1 = RNG.normal(0, 1, (4, 3)).astype(np.float32)
    w2 = RNG.normal(0, 1, (2, 4)).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1", transB=1),
             helper.make_node("Tanh", ["h"], ["t"], name="tanh"),
             helper.make_node("Gemm", ["t", "w2"], ["y"], name="fc2", transB=1)]
    model = make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])], [("w1", w1), ("w2", w2)])
    g = _pre_transform(import_model(save(model, tmp_path)))
    with pytest.raises(Exception, match=r"the input range of layer 'fc1' \(input 'x'\) is not known from the model; "
                                        r"pass calibration data"):
        measure_ranges(g, None)
    ranges, info = measure_ranges(g, None, input_range=(-3.0, 3.0))
    assert info["x"]["source"] == "declared input range"
    assert info["t"]["source"] == "Tanh 'tanh'"
    np.testing.assert_array_equal(ranges["t"][0], [-1, -1, -1, -1])


def test_golden_ir_text_of_a_tiny_mlp_after_the_whole_pipeline(tmp_path):
    w1 = np.array([[1.0, -2.0], [0.5, 0.25], [-1.0, 0.0]], np.float32)
    w2 = np.array([[1.0, -1.0, 2.0]], np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node("Sigmoid", ["h"], ["s"], name="sig"),
             helper.make_node("Gemm", ["s", "w2"], ["y"], name="fc2", transB=1)]
    model = make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
                       [("w1", w1), ("b1", np.array([0.5, -0.5, 0.0], np.float32)), ("w2", w2)])
    profile = load_profile("ideal")
    device = run_pipeline(import_model(save(model, tmp_path)), Context(profile, input_range=(-1.0, 1.0)))
    with open(os.path.join(GOLDEN, "tiny_mlp.txt")) as f:
        assert ir.to_text(device) == f.read()


@pytest.mark.parametrize("profile, model", [("mrr-incoherent-8b", "cnn"), ("mrr-balanced-8b", "cnn"),
                                            ("mrr-incoherent-8b", "depthwise"), ("mrr-incoherent-8b", "tanh")])
def test_passes_that_work_a_block_of_rows_at_a_time_give_the_program_of_one_block(profile, model, monkeypatch,
                                                                                  tmp_path):
    """The incoherent split, quantisation and the ADC calibration read a layer's weights a block
    of rows at a time (float64 blocks of whole groups or rows, not whole layers); one row per block
    must give the program that whole layers give, byte for byte. A depthwise convolution has a
    group per channel; the Tanh MLP's every range is known from --input-range, so that its ADC
    ranges come from the bound instead of calibration data."""
    from photoncc.compiler import compile_model
    from photoncc.devices import incoherent, ring_adc, ring_codes

    if model == "depthwise":
        c = 6
        w = RNG.normal(0, 0.5, (c, 1, 3, 3)).astype(np.float32)
        nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="dw", group=c, pads=[1, 1, 1, 1])]
        dw = make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, 5, 5])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", c, 5, 5])], [("w", w)])
        args = (save(dw, tmp_path), load_profile(profile),
                {"x": RNG.normal(0, 1, (4, c, 5, 5)).astype(np.float32)})
    elif model == "cnn":
        args = (os.path.join(DATA, "torch_legacy_cnn.onnx"), load_profile(profile),
                os.path.join(DATA, "torch_legacy_cnn.npz"))
    else:
        w1, w2 = RNG.normal(0, 1, (30, 20)).astype(np.float32), RNG.normal(0, 1, (7, 30)).astype(np.float32)
        nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], name="fc1", transB=1),
                 helper.make_node("Tanh", ["h"], ["t"], name="tanh"),
                 helper.make_node("Gemm", ["t", "w2"], ["y"], name="fc2", transB=1)]
        tanh = make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 20])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 7])], [("w1", w1), ("w2", w2)])
        args = (save(tanh, tmp_path), load_profile(profile), None, (-3.0, 3.0))
    whole = compile_model(*args).to_bytes()
    for module, constant in ((incoherent, "SPLIT_BLOCK"), (ring_codes, "BLOCK"), (ring_adc, "WEIGHT_BLOCK"),
                             (ring_adc, "PRODUCT_BLOCK")):
        monkeypatch.setattr(module, constant, 1)
    assert compile_model(*args).to_bytes() == whole


@pytest.mark.parametrize("block", [1, 3000, None])
@pytest.mark.parametrize("model", ["cnn", "depthwise"])
def test_adc_calibration_finds_the_extremes_of_every_tile_read(model, block, monkeypatch, tmp_path):
    """The ADC calibration's min and max of every photodetector's partial sum per tile, over all
    positions of a layer's inputs, formed in blocks of positions and spans of tiles: equal to the
    extremes of the partial sums written out by definition (v_p . w_(g,q,:,m) for every position
    p, float64 here, float32 products there), and bit for bit the same for any block size (one
    value per block, 3000, the default)."""
    from photoncc.compiler import load_calibration
    from photoncc.devices import ring_adc
    from photoncc.ops import conv as kernels
    from photoncc.program import bank_inputs

    profile = load_profile("mrr-incoherent-8b")
    if model == "cnn":
        path, calibration = os.path.join(DATA, "torch_legacy_cnn.onnx"), os.path.join(DATA, "torch_legacy_cnn.npz")
        g = import_model(path)
        feeds = load_calibration(calibration, g)
    else:
        c = 6
        nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="dw", group=c, pads=[1, 1, 1, 1], strides=[2, 1])]
        dw = make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", c, 9, 7])],
                        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", c, 5, 7])],
                        [("w", RNG.normal(0, 0.5, (c, 1, 3, 3)).astype(np.float32))])
        g = import_model(save(dw, tmp_path))
        feeds = {"x": RNG.normal(0, 1, (4, c, 9, 7)).astype(np.float32)}
    device = run_pipeline(g, Context(profile, calibration=feeds), until="quantise_banks")
    banks = [n for n in device.nodes if n.op == "Bank"]
    assert banks
    for n in banks:
        bank = {k: device.consts[v] for k, v in bank_inputs(n.inputs).items() if v and k != "x"}
        groups, r, q, b, c = bank["tiles"].shape
        lo = bank["lo"]
        conv = n.attrs.get("conv")
        shape = (5, groups * lo.shape[1], 9, 7) if conv else (40, groups * lo.shape[1])
        x = RNG.uniform(-1.0, 3.0, shape).astype(np.float32)  # some inputs outside [lo, hi]: clipped
        w = ring_adc.product_weights(bank, n.attrs, profile)
        cols = (kernels.unfold(x, conv["kernel_shape"], conv["strides"], conv["pads"], conv["dilations"])
                if conv else x)
        v = ring_adc.channel_powers(bank, n.attrs, cols.reshape(-1, groups * lo.shape[1]))  # (P, G, Q, C)
        reads = np.einsum("pgqc,gqcm->pgqm", v.astype(np.float64), w.astype(np.float64))
        expected = [a.reshape(groups, q, r, b).transpose(0, 2, 1, 3) for a in (reads.min(axis=0), reads.max(axis=0))]
        if block is not None:
            monkeypatch.setattr(ring_adc, "PRODUCT_BLOCK", block)
        low, high = ring_adc.partial_sum_extremes(bank, n.attrs, w, x)
        scale = np.abs(reads).max()
        np.testing.assert_allclose(low, expected[0], rtol=1e-5, atol=1e-6 * scale)
        np.testing.assert_allclose(high, expected[1], rtol=1e-5, atol=1e-6 * scale)
        monkeypatch.undo()
        assert block is None or [a.tobytes() for a in ring_adc.partial_sum_extremes(bank, n.attrs, w, x)] == \
            [low.tobytes(), high.tobytes()]


def test_the_interpreter_holds_only_the_values_a_later_node_reads(tmp_path):
    """interp.run drops each value after the last node that reads it: along a chain of 8 Tanh
    nodes on 4 MB values, never more than the value read and the value made are held (traced by
    tracemalloc, which counts NumPy's data), where keeping every value would hold 8; the output
    is still the model's."""
    import tracemalloc

    width = 1 << 20
    nodes = [helper.make_node("Tanh", [f"v{i}"], [f"v{i + 1}"], name=f"tanh{i}") for i in range(8)]
    chain = make_model(nodes, [helper.make_tensor_value_info("v0", TensorProto.FLOAT, ["N", width])],
                       [helper.make_tensor_value_info("v8", TensorProto.FLOAT, ["N", width])])
    g = import_model(save(chain, tmp_path))
    x = RNG.normal(0, 1, (1, width)).astype(np.float32)
    held = []
    tracemalloc.start()
    try:
        out = interp.run(g, {"v0": x}, progress=lambda done, total: held.append(tracemalloc.get_traced_memory()[0]))
    finally:
        tracemalloc.stop()
    assert len(held) == 8 and max(held) <= 2.5 * x.nbytes, [h / x.nbytes for h in held]
    expected = x
    for _ in range(8):
        expected = np.tanh(expected)
    np.testing.assert_array_equal(out["v8"], expected)
