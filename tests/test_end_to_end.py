"""End to end, checked by execution: ONNX model -> compile (ideal profile, calibrated on the very
inputs it then runs, so nothing clips) -> device simulator, against onnxruntime on the same inputs.

Every float output within 1e-4 of its range, integer outputs equal (helpers.assert_outputs_match).
Covers the exporter fixtures of tests/data, the onnx wheel's nine ``light`` architectures with
random weights, its ``pytorch-converted`` backend tests (also against their stored outputs), the
device properties the non-negative transform promises (checked on real compiled programs), batch
independence and tiling on small banks.
"""
from __future__ import annotations

import glob
import os
import shutil

import numpy as np
import onnx
import pytest

from helpers import (DATA, assert_outputs_match, bank_instructions, compile_and_compare, data_inputs,
                     ideal, read_pb, run_cli, save)
from models import LIGHT, ONNX_DATA, image_batch, light_model
from photoncc.ops import conv as kernels
from photoncc.compiler import Context, compile_model, run_pipeline
from photoncc.errors import UnsupportedModel
from photoncc.importer import import_model
from photoncc.devices.tiles import untile
from photoncc.profile import load_profile
from photoncc.reference import run_onnxruntime
from photoncc.sim import Simulator


NPZ = {"digits_mlp": "digits_test", "digits_sigmoid_mlp": "digits_test"}  # otherwise <name>.npz


def fixture_feeds(name: str) -> dict:
    """The npz inputs of fixture ``name`` (the ``label`` array is the truth, not a model input)."""
    with np.load(DATA / f"{NPZ.get(name, name)}.npz") as z:
        return {k: z[k] for k in z.files if k != "label"}


def copy_fixture(name: str, folder) -> str:
    """``name``.onnx (and its .onnx.data) copied into ``folder``: external data resolves next to it."""
    for suffix in (".onnx", ".onnx.data"):
        if (DATA / f"{name}{suffix}").exists():
            shutil.copy(DATA / f"{name}{suffix}", folder / f"{name}{suffix}")
    return str(folder / f"{name}.onnx")


# ---------------------------------------------------------------------------------- 1. fixtures

FIXTURES = ("torch_legacy_cnn", "torch_legacy_cnn_nofold", "torch_legacy_mlp_tanh",
            "torch_dynamo_mlp", "torch_dynamo_cnn", "skl2onnx_mlp", "skl2onnx_logreg", "digits_mlp",
            "digits_sigmoid_mlp")


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_matches_onnxruntime(name, tmp_path):
    path = copy_fixture(name, tmp_path)
    feeds = fixture_feeds(name)
    program, dev, ref = compile_and_compare(path, feeds)
    assert bank_instructions(program), "no layer was placed on the photonic banks"
    assert [i["name"] for i in program.manifest["inputs"]] == list(feeds)


def test_every_fixture_file_is_covered():
    refused = {"skl2onnx_mlp_zipmap"}  # see test_classic_ml_fixtures_are_refused...
    architectures = {f"arch_{kind}_{exporter}" for kind in ("transformer", "gru", "lstm", "mobilenet", "autoencoder")
                     for exporter in ("legacy", "dynamo")}  # tests/test_architectures.py
    assert {p.stem for p in DATA.glob("*.onnx")} == set(FIXTURES) | refused | architectures


def test_mlp_tanh_inputs_are_standardised_and_signed():
    feeds = fixture_feeds("torch_legacy_mlp_tanh")["features"]
    assert feeds.min() < -1 and feeds.max() > 1  # what the fixture is for: signed, standardised inputs
    ops = {n.op_type for n in onnx.load(str(DATA / "torch_legacy_mlp_tanh.onnx")).graph.node}
    assert {"Tanh", "LeakyRelu", "Shape", "Gather", "Reshape"} <= ops


def test_skl2onnx_mlp_label_is_exact_and_probabilities_close(tmp_path):
    path = copy_fixture("skl2onnx_mlp", tmp_path)
    feeds = fixture_feeds("skl2onnx_mlp")
    _, dev, ref = compile_and_compare(path, feeds)
    assert dev["label"].dtype == np.int64
    np.testing.assert_array_equal(dev["label"], ref["label"])
    assert dev["probabilities"].dtype == np.float32
    np.testing.assert_array_equal(dev["label"], dev["probabilities"].argmax(axis=1))
    assert len(set(ref["label"].tolist())) > 3  # the test says something: several classes predicted


