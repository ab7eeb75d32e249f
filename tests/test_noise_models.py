"""The statistical noise model, the default of `simulate` and `verify`, against the per-read model
it stands in for: on the digits models, for every built-in noisy profile, over ten seeds, the
device accuracy agrees within 0.3 points on average and every layer's SQNR (against onnxruntime's
value of the same tensor) within 0.5 dB. The figures are in docs/accuracy.md."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from helpers import run_cli
from photoncc.compiler import compile_model
from photoncc.data import load_npz
from photoncc.profile import builtin_names, load_profile
from photoncc.reference import run_onnxruntime
from photoncc.sim import DEFAULT_NOISE_MODEL, Simulator
from photoncc.verify import comparable_layers

DATA = os.path.join(os.path.dirname(__file__), "data")
MODELS = ("digits_mlp", "digits_sigmoid_mlp")
NOISY = [name for name in builtin_names() if load_profile(name).noisy]
SEEDS = range(10)


@pytest.fixture(scope="module")
def digits():
    feeds = load_npz(os.path.join(DATA, "digits_test.npz"))
    return feeds, feeds.pop("label")


def sqnr(ref: np.ndarray, dev: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    return 10 * np.log10(np.sum(ref ** 2) / np.sum((dev - ref) ** 2))


def measured(program, feeds, labels, reference, layers, noise_model):
    """Mean device accuracy and each layer's mean SQNR over SEEDS."""
    output = program.manifest["outputs"][0]["name"]
    accuracy, per_layer = [], {layer: [] for layer in layers}
    for seed in SEEDS:
        values = Simulator(program, seed=seed, noise_model=noise_model).run_batches(feeds, keep=layers)
        accuracy.append(np.mean(values[output].argmax(axis=1) == labels))
        for layer in layers:
            per_layer[layer].append(sqnr(reference[layer], values[layer]))
    return float(np.mean(accuracy)), {layer: float(np.mean(v)) for layer, v in per_layer.items()}


def test_every_built_in_noisy_profile_is_covered():
    assert set(NOISY) >= {"mrr-incoherent-8b", "mrr-balanced-8b", "mrr-sigmoid-8b", "harsh-4b"}
    assert DEFAULT_NOISE_MODEL == "statistical"


@pytest.mark.parametrize("profile", NOISY)
@pytest.mark.parametrize("model", MODELS)
def test_the_statistical_model_agrees_with_the_per_read_model(digits, model, profile):
    feeds, labels = digits
    path = os.path.join(DATA, f"{model}.onnx")
    program = compile_model(path, load_profile(profile), os.path.join(DATA, "digits_calibration.npz"))
    layers = comparable_layers(program)
    reference, _ = run_onnxruntime(path, feeds, extra_outputs=layers)
    per_read = measured(program, feeds, labels, reference, layers, "per-read")
    statistical = measured(program, feeds, labels, reference, layers, "statistical")
    assert abs(statistical[0] - per_read[0]) <= 0.003, (statistical[0], per_read[0])
    for layer in layers:
        assert abs(statistical[1][layer] - per_read[1][layer]) <= 0.5, (layer, statistical[1][layer], per_read[1][layer])


def test_layers_the_statistical_model_does_not_cover_run_per_read_and_are_named(tmp_path, capsys):
    """Without ADCs the statistical model has no reads to stand in for: every layer runs per read,
    and simulate and verify say so."""
    (tmp_path / "p.yaml").write_text("extends: mrr-incoherent-8b\nname: no-adc\nprecision: {output_bits: null}\n")
    model = os.path.join(DATA, "digits_mlp.onnx")
    program, inputs = tmp_path / "p.pcc", os.path.join(DATA, "digits_test.npz")
    assert run_cli(capsys, "compile", model, "-p", tmp_path / "p.yaml", "--calibration",
                   os.path.join(DATA, "digits_calibration.npz"), "-o", program)[0] == 0
    code, _, err = run_cli(capsys, "simulate", program, "--inputs", inputs, "-o", tmp_path / "o.npz")
    assert code == 0 and "does not cover 3 layer(s)" in err and "simulated per read" in err
    code, out, _ = run_cli(capsys, "verify", program, "--inputs", inputs, "--trials", "1", "--json", tmp_path / "r.json")
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["noise_model"] == "statistical" and len(report["per_read_layers"]) == 3
    assert "statistical noise model, 3 layer(s) per read" in out
