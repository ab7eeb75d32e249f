"""Real-device profiles: schema errors, quantised codes, noise, balanced banks, photonic sigmoid."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from photoncc.compiler import compile_model
from photoncc.data import load_npz
from photoncc.errors import UserError
from photoncc.profile import builtin_names, load_profile
from photoncc.reference import run_onnxruntime
from photoncc.sim import Simulator, gaussian
from photoncc.sim.rings import RingBanks

DATA = os.path.join(os.path.dirname(__file__), "data")
DIGITS = os.path.join(DATA, "digits_mlp.onnx")
SIGMOID = os.path.join(DATA, "digits_sigmoid_mlp.onnx")
CALIBRATION = os.path.join(DATA, "digits_calibration.npz")


@pytest.fixture(scope="module")
def digits():
    feeds = load_npz(os.path.join(DATA, "digits_test.npz"))
    labels = feeds.pop("label")
    return {k: v[:200] for k, v in feeds.items()}, labels[:200]


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_every_builtin_profile_loads_and_says_what_it_is():
    names = builtin_names()
    assert {"ideal", "mrr-incoherent-8b", "mrr-balanced-8b", "harsh-4b", "mrr-sigmoid-8b"} <= set(names)
    tiers = {name: load_profile(name).tier() for name in names}
    assert tiers["ideal"] == "exact" and tiers["mrr-incoherent-8b"] == "noisy"
    assert load_profile("mrr-incoherent-8b").tier(noiseless=True) == "quantised"


@pytest.mark.parametrize("text, message", [
    ("extends: ideal\narchitecture: balanced\n",
     "bank.weight_range is required for architecture 'balanced' (the signed weights a ring reaches, e.g. [-1.0, 1.0])"),
    ("extends: ideal\nbank: {weight_range: [-1.0, 1.0]}\n",
     "bank.weight_range applies only to architecture 'balanced' (an incoherent ring's weight is its transmission in [0, 1])"),
    ("extends: mrr-balanced-8b\nbank: {weight_range: [0.0, 1.0]}\n",
     "bank.weight_range: [0.0, 1.0] is not a list [min, max] with -1 <= min < 0 < max <= 1 "
     "(the signed weights a ring can reach)"),
    ("extends: ideal\nactivation: {kind: electronic, A1: 0.1}\n",
     "activation.A1 is a parameter of kind 'photonic_sigmoid', not of 'electronic'"),
    ("extends: ideal\nactivation: {kind: photonic_sigmoid, A1: 1.2, A2: 1.0}\n",
     "activation.A2 must exceed activation.A1 (the curve rises from A1 to A2)"),
    ("extends: ideal\nactivation: {kind: relu_laser}\n",
     "activation.kind: 'relu_laser' is not one of 'electronic', 'photonic_sigmoid', 'photonic_sinusoidal', "
     "'saturable_absorber'"),
    ("extends: ideal\nprecision: {weight_bits: 0}\n",
     "precision.weight_bits: 0 is not null (float precision) or an integer number of bits from 1 to 16"),
    ("extends: ideal\nnoise: {crosstalk: 2}\n",
     "noise.crosstalk: 2 is not a number in [0, 0.5) (each neighbour's share; the compensation needs < 0.5)"),
    ("extends: ideal\nnoise: {rin_sigmaa: 0.1}\n", "unknown key 'noise.rin_sigmaa'; did you mean 'noise.rin_sigma'?"),
    ("extends: ideal\nverify: {noisy: {confidence: 1.0}}\n", "verify.noisy.confidence: 1.0 is not a number in (0, 1)"),
    ("extends: ideal\ncalibration: {percentile: 20}\n", "calibration.percentile: 20 is not a percentile in [50, 100]"),
    ("photoncc_profile: 1\nname: mine\narchitecture: incoherent\nbank: {banks: 4, rings: 4}\n",
     "missing required key 'precision'"),
])
def test_profile_errors_name_the_key_and_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as e:
        load_profile(path)
    assert str(e.value) == f"{path}: {message}"


def test_quantised_program_holds_integer_codes_in_range_and_adc_ranges(digits):
    program = compile_model(DIGITS, load_profile("mrr-incoherent-8b"), CALIBRATION, (0.0, 16.0))
    banks = [i for i in program.instructions if i["op"] == "Bank"]
    assert banks
    for inst in banks:
        codes = program.tensors[inst["inputs"][1]]
        assert codes.dtype == np.uint8 and inst["attrs"]["weight_bits"] == 8
        adc = program.tensors[inst["inputs"][5]]
        assert adc.shape[-1] == 2 and (adc[..., 1] > adc[..., 0]).all()
        assert codes.shape[3:] == (12, 12)


def test_noise_is_seeded_and_noiseless_is_deterministic(digits):
    feeds, _ = digits
    program = compile_model(DIGITS, load_profile("mrr-incoherent-8b"), CALIBRATION, (0.0, 16.0))
    a = Simulator(program, seed=3).run_batches(feeds)["probabilities"]
    b = Simulator(program, seed=3).run_batches(feeds)["probabilities"]
    c = Simulator(program, seed=4).run_batches(feeds)["probabilities"]
    q1 = Simulator(program, seed=3, noiseless=True).run_batches(feeds)["probabilities"]
    q2 = Simulator(program, seed=9, noiseless=True).run_batches(feeds)["probabilities"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(q1, q2)
    assert not np.array_equal(a, q1)


def top1(ref, dev):
    return float(np.mean(ref.argmax(1) == dev.argmax(1)))


def test_balanced_banks_hold_signed_weights_and_keep_the_classifier(digits):
    feeds, _ = digits
    ref = run_onnxruntime(DIGITS, feeds)[0]["probabilities"]
    program = compile_model(DIGITS, load_profile("mrr-balanced-8b"), CALIBRATION, (0.0, 16.0))
    codes = [program.tensors[i["inputs"][1]] for i in program.instructions if i["op"] == "Bank"]
    assert all(c.dtype == np.int8 for c in codes) and min(int(c.min()) for c in codes) < 0
    dev = Simulator(program, seed=0).run_batches(feeds)["probabilities"]
    assert top1(ref, dev) >= 0.97


def test_lower_precision_degrades_measurably(digits):
    feeds, _ = digits
    ref = run_onnxruntime(DIGITS, feeds)[0]["probabilities"]
    good = compile_model(DIGITS, load_profile("mrr-balanced-8b"), CALIBRATION, (0.0, 16.0))
    harsh = compile_model(DIGITS, load_profile("harsh-4b"), CALIBRATION, (0.0, 16.0))
    assert top1(ref, Simulator(harsh, seed=0).run_batches(feeds)["probabilities"]) < \
        top1(ref, Simulator(good, seed=0).run_batches(feeds)["probabilities"]) - 0.1


def test_photonic_sigmoid_runs_sigmoid_and_tanh_optically_and_exactly(tmp_path, digits):
    feeds, _ = digits
    profile = load_profile(write(tmp_path, "extends: ideal\nname: ideal-sigmoid\nactivation: {kind: photonic_sigmoid}\n"))
    program = compile_model(SIGMOID, profile, CALIBRATION, (0.0, 16.0))
    placed = [(i["op"], i["placement"]) for i in program.instructions]
    assert placed.count(("PhotonicSigmoid", "optical")) == 2
    assert not {"Sigmoid", "Tanh"} & {op for op, _ in placed}
    ref = run_onnxruntime(SIGMOID, feeds)[0]["probabilities"]
    dev = Simulator(program).run_batches(feeds)["probabilities"]
    assert np.abs(dev - ref).max() / np.ptp(ref) <= 1e-4  # the mapping is exact


def test_photonic_sigmoid_profile_keeps_sigmoid_electronic_when_profile_has_none(digits):
    program = compile_model(SIGMOID, load_profile("ideal"), CALIBRATION, (0.0, 16.0))
    placed = {i["op"]: i["placement"] for i in program.instructions}
    assert placed["Sigmoid"] == "electronic" and placed["Tanh"] == "electronic"
    assert "PhotonicSigmoid" not in placed


def run_cli(args, capsys):
    from photoncc.cli import main
    code = main(args)
    return code, capsys.readouterr()


def verify_args(profile, tmp_path, *extra):
    return ["verify", DIGITS, "-p", profile, "--calibration", CALIBRATION,
            "--inputs", os.path.join(DATA, "digits_test.npz"), "--json", str(tmp_path / "r.json"), *extra]


def test_noisy_tier_passes_an_8_bit_device_with_a_statistical_verdict(tmp_path, capsys):
    import json
    code, out = run_cli(verify_args("mrr-incoherent-8b", tmp_path, "--trials", "3"), capsys)
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0, out.out
    assert report["tier"] == "noisy" and report["trials"] == 3
    (probs,) = report["outputs"]
    assert probs["top1_lower_bound"] <= probs["top1_agreement"] and probs["top1_lower_bound"] >= 0.98
    assert len(report["accuracy"]["device_per_trial"]) == 3
    assert abs(report["accuracy"]["device"] - report["accuracy"]["model"]) <= 0.01  # within one point
    assert [layer["sqnr_db"] > 10 for layer in report["layers"]] == [True, True, True]
    assert "lower 95% confidence bound" in out.out


def test_noiseless_flag_judges_at_the_quantised_tier(tmp_path, capsys):
    import json
    code, out = run_cli(verify_args("mrr-balanced-8b", tmp_path, "--noiseless"), capsys)
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and report["tier"] == "quantised" and report["trials"] == 1
    assert report["thresholds"]["rtol"] == 4 * 3 * 2.0 ** -8  # auto: 4 steps of 8 bits per optical layer


def test_the_harsh_profile_fails_verify_with_exit_1(tmp_path, capsys):
    import json
    code, out = run_cli(verify_args("harsh-4b", tmp_path, "--trials", "2"), capsys)
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 1 and not report["passed"]
    assert report["outputs"][0]["top1_lower_bound"] < 0.98
    assert "FAIL: outputs differ beyond the thresholds" in out.out


def test_quantised_conv_reads_do_not_depend_on_the_block_size(monkeypatch):
    """A quantised CNN's tile reads, formed a block of output rows at a time (memory bounded):
    blocks of one row give the same outputs as the default blocks."""
    import photoncc.sim.rings as simulator
    feeds = load_npz(os.path.join(DATA, "torch_legacy_cnn.npz"))
    program = compile_model(os.path.join(DATA, "torch_legacy_cnn.onnx"), load_profile("mrr-incoherent-8b"),
                            calibration=feeds)
    whole = Simulator(program, noiseless=True).run(feeds)["logits"]
    monkeypatch.setattr(simulator, "READ_BLOCK", 1)
    blocks = Simulator(program, noiseless=True).run(feeds)["logits"]
    np.testing.assert_allclose(blocks, whole, rtol=0, atol=1e-5 * np.ptp(whole))


def test_gaussian_noise_has_the_normal_distribution():
    """The simulator's Box-Muller draws: mean, sigma, two-sided tail shares at 1, 2 and 3 sigma
    (normal: 31.73 %, 4.550 %, 0.270 %), no correlation between the cos and sin halves, an odd
    count, and the same draws again for the same seed."""
    z = gaussian(np.random.default_rng(7), (1_000_001,), 0.5).astype(np.float64) / 0.5
    assert z.dtype == np.float64 and z.shape == (1_000_001,)
    assert abs(z.mean()) < 0.005 and abs(z.std() - 1) < 0.005
    for k, share in ((1, 0.3173), (2, 0.0455), (3, 0.0027)):
        assert abs(np.mean(np.abs(z) > k) - share) < 4 * np.sqrt(share * (1 - share) / z.size)
    half = z.size // 2
    assert abs(np.corrcoef(z[:half], z[half:2 * half])[0, 1]) < 0.005
    assert abs(np.corrcoef(z[:half] ** 2, z[half:2 * half] ** 2)[0, 1]) < 0.005  # independent, not only uncorrelated
    assert np.array_equal(gaussian(np.random.default_rng(7), (3, 5)), gaussian(np.random.default_rng(7), (3, 5)))


@pytest.mark.parametrize("threads", [2, 3])
def test_noise_and_crosstalk_do_not_depend_on_how_many_threads_share_them(monkeypatch, threads):
    """The normals are drawn in a fixed number of streams (a large draw) and the crosstalk is split
    over threads (cpu.threaded) only elementwise: the same seed gives the same bits on a
    machine with any number of cores."""
    from photoncc import cpu as kernels
    from photoncc.devices.rings import apply_crosstalk
    from photoncc.sim.noise import STREAM_PAIRS
    tiles = np.random.default_rng(1).random((2, 3, 5, 4, 7), dtype=np.float32)
    shapes = [(1001, 3), (STREAM_PAIRS + 7, 3)]  # one stream; STREAMS streams
    monkeypatch.setattr(kernels, "THREADS", 1)
    one = [gaussian(np.random.default_rng(7), shape, 0.5) for shape in shapes], apply_crosstalk(tiles, 0.01)
    monkeypatch.setattr(kernels, "THREADS", threads)
    monkeypatch.setattr(kernels, "THREADED", 1)
    many = [gaussian(np.random.default_rng(7), shape, 0.5) for shape in shapes], apply_crosstalk(tiles, 0.01)
    for got, want in zip(many[0], one[0]):
        np.testing.assert_array_equal(got, want)
        assert np.std(got) == pytest.approx(0.5, rel=0.05)
    np.testing.assert_array_equal(many[1], one[1])
    ring = tiles[1, 2, 3, 1]  # ring i gets c x its two neighbours (one at either end of the bank)
    np.testing.assert_allclose(many[1][1, 2, 3, 1], ring + 0.01 * (np.r_[ring[1:], 0] + np.r_[0, ring[:-1]]), rtol=1e-6)


def test_per_read_simulation_does_not_depend_on_the_threads(digits, monkeypatch):
    """The tile reads' RIN and ADC conversion are split over threads along the positions, and the
    direct form's modulators and DACs (the statistical model) over the samples: seed for seed the
    same bits with one thread or three (the profile has RIN and detector noise)."""
    from photoncc import cpu as kernels
    feeds, _ = digits
    program = compile_model(DIGITS, load_profile("mrr-incoherent-8b"), CALIBRATION)
    models = ("per-read", "statistical")
    one = [Simulator(program, seed=2, noise_model=m).run(feeds)["probabilities"] for m in models]
    monkeypatch.setattr(kernels, "THREADS", 3)
    monkeypatch.setattr(kernels, "THREADED", 1)
    for model, want in zip(models, one):
        np.testing.assert_array_equal(Simulator(program, seed=2, noise_model=model).run(feeds)["probabilities"], want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_device_weights_keep_the_dtype_they_are_loaded_in(dtype):
    """Decoded codes, crosstalk and programming error in the dtype asked for: float64 for the
    per-read model's tile reads (a float32 sum there would round reads far above an ADC step),
    float32 for the direct form; clipped to a ring's [0, 1]."""
    from photoncc.devices.rings import apply_crosstalk, realised_weights
    from photoncc.sim.noise import programming_error
    profile = load_profile("mrr-incoherent-8b")
    tiles = np.random.default_rng(2).integers(0, 256, (1, 2, 3, 4, 5)).astype(np.uint8)
    error = programming_error(np.random.default_rng(1), tiles.shape, profile)
    got = realised_weights(tiles, {"weight_bits": 8}, profile, dtype, error)
    noise = profile["noise"]
    coupled = apply_crosstalk(tiles.astype(dtype) * dtype(1 / 255), noise["crosstalk"])
    want = np.clip(coupled + gaussian(np.random.default_rng(1), tiles.shape, noise["weight_sigma"]), 0.0, 1.0)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)