@pytest.mark.parametrize("name, ops", [("skl2onnx_mlp_zipmap", {"ZipMap"})])
def test_classic_ml_fixtures_are_refused_listing_every_node(name, ops, tmp_path):
    path = copy_fixture(name, tmp_path)
    with pytest.raises(UnsupportedModel) as info:
        compile_model(path, ideal(), calibration=fixture_feeds(name))
    assert {p.op for p in info.value.problems} == ops
    for op in ops:
        assert op in str(info.value)


# ---------------------------------------------------------------------------------- 2. light models

def light_path_and_feeds(name: str, folder, count: int = 2):
    """The light model with random weights saved to ``folder`` with its pre-softmax logits as an extra
    output (a softmax of random-weight logits saturates to one-hot, which would hide errors), and
    ``count`` signed images."""
    model = light_model(name)
    nodes = list(model.graph.node)
    if nodes[-1].op_type == "Softmax":  # the logits have the softmax's type
        logits = onnx.ValueInfoProto(name=nodes[-1].input[0])
        logits.type.CopyFrom(model.graph.output[0].type)
        model.graph.output.append(logits)
    (inp,) = [i for i in model.graph.input if i.name in data_inputs(model)]
    shape = tuple(d.dim_value for d in inp.type.tensor_type.shape.dim)[1:]
    path = save(model, folder, f"{name}.onnx")
    return str(path), {inp.name: image_batch(count, seed=1, shape=shape)}


@pytest.fixture(scope="module")
def resnet50(tmp_path_factory):
    """ResNet-50 light compiled once for this module: (path, feeds, program)."""
    path, feeds = light_path_and_feeds("resnet50", tmp_path_factory.mktemp("resnet50"))
    return path, feeds, compile_model(path, ideal(), calibration=feeds)


@pytest.mark.slow
@pytest.mark.parametrize("name", LIGHT)
def test_light_architecture_matches_onnxruntime(name, tmp_path, request):
    if name == "resnet50":
        path, feeds, program = request.getfixturevalue("resnet50")
    else:
        path, feeds = light_path_and_feeds(name, tmp_path)
        program = compile_model(path, ideal(), calibration=feeds)
    assert next(iter(feeds.values())).min() < 0  # signed inputs
    dev = Simulator(program).run_batches(feeds)
    ref, _ = run_onnxruntime(path, feeds)
    errors = assert_outputs_match(ref, dev, what=name)
    assert len(bank_instructions(program)) > 0
    # the comparison is not vacuous: every output varies, and some output (the logits; a softmax of
    # random-weight logits can saturate to the same one-hot row) differs between the two images
    assert all(np.ptp(out) > 0 for out in ref.values())
    assert any(not np.array_equal(out[0], out[1]) for out in ref.values())
    assert set(errors) == set(ref)


# ---------------------------------------------------------------------------------- 3. pytorch-converted

CONVERTED = sorted(os.path.basename(d) for d in glob.glob(os.path.join(ONNX_DATA, "pytorch-converted", "test_*")))
TRANSPOSED = [n for n in CONVERTED if "ConvTranspose" in n]


def converted_case(name: str):
    folder = os.path.join(ONNX_DATA, "pytorch-converted", name)
    path = os.path.join(folder, "model.onnx")
    model = onnx.load(path)
    inputs = sorted(glob.glob(os.path.join(folder, "test_data_set_0", "input_*.pb")),
                    key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))
    outputs = sorted(glob.glob(os.path.join(folder, "test_data_set_0", "output_*.pb")),
                     key=lambda p: int(p.rsplit("_", 1)[1].split(".")[0]))
    names = data_inputs(model)
    assert len(names) == len(inputs), name
    feeds = {n: read_pb(p) for n, p in zip(names, inputs)}
    stored = {o.name: read_pb(p) for o, p in zip(model.graph.output, outputs)}
    return path, feeds, stored


def test_pytorch_converted_tests_are_found():
    assert len(CONVERTED) >= 80 and len(TRANSPOSED) == 2


@pytest.mark.parametrize("name", CONVERTED)
def test_pytorch_converted(name):
    """Every pytorch-converted case, the two ConvTranspose ones included (a convolution on the
    zero-inserted input: InsertZeros then a bank)."""
    path, feeds, stored = converted_case(name)
    program, dev, ref = compile_and_compare(path, feeds)
    assert_outputs_match(stored, dev, what=f"{name} (stored output)")
    if name in TRANSPOSED:
        assert "InsertZeros" in [i["op"] for i in program.instructions]


