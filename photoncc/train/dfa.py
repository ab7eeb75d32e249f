"""Direct feedback alignment (``--method dfa``; Nokland 2016, on microring banks Filipovich et al.,
Optica 9(12):1323, 2022).

Backprop sends the output error e = dL/dz back through every layer's weights. DFA sends it to every
hidden layer at once through a fixed random matrix: layer l's error is

    delta_l = (B_l e) * f'(a_l)

with B_l of entries U(-1, 1), drawn once from the seed, and no backward pass through the weights.
In the graph: the input x_j of every optical layer j that follows another one gets the cotangent
B_j e (shaped as x_j), and the reverse sweep carries it back through the electronic ops between
the two layers (the activation's derivative f'(a_l), pooling, reshapes) to layer j - 1's output;
the optical layers pass nothing to their inputs (``tape.backward``'s ``cut``). The layers whose
output reaches the loss without another optical layer get the loss's own gradient.

The product B_j e runs on the profile's device, as the paper runs it on its bank: B_j as an
optical layer (``devices.<arch>.train_form``: codes, crosstalk, a fresh draw of the programming
errors at every step) on the input e / max|e| in [-1, 1] (each sample's error scaled to the
modulators' whole range, the scale restored after the detectors, as the paper scales its noise by
max|e|: the softmax error p - onehot is mostly small, and a coarse DAC over [-1, 1] would round it
to zero), its ADC widths the bound of its partial sums, with the statistical model's read noise.
Only the optical layers' weights and biases are trained.
"""
from __future__ import annotations

import numpy as np

from ..sim.noise import add_read_noise, programming_error
from .surrogate import modulate, noise_constants

FEEDBACK_RANGE = (-1.0, 2.0)  # the softmax error p - onehot lies in [-1, 1]: lo, alpha


class Feedback:
    """The fixed random feedback of every hidden optical layer, computed on the device."""

    def __init__(self, graph, head, surrogate, seed: int):
        producers = graph.producers()
        linear = [n for n in graph.nodes if n.op == "Linear"]
        after = _downstream_of(graph, {n.outputs[0] for n in linear})
        targets = sorted({n.inputs[0] for n in linear if n.inputs[0] in after and n.inputs[0] in producers})
        rng = np.random.default_rng([seed, 4])
        self.shapes = {v: graph.types[v].shape[1:] for v in targets}
        self.matrices = {v: rng.uniform(-1.0, 1.0, (int(np.prod(s)), head.classes)).astype(np.float32)
                         for v, s in self.shapes.items()}
        self.cut = frozenset(n.name for n in linear)
        self.trained = {p for n in linear for p in n.inputs[1:3]}
        self.surrogate, self.classes = surrogate, head.classes

    def seeds(self, error: np.ndarray) -> dict:
        """The cotangent of every hidden layer's input for the output error ``error`` (N, C), in
        the loss's scale (``error`` is dL/dz: (p - y) / N)."""
        n = len(error)
        e = error.astype(np.float64) * n
        scale = np.abs(e).max(axis=1, keepdims=True)
        scale = np.where(scale > 0, scale, 1.0)
        unit = (e / scale).astype(np.float32)  # each sample's error on the modulators' whole range
        return {v: (self.product(b, unit) * (scale / n)).astype(np.float32).reshape((n,) + self.shapes[v])
                for v, b in self.matrices.items()}

    def product(self, b: np.ndarray, e: np.ndarray) -> np.ndarray:
        """B e on the device (module docstring): (N, size)."""
        s = self.surrogate
        lo = np.full((1, self.classes), FEEDBACK_RANGE[0])
        alpha = np.full((1, self.classes), FEEDBACK_RANGE[1])
        profile = s.profile
        error = None
        if profile["noise"]["weight_sigma"] and s.chip is None:
            bank = profile["bank"]
            error = programming_error(s.rng, _tiles_shape(b.shape[0], self.classes, bank, s.arch.SIGNED), profile)
        form = s.arch.train_form(b, np.zeros(len(b)), lo, alpha, profile, error, s.chip)
        eq, _ = modulate(e, lo[0], alpha[0], profile["precision"]["input_bits"], None)
        y = np.ascontiguousarray(eq @ form["weight"].T + form["bias"].astype(np.float32))
        if s.noisy and profile["precision"]["output_bits"] and (profile["noise"]["detector_sigma"] or
                                                               profile["noise"]["rin_sigma"]):
            width = _bound_widths(form, alpha[0], profile["bank"]["rings"])
            noise = noise_constants(form, self.classes, None, width, profile)
            add_read_noise(s.rng, y, eq, {"noise": noise, "lo": lo[0], "alpha": alpha[0]}, None)
        return y

    def restrict(self, grads: dict) -> dict:
        """DFA trains the optical layers alone."""
        return {name: g if name in self.trained else None for name, g in grads.items()}


def _downstream_of(graph, values: set) -> set:
    """The values computed from any of ``values`` (those included)."""
    found = set(values)
    for n in graph.nodes:
        if any(i in found for i in n.inputs):
            found.update(o for o in n.outputs if o)
    return found


def _tiles_shape(m: int, k: int, bank: dict, signed: bool) -> tuple:
    """The tiles (1, R, Q, B, C) of a bank of m rows and k inputs (2k + 1 channels on an incoherent
    bank, k + 1 on a balanced one)."""
    channels = k + 1 if signed else 2 * k + 1
    return (1, -(-m // bank["banks"]), -(-channels // bank["rings"]), bank["banks"], bank["rings"])


def _bound_widths(form: dict, alpha: np.ndarray, rings: int) -> np.ndarray:
    """Each photodetector's ADC width without calibration data: the bound sum_c |T_c| v_max,c of
    its partial sums per tile (G, M, Q), v_max the channels' largest powers."""
    rows = np.abs(form["rows"].astype(np.float64))                      # (G, M, J)
    vmax = np.concatenate([alpha, alpha, [form["attrs"].get("carrier", 1.0)]]) if form["channels"].complement \
        else np.concatenate([alpha, [form["attrs"].get("carrier", 1.0)]])
    tiles = -(-rows.shape[2] // rings)
    padded = np.zeros(rows.shape[:2] + (tiles * rings,))
    padded[..., :rows.shape[2]] = rows * vmax[:rows.shape[2]]
    return np.maximum(padded.reshape(rows.shape[:2] + (tiles, rings)).sum(axis=-1), 1e-12)