def test_the_command_lets_openblas_threads_sleep_unless_the_user_said_otherwise():
    """OpenBLAS reads OPENBLAS_THREAD_TIMEOUT when NumPy loads it: the photoncc command sets a short
    one before NumPy is first imported (its threads spin otherwise, holding the cores cpu.threaded
    needs) and keeps the user's; importing photoncc as a library sets nothing."""
    import subprocess
    import sys
    probe = """if True:
        import builtins, os, sys
        seen, real = [], builtins.__import__
        def spy(name, *args, **kwargs):
            if name == "numpy" and not seen:
                seen.append(os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
            return real(name, *args, **kwargs)
        builtins.__import__ = spy
        sys.argv = ["photoncc", "--version"]
        from photoncc.__main__ import entry
        try:
            entry()
        except SystemExit:
            pass
        print(seen[0])
    """
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}

    def run(code):
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.split()[-1]
    assert run(probe) == "4"
    assert run("import os, photoncc; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))") == "None"
    env["OPENBLAS_THREAD_TIMEOUT"] = "12"
    assert run(probe) == "12"


def test_run_batches_keeps_inner_values_for_the_first_samples_only(digits):
    """``keep_samples``: the kept layers' values of the first samples (from the batches that hold
    them, cut to size) equal those batches' runs; the outputs stay whole, also when kept."""
    feeds, _ = digits
    program = compile_model(DIGITS, load_profile("ideal"), CALIBRATION)
    banks = [i["outputs"][0] for i in program.instructions if i["op"] == "Bank"]
    out = Simulator(program).run_batches(feeds, batch_size=7, keep=banks, keep_samples=10)
    parts = [Simulator(program).run({k: v[s:s + 7] for k, v in feeds.items()}, keep=banks) for s in (0, 7)]
    first = {name: np.concatenate([p[name] for p in parts])[:10] for name in banks}
    whole = Simulator(program).run_batches(feeds, batch_size=7)
    for name in banks:
        want = whole[name] if name in whole else first[name]
        np.testing.assert_array_equal(out[name], want)
        assert len(out[name]) == (len(feeds["input"]) if name in whole else 10)
    np.testing.assert_array_equal(out["probabilities"], whole["probabilities"])


