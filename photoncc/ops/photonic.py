"""The photonic activations, the IR's own ops (no ONNX file may use them): the SOA-based
``PhotonicSigmoid``, which a photonic_sigmoid profile's Sigmoid and Tanh become, and the
``SaturableAbsorber`` of ``photoncc finetune --activation saturable_absorber``
(``train.absorber``), with its probe ``transmission`` and its exact slope as its reverse-mode
rule (``vjp``).
"""
from __future__ import annotations

import numpy as np

from . import monotone, op, saves


@op("PhotonicSigmoid", "optical", activation=True, bounds=lambda a: (a["A1"], a["A2"]), onnx_op=False)
def photonic_sigmoid(x, *, A1, A2, x0, d):
    """SOA-based all-optical sigmoid (Mourgias-Alexandris et al., Opt. Express 27:9620, 2019):
    f(u) = A2 + (A1 - A2) / (1 + exp((u - x0) / d)), with (u - x0) capped at 2."""
    t = np.minimum(x.astype(np.float64) - x0, 2.0) / d
    return (A2 + (A1 - A2) * np.exp(-np.logaddexp(0.0, t))).astype(x.dtype)


def transmission(x, od):
    """The saturable absorber's probe transmission T(z) = exp(-(OD/2) / (1 + z^2)), in float64."""
    z = np.asarray(x, np.float64)
    return np.exp(-(od / 2.0) / (1.0 + z * z))


@saves("inputs")
def _absorber_vjp(node, inputs, outputs, cts):
    """The exact slope g'(z) = [1 + OD z^2 / (1 + z^2)^2] T(z)."""
    z, od = inputs[0].astype(np.float64), node.attrs.get("OD", 10.0)
    slope = (1.0 + od * z * z / (1.0 + z * z) ** 2) * transmission(z, od)
    return ((cts[0] * slope).astype(cts[0].dtype),)


@op("SaturableAbsorber", "optical", activation=True, interval=monotone, vjp=_absorber_vjp, onnx_op=False)
def saturable_absorber(x, *, OD=10.0):  # noqa: N803 - the profile's name
    """The saturable absorber in field form (Spall et al., arXiv 2308.05226), g(z) = z T(z) with
    T(z) = exp(-(OD/2) / (1 + z^2)) (saturation intensity 1), in float64, rounded to x's dtype.
    Optical on a saturable_absorber profile (``map_activations`` finds it written with standard
    operators, as ``photoncc finetune --activation saturable_absorber`` writes it)."""
    return (np.asarray(x, np.float64) * transmission(x, OD)).astype(np.asarray(x).dtype)