# ---------------------------------------------------------------------------------- 4. device properties

def capture_bank_inputs(monkeypatch) -> list:
    """Wrap the ring device's bank reads: every call appends (instruction, layer input x) to the
    returned list."""
    from photoncc.sim.rings import RingBanks
    calls = []
    original = RingBanks.run

    def recording(self, inst, x):
        calls.append((inst, np.array(x, copy=True)))
        return original(self, inst, x)

    monkeypatch.setattr(RingBanks, "run", recording)
    return calls


def linear_weights(path, feeds) -> dict:
    """Layer name -> the float weight of the Linear before the non-negative transform."""
    g = run_pipeline(import_model(path), Context(ideal(), feeds), until="fold_affine")
    return {n.name: g.consts[n.inputs[1]] for n in g.nodes if n.op == "Linear"}


@pytest.fixture(scope="module")
def torch_cnn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cnn")
    path = copy_fixture("torch_legacy_cnn", folder)
    feeds = fixture_feeds("torch_legacy_cnn")
    return path, feeds, compile_model(path, ideal(), calibration=feeds)


def check_device_properties(path, feeds, program, monkeypatch):
    banks = bank_instructions(program)
    assert banks
    t = program.tensors
    # the rings and gains the device is programmed with
    for inst in banks:
        tiles, gain, lo, alpha = (t[n] for n in inst["inputs"][1:5])
        assert tiles.ndim == 5 and tiles.shape[3:] == (ideal().banks, ideal().rings), inst["name"]
        assert tiles.min() >= 0 and tiles.max() <= 1, inst["name"]
        assert gain.min() > 0, inst["name"]
        assert alpha.min() >= 0, inst["name"]
        assert inst["attrs"]["shift"] >= 0, inst["name"]
    # the reconstruction gain * (Tp - Tn) is exactly the layer's weight, bit for bit
    weights = linear_weights(path, feeds)
    assert set(weights) == {inst["name"] for inst in banks}
    for inst in banks:
        tiles, gain, lo = (t[n] for n in inst["inputs"][1:4])
        groups, m = gain.shape
        k = lo.shape[1]
        w = weights[inst["name"]]
        assert w.shape[0] == groups * m and w.size == groups * m * k, inst["name"]
        tm = untile(tiles, m, 2 * k + 1)
        assert tm.shape == (groups, m, 2 * k + 1)
        a = gain[..., None].astype(np.float64) * tm.astype(np.float64)
        rebuilt = a[:, :, :k] - a[:, :, k:2 * k]
        assert ((a[:, :, :k] == 0) | (a[:, :, k:2 * k] == 0)).all(), inst["name"]  # Wp and Wn never overlap
        np.testing.assert_array_equal(rebuilt, w.reshape(groups, m, k).astype(np.float64), err_msg=inst["name"])
        assert (a[:, :, 2 * k] >= 0).all()  # the bias carrier's weight b_nn
    # every optical input power is non-negative: u = x - lo lies in [0, alpha], nothing clipped
    calls = capture_bank_inputs(monkeypatch)
    sim = Simulator(program)
    sim.run_batches(feeds)
    seen = {inst["name"] for inst, _ in calls}
    assert seen == {inst["name"] for inst in banks}
    for inst, x in calls:
        lo, alpha = (t[n].astype(np.float64) for n in inst["inputs"][3:5])
        conv = inst["attrs"].get("conv")
        if conv:
            x = kernels.im2col(x, conv["kernel_shape"], conv["strides"], conv["pads"], conv["dilations"])
        u = np.asarray(x, np.float64).reshape((-1,) + lo.shape) - lo
        tol = 1e-6 * max(float(alpha.max()), 1e-30)
        assert u.min() >= -tol, (inst["name"], float(u.min()))
        assert (u <= alpha + tol).all(), (inst["name"], float((u - alpha).max()))
    fractions = sim.clipped_fraction()
    assert set(fractions) == {inst["name"] for inst in banks}
    assert all(f == 0 for f in fractions.values()), {k: v for k, v in fractions.items() if v}


def test_device_properties_torch_cnn(torch_cnn, monkeypatch):
    check_device_properties(*torch_cnn, monkeypatch)


@pytest.mark.slow
def test_device_properties_resnet50(resnet50, monkeypatch):
    check_device_properties(*resnet50, monkeypatch)


# ---------------------------------------------------------------------------------- 5. batch independence