def test_layer_metrics_are_the_float64_formulas():
    """verify's per-layer SQNR and relative error: 10 log10(sum ref^2 / sum (dev - ref)^2) and
    max |dev - ref| / range(ref), in float64, for a channel-last device value (as the simulator
    keeps them); equal values are exact."""
    from photoncc.verify import _layer_metrics
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((4, 5, 6, 7)).astype(np.float32)
    dev = np.moveaxis(np.ascontiguousarray(np.moveaxis(ref + rng.normal(0, 0.01, ref.shape).astype(np.float32), 1, -1)), -1, 1)
    r64, d64 = ref.astype(np.float64), dev.astype(np.float64)
    got = _layer_metrics("x", ref, dev)
    assert got["sqnr_db"] == round(10 * np.log10(np.sum(r64 ** 2) / np.sum((d64 - r64) ** 2)), 2)
    assert got["relative_error"] == pytest.approx(np.abs(d64 - r64).max() / np.ptp(r64), rel=1e-12)
    assert not got["exact"]
    assert _layer_metrics("x", ref, ref.copy()) == {"name": "x", "sqnr_db": None, "exact": True, "relative_error": 0.0}


def test_wilson_lower_bound_matches_the_textbook_value():
    from photoncc.verify import wilson_lower
    # 95 successes of 100, one-sided 95 % (z = 1.6449): (0.95 + z^2/200 - z sqrt(0.0475/100 + z^2/40000))
    # / (1 + z^2/100) = 0.90084
    assert abs(wilson_lower(95, 100, 0.95) - 0.90084) < 1e-4
    assert wilson_lower(100, 100, 0.95) < 1.0 and wilson_lower(0, 10, 0.95) == 0.0


def test_percentile_calibration_clips_the_outliers_and_reports_it():
    full = compile_model(DIGITS, load_profile("mrr-incoherent-8b"), CALIBRATION)
    trimmed = compile_model(DIGITS, load_profile("mrr-incoherent-8b"), CALIBRATION, percentile=99.0)
    assert all(layer["clipped_fraction"] == 0 for layer in full.manifest["report"]["layers"])
    clipped = [layer["clipped_fraction"] for layer in trimmed.manifest["report"]["layers"]]
    assert all(0 < c <= 0.03 for c in clipped)  # about 1 % per side, per channel
    widths = [(layer["alpha"][1], other["alpha"][1]) for layer, other in
              zip(trimmed.manifest["report"]["layers"], full.manifest["report"]["layers"])]
    assert all(t < f for t, f in widths)


