"""Which samples leave the input ranges a program was compiled for, and by how much.

A program is exact only for inputs inside each optical layer's compiled range [lo, lo + alpha]:
a value beyond it saturates its modulator. ``clipped_fraction`` counts such values per layer;
``SampleRanges`` says, per sample, whether any of its values at any optical layer lay outside,
and how far: the distance beyond the range in units of the layer's widest channel range (0.5:
half that width past the end; a channel whose calibration values were all equal has a range of no
width, so the layer's widest is the scale), the worst over every layer, and the layer where it was
worst. ``verify``
uses it to tell the program's error on the samples inside the ranges (its correctness) from the
saturating samples (the data's coverage).

It reads the bank's input exactly as the modulators do (the same slack for float rounding at a
bound as ``rings``), before the bank runs, when the simulator's ``saturation`` is set
(``Simulator.run``): the known-answer test is not counted.
"""
from __future__ import annotations

import numpy as np

from ..program import optical_inputs


class SampleRanges:
    """Per sample of every batch the simulator runs (in order): the worst excess beyond an optical
    layer's range (in units of the layer's widest range) and that layer."""

    def __init__(self, program):
        self.layers = {}
        for inst in program.manifest["instructions"]:
            named = optical_inputs(inst["op"], inst["inputs"]) if inst["op"] in ("Bank", "Mesh") else None
            if named:
                lo = np.asarray(program.tensors[named["lo"]], np.float64)
                alpha = np.asarray(program.tensors[named["alpha"]], np.float64)
                conv = inst["attrs"].get("conv")
                if conv:  # one range per input channel: every kernel offset of a channel has its range
                    taps = int(np.prod(conv["kernel_shape"]))
                    lo, alpha = (v.reshape(v.shape[0], -1, taps)[..., 0].reshape(-1) for v in (lo, alpha))
                else:
                    lo, alpha = lo.reshape(-1), alpha.reshape(-1)
                self.layers[inst["name"]] = (lo, alpha, bool(conv), float(alpha.max(initial=0.0)) or 1.0)
        self.first = next(iter(self.layers), None)
        self.excess: list[np.ndarray] = []   # per batch: (N,) worst excess in range widths (0: inside)
        self.where: list[np.ndarray] = []    # per batch: (N,) index into ``names`` of that layer (-1: none)
        self.names = list(self.layers)

    def observe(self, inst: dict, x: np.ndarray) -> None:
        """The optical instruction ``inst`` is about to read ``x`` (a batch)."""
        name = inst["name"]
        if name not in self.layers:
            return
        lo, alpha, conv, width = self.layers[name]
        n = x.shape[0]
        if name == self.first or not self.excess:
            self.excess.append(np.zeros(n))
            self.where.append(np.full(n, -1))
        if conv:
            shape = (1, -1) + (1,) * (x.ndim - 2)
            lo, alpha = lo.reshape(shape), alpha.reshape(shape)
        slack = 1e-6 * (alpha + np.abs(lo))
        beyond = np.maximum((lo - slack) - x, x - (lo + alpha + slack)) / width
        worst = beyond.reshape(n, -1).max(axis=1, initial=0.0) if beyond.size else np.zeros(n)
        excess, where = self.excess[-1], self.where[-1]
        bigger = worst > excess
        excess[bigger] = worst[bigger]
        where[bigger] = self.names.index(name)

    def samples(self) -> tuple[np.ndarray, list]:
        """(worst excess per sample, over all batches; the layer of it per sample, None if inside)."""
        if not self.excess:
            return np.zeros(0), []
        excess, where = np.concatenate(self.excess), np.concatenate(self.where)
        return excess, [self.names[i] if i >= 0 else None for i in where]
