"""The models users export today: transformer encoders, recurrent nets (GRU, LSTM, RNN), MobileNet
blocks, conv encoder-decoders, and skl2onnx's linear models; the optical share of their MACs; and
verify's two new answers (range saturation told apart from a wrong program; the calibration
samples a program keeps as its default inputs).

Correctness is checked by execution against onnxruntime: the exporter fixtures of tests/data
(``arch_*``, made by make_architectures.py with both PyTorch exporters) and small models built
here with onnx.helper for every attribute the exporters do not write.
"""
from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest
from onnx import TensorProto, helper

from helpers import (DATA, assert_outputs_match, compile_and_compare, ideal, make_model, ops_of, run_cli, save,
                     simulate, vinfo)
from photoncc.compiler import compile_model
from photoncc.errors import ProgramError, UnsupportedModel
from photoncc.profile import load_profile
from photoncc.program import Program
from photoncc.reference import run_onnxruntime

KINDS = ("transformer", "gru", "lstm", "mobilenet", "autoencoder")
EXPORTERS = ("legacy", "dynamo")
ARCH = [f"arch_{kind}_{exporter}" for kind in KINDS for exporter in EXPORTERS]
# the ops each kind must compile to, besides its banks
EXPECTED = {"transformer": {"MatMul", "Softmax", "LayerNormalization", "Gather"},
            "gru": {"Blend", "Sigmoid", "Tanh"}, "lstm": {"Sigmoid", "Tanh", "Mul"},
            "mobilenet": {"HardSwish", "HardSigmoid", "Mul"}, "autoencoder": {"InsertZeros", "Resize"}}


def feeds_of(name: str) -> dict:
    with np.load(DATA / f"{name}.npz") as z:
        return {k: z[k] for k in z.files if k != "label"}