def test_compile_report_estimates_follow_the_profile_figures():
    program = compile_model(DIGITS, load_profile("mrr-incoherent-8b"), CALIBRATION)
    report = program.manifest["report"]
    timing = load_profile("mrr-incoherent-8b")["timing"]
    for layer in report["layers"]:
        expected = layer["tiles"] * timing["reprogram_us"] + layer["passes"] / (timing["clock_ghz"] * 1e3)
        assert abs(layer["latency_us"] - expected) < 1e-6
        assert layer["sqnr_db"] is not None and layer["sqnr_db"] > 15  # 8 bits: tens of dB
        assert layer["rings_used"] <= layer["tiles"] * layer["ring_count"]
    assert abs(report["latency_us"] - sum(layer["latency_us"] for layer in report["layers"])) < 1e-3
    assert [a["placement"] for a in report["activations"]] == ["electronic", "electronic"]


# ------------------------------------------------------------------ the statistical noise model

def _one_layer(tmp_path, kind: str) -> tuple[str, dict]:
    """A single optical layer with signed random weights and non-negative inputs: a Gemm 48 -> 16, a
    3x3 Conv 4 -> 8 channels on 10x10 images or a 3x3x3 Conv 4 -> 8 on 6x6x6 volumes (both padded),
    and 300 samples."""
    from onnx import helper as oh
    from helpers import make_model, save, vinfo
    rng = np.random.default_rng(5)
    if kind == "gemm":
        w, b = rng.normal(0, 0.3, (16, 48)).astype(np.float32), rng.normal(0, 0.1, 16).astype(np.float32)
        node = oh.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
        shape, out = [None, 48], [None, 16]
    else:
        nd, size = (2, 10) if kind == "conv" else (3, 6)
        w = rng.normal(0, 0.3, (8, 4) + (3,) * nd).astype(np.float32)
        b = rng.normal(0, 0.1, 8).astype(np.float32)
        node = oh.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1] * (2 * nd))
        shape, out = [None, 4] + [size] * nd, [None, 8] + [size] * nd
    model = make_model([node], [vinfo("x", shape)], [vinfo("y", out)], [("w", w), ("b", b)])
    feeds = {"x": rng.uniform(0, 1, [300] + shape[1:]).astype(np.float32)}
    return str(save(model, tmp_path, f"{kind}.onnx")), feeds


@pytest.mark.parametrize("kind", ["gemm", "conv", "conv3d"])
@pytest.mark.parametrize("noise", ["detector_sigma: 0.01, rin_sigma: 0.0", "detector_sigma: 0.002, rin_sigma: 0.05"])
def test_statistical_noise_has_the_per_read_models_error(tmp_path, kind, noise):
    """Detector noise and ADC rounding, or mostly laser RIN, on a dense, 2-D or 3-D layer: the
    statistical model's outputs err from the model as much as the per-read model's: the mean square
    error against onnxruntime agrees within 15 % (the noise dominates it: without it the error is
    several times smaller), and the mean error (bias) stays small for both. (RIN agreed only after ADC ranges left room for it: the
    photodetector of the constant bias carrier saturated and dropped its RIN, a 2-3x gap.)"""
    path, feeds = _one_layer(tmp_path, kind)
    profile = load_profile(write(tmp_path, "extends: mrr-incoherent-8b\nnoise: {weight_sigma: 0.0, crosstalk: 0.0, "
                                           f"{noise}}}\ncalibration: {{headroom: 0.3}}\n"))
    program = compile_model(path, profile, calibration=feeds)
    reference = run_onnxruntime(path, feeds)[0]["y"].astype(np.float64)
    error = {model: np.stack([Simulator(program, seed=s, noise_model=model).run(feeds)["y"] - reference
                              for s in range(3)]) for model in ("per-read", "statistical")}
    quiet = Simulator(program, noiseless=True).run(feeds)["y"] - reference
    mse = {model: float(np.mean(e ** 2)) for model, e in error.items()}
    assert 0.85 < mse["statistical"] / mse["per-read"] < 1.15, mse
    assert np.mean(quiet ** 2) < mse["per-read"] / 3, (np.mean(quiet ** 2), mse)
    scale = np.sqrt(mse["per-read"])
    for model, e in error.items():
        assert abs(float(e.mean())) < 0.1 * scale, (model, float(e.mean()), scale)


@pytest.mark.parametrize("kind", ["gemm", "conv"])
@pytest.mark.parametrize("ranges", ["calibrated", "declared"])
def test_adc_ranges_leave_room_for_static_errors_so_the_noise_is_not_clipped_away(tmp_path, kind, ranges):
    """ADC ranges are measured on noiseless reads (calibrated) or bound from the input ranges
    (declared, no calibration data), but the device's rings carry crosstalk and a programming error:
    a photodetector whose reads never vary (the complement channels of inputs that are always dark,
    the bias carrier) or sit at the bound would saturate, swallowing its noise. With ranges that
    leave room for those errors, the per-read outputs vary from seed to seed as much as the
    statistical model, which never clips, says: within 10 % (without the room: 0.73-0.81x calibrated
    on mrr-incoherent-8b with dark inputs, 0.74-0.87x declared on harsh-4b)."""
    path, feeds = _one_layer(tmp_path, kind)
    if ranges == "calibrated":
        feeds["x"][:, ::2] = 0.0
        program = compile_model(path, load_profile("mrr-incoherent-8b"), calibration=feeds)
    else:
        program = compile_model(path, load_profile("harsh-4b"), input_range=(0.0, 1.0))
    spread = {model: float(np.stack([Simulator(program, seed=s, noise_model=model).run(feeds)["y"]
                                     for s in range(4)]).std(axis=0).mean()) for model in ("per-read", "statistical")}
    assert 0.9 < spread["per-read"] / spread["statistical"] < 1.1, spread


def test_statistical_noise_is_seeded_and_only_used_where_the_noise_dithers_the_adc(tmp_path, digits):
    """Same seed, same outputs; another seed, other outputs; every layer of an 8-bit profile with
    detector noise of 0.51 ADC steps runs statistically, while a profile whose detector noise is
    under half a step (rounding would not be random) keeps the per-read model, seed for seed."""
    feeds, _ = digits
    program = compile_model(DIGITS, load_profile("mrr-incoherent-8b"), CALIBRATION)
    a = Simulator(program, seed=3, noise_model="statistical")
    b = Simulator(program, seed=3, noise_model="statistical").run(feeds)["probabilities"]
    c = Simulator(program, seed=4, noise_model="statistical").run(feeds)["probabilities"]
    np.testing.assert_array_equal(a.run(feeds)["probabilities"], b)
    assert not np.array_equal(b, c)
    assert len(a.statistical) == 3
    quiet = load_profile(write(tmp_path, "extends: mrr-incoherent-8b\nnoise: {detector_sigma: 0.001}\n"))
    program = compile_model(DIGITS, quiet, CALIBRATION)
    stat = Simulator(program, seed=3, noise_model="statistical")
    assert stat.statistical == []
    np.testing.assert_array_equal(stat.run(feeds)["probabilities"],
                                  Simulator(program, seed=3).run(feeds)["probabilities"])
    with pytest.raises(ValueError, match="noise model 'exact'"):
        Simulator(program, noise_model="exact")