@pytest.mark.parametrize("name", ["torch_legacy_cnn", "torch_legacy_mlp_tanh", "torch_dynamo_cnn"])
def test_batch_independence(name, tmp_path):
    path = copy_fixture(name, tmp_path)
    feeds = {k: v[:5] for k, v in fixture_feeds(name).items()}
    program = compile_model(path, ideal(), calibration=feeds)
    whole = Simulator(program).run_batches(feeds, batch_size=5)
    ones = Simulator(program).run_batches(feeds, batch_size=1)
    twos = Simulator(program).run_batches(feeds, batch_size=2)
    single = [Simulator(program).run({k: v[i:i + 1] for k, v in feeds.items()}) for i in range(5)]
    for out, value in whole.items():
        assert value.shape[0] == 5
        for other in (ones, twos, {out: np.concatenate([s[out] for s in single])}):
            # the same up to float32 rounding: a BLAS may block a product differently per batch size
            np.testing.assert_allclose(other[out], value, rtol=1e-5, atol=1e-6 * float(np.abs(value).max()))
    ref, _ = run_onnxruntime(path, feeds)
    assert_outputs_match(ref, whole, what=name)


# ---------------------------------------------------------------------------------- 6. tiling

def test_small_banks_tile_more_and_still_match(torch_cnn, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("extends: ideal\nname: tiny-banks\nbank: {banks: 3, rings: 5}\n")
    tiny = load_profile(spec)
    assert (tiny.banks, tiny.rings) == (3, 5)
    path, feeds, program = torch_cnn
    small, _, _ = compile_and_compare(path, feeds, profile=tiny)
    assert small.manifest["report"]["tiles"] > program.manifest["report"]["tiles"]
    for layer_small, layer in zip(small.manifest["report"]["layers"], program.manifest["report"]["layers"]):
        assert layer_small["name"] == layer["name"]
        assert layer_small["tiles"] >= layer["tiles"]
    for inst in bank_instructions(small):
        assert small.tensors[inst["inputs"][1]].shape[3:] == (3, 5)
    assert any(small.tensors[i["inputs"][1]].shape[1] * small.tensors[i["inputs"][1]].shape[2] > 1
               for i in bank_instructions(small))


@pytest.mark.parametrize("profile, how", [("ideal", "path"), ("mrr-incoherent-8b", "path"), ("ideal", "verify")])
def test_compile_frees_the_float_weights_before_the_device_runs(profile, how, tmp_path, monkeypatch, capsys):
    """By the time the program is emitted (its device loaded and run for the known answer), the
    compile holds neither the imported graph's weights nor those of the graph before the banks (a
    float copy of the model's weights each): the report's SQNR reference is computed before, and
    the ADC calibration has run. ``verify`` of an ONNX model hands the graph it imported for the
    input specs over to the compile. Weights: constants of 2 or more axes, watched by weak reference."""
    import gc
    import weakref

    from photoncc import compiler, importer
    from photoncc.passes import to_banks
    path = copy_fixture("torch_legacy_cnn_nofold", tmp_path)
    feeds = fixture_feeds("torch_legacy_cnn_nofold")
    watched, alive, programs = {}, {}, []

    def watch(key, g):
        watched[key] = [weakref.ref(v) for v in g.consts.values() if np.ndim(v) >= 2]
        return g

    def emitting(*args, **kwargs):
        gc.collect()
        alive.update({key: sum(ref() is not None for ref in refs) for key, refs in watched.items()})
        programs.append(real_emit(*args, **kwargs))
        return programs[-1]

    real_import, real_measure, real_emit = importer.import_model, to_banks.measure_ranges, compiler.emit
    for module in (compiler, importer):  # the compile's own import, and verify's
        monkeypatch.setattr(module, "import_model", lambda p: watch("imported", real_import(p)))
    monkeypatch.setattr(to_banks, "measure_ranges", lambda g, *a: real_measure(watch("layers", g), *a))
    monkeypatch.setattr(compiler, "emit", emitting)
    if how == "path":
        compile_model(path, load_profile(profile), calibration=feeds)
    else:
        np.savez(tmp_path / "inputs.npz", **feeds)
        code, out, err = run_cli(capsys, "verify", path, "-p", profile, "--inputs", tmp_path / "inputs.npz")
        assert code == 0, out + err
    assert all(watched[key] for key in ("imported", "layers"))
    assert alive == {"imported": 0, "layers": 0}
    sqnr = [layer.get("sqnr_db") for layer in programs[0][0].manifest["report"]["layers"]]
    assert all(sqnr) if profile != "ideal" else not any(sqnr)  # the reference still served the report