def rng_array(rng, *shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


# ------------------------------------------------------------------------------ the exporter fixtures

@pytest.mark.parametrize("name", ARCH)
def test_architecture_fixture_matches_onnxruntime_on_ideal(name):
    program, dev, ref = compile_and_compare(DATA / f"{name}.onnx", feeds_of(name))
    kind = name.split("_")[1]
    ops = Counter(ops_of(program))
    assert ops["Bank"] >= 3 and EXPECTED[kind] <= set(ops), ops
    placement = {i["op"]: i["placement"] for i in program.instructions}
    assert placement["Bank"] == "optical" and all(p == "electronic" for op, p in placement.items() if op != "Bank")
    macs = program.manifest["report"]["macs"]
    if kind == "transformer":  # attention's two products of activations stay electronic
        assert ops["MatMul"] == 2 and set(macs["electronic_products"]) == {"MatMul"}
        assert 0.8 < macs["optical_share"] < 0.95
    else:
        assert macs["optical_share"] == 1.0 and macs["electronic"] == 0
    assert macs["optical"] == sum(layer["macs"] for layer in program.manifest["report"]["layers"])


@pytest.mark.parametrize("name", ARCH)
def test_architecture_program_file_passes_its_known_answer_test_and_simulates(capsys, name, tmp_path):
    """Written and read back (a Gather's scalar index stays 0-d in the file: the last time step
    of the recurrent nets), the program passes its known-answer test and matches onnxruntime."""
    shutil.copy(DATA / f"{name}.onnx", tmp_path / f"{name}.onnx")
    assert run_cli(capsys, "compile", tmp_path / f"{name}.onnx", "--calibration", DATA / f"{name}.npz")[0] == 0
    code, out, err = run_cli(capsys, "simulate", tmp_path / f"{name}.pcc", "--inputs", DATA / f"{name}.npz",
                             "-o", tmp_path / "out.npz")
    assert code == 0, err
    with np.load(tmp_path / "out.npz") as z:
        dev = {k: z[k] for k in z.files}
    ref, _ = run_onnxruntime(str(DATA / f"{name}.onnx"), feeds_of(name))
    assert_outputs_match(ref, dev)


def test_recurrent_fixtures_unroll_one_input_bank_and_a_bank_per_step_and_direction():
    program = compile_model(str(DATA / "arch_gru_legacy.onnx"), ideal(), calibration=feeds_of("arch_gru_legacy"))
    unrolled = program.manifest["report"]["unrolled"]
    # 6 steps x 2 directions; the first step of each direction has a zero state: its product is the bias
    assert unrolled == [{"name": "/rnn/GRU", "op": "GRU", "steps": 6, "directions": 2, "recurrent_products": 10}]
    assert Counter(ops_of(program))["Bank"] == 1 + 10 + 1  # input products, recurrent products, the head
    # the state's range is guaranteed, [-1, 1]: the hull of Tanh's and the previous state's (Blend)
    recurrent = [layer for layer in program.manifest["report"]["layers"] if "recurrent" in layer["name"]]
    assert len(recurrent) == 10 and all(layer["range_source"].startswith("Tanh") and layer["alpha"] == [2.0, 2.0]
                                        for layer in recurrent)
    program = compile_model(str(DATA / "arch_lstm_dynamo.onnx"), ideal(), calibration=feeds_of("arch_lstm_dynamo"))
    assert [(u["op"], u["steps"], u["directions"]) for u in program.manifest["report"]["unrolled"]] == [("LSTM", 6, 2)] * 2


@pytest.mark.parametrize("name", [f"arch_{kind}_{exporter}" for kind in ("transformer", "gru", "lstm")
                                  for exporter in EXPORTERS])
def test_architecture_fixture_passes_the_noisy_tier_of_mrr_incoherent_8b(capsys, name, tmp_path):
    code, out, err = run_cli(capsys, "verify", DATA / f"{name}.onnx", "-p", "mrr-incoherent-8b", "--inputs",
                             DATA / f"{name}.npz", "--json", tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["tier"] == "noisy" and report["trials"] == 5
    assert code == 0, out + err


@pytest.mark.parametrize("name", ["arch_mobilenet_legacy", "arch_autoencoder_dynamo"])
def test_noise_sensitive_fixtures_pass_the_quantised_tier_and_the_noisy_verdict_names_the_device(capsys, name,
                                                                                                 tmp_path):
    """The MobileNet block (its depthwise layer reads at 13 dB SQNR under the profile's noise, and the
    squeeze-excitation gates every channel with it) and the autoencoder (every pixel judged on
    rtol) fail the noisy tier of mrr-incoherent-8b on the device's noise, which verify says is not
    the data's coverage; noiseless, at the quantised tier, they pass."""
    code, out, err = run_cli(capsys, "verify", DATA / f"{name}.onnx", "-p", "mrr-incoherent-8b", "--inputs",
                             DATA / f"{name}.npz", "--noiseless")
    assert code == 0 and "tier quantised" in out, out + err
    code, out, err = run_cli(capsys, "verify", DATA / f"{name}.onnx", "-p", "mrr-incoherent-8b", "--inputs",
                             DATA / f"{name}.npz", "--json", tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 1 and report["cause"] == "program" and "on samples inside the compiled ranges" in out


def test_check_shows_the_optical_share_of_a_transformer(capsys):
    code, out, err = run_cli(capsys, "check", DATA / "arch_transformer_legacy.onnx")
    assert code == 0, err
    lines = out.splitlines()
    assert "every node is supported: 5 optical layer(s)" in lines[0]
    assert lines[1] == "  MACs per sample: 88.9% optical (16,432 of 18,480); electronic: MatMul 2,048"
    assert "MatMul x2" in lines[2] and "LayerNormalization x2" in lines[2]


def test_inspect_shows_the_split_and_the_kept_samples(capsys, tmp_path):
    name = "arch_transformer_dynamo"
    shutil.copy(DATA / f"{name}.onnx", tmp_path / f"{name}.onnx")
    assert run_cli(capsys, "compile", tmp_path / f"{name}.onnx", "--calibration", DATA / f"{name}.npz")[0] == 0
    code, out, _ = run_cli(capsys, "inspect", tmp_path / f"{name}.pcc")
    assert code == 0
    assert "  MACs per sample: 88.9% optical (16,432 of 18,480); electronic: MatMul 2,048" in out
    assert "  kept samples: 32 of the 64 calibration samples (verify's default inputs)" in out
    assert "MatMul x2" in out


# ------------------------------------------------------------------------------ recurrent layers by hand

T, N, I, H = 5, 6, 4, 3


def recurrent_model(kind, attrs, rng, bias=True, h0=None, c0=None, peep=False, lengths=None, layout=0,
                    outputs=("y", "yh")):
    """A batch-first model around one ONNX recurrent layer, as PyTorch writes it: X (N, T, I) ->
    Transpose -> layer -> the outputs read back batch first (Y: Transpose + Reshape; Y_h, Y_c:
    Transpose)."""
    gates = {"RNN": 1, "GRU": 3, "LSTM": 4}[kind]
    d = 2 if attrs.get("direction") == "bidirectional" else 1
    inits = [("W", rng_array(rng, d, gates * H, I, scale=0.6)), ("R", rng_array(rng, d, gates * H, H, scale=0.6))]
    inputs = ["xs" if not layout else "x", "W", "R"]
    if bias:
        inits.append(("B", rng_array(rng, d, 2 * gates * H, scale=0.3)))
    inputs.append("B" if bias else "")
    if lengths is not None:
        inits.append(("lens", np.asarray(lengths, np.int32)))
    inputs.append("lens" if lengths is not None else "")
    nodes = []
    for name, value in (("h0", h0), ("c0", c0)):
        if value is not None:  # a learned state (D, 1, H) expanded over the batch, as PyTorch writes it
            inits.append((f"{name}_param", value))
            if not any(n == "axis0" for n, _ in inits):
                inits += [("axis0", np.array([0], np.int64)), ("state_d", np.array([d], np.int64)),
                          ("state_h", np.array([H], np.int64))]
            nodes += [helper.make_node("Shape", ["x"], [f"{name}_shape"]),
                      helper.make_node("Gather", [f"{name}_shape", "axis0"], [f"{name}_n"], axis=0),
                      helper.make_node("Concat", ["state_d", f"{name}_n", "state_h"], [f"{name}_dims"], axis=0),
                      helper.make_node("Expand", [f"{name}_param", f"{name}_dims"], [name])]
    inputs += ["h0" if h0 is not None else "", "c0" if c0 is not None else ""]
    if peep:
        inits.append(("P", rng_array(rng, d, 3 * H)))
        inputs.append("P")
    inputs = inputs[:6] if kind != "LSTM" else inputs
    while inputs[-1] == "":
        inputs.pop()
    outs = ["Y", "Y_h"] + (["Y_c"] if kind == "LSTM" else [])
    nodes += [] if layout else [helper.make_node("Transpose", ["x"], ["xs"], perm=[1, 0, 2])]
    nodes.append(helper.make_node(kind, inputs, outs, hidden_size=H, name="rnn", **attrs,
                                  **({"layout": 1} if layout else {})))
    graph_outputs = []
    if "y" in outputs:
        if layout:
            nodes.append(helper.make_node("Reshape", ["Y", "flat"], ["y"]))
        else:
            nodes += [helper.make_node("Transpose", ["Y"], ["yt"], perm=[2, 0, 1, 3]),
                      helper.make_node("Reshape", ["yt", "flat"], ["y"])]
        inits.append(("flat", np.array([0, T, d * H], np.int64)))
        graph_outputs.append(vinfo("y", ["N", T, d * H]))
    for name, source in (("yh", "Y_h"), ("yc", "Y_c")):
        if name in outputs:
            nodes.append(helper.make_node("Identity" if layout else "Transpose", [source], [name],
                                          **({} if layout else {"perm": [1, 0, 2]})))
            graph_outputs.append(vinfo(name, ["N", d, H]))
    return make_model(nodes, [vinfo("x", ["N", T, I])], graph_outputs, inits, opset=14)


RECURRENT_CASES = [
    ("GRU", {}, {}),
    ("GRU", {"linear_before_reset": 1, "direction": "bidirectional"}, {}),
    ("GRU", {"direction": "reverse", "clip": 0.8}, {"bias": False}),
    ("GRU", {"activations": ["HardSigmoid", "Softsign"], "activation_alpha": [0.3], "activation_beta": [0.45]}, {}),
    ("LSTM", {}, {"outputs": ("y", "yh", "yc")}),
    ("LSTM", {"direction": "bidirectional"}, {"peep": True, "outputs": ("y", "yh", "yc")}),
    ("LSTM", {"input_forget": 1, "clip": 1.5}, {}),
    # a clip the cell state exceeds, read through an identity h: clipped gate inputs, the state not
    ("LSTM", {"clip": 0.9, "activations": ["Sigmoid", "Tanh", "Affine"], "activation_alpha": [1.0],
              "activation_beta": [0.0]}, {"scale": 5.0}),
    ("LSTM", {"activations": ["Sigmoid", "Elu", "ScaledTanh"], "activation_alpha": [0.7, 0.8],
              "activation_beta": [1.2]}, {}),
    ("RNN", {}, {}),
    ("RNN", {"direction": "bidirectional", "activations": ["Relu", "Affine"], "activation_alpha": [0.5],
             "activation_beta": [0.1]}, {}),
    ("RNN", {"activations": ["LeakyRelu"], "activation_alpha": [0.2]}, {}),
]


@pytest.mark.parametrize("kind, attrs, extra", RECURRENT_CASES)
def test_recurrent_layer_matches_onnxruntime(kind, attrs, extra, tmp_path):
    rng = np.random.default_rng(len(str(attrs)) + len(kind))
    extra = dict(extra)
    scale = extra.pop("scale", 1.0)
    model = recurrent_model(kind, attrs, rng, **extra)
    feeds = {"x": rng_array(rng, N, T, I, scale=scale)}
    program, _, _ = compile_and_compare(save(model, tmp_path), feeds)
    assert "rnn" not in ops_of(program) and Counter(ops_of(program))["Bank"] >= T


def test_recurrent_layer_with_constant_initial_states(tmp_path):
    rng = np.random.default_rng(5)
    h0, c0 = rng_array(rng, 2, 1, H), rng_array(rng, 2, 1, H)
    model = recurrent_model("LSTM", {"direction": "bidirectional"}, rng, h0=h0, c0=c0, outputs=("y", "yh", "yc"))
    program, _, _ = compile_and_compare(save(model, tmp_path), {"x": rng_array(rng, N, T, I)})
    # a nonzero initial state: every step's recurrent product is a bank (the first one's is a constant)
    assert program.manifest["report"]["unrolled"][0]["recurrent_products"] == 2 * (T - 1)


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_batch_major_layout_is_the_sequence_major_one_transposed(kind, tmp_path):
    """layout=1 (onnxruntime does not run it): compared with the same layer at layout 0."""
    rng = np.random.default_rng(11)
    batch_major = recurrent_model(kind, {"direction": "bidirectional"}, rng, layout=1)
    rng = np.random.default_rng(11)
    sequence_major = recurrent_model(kind, {"direction": "bidirectional"}, rng)
    feeds = {"x": rng_array(np.random.default_rng(12), N, T, I)}
    ref, _ = run_onnxruntime(str(save(sequence_major, tmp_path, "seq.onnx")), feeds)
    program = compile_model(str(save(batch_major, tmp_path, "batch.onnx")), ideal(), calibration=feeds)
    assert_outputs_match(ref, simulate(program, feeds))


def test_recurrent_refusals_say_why(tmp_path):
    rng = np.random.default_rng(3)
    short = recurrent_model("GRU", {}, rng, lengths=[T - 1] * N)
    with pytest.raises(UnsupportedModel, match="sequence_lens"):
        compile_model(str(save(short, tmp_path, "short.onnx")), ideal(), calibration={"x": rng_array(rng, N, T, I)})
    # a sequence-major model input: axis 0 is time, not the batch
    nodes = [helper.make_node("GRU", ["x", "W", "R"], ["Y"], hidden_size=H, name="rnn")]
    model = make_model(nodes, [vinfo("x", [T, 1, I])], [vinfo("Y", [T, 1, 1, H])],
                       [("W", rng_array(rng, 1, 3 * H, I)), ("R", rng_array(rng, 1, 3 * H, H))])
    with pytest.raises(UnsupportedModel, match="sequence-major") as info:
        compile_model(str(save(model, tmp_path, "seq.onnx")), ideal(), calibration={"x": rng_array(rng, T, 1, I)})
    assert [p.op for p in info.value.problems] == ["GRU"]


def test_unrolling_holds_the_recurrent_matrix_once_per_step(tmp_path):
    """The program size grows with the steps: each step's bank holds its own copy of R."""
    sizes = {}
    for steps in (4, 8):
        rng = np.random.default_rng(0)
        nodes = [helper.make_node("Transpose", ["x"], ["xs"], perm=[1, 0, 2]),
                 helper.make_node("GRU", ["xs", "W", "R"], ["Y", "Y_h"], hidden_size=16, name="rnn",
                                  linear_before_reset=1),
                 helper.make_node("Squeeze", ["Y_h", "zero"], ["h"])]
        model = make_model(nodes, [vinfo("x", ["N", steps, 8])], [vinfo("h", ["N", 16])],
                           [("W", rng_array(rng, 1, 48, 8)), ("R", rng_array(rng, 1, 48, 16)),
                            ("zero", np.array([0], np.int64))])
        path = save(model, tmp_path, f"gru{steps}.onnx")
        program, _, _ = compile_and_compare(path, {"x": rng_array(rng, 4, steps, 8)})
        sizes[steps] = len(program.to_bytes())
        assert Counter(ops_of(program))["Bank"] == 1 + steps - 1
    per_step = (sizes[8] - sizes[4]) / 4
    assert per_step > 2 * 48 * 16 * 4  # at least [Rp | Rn] of one step in float32


# ------------------------------------------------------------------------------ ConvTranspose

CONV_TRANSPOSE = [
    dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]),
    dict(strides=[2, 2], pads=[0, 1, 2, 0]),
    dict(strides=[2, 2], group=2),
    dict(strides=[1, 1], pads=[2, 2, 2, 2]),  # pads beyond the kernel's reach: the input is cropped
    dict(strides=[3], dilations=[2], pads=[2, 0]),
    dict(strides=[2, 2], output_shape=[10, 9]),
    dict(strides=[3, 3], auto_pad="SAME_UPPER"),
    dict(strides=[3, 3], auto_pad="SAME_LOWER"),
    dict(strides=[2, 1, 2], pads=[0, 1, 0, 1, 0, 1]),
]


@pytest.mark.parametrize("attrs", CONV_TRANSPOSE, ids=[str(i) for i in range(len(CONV_TRANSPOSE))])
def test_conv_transpose_is_a_bank_on_the_zero_inserted_input(attrs, tmp_path):
    rng = np.random.default_rng(len(str(attrs)))
    nd, group = len(attrs["strides"]), attrs.get("group", 1)
    kernel = [3, 4, 2][:nd] if nd == 3 else [3] * nd
    model = make_model([helper.make_node("ConvTranspose", ["x", "W", "B"], ["y"], name="up", **attrs),
                        helper.make_node("Relu", ["y"], ["z"])],
                       [vinfo("x", ["N", 4] + [5] * nd)], ["z"],
                       [("W", rng_array(rng, 4, 6 // group, *kernel)), ("B", rng_array(rng, 6))])
    program, _, _ = compile_and_compare(save(model, tmp_path), {"x": rng_array(rng, 5, 4, *[5] * nd)})
    assert ops_of(program) == ["InsertZeros", "Bank", "Relu"]
    bank = program.instructions[1]
    assert bank["attrs"]["conv"]["strides"] == [1] * nd and bank["attrs"]["conv"]["pads"] == [0] * 2 * nd


def test_conv_transpose_quantised_is_the_equivalent_convolution(tmp_path):
    """On mrr-incoherent-8b a ConvTranspose has the error of the convolution it becomes (run on the
    zero-inserted input by hand): the quantisation, noise and tiling apply to it as to any bank."""
    from photoncc.ops.conv_transpose import conv_transpose_as_conv, conv_transpose_geometry, insert_zeros
    from helpers import relative_error
    rng = np.random.default_rng(9)
    w, attrs = rng_array(rng, 2, 3, 3, 3), {"strides": [2, 2], "pads": [1] * 4, "output_padding": [1, 1]}
    x = rng_array(rng, 8, 2, 4, 4)
    spread, kernel = conv_transpose_as_conv(conv_transpose_geometry(attrs, (4, 4), (3, 3)), w)
    spread_x = insert_zeros(x, **spread)
    errors = []
    for op, feed, weight, name in (("ConvTranspose", x, w, "ct.onnx"), ("Conv", spread_x, kernel, "conv.onnx")):
        model = make_model([helper.make_node(op, ["x", "W"], ["y"], name="layer", **(attrs if op == "ConvTranspose" else {}))],
                           [vinfo("x", ["N"] + list(feed.shape[1:]))], ["y"], [("W", weight)])
        path = save(model, tmp_path, name)
        program = compile_model(str(path), load_profile("mrr-incoherent-8b"), calibration={"x": feed})
        ref, _ = run_onnxruntime(str(path), {"x": feed})
        errors.append(relative_error(ref["y"], simulate(program, {"x": feed})["y"]))
    assert 0 < errors[0] < 0.1 and abs(errors[0] - errors[1]) < 1e-6


# ------------------------------------------------------------------------------ Einsum, MatMul of activations

EINSUMS = [("btd,dk->btk", (5, 4, 6), (6, 3), True), ("btd,kd->btk", (5, 4, 6), (3, 6), True),
           ("bdt,dk->btk", (5, 6, 4), (6, 3), True), ("btd,dk->bkt", (5, 4, 6), (6, 3), True),
           ("...d,dk->...k", (5, 4, 6), (6, 3), True), ("bd,dk", (5, 6), (6, 3), True)]


@pytest.mark.parametrize("equation, data, weight, banked", EINSUMS)
def test_einsum_with_a_constant_matrix_is_a_bank(equation, data, weight, banked, tmp_path):
    rng = np.random.default_rng(len(equation))
    model = make_model([helper.make_node("Einsum", ["x", "W"], ["y"], equation=equation, name="proj")],
                       [vinfo("x", ["N"] + list(data[1:]))], ["y"], [("W", rng_array(rng, *weight))], opset=17)
    program, _, _ = compile_and_compare(save(model, tmp_path), {"x": rng_array(rng, *data)})
    assert Counter(ops_of(program))["Bank"] == 1 and "Einsum" not in ops_of(program)


def test_einsum_of_activations_runs_electronically_and_other_constant_einsums_are_refused(tmp_path):
    rng = np.random.default_rng(2)
    nodes = [helper.make_node("Einsum", ["q", "k"], ["s"], equation="bhid,bhjd->bhij", name="scores"),
             helper.make_node("Einsum", ["s", "v"], ["y"], equation="bhij,bhjd->bhid", name="mix")]
    model = make_model(nodes, [vinfo("q", ["N", 2, 3, 4]), vinfo("k", ["N", 2, 3, 4]), vinfo("v", ["N", 2, 3, 4])],
                       ["y"], opset=17)
    feeds = {n: rng_array(rng, 4, 2, 3, 4) for n in "qkv"}
    program, _, _ = compile_and_compare(save(model, tmp_path, "att.onnx"), feeds)
    assert ops_of(program) == ["Einsum", "Einsum"] and program.manifest["report"]["macs"]["optical_share"] == 0.0
    diagonal = make_model([helper.make_node("Einsum", ["x", "W"], ["y"], equation="bij,ij->bi", name="diag")],
                          [vinfo("x", ["N", 3, 3])], ["y"], [("W", rng_array(rng, 3, 3))], opset=17)
    with pytest.raises(UnsupportedModel, match="matrix product over one axis"):
        compile_model(str(save(diagonal, tmp_path, "d.onnx")), ideal(), calibration={"x": rng_array(rng, 2, 3, 3)})
    batch_mixing = make_model([helper.make_node("Einsum", ["x", "y"], ["z"], equation="bi,ci->bc", name="gram")],
                              [vinfo("x", ["N", 3]), vinfo("y", ["N", 3])], ["z"], opset=17)
    with pytest.raises(UnsupportedModel, match="batch"):
        compile_model(str(save(batch_mixing, tmp_path, "g.onnx")), ideal(),
                      calibration={"x": rng_array(rng, 2, 3), "y": rng_array(rng, 2, 3)})


def test_attention_products_of_activations_are_exact_and_electronic(tmp_path):
    rng = np.random.default_rng(4)
    nodes = [helper.make_node("MatMul", ["x", "Wq"], ["q"]), helper.make_node("MatMul", ["x", "Wk"], ["k"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s"], name="scores"),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "x"], ["y"], name="mix")]
    model = make_model(nodes, [vinfo("x", ["N", 5, 4])], ["y"], [("Wq", rng_array(rng, 4, 4)), ("Wk", rng_array(rng, 4, 4))])
    program, _, _ = compile_and_compare(save(model, tmp_path), {"x": rng_array(rng, 8, 5, 4)})
    placement = [(i["op"], i["placement"]) for i in program.instructions]
    assert placement.count(("Bank", "optical")) == 2 and placement.count(("MatMul", "electronic")) == 2
    macs = program.manifest["report"]["macs"]
    assert macs == {"optical": 2 * 5 * 4 * 4, "electronic": 2 * 5 * 5 * 4, "optical_share": 160 / 360,
                    "electronic_products": {"MatMul": 200}}


# ------------------------------------------------------------------------------ skl2onnx linear models

def test_skl2onnx_logistic_regression_compiles(tmp_path):
    shutil.copy(DATA / "skl2onnx_logreg.onnx", tmp_path / "m.onnx")
    with np.load(DATA / "skl2onnx_logreg.npz") as z:
        feeds = {"input": z["input"]}
    program, dev, ref = compile_and_compare(tmp_path / "m.onnx", feeds)
    np.testing.assert_array_equal(dev["label"], ref["label"])
    assert ops_of(program)[0] == "Bank" and "Normalizer" in ops_of(program)


def ml_model(op, attrs, outputs, features=3):
    node = helper.make_node(op, ["x"], [o.name for o in outputs], domain="ai.onnx.ml", name="model", **attrs)
    return make_model([node], [vinfo("x", ["N", features])], outputs, extra_opsets=[("ai.onnx.ml", 1)])


@pytest.mark.parametrize("transform", ["NONE", "LOGISTIC", "SOFTMAX"])
@pytest.mark.parametrize("binary", [True, False])
def test_linear_classifier_matches_onnxruntime(transform, binary, tmp_path):
    rng = np.random.default_rng(1 + binary)
    classes = 2 if binary else 4
    rows = 1 if binary else classes
    model = ml_model("LinearClassifier", {"coefficients": rng_array(rng, rows * 3).tolist(),
                                          "intercepts": rng_array(rng, rows).tolist(),
                                          "classlabels_ints": list(range(5, 5 + classes)), "post_transform": transform},
                     [vinfo("label", ["N"], TensorProto.INT64), vinfo("scores", ["N", classes])])
    _, dev, ref = compile_and_compare(save(model, tmp_path), {"x": rng_array(rng, 40, 3)})
    np.testing.assert_array_equal(dev["label"], ref["label"])


def test_linear_regressor_and_normalizer_match_onnxruntime(tmp_path):
    rng = np.random.default_rng(8)
    regressor = ml_model("LinearRegressor", {"coefficients": rng_array(rng, 6).tolist(), "intercepts": [0.5, -1.0],
                                             "targets": 2}, [vinfo("y", ["N", 2])])
    program, _, _ = compile_and_compare(save(regressor, tmp_path, "r.onnx"), {"x": rng_array(rng, 20, 3)})
    assert ops_of(program) == ["Bank"]
    for norm in ("MAX", "L1", "L2"):
        model = ml_model("Normalizer", {"norm": norm}, [vinfo("y", ["N", 3])])
        x = rng_array(rng, 20, 3)
        x[0] = 0.0
        x[1] = [-1.0, 0.0, -2.0]  # MAX of 0: left as it is
        compile_and_compare(save(model, tmp_path, f"n{norm}.onnx"), {"x": x})


def test_unmapped_linear_classifier_says_why(tmp_path):
    model = ml_model("LinearClassifier", {"coefficients": [1.0] * 6, "classlabels_ints": [0, 1],
                                          "post_transform": "PROBIT"},
                     [vinfo("label", ["N"], TensorProto.INT64), vinfo("scores", ["N", 2])])
    with pytest.raises(UnsupportedModel, match="PROBIT"):
        compile_model(str(save(model, tmp_path)), ideal(), calibration={"x": np.ones((2, 3), np.float32)})


# ------------------------------------------------------------------------------ verify: saturation or program

@pytest.fixture(scope="module")
def digits_program(tmp_path_factory):
    """digits_mlp compiled on its training-split calibration samples (ideal)."""
    folder = tmp_path_factory.mktemp("digits")
    shutil.copy(DATA / "digits_mlp.onnx", folder / "digits_mlp.onnx")
    assert run_cli_plain("compile", folder / "digits_mlp.onnx", "--calibration", DATA / "digits_calibration.npz") == 0
    return folder / "digits_mlp.pcc"


def run_cli_plain(*argv) -> int:
    from photoncc.cli import main
    return main([str(a) for a in argv])


def test_verify_tells_range_saturation_from_a_wrong_program(capsys, digits_program, tmp_path):
    """The test split leaves the calibration split's ranges on 11 of 600 samples: the exact tier
    fails, honestly, and says it is the data's coverage; the 589 others agree to float rounding."""
    code, out, err = run_cli(capsys, "verify", digits_program, "--inputs", DATA / "digits_test.npz",
                             "--json", tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 1 and not report["passed"] and report["cause"] == "saturation"
    found = report["saturation"]
    assert found["of"] == 600 and 0 < found["samples"] < 60 and found["worst_excess"] > 0
    assert found["worst_layer"] == "/net/net.0/Gemm" and len(found["indices"]) == min(20, found["samples"])
    inside = report["outputs"][0]["inside_range"]
    assert inside["passed"] and inside["relative_error"] < 1e-5 and inside["samples"] == 600 - found["samples"]
    assert report["outputs"][0]["saturating"]["relative_error"] > 1e-4
    assert "through range saturation, not a wrong program" in out
    assert "recompile with calibration data that covers these inputs" in out
    # the same program under a threshold it cannot meet anywhere: the program's (tier's) failure
    code, out, _ = run_cli(capsys, "verify", digits_program, "--inputs", DATA / "digits_test.npz",
                           "--rtol", "1e-12", "--json", tmp_path / "r2.json")
    assert code == 1 and json.loads((tmp_path / "r2.json").read_text())["cause"] == "program"
    assert "on samples inside the compiled ranges" in out


def test_verify_on_data_inside_the_ranges_reports_no_saturation(capsys, digits_program, tmp_path):
    code, out, _ = run_cli(capsys, "verify", digits_program, "--inputs", DATA / "digits_calibration.npz",
                           "--json", tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and report["saturation"]["samples"] == 0 and report["cause"] is None
    assert "inside_range" not in report["outputs"][0] and "saturation:" not in out


# ------------------------------------------------------------------------------ verify: kept samples

def test_program_keeps_evenly_spread_calibration_samples(digits_program):
    program = Program.read(digits_program)
    kept = program.manifest["samples"]
    assert kept == {"count": 32, "of": 200, "source": "calibration", "inputs": {"pixels": "samples/pixels"}}
    with np.load(DATA / "digits_calibration.npz") as z:
        expected = z["pixels"][np.linspace(0, 199, 32).round().astype(int)]
    np.testing.assert_array_equal(program.tensors["samples/pixels"], expected)


def test_a_program_with_tampered_samples_is_refused(digits_program):
    program = Program.read(digits_program)
    program.manifest["samples"]["count"] = 31
    with pytest.raises(ProgramError, match="samples.inputs 'pixels' is not 31 samples"):
        Program.from_bytes(program.to_bytes(), "tampered.pcc")


def test_verify_without_inputs_runs_kept_samples_where_uniform_draws_fail(capsys, tmp_path):
    """A CNN whose inner layers uniform inputs drive far outside their calibrated ranges: verify's
    default (the kept calibration samples) passes; uniform draws in the input ranges do not."""
    name = "arch_mobilenet_legacy"
    shutil.copy(DATA / f"{name}.onnx", tmp_path / f"{name}.onnx")
    assert run_cli(capsys, "compile", tmp_path / f"{name}.onnx", "--calibration", DATA / f"{name}.npz",
                   "--headroom", "0.05")[0] == 0
    program = tmp_path / f"{name}.pcc"
    code, out, err = run_cli(capsys, "verify", program)
    assert code == 0 and "the 32 calibration samples kept in the program" in err, out + err
    from photoncc.verify import draw_inputs
    feeds = draw_inputs(Program.read(program), 32, 0)
    np.savez(tmp_path / "uniform.npz", **feeds)
    code, out, _ = run_cli(capsys, "verify", program, "--inputs", tmp_path / "uniform.npz")
    assert code == 1 and "range saturation" in out