def test_statistical_runs_check_the_known_answer_of_their_own_form(tmp_path):
    """A program for a profile the statistical model covers also records the outputs of that
    model's noiseless form, its layers unquantised: the same as the program compiled without ADCs
    runs noiselessly, not the per-read test's ADC-quantised outputs. A statistical run checks those
    (a change to them fails it, not a per-read run, and the other way round); a program recorded
    without them (older photoncc) is checked per read; a profile the model does not cover records
    none."""
    from photoncc.errors import ProgramError
    from photoncc.program import Program
    program = compile_model(DIGITS, load_profile("mrr-incoherent-8b"), CALIBRATION)
    kat, t = program.manifest["kat"], program.tensors
    feeds = {name: t[ref] for name, ref in kat["inputs"].items()}
    stat, quantised = t[kat["statistical"]["probabilities"]], t[kat["outputs"]["probabilities"]]
    assert not np.array_equal(stat, quantised)
    no_adc = load_profile(write(tmp_path, "extends: mrr-incoherent-8b\nprecision: {output_bits: null}\n"))
    unquantised = Simulator(compile_model(DIGITS, no_adc, CALIBRATION), noiseless=True).run(feeds)["probabilities"]
    np.testing.assert_allclose(stat, unquantised, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(Simulator(program, noiseless=True, noise_model="statistical").run(feeds)["probabilities"], stat)

    def changed(key):
        return program.with_tensor(kat[key]["probabilities"], t[kat[key]["probabilities"]] * np.float32(0.5))
    for key, fails, passes in (("statistical", "statistical", "per-read"), ("outputs", "per-read", "statistical")):
        Simulator(changed(key), seed=1, noise_model=passes).selftest()
        with pytest.raises(ProgramError, match="known-answer test"):
            Simulator(changed(key), seed=1, noise_model=fails).selftest()
    old = changed("outputs")
    old = Program({**old.manifest, "kat": {k: v for k, v in kat.items() if k != "statistical"}}, old.tensors)
    with pytest.raises(ProgramError, match="known-answer test"):
        Simulator(old, seed=1, noise_model="statistical").selftest()
    quiet = load_profile(write(tmp_path, "extends: mrr-incoherent-8b\nnoise: {detector_sigma: 0.001}\n"))
    assert "statistical" not in compile_model(DIGITS, quiet, CALIBRATION).manifest["kat"]


def test_known_answer_checks_the_final_optical_layers_that_a_saturated_softmax_hides(monkeypatch):
    """The digits classifier is sure of its first calibration sample (probability 1.0), here the only
    known-answer sample: moving 29 % of the ring codes by one step changes its logits by 3.5 % of
    their range but its output by 5e-8, far inside the test's 1e-5, so checking outputs alone passes
    such a program. The test also records
    the final optical layer (the logits) and checks it, in both noise models' forms."""
    import photoncc.report
    from photoncc.errors import ProgramError
    monkeypatch.setattr(photoncc.report, "ERROR_READS", 1)  # the report's SQNR, and so the test, on one sample
    program = compile_model(DIGITS, load_profile("mrr-incoherent-8b"), CALIBRATION)
    kat, t = program.manifest["kat"], program.tensors
    logits = [i["outputs"][0] for i in program.instructions if i["op"] == "Bank"][-1]
    assert list(kat["layers"]) == [logits] and list(kat["statistical_layers"]) == [logits]
    Simulator(program, noise_model="statistical").selftest()
    Simulator(program).selftest()
    rng, edited = np.random.default_rng(0), program
    for inst in (i for i in program.instructions if i["op"] == "Bank"):
        name = inst["inputs"][1]  # the ring codes: +-1 code step on 29 % of the rings
        edited = edited.with_tensor(name, np.clip(t[name] + np.round(rng.normal(0, 0.6, t[name].shape)), 0, 255).astype(t[name].dtype))
    feeds = {name: t[ref] for name, ref in kat["inputs"].items()}
    probabilities = Simulator(edited, noiseless=True).run(feeds)["probabilities"]
    assert np.abs(probabilities - t[kat["outputs"]["probabilities"]]).max() < 1e-5  # the outputs alone pass
    for model in ("per-read", "statistical"):
        with pytest.raises(ProgramError, match=f"layer value {logits!r} differs"):
            Simulator(edited, noise_model=model).selftest()
    changed = program.with_tensor(kat["statistical_layers"][logits], t[kat["statistical_layers"][logits]] + np.float32(1))
    Simulator(changed).selftest()  # each form checks its own record
    with pytest.raises(ProgramError, match="known-answer test failed: layer value"):
        Simulator(changed, noise_model="statistical").selftest()


def test_final_banks_are_the_optical_layers_just_before_the_outputs():
    from photoncc.emit import final_banks

    def inst(op, inputs, output):
        return {"op": op, "name": output, "inputs": inputs, "outputs": [output]}
    program = [inst("Bank", ["x"], "a"), inst("Relu", ["a"], "r"), inst("Bank", ["r"], "b"),
               inst("Softmax", ["b"], "out1"), inst("Bank", ["r"], "c"), inst("Bank", ["x"], "d"),
               inst("Add", ["c", "d"], "s"), inst("Relu", ["s"], "out3")]
    assert final_banks(program, ["out1", "b"]) == []                 # a Bank that is an output is checked as one
    assert final_banks(program, ["out1"]) == ["b"]
    assert final_banks(program, ["out1", "out3"]) == ["b", "c", "d"]  # through every electronic op, in program order


@pytest.mark.parametrize("weight_sigma", [0.05, 0.0])
def test_a_checked_statistical_device_tests_its_noiseless_twin_loaded_with_it(tmp_path, monkeypatch, digits,
                                                                             weight_sigma):
    """``check=``: the known-answer test runs on the device's noiseless twin built from the weights
    the device decoded (no bank loaded twice), without drawing from the device's noise: the same
    outputs as an unchecked device of the same seed. The twin has no programming error (else
    the test would fail) and still catches a changed answer."""
    from photoncc.errors import ProgramError
    profile = load_profile(write(tmp_path, f"extends: mrr-incoherent-8b\nnoise: {{weight_sigma: {weight_sigma}}}\n"))
    program = compile_model(DIGITS, profile, CALIBRATION)
    feeds, _ = digits
    loads = []
    load = RingBanks.load
    monkeypatch.setattr(RingBanks, "load", lambda self, *a: loads.append(1) or load(self, *a))
    checked = Simulator(program, seed=5, noise_model="statistical", check="p.pcc")
    assert len(loads) == 3 and checked.banks.twin is None  # three banks, loaded once; the twin is let go
    np.testing.assert_array_equal(checked.run(feeds)["probabilities"],
                                  Simulator(program, seed=5, noise_model="statistical").run(feeds)["probabilities"])
    kat = program.manifest["kat"]["statistical"]["probabilities"]
    changed = program.with_tensor(kat, program.tensors[kat] * np.float32(0.5))
    with pytest.raises(ProgramError, match="p.pcc: known-answer test failed"):
        Simulator(changed, seed=5, noise_model="statistical", check="p.pcc")


def test_verify_with_the_statistical_noise_model(tmp_path, capsys):
    """The noisy tier with --noise-model statistical: passes the 8-bit device like the per-read
    model, fails the harsh one, and says which model it used (text and JSON)."""
    import json
    code, out = run_cli(verify_args("mrr-incoherent-8b", tmp_path, "--trials", "3", "--noise-model", "statistical"),
                        capsys)
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0, out.out
    assert report["noise_model"] == "statistical" and "(statistical noise model)" in out.out
    assert abs(report["accuracy"]["device"] - report["accuracy"]["model"]) <= 0.01
    code, out = run_cli(verify_args("harsh-4b", tmp_path, "--trials", "2", "--noise-model", "statistical"), capsys)
    assert code == 1, out.out
    code, out = run_cli(verify_args("mrr-incoherent-8b", tmp_path, "--noiseless"), capsys)
    assert json.loads((tmp_path / "r.json").read_text())["noise_model"] is None


def test_fine_adc_on_a_tile_that_always_reads_zero_gives_finite_outputs(tmp_path):
    """A 16-bit ADC on a tile whose calibration reads were all zero has a range of about 1e-35:
    its code step must not overflow (it did in float32: inf x 0 = NaN in every output it fed)."""
    path, feeds = _one_layer(tmp_path, "gemm")
    profile = load_profile(write(tmp_path, "extends: mrr-incoherent-8b\nprecision: {output_bits: 16}\n"
                                           "noise: {weight_sigma: 0.0, crosstalk: 0.0}\n"))
    program = compile_model(path, profile, calibration=feeds)
    bank = next(i for i in program.instructions if i["op"] == "Bank")
    adc = program.tensors[bank["inputs"][5]]
    assert (adc[..., 1] - adc[..., 0]).min() < 1e-30  # the degenerate range is there
    for noiseless in (True, False):
        assert np.isfinite(Simulator(program, seed=1, noiseless=noiseless).run(feeds)["y"]).all()


def test_simulate_command_takes_the_noise_model(tmp_path, capsys):
    """``photoncc simulate --noise-model statistical``: seeded like per-read, other outputs than
    per-read with the same seed; an unknown model is a one-line error with exit 2."""
    program = tmp_path / "d.pcc"
    assert run_cli(["compile", DIGITS, "-p", "mrr-incoherent-8b", "--calibration", CALIBRATION, "-o", str(program)],
                   capsys)[0] == 0
    inputs = os.path.join(DATA, "digits_test.npz")
    outputs = {}
    for name, model in (("a", "statistical"), ("b", "statistical"), ("c", "per-read")):
        path = tmp_path / f"{name}.npz"
        code, _ = run_cli(["simulate", str(program), "--inputs", inputs, "-o", str(path), "--noise-model", model],
                          capsys)
        assert code == 0
        outputs[name] = np.load(path)["probabilities"]
    np.testing.assert_array_equal(outputs["a"], outputs["b"])
    assert not np.array_equal(outputs["a"], outputs["c"])
    code, out = run_cli(["simulate", str(program), "--inputs", inputs, "-o", str(tmp_path / "x.npz"),
                         "--noise-model", "exact"], capsys)
    assert code == 2 and not (tmp_path / "x.npz").exists()
    assert out.err.strip().count("\n") == 0 and "'--noise-model'" in out.err


@pytest.mark.parametrize("kind", ["gemm", "conv"])
def test_adc_saturation_is_counted_per_layer_in_per_read_runs(tmp_path, capsys, kind):
    """A read more than half a code past either end of its ADC's range is saturated: none on the
    calibration samples noiseless, and almost none (under 1e-5: the ranges hold ERROR_SIGMAS = 4
    standard deviations of the read noise beyond them) with noise; many on inputs three
    times larger; the known-answer run is not counted; the statistical model draws no reads and
    counts none (verify reports null). simulate warns per layer, verify lists them."""
    path, feeds = _one_layer(tmp_path, kind)
    np.savez(tmp_path / "big.npz", x=feeds["x"][:40] * 3)
    program = compile_model(path, load_profile("mrr-incoherent-8b"), calibration=feeds)
    layer = [i["name"] for i in program.instructions if i["op"] == "Bank"][0]
    for noiseless in (True, False):
        device = Simulator(program, seed=0, noiseless=noiseless)
        device.run(feeds)
        saturated = device.adc_saturated_fraction()
        assert set(saturated) == {layer} and saturated[layer] <= (0.0 if noiseless else 1e-5)
    quiet = Simulator(program, noiseless=True)
    quiet.run({"x": feeds["x"][:40] * 3})
    quiet.selftest()  # runs on this device itself (noiseless), and leaves no counts behind
    assert quiet.adc_saturated_fraction() == {}
    device = Simulator(program, seed=0)
    device.run({"x": feeds["x"][:40] * 3})
    assert device.adc_saturated_fraction()[layer] > 0.05
    statistical = Simulator(program, seed=0, noise_model="statistical")
    statistical.run({"x": feeds["x"][:40] * 3})
    assert statistical.statistical == [layer] and statistical.adc_saturated_fraction() == {}
    program.write(tmp_path / "p.pcc")
    args = [str(tmp_path / "p.pcc"), "--model", path, "--inputs", str(tmp_path / "big.npz")]
    code, out = run_cli(["simulate", args[0], "--inputs", args[-1], "-o", str(tmp_path / "o.npz"),
                         "--noise-model", "per-read"], capsys)
    assert code == 0 and f"warning: layer {layer!r}: " in out.err and "of its ADC reads were outside" in out.err
    code, out = run_cli(["verify", *args, "--trials", "1", "--noise-model", "per-read", "--json",
                         str(tmp_path / "r.json")], capsys)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["adc_saturated_fraction"][layer] == pytest.approx(device.adc_saturated_fraction()[layer], rel=0.2)
    assert f"saturated: layer {layer!r}" in out.out
    run_cli(["verify", *args, "--trials", "1", "--json", str(tmp_path / "s.json")], capsys)  # the default model
    assert json.loads((tmp_path / "s.json").read_text())["adc_saturated_fraction"] is None


def test_per_read_adc_follows_the_formula_of_the_program_format(tmp_path):
    """The per-read model's tile reads against the format's definition, written out plainly: partial
    sums of the realised weights over the DAC's powers, each clipped to its ADC range and rounded to
    one of 2^b levels, then gain x the sum over tiles - shift + offset (the simulator folds the ADC's
    map into its product; any slip in that shows here as whole codes)."""
    from onnx import helper as oh
    from helpers import make_model, save, vinfo
    from photoncc.program import levels
    from photoncc.devices.rings import realised_weights
    rng = np.random.default_rng(3)
    w, b = rng.normal(0, 0.3, (30, 40)).astype(np.float32), rng.normal(0, 0.1, 30).astype(np.float32)
    model = make_model([oh.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)], [vinfo("x", [None, 40])],
                       [vinfo("y", [None, 30])], [("w", w), ("b", b)])
    x = rng.uniform(0, 1, (64, 40)).astype(np.float32)
    program = compile_model(str(save(model, tmp_path, "g.onnx")), load_profile("mrr-incoherent-8b"),
                            calibration={"x": x[:32]})
    inst = next(i for i in program.instructions if i["op"] == "Bank")
    t = program.tensors
    gain, lo, alpha, adc, offset = (t[n].astype(np.float64) for n in inst["inputs"][2:7])
    a, profile = inst["attrs"], program.manifest["profile"]
    weights = realised_weights(t[inst["inputs"][1]], a, profile, np.float64)[0]  # codes -> (R, Q, B, C)
    r, q, banks, c = weights.shape
    step = alpha[0] / levels(a["input_bits"])
    u = np.minimum(np.round(np.clip(x - lo[0], 0, alpha[0]) / step) * step, alpha[0])
    v = np.zeros((len(x), q * c))
    v[:, :40], v[:, 40:80], v[:, 80] = u, alpha[0] - u, a["carrier"]
    partial = np.einsum("rqbc,nqc->nrqb", weights, v.reshape(len(x), q, c))
    low, high = adc[0, ..., 0], adc[0, ..., 1]                               # (R, Q, B)
    top = levels(a["output_bits"])
    codes = np.round(np.clip((partial - low) / (high - low) * top, 0, top))
    read = (low + codes * (high - low) / top).sum(axis=2).reshape(len(x), r * banks)[:, :30]
    want = read * gain[0] - a["shift"] + offset[0]
    got = Simulator(program, noiseless=True).run({"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("budget, samples", [(1 << 40, 4), (1, 1)])
def test_compile_report_sqnr_runs_as_many_samples_as_the_read_budget_allows(monkeypatch, budget, samples):
    """The report's per-layer SQNR simulates every tile read: on at most ERROR_SAMPLES calibration
    samples, fewer when their reads pass ERROR_READS, and never none. Those samples are the
    known-answer test's inputs, whose noiseless per-read run gives the device's values: the SQNR is
    that of a fresh run of the program on them against the model."""
    import photoncc.report as report
    monkeypatch.setattr(report, "ERROR_READS", budget)
    feeds = load_npz(CALIBRATION)
    program = compile_model(DIGITS, load_profile("mrr-incoherent-8b"), CALIBRATION)
    kat = {name: program.tensors[ref] for name, ref in program.manifest["kat"]["inputs"].items()}
    assert {name: len(value) for name, value in kat.items()} == {"pixels": samples}
    np.testing.assert_array_equal(kat["pixels"], feeds["pixels"][:samples])
    layers = {i["outputs"][0]: i["name"] for i in program.instructions if i["op"] == "Bank"}
    device = Simulator(program, noiseless=True).run(kat, keep=list(layers))
    want, _ = run_onnxruntime(DIGITS, kat, extra_outputs=list(layers))
    assert set(layers) <= set(want)
    sqnr = {layer["name"]: layer["sqnr_db"] for layer in program.manifest["report"]["layers"]}
    for value, name in layers.items():
        if value in want:
            error = np.sum((device[value] - want[value]) ** 2)
            assert sqnr[name] == pytest.approx(10 * np.log10(np.sum(want[value] ** 2) / error), abs=0.01)
    assert all(layer["sqnr_db"] > 20 for layer in program.manifest["report"]["layers"])


@pytest.mark.parametrize("model", ["digits_mlp", "torch_legacy_cnn"])
def test_adc_ranges_hold_the_calibration_reads_of_every_layer(model):
    """Every layer's ADC ranges are measured on the partial sums of the model's own values at its
    input: the noiseless device, run on the calibration samples, saturates (almost) none of its
    reads in any layer (the device's values differ from the model's by the quantisation error of
    the layers before: 0.4 % of the CNN's last layer's reads) and every layer keeps its SQNR. They
    were once measured on the interpreter's reading of the quantised graph, which ignores the
    crosstalk the codes compensate: 3 % of the digits MLP's last layer's reads saturated, 41 % of
    the CNN's (SQNR 30 dB instead of 42), and on ResNet-18 up to 79 % (SQNR 0.1 dB)."""
    calibration = CALIBRATION if model == "digits_mlp" else os.path.join(DATA, f"{model}.npz")
    feeds = {k: v for k, v in load_npz(calibration).items() if k != "label"}
    program = compile_model(os.path.join(DATA, f"{model}.onnx"), load_profile("mrr-incoherent-8b"),
                            calibration=feeds)
    layers = [i["name"] for i in program.instructions if i["op"] == "Bank"]
    assert len(layers) >= 3
    device = Simulator(program, noiseless=True)
    device.run(feeds)
    saturated = device.adc_saturated_fraction()
    assert set(saturated) == set(layers) and max(saturated.values()) < 0.01, saturated
    sqnr = {layer["name"]: layer["sqnr_db"] for layer in program.manifest["report"]["layers"]}
    assert min(sqnr.values()) > 30, sqnr


@pytest.mark.parametrize("profile", ["ideal", "mrr-incoherent-8b", "mrr-balanced-8b"])
@pytest.mark.parametrize("noise_model", ["per-read", "statistical"])
def test_a_bank_loaded_a_block_of_tile_rows_at_a_time_runs_as_one_loaded_whole(profile, noise_model, digits,
                                                                               monkeypatch):
    """A bank's weights are loaded a block of tile rows at a time: the tile reads' float64 weights
    (crosstalk, programming error, the ADC's map), or the direct form with the statistical model's
    read-noise constants and the self-test's noiseless twin. One tile row per block must give the
    same outputs, bit for bit, with the same seed (the programming errors are drawn whole, never
    per block), and the same known-answer test."""
    from photoncc.sim import rings as simulator

    program = compile_model(DIGITS, load_profile(profile), CALIBRATION)
    feeds = {k: v[:8] for k, v in digits[0].items()}
    whole = Simulator(program, seed=3, noise_model=noise_model, check="digits.pcc").run(feeds)
    monkeypatch.setattr(simulator, "LOAD_BLOCK", 1)
    blocked = Simulator(program, seed=3, noise_model=noise_model, check="digits.pcc").run(feeds)
    for name in whole:
        np.testing.assert_array_equal(blocked[name], whole[name])


def test_a_noisy_per_read_device_runs_its_known_answer_test_before_it_loads(monkeypatch):
    """The known-answer test of a noisy per-read device needs a noiseless device of its own; it is
    loaded, run and freed before the noisy one is loaded, so that the two never hold their tile
    weights at once (VGG-19: 2.3 GB each)."""
    program = compile_model(DIGITS, load_profile("mrr-incoherent-8b"), CALIBRATION)
    loads = []
    original = RingBanks.load
    monkeypatch.setattr(RingBanks, "load",
                        lambda self, inst, tensors: loads.append(self.noiseless) or original(self, inst, tensors))
    Simulator(program, seed=0, check="digits.pcc")
    banks = sum(i["op"] == "Bank" for i in program.instructions)
    assert loads == [True] * banks + [False] * banks


def test_verify_runs_the_known_answer_test_before_its_first_noisy_device_loads(monkeypatch):
    """verify's first trial takes its device from ``known_answer``: the test's noiseless device is
    loaded and freed first; a failed test is a verdict, and the device still comes back."""
    from photoncc.verify import known_answer

    program = compile_model(DIGITS, load_profile("mrr-incoherent-8b"), CALIBRATION)
    loads = []
    original = RingBanks.load
    monkeypatch.setattr(RingBanks, "load",
                        lambda self, inst, tensors: loads.append(self.noiseless) or original(self, inst, tensors))
    device = {"seed": 0, "noiseless": False, "noise_model": "per-read"}
    simulator, verdict = known_answer(program, "digits.pcc", device)
    banks = sum(i["op"] == "Bank" for i in program.instructions)
    assert verdict == "passed" and not simulator.noiseless
    assert loads == [True] * banks + [False] * banks
    bank = [i for i in program.instructions if i["op"] == "Bank"][-1]
    changed = program.with_tensor(bank["inputs"][6], program.tensors[bank["inputs"][6]] + np.float32(1.0))
    simulator, verdict = known_answer(changed, "changed.pcc", device)
    assert verdict.startswith("failed: ") and "differs" in verdict and not simulator.noiseless


def test_verify_frees_each_trials_device_before_it_loads_the_next(digits, monkeypatch):
    """A noisy verify runs several trials, each on a device of its own seed: no two noisy devices
    (their tile weights) are ever held at once."""
    import gc
    import weakref

    from photoncc.verify import thresholds, verify

    program = compile_model(DIGITS, load_profile("mrr-incoherent-8b"), CALIBRATION)
    noisy, most = weakref.WeakSet(), []
    original = RingBanks.load

    def load(self, inst, tensors):  # self: the device's banks, held by its Simulator alone
        if not self.noiseless:
            noisy.add(self)
            gc.collect()
            most.append(len(noisy))
        return original(self, inst, tensors)
    monkeypatch.setattr(RingBanks, "load", load)
    limits = {**thresholds(program.manifest["profile"], "noisy", program), "trials": 3}
    feeds = {k: v[:16] for k, v in digits[0].items()}
    report = verify(program, DIGITS, feeds, tier="noisy", limits=limits)
    assert report["trials"] == 3 and report["known_answer_test"] == "passed"
    assert most and max(most) == 1


def test_the_simulator_holds_only_the_values_a_later_instruction_reads(tmp_path):
    """A batch keeps each value until the last instruction that reads it, then drops it: along a
    Gemm and 8 Tanh on 4 MB values, once the Gemm's weights and input are read, no more than the
    value read and the value made are held (traced by tracemalloc, which counts NumPy's data),
    where keeping every value would hold 9; the outputs are still the float model's."""
    import tracemalloc

    from onnx import helper as oh
    from helpers import make_model, save, vinfo

    rng = np.random.default_rng(2)
    w = rng.normal(0, 0.3, (256, 8)).astype(np.float32)
    nodes = [oh.make_node("Gemm", ["x", "w"], ["v0"], transB=1)] + \
        [oh.make_node("Tanh", [f"v{i}"], [f"v{i + 1}"]) for i in range(8)]
    path = save(make_model(nodes, [vinfo("x", [None, 8])], [vinfo("v8", [None, 256])], [("w", w)]), tmp_path)
    program = compile_model(path, load_profile("ideal"), input_range=(-1.0, 1.0))
    x = rng.uniform(-1, 1, (4096, 8)).astype(np.float32)
    device = Simulator(program)
    value = 4096 * 256 * 4
    held = []
    tracemalloc.start()
    try:
        out = device.run({"x": x}, progress=lambda done, total: held.append(tracemalloc.get_traced_memory()[0]))
    finally:
        tracemalloc.stop()
    assert len(held) == 9 and max(held[1:]) <= 2.5 * value, [h / value for h in held]
    np.testing.assert_allclose(out["v8"], run_onnxruntime(str(path), {"x": x})[0]["v8"], rtol=0, atol=1e-5)


def test_the_simulator_imports_nothing_of_the_compiler():
    """The simulator is an independent account of the device (docs/design.md): importing it loads
    none of the compiler's modules (the IR, the interpreter, the passes, the importer)."""
    import subprocess
    import sys

    code = ("import sys, photoncc.sim, photoncc.sim.rings, photoncc.sim.mzi, photoncc.sim.measure; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('photoncc'))))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())
    assert "photoncc.sim.loop" in loaded and "photoncc.devices.mzi_mesh" in loaded
    # nor the MZI meshes' decomposition, lowering and calibration: it rebuilds meshes from their phases
    compiler = {"photoncc.ir", "photoncc.interp", "photoncc.importer", "photoncc.compiler", "photoncc.emit",
                "photoncc.ranges", "photoncc.report", "photoncc.onnx_load", "photoncc.devices.clements",
                "photoncc.devices.mzi", "photoncc.calibrate"}
    assert not loaded & compiler and not any(m.startswith("photoncc.passes") for m in loaded), loaded


@pytest.mark.parametrize("profile, per_column", [("mrr-incoherent-8b", 2), ("mrr-balanced-8b", 1)])
def test_bank_summary_counts_the_channels_of_the_banks_architecture(profile, per_column):
    """A bank's channels are 2K + 1 on an incoherent bank ([u ; alpha - u ; c]) and K + 1 on a
    balanced one ([u ; c]): the program's bank summary, the compile report and the tiles agree."""
    from photoncc.program import bank_inputs
    program = compile_model(DIGITS, load_profile(profile), CALIBRATION)
    report = {layer["name"]: layer for layer in program.manifest["report"]["layers"]}
    for inst in (i for i in program.instructions if i["op"] == "Bank"):
        named = bank_inputs(inst["inputs"])
        groups, k = program.tensors[named["lo"]].shape
        m = program.tensors[named["gain"]].shape[1]
        summary = inst["bank"]
        assert summary["channels"] == per_column * k + 1 == report[inst["name"]]["matrix"][1] // groups
        assert summary["rings_used"] == groups * m * (per_column * k + 1) == report[inst["name"]]["rings_used"]
        q, rings = program.tensors[named["tiles"]].shape[2], program.tensors[named["tiles"]].shape[4]
        assert (q - 1) * rings < summary["channels"] <= q * rings  # the tiles hold the channels, no more
