"""photoncc finetune: the device surrogate, the training loop, the command line and its errors."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from photoncc import ops
from photoncc.compiler import compile_model
from photoncc.data import StreamedArray
from photoncc.profile import load_profile
from photoncc.sim import Simulator
from photoncc.train import data as training_data, model, tape
from photoncc.train.finetune import Options, finetune
from photoncc.train.surrogate import Surrogate

from helpers import DATA, run_cli

MLP, TRAIN, CAL = DATA / "digits_mlp.onnx", DATA / "digits_train.npz", DATA / "digits_calibration.npz"


@pytest.mark.parametrize("name, profile", [("digits_mlp", "harsh-4b"), ("torch_legacy_cnn_nofold", "mrr-balanced-8b"),
                                           ("digits_sigmoid_mlp", "mrr-incoherent-8b")])
def test_the_surrogate_without_noise_is_the_simulators_device(name, profile):
    """Noise and programming errors off, the surrogate's forward is the simulator's statistical
    device run noiseless (the same codes, crosstalk, DAC and ranges), to float rounding."""
    prof = load_profile(profile)
    t = model.prepare(DATA / f"{name}.onnx", prof)
    source = CAL if name.startswith("digits") else DATA / f"{name}.npz"
    cal = {k: v for k, v in np.load(source).items() if k != "label"}
    surrogate = Surrogate(t.graph, prof, cal, np.random.default_rng(0), noisy=False)
    surrogate.refresh(t.params)
    for layer in surrogate.layers.values():
        layer["error"] = None
    surrogate.forms.clear()
    out = t.graph.outputs[0]
    mine = tape.forward(t.graph, cal, t.params, custom=surrogate.custom()).values[out]
    device = Simulator(compile_model(DATA / f"{name}.onnx", prof, cal), noiseless=True,
                       noise_model="statistical").run_batches(cal)[out]
    assert np.abs(mine - device).max() <= 1e-4 * np.abs(device).max()
    assert np.abs(mine - tape.forward(t.graph, cal, t.params).values[out]).max() > 1e-3 * np.abs(device).max()


def perturbed(tmp_path, scale=2.0, seed=0):
    """The digits MLP with its weights scrambled by noise (the same graph): a model to repair."""
    m = onnx.load(str(MLP))
    rng = np.random.default_rng(seed)
    for t in m.graph.initializer:
        if t.name not in ("mean", "std"):
            a = onnx.numpy_helper.to_array(t)
            t.CopyFrom(onnx.numpy_helper.from_array((a + scale * a.std() * rng.normal(size=a.shape)).astype(a.dtype),
                                                    t.name))
    path = tmp_path / "scrambled.onnx"
    onnx.save(m, str(path))
    return path


def test_training_repairs_a_scrambled_model(tmp_path):
    tuned, report = finetune(perturbed(tmp_path), TRAIN, load_profile("ideal"), options=Options(epochs=3))
    assert report["before"]["score"] < 0.8 and report["after"]["score"] > report["before"]["score"] + 0.1
    assert report["best_epoch"] >= 1 and report["epochs"][-1]["loss"] < report["epochs"][1]["loss"] * 1.5


def test_cli_writes_the_same_graph_and_it_compiles(tmp_path, capsys):
    out, rep = tmp_path / "tuned.onnx", tmp_path / "report.json"
    code, _, err = run_cli(capsys, "finetune", MLP, "--train", TRAIN, "-p", "harsh-4b", "--calibration", CAL,
                           "--epochs", "2", "-o", out, "--report", rep)
    assert code == 0, err
    assert "photoncc: epoch 2: loss" in err and "before" in err and "after" in err
    tuned, original = onnx.load(str(out)), onnx.load(str(MLP))
    assert [(n.name, n.op_type, list(n.input)) for n in tuned.graph.node] == \
        [(n.name, n.op_type, list(n.input)) for n in original.graph.node]
    assert [t.name for t in tuned.graph.initializer] == [t.name for t in original.graph.initializer]
    ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    report = json.loads(rep.read_text())
    assert report["target"] == "labels" and len(report["epochs"]) == 3 and report["samples"]["calibration"] == 200
    assert len(report["after"]["per_trial"]) == load_profile("harsh-4b")["verify"]["noisy"]["trials"]
    code, _, err = run_cli(capsys, "compile", out, "-p", "harsh-4b", "--calibration", CAL, "-o", tmp_path / "t.pcc")
    assert code == 0, err


def test_same_seed_same_model_and_without_labels_it_distils(tmp_path):
    pixels = np.load(TRAIN)["pixels"][:300]
    np.savez(tmp_path / "unlabelled.npz", pixels=pixels)
    runs = [finetune(MLP, tmp_path / "unlabelled.npz", load_profile("harsh-4b"), options=Options(epochs=1, seed=s))
            for s in (5, 5, 6)]
    assert runs[0][0] == runs[1][0] and runs[0][0] != runs[2][0]
    assert runs[0][1]["target"] == "distillation" and runs[0][1]["score"].startswith("agreement")


def test_batches_are_read_a_chunk_at_a_time(monkeypatch):
    """Memory flat in the number of samples: the file is read CHUNK samples at a time."""
    reads = []
    original = StreamedArray.__getitem__

    def recorded(self, rows):
        start, stop, _ = rows.indices(len(self))
        reads.append(stop - start)
        return original(self, rows)
    monkeypatch.setattr(training_data, "CHUNK", 100)
    monkeypatch.setattr(StreamedArray, "__getitem__", recorded)
    samples = training_data.Samples(TRAIN, {"pixels": ((64,), "float32")})
    train, val = training_data.split(samples, 0)
    seen = [len(labels) for _, labels in train.batches(32, np.random.default_rng(0))]
    assert max(reads[1:]) <= 100 and sum(seen)  # (the first read: the labels, whole) == len(train) and len(train) + len(val) == 1197
    assert set(train.rows) & set(val.rows) == set()


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "tuned.onnx"
    np.savez(tmp_path / "labels.npz", pixels=np.zeros((4, 64), np.float32), label=np.array([0, 3, 10, 2]))
    np.savez(tmp_path / "keys.npz", image=np.zeros((4, 64), np.float32), other=np.zeros(4, np.float32))
    cases = [(["--train", tmp_path / "labels.npz"], "label 10 is out of range: the model's output has 10 classes"),
             (["--train", tmp_path / "keys.npz"], "no array for model input 'pixels'"),
             (["--train", TRAIN, "--lr", "0"], "0.0 is not a positive, finite learning rate"),
             (["--train", TRAIN, "--lr", "nan"], "nan is not a positive, finite learning rate"),
             (["--train", tmp_path / "missing.npz"], "missing.npz: no such file")]
    for args, message in cases:
        code, _, err = run_cli(capsys, "finetune", MLP, *args, "-o", out)
        assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err, err
        assert not out.exists()


def test_every_node_without_a_rule_is_listed_at_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(ops.REGISTRY, "Relu", dataclasses.replace(ops.REGISTRY["Relu"], vjp=None))
    code, _, err = run_cli(capsys, "finetune", MLP, "--train", TRAIN, "-o", tmp_path / "t.onnx")
    assert code == 2 and "2 unsupported node(s)" in err
    assert "'/net/net.1/Relu' (Relu): has no VJP rule" in err and "'/net/net.3/Relu' (Relu)" in err
    assert not (tmp_path / "t.onnx").exists()


def test_a_diverging_run_stops_and_keeps_the_best_epoch(tmp_path, capsys):
    out = tmp_path / "t.onnx"
    code, _, err = run_cli(capsys, "finetune", MLP, "--train", TRAIN, "--optimizer", "sgd", "--lr", "1e30",
                           "--epochs", "3", "-o", out)
    assert code == 2 and "training diverged in epoch 1" in err and "wrote the best epoch (0)" in err
    kept = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.load(CAL)["pixels"]
    reference = ort.InferenceSession(str(MLP), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(kept.run(None, {"pixels": x})[0], reference.run(None, {"pixels": x})[0], atol=1e-6)


@pytest.mark.parametrize("name", ["digits_mlp", "torch_legacy_cnn_nofold"])
def test_the_gain_gradient_is_the_devices_error_over_its_gain_at_each_rows_largest_weight(name):
    """Beside the straight-through gradient, each row's largest weight gets sum g (y - W x' - b) / g_m
    (times d g_m / d max|W_m|), computed without a second product."""
    from photoncc.ops.conv import conv_vjp
    from photoncc.train.surrogate import _product
    prof = load_profile("harsh-4b")
    t = model.prepare(DATA / f"{name}.onnx", prof)
    cal = {k: v for k, v in np.load(CAL if name.startswith("digits") else DATA / f"{name}.npz").items() if k != "label"}
    surrogate = Surrogate(t.graph, prof, cal, np.random.default_rng(0))
    surrogate.refresh(t.params)
    n = next(n for n in t.graph.nodes if n.op == "Linear")
    x = tape.forward(t.graph, cal, t.params, keep=[n.inputs[0]]).values[n.inputs[0]]
    w, b = t.params[n.inputs[1]], t.params[n.inputs[2]]
    y, residual = surrogate.forward(n, [x, w, b])
    g = np.random.default_rng(1).normal(size=y.shape).astype(np.float32)
    xq, _, weight, _, _, gain, _ = residual
    geometry = n.attrs.get("conv")
    axes = (0,) + tuple(range(2, g.ndim)) if geometry else (0,)
    shape = (1, -1) + (1,) * (y.ndim - 2) if geometry else (-1,)
    expected = (g * (y - _product(xq, w, b, geometry)) / gain.reshape(shape)).sum(axis=axes)
    _, dw, _ = surrogate.backward(n, residual, [g])
    if geometry:
        plain = conv_vjp(xq, weight, g, strides=geometry["strides"], pads=geometry["pads"],
                         dilations=geometry["dilations"], group=geometry["group"])[1]
    else:
        plain = g.T @ xq
    rows, extra = np.abs(w.reshape(len(gain), -1)), (dw - plain).reshape(len(gain), -1)
    top = rows.argmax(axis=1)
    index = np.arange(len(gain))
    got = extra[index, top] * rows[index, top] / gain * np.sign(w.reshape(len(gain), -1)[index, top])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    extra[index, top] = 0
    assert not extra.any()  # nothing else


def test_with_a_chip_the_surrogate_is_that_chips_device(tmp_path, capsys):
    """--chip: the surrogate runs on the chip's offsets and crosstalk (no random draws), as the
    simulator runs a program compiled for that chip on it; the CLI fine-tunes for it."""
    from photoncc.chip import draw
    prof = load_profile("harsh-4b")
    chip = draw(prof, 3)
    t = model.prepare(MLP, prof)
    cal = dict(np.load(CAL))
    surrogate = Surrogate(t.graph, prof, cal, np.random.default_rng(0), chip=chip, noisy=False)
    surrogate.refresh(t.params)
    assert all(layer["error"] is None for layer in surrogate.layers.values())
    mine = tape.forward(t.graph, cal, t.params, custom=surrogate.custom()).values["probabilities"]
    program = compile_model(MLP, prof, cal, chip=chip)
    device = Simulator(program, noiseless=True, noise_model="statistical", chip=chip).run_batches(cal)["probabilities"]
    assert np.abs(mine - device).max() <= 1e-4
    path = tmp_path / "chip.npz"
    path.write_bytes(chip.to_bytes())
    code, _, err = run_cli(capsys, "finetune", MLP, "--train", TRAIN, "-p", "harsh-4b", "--chip", path, "--epochs", "1",
                           "--calibration", CAL, "-o", tmp_path / "t.onnx")
    assert code == 0, err


def small_mzi_profile(phase_sigma: float = 0.1):
    """mzi-dat at 16 ports (the digits MLP's 64 inputs tile 4 ways): quick to lower every step."""
    import copy
    from photoncc.profile import validated
    p = copy.deepcopy(dict(load_profile("mzi-dat")))
    p["mesh"]["ports"], p["noise"]["phase_sigma"], p["name"] = 16, phase_sigma, "mzi16"
    return validated(p, "test")


def test_on_mzi_meshes_the_surrogate_is_the_chips_device_and_draws_a_chip_per_step():
    """MZI profiles: with --chip the surrogate runs the compile's lowering for that chip, realised on
    it (the simulator's direct form on the same chip, noiseless); without, each step draws a chip."""
    from photoncc.chip import draw
    prof = small_mzi_profile()
    chip = draw(prof, 2)
    t = model.prepare(MLP, prof)
    cal = dict(np.load(CAL))
    surrogate = Surrogate(t.graph, prof, cal, np.random.default_rng(0), chip=chip, noisy=False)
    surrogate.refresh(t.params)
    mine = tape.forward(t.graph, cal, t.params, custom=surrogate.custom()).values["probabilities"]
    program = compile_model(MLP, prof, cal, chip=chip)
    device = Simulator(program, noiseless=True, chip=chip).run_batches(cal)["probabilities"]
    assert np.abs(mine - device).max() <= 1e-4
    drawn = Surrogate(t.graph, prof, cal, np.random.default_rng(0), noisy=False)
    drawn.refresh(t.params)
    first = [layer["error"].sha256 for layer in drawn.layers.values()]
    drawn.step()
    assert all(a != layer["error"].sha256 for a, layer in zip(first, drawn.layers.values()))


def test_finetune_on_mzi_meshes_for_a_chip_and_what_it_refuses(tmp_path, capsys):
    """finetune -p MZI --chip: exit 0, a model that compiles for the chip; DFA and the transmission
    optimisers are ring-bank methods: one line, exit 2."""
    import yaml
    prof = small_mzi_profile()
    path = tmp_path / "mzi16.yaml"
    path.write_text(yaml.safe_dump(dict(prof)))
    chip = tmp_path / "chip.npz"
    assert run_cli(capsys, "chip", path, "--seed", "1", "-o", chip)[0] == 0
    out = tmp_path / "t.onnx"
    code, _, err = run_cli(capsys, "finetune", MLP, "--train", TRAIN, "-p", path, "--chip", chip, "--epochs", "1",
                           "--calibration", CAL, "-o", out)
    assert code == 0, err
    assert run_cli(capsys, "compile", out, "-p", path, "--chip", chip, "--calibration", CAL,
                   "-o", tmp_path / "t.pcc")[0] == 0
    for args, phrase in ((["--method", "dfa"], "--method dfa: a ring-bank method"),
                         (["--optimizer", "nnsgd"], "--optimizer nnsgd: a ring-bank method")):
        code, _, err = run_cli(capsys, "finetune", MLP, "--train", TRAIN, "-p", path, *args, "-o", tmp_path / "x.onnx")
        assert code == 2 and phrase in err and not (tmp_path / "x.onnx").exists(), err
