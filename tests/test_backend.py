"""Where the per-read physics runs (``--device``, photoncc/sim/backend.py).

No GPU is needed here: ``--device cuda`` is exercised with a stand-in for CuPy (NumPy behind
CuPy's names), which runs the GPU path's code (its own random streams, chunks one after another,
host/device copies) on the CPU. The last test runs on a real GPU when CuPy finds one, else it is
skipped and says so."""
from __future__ import annotations

import json
import os
import sys
import types

import numpy as np
import pytest

from helpers import run_cli
from photoncc import cpu
from photoncc.compiler import compile_model
from photoncc.data import load_npz
from photoncc.profile import load_profile
from photoncc.sim import Simulator
from photoncc.sim.backend import backend

DATA = os.path.join(os.path.dirname(__file__), "data")
MODEL = os.path.join(DATA, "digits_mlp.onnx")


@pytest.fixture(scope="module")
def digits():
    feeds = load_npz(os.path.join(DATA, "digits_test.npz"))
    return feeds, feeds.pop("label")


@pytest.fixture(scope="module")
def program(digits):
    calibration = load_npz(os.path.join(DATA, "digits_calibration.npz"))
    calibration.pop("label", None)
    return compile_model(MODEL, load_profile("mrr-incoherent-8b"), calibration)


@pytest.fixture
def fake_cupy(monkeypatch):
    """CuPy's names over NumPy, with one 'GPU'."""
    module = types.ModuleType("cupy")
    module.__getattr__ = lambda name: getattr(np, name)
    module.asnumpy = np.asarray
    module.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    monkeypatch.setitem(sys.modules, "cupy", module)
    return module


def accuracy(values, labels):
    return float(np.mean(next(iter(values.values())).argmax(axis=1) == labels))


@pytest.mark.parametrize("command", ["simulate", "verify", "sweep"])
def test_cuda_without_cupy_is_a_one_line_error_naming_the_extra(command, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    out = tmp_path / "out.npz"
    test = os.path.join(DATA, "digits_test.npz")
    argv = {"simulate": ["simulate", tmp_path / "missing.pcc", "--inputs", test, "-o", out],
            "verify": ["verify", MODEL, "-p", "mrr-incoherent-8b", "--inputs", test, "--json", out],
            "sweep": ["sweep", MODEL, "--vary", "bank.rings=8", "--calibration", test, "--inputs", test,
                      "-o", out]}[command]
    code, stdout, stderr = run_cli(capsys, *argv, "--device", "cuda")
    assert code == 2
    assert stderr.strip().count("\n") == 0 and 'pip install "photoncc[gpu]"' in stderr, stderr
    assert not out.exists()


def test_cuda_without_a_gpu_is_a_one_line_error(fake_cupy, capsys):
    fake_cupy.cuda.runtime.getDeviceCount = lambda: 0
    with pytest.raises(Exception, match="finds no NVIDIA GPU"):
        backend("cuda")


def test_the_gpu_path_without_noise_gives_the_cpu_outputs_bit_for_bit(fake_cupy, program, digits):
    feeds, _ = digits
    cpu_values = Simulator(program, noiseless=True, noise_model="per-read").run_batches(feeds)
    gpu_values = Simulator(program, noiseless=True, noise_model="per-read", device="cuda").run_batches(feeds)
    for name, value in cpu_values.items():
        assert np.array_equal(value, gpu_values[name]), name


def test_the_gpu_path_draws_its_own_noise_and_agrees_statistically(fake_cupy, program, digits):
    feeds, labels = digits
    cpu_acc, gpu_acc = [], []
    for seed in range(4):
        on_cpu = Simulator(program, seed=seed, noise_model="per-read").run_batches(feeds)
        on_gpu = Simulator(program, seed=seed, noise_model="per-read", device="cuda").run_batches(feeds)
        name = next(iter(on_cpu))
        assert not np.array_equal(on_cpu[name], on_gpu[name])  # other streams: the GPU's sampler ran
        again = Simulator(program, seed=seed, noise_model="per-read", device="cuda").run_batches(feeds)
        assert np.array_equal(again[name], on_gpu[name])  # reproducible for a seed
        cpu_acc.append(accuracy(on_cpu, labels))
        gpu_acc.append(accuracy(on_gpu, labels))
    assert abs(np.mean(cpu_acc) - np.mean(gpu_acc)) <= 0.01, (cpu_acc, gpu_acc)


def test_per_read_outputs_do_not_depend_on_how_many_threads_share_the_reads(monkeypatch, program, digits):
    feeds, _ = digits
    runs = []
    for threads in (1, 3):
        monkeypatch.setattr(cpu, "THREADS", threads)
        runs.append(Simulator(program, seed=5, noise_model="per-read").run_batches(feeds, batch_size=64))
    for name, value in runs[0].items():
        assert np.array_equal(value, runs[1][name]), name


def test_verify_on_the_gpu_path_records_the_device(fake_cupy, tmp_path, capsys):
    report = tmp_path / "report.json"
    code, stdout, stderr = run_cli(capsys, "verify", MODEL, "-p", "mrr-incoherent-8b", "--noise-model", "per-read",
                                   "--inputs", os.path.join(DATA, "digits_test.npz"), "--calibration",
                                   os.path.join(DATA, "digits_calibration.npz"), "--device", "cuda",
                                   "--json", report)
    assert code in (0, 1), stderr
    assert json.loads(report.read_text())["device"] == "cuda"


def test_on_a_real_gpu_the_per_read_model_agrees_with_the_cpu(program, digits):
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (the optional extra photoncc[gpu])")
    try:
        if not cupy.cuda.runtime.getDeviceCount():
            pytest.skip("CuPy finds no NVIDIA GPU")
    except Exception as e:  # no driver
        pytest.skip(f"CuPy finds no usable NVIDIA GPU ({e})")
    feeds, labels = digits
    exact = Simulator(program, noiseless=True, noise_model="per-read").run_batches(feeds)
    on_gpu = Simulator(program, noiseless=True, noise_model="per-read", device="cuda").run_batches(feeds)
    for name, value in exact.items():
        np.testing.assert_allclose(on_gpu[name], value, rtol=1e-6, atol=1e-6 * float(np.abs(value).max()))
    cpu_acc = np.mean([accuracy(Simulator(program, seed=s, noise_model="per-read").run_batches(feeds), labels)
                       for s in range(4)])
    gpu_acc = np.mean([accuracy(Simulator(program, seed=s, noise_model="per-read", device="cuda").run_batches(feeds),
                                labels) for s in range(4)])
    assert abs(cpu_acc - gpu_acc) <= 0.01
