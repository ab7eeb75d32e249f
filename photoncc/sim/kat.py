"""The known-answer test: every program records input samples and what the noiseless device
computed for them at compile time (emit.py); the simulator re-checks them on every load, so that a
program that no longer computes what was compiled (edited weights, a changed simulator) is caught
before it runs.

It compares the outputs and the values of the final optical layers (``kat.layers``, which a
saturated softmax cannot hide). The statistical noise model checks those recorded for its own
noiseless form (``kat.statistical``, ``kat.statistical_layers``: its layers unquantised, one
product per layer instead of every tile read); a program recorded without them is checked per read.
NaN or infinite values must come back at the same places; the rest within ``kat.rtol`` of each
value's scale.
"""
from __future__ import annotations

import copy

import numpy as np

from ..errors import KnownAnswerError

KAT_LAYERS = {"outputs": "layers", "statistical": "statistical_layers"}  # kat key -> its final layers' key


def kat_key(sim) -> str:
    """The known answers this device is checked against: its own noise model's ("statistical"
    when it has statistical layers and the program records them, else "outputs", per read)."""
    return "statistical" if sim.statistical and "statistical" in sim.manifest["kat"] else "outputs"


def kat_device(sim):
    """The device the known-answer test runs on: ``sim`` itself, when it is noiseless and of the
    answers' form; its noiseless twin, loaded with it (``check``); else None: a noiseless device
    of its own."""
    noise = sim.profile["noise"]
    quiet = (sim.noiseless or not any(noise.get(k) for k in ("weight_sigma", "rin_sigma", "detector_sigma", "phase_sigma",
                                                               "splitter_sigma", "loss_sigma_db")))
    quiet = quiet and getattr(sim, "chip", None) is None  # a chip's device is not the nominal one the answers are for
    statistical = kat_key(sim) == "statistical"
    if quiet and statistical == bool(sim.statistical):
        return sim
    if sim.banks.twin and statistical:
        device = copy.copy(sim)
        device.noiseless, device.banks = True, sim.banks.noiseless_twin()
        return device
    return None


def selftest(sim, where: str = "<program>") -> None:
    """Run the program's known-answer test on ``sim``'s noise model, noiseless; raises
    KnownAnswerError naming ``where`` and what differs."""
    kat = sim.manifest["kat"]
    t = sim.program.tensors
    key = kat_key(sim)
    layers = kat.get(KAT_LAYERS[key], {})  # the final optical layers' values
    expected = {**kat[key], **layers}
    device = kat_device(sim) or type(sim)(sim.program, noiseless=True, device=sim.device,
                                          noise_model="statistical" if key == "statistical" else "per-read")
    out = device.run({name: t[ref] for name, ref in kat["inputs"].items()}, keep=list(layers))
    device.banks.clipped, device.banks.saturated = {}, {}  # the test's reads are not the user's
    for name, ref in expected.items():
        what = f"{'layer value' if name in layers else 'output'} {name!r}"
        problem = difference(t[ref], out[name], kat["rtol"])
        if problem:
            raise KnownAnswerError(f"{where}: known-answer test failed: {what} {problem}")


def difference(want: np.ndarray, got: np.ndarray, rtol: float) -> str:
    """How ``got`` differs from the recorded ``want`` ("" when it does not)."""
    if want.shape != got.shape:
        return f"has shape {got.shape}"
    if want.dtype.kind != "f":
        return "" if np.array_equal(want, got) else "differs"
    finite = np.isfinite(want)
    if not np.array_equal(finite, np.isfinite(got)) or not np.array_equal(want[~finite], got[~finite], equal_nan=True):
        return "is NaN or infinite at other places than recorded"
    want, got = want[finite], got[finite]
    scale = max(float(np.ptp(want)), float(np.abs(want).max()), 1e-30) if want.size else 1.0
    err = float(np.abs(got.astype(np.float64) - want).max()) / scale if want.size else 0.0
    return "" if err <= rtol else f"differs by {err:.3g} of its range (allowed {rtol})"
