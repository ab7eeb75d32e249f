"""The device architectures photoncc compiles for, one module each behind one small interface.

An architecture module (``incoherent``, ``balanced``; the profile's ``architecture`` names it)
says how a Linear layer y = W x + b becomes that device's settings:

* ``SIGNED``: whether its weights are signed (a balanced bank) or transmissions in [0, 1];
* ``split(w, b, lo, alpha, dtype, profile)``: the layer's bank form for inputs x in [lo, lo +
  alpha], per group: ring weights T (G, M, J), row gains (G, M) with gain * T exact, and the bank's
  attributes. The ``to_banks`` pass calls it for every Linear;
* ``train_form(w, b, lo, alpha, profile, error, chip, adc)``: the layer as the device runs it
  (codes, crosstalk, programming errors: the effective weights and bias of one signed product,
  and what the read-noise model needs), which fine-tuning's forward uses (``photoncc.train``;
  the ring architectures share ``ring_train``).

What the two ring architectures share lives beside them: ``rings`` (what a ring can hold, how the
chip realises the weights: crosstalk, programming error, power-of-two gains), ``tiles`` (the
B x C tiles of a bank), ``ring_codes`` (quantising weights into codes) and ``ring_adc`` (the
ADC calibration of the tile reads). The device side of a ring bank, realising and reading it, is
the simulator's ``sim.rings``; both sides take a bank's channel layout from
``program.bank_channels``.

An architecture whose layers are not banks provides instead the whole per-layer lowering:

* ``OP``: the IR op (and program instruction) its layers become (``"Mesh"`` for ``mzi``);
* ``lower(w, b, lo, alpha, dtype, profile, chip)``: per group W (G, M, K), b (G, M), lo and alpha
  (G, K) -> (the layer's tensors by name, its attributes, compile facts for the report); ``chip``:
  a measured chip's static errors to program for (``photoncc.chip``), or None.

``mzi`` (coherent Clements meshes) is such an architecture: ``mzi`` lowers a layer (SVD per tile,
the Clements decomposition in ``clements``, error-aware programming), ``mzi_mesh`` is the physics
the compiler and the simulator's ``sim.mzi`` share (an MZI's transfer matrix with its errors, the
mesh layout, phase codes). A new architecture is a module here, an executor in ``sim`` (named in
``ARCHITECTURES``) and its section of the profile schema.
"""
from __future__ import annotations

from importlib import import_module

# the profile's ``architecture`` -> the module of the simulator (photoncc.sim) that executes its banks
ARCHITECTURES = {"incoherent": "rings", "balanced": "rings", "mzi": "mzi"}


def architecture(profile):
    """The module of the profile's architecture."""
    name = profile["architecture"]
    assert name in ARCHITECTURES, name  # the profile's schema allows no other
    return import_module(f"{__name__}.{name}")
