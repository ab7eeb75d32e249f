"""The optimisers of ``photoncc finetune --optimizer``, each a step p <- p + update(g) on every
trained tensor p with gradient g (steps vectorised over whole tensors).

* ``adam`` (Kingma & Ba): m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
  p <- p - lr m^ / (sqrt(v^) + eps), m^ and v^ bias-corrected; b1 = 0.9, b2 = 0.999, eps = 1e-8.
* ``sgd``: with momentum 0.9, u <- 0.9 u + g, p <- p - lr u.
* ``nnsgd`` and ``csgd`` (Kirtas et al., arXiv 2310.01084): a layer's weights are trained as the
  transmissions of its non-negative form, W = g (Tp - Tn) with Tp, Tn in [0, 1] and g the row
  gains of the split (``devices.incoherent.split_nonnegative``, fixed at the start), the ring
  transmissions [Wp | Wn] themselves. Their gradients are dTp = g dW and dTn = -g dW.
  NNSGD: p <- min(p - lr |p| tanh(lr_in dp), 1), a multiplicative step that never crosses zero
  (each weight keeps its sign); lr_in = 1 / rms(dp) per tensor and step, so that lr alone sets the
  size of the relative step, and the cap at 1 keeps a transmission a transmission.
  CSGD: p <- clip(p - lr dp, 0, 1). Biases (electronic, or a carrier ring's power) take SGD steps.
"""
from __future__ import annotations

import numpy as np

from ..devices.incoherent import split_nonnegative

OPTIMIZERS = ("adam", "sgd", "nnsgd", "csgd")
DEFAULT_LR = {"adam": 3e-3, "sgd": 1e-2, "nnsgd": 1e-2, "csgd": 3e-2}
DFA_LR_SCALE = 1 / 30  # DFA's updates are no gradient: from trained weights, steps this much smaller keep them
BETAS, EPSILON, MOMENTUM = (0.9, 0.999), 1e-8, 0.9


class Optimizer:
    """One of OPTIMIZERS over ``params`` (name -> array); ``weights``: the names trained as
    transmissions by nnsgd and csgd (the Linear layers' weights)."""

    def __init__(self, kind: str, params: dict, lr: float, weights=()):
        assert kind in OPTIMIZERS, kind
        self.kind, self.lr, self.count = kind, lr, 0
        self.state = {name: {} for name in params}
        self.split = {}
        if kind in ("nnsgd", "csgd"):
            for name in weights:
                self.split[name] = _transmissions(params[name])

    def step(self, params: dict, grads: dict) -> dict:
        """The parameters after one step on ``grads`` (None: no gradient reached it)."""
        self.count += 1
        out = dict(params)
        for name, g in grads.items():
            if g is None:
                continue
            g = np.asarray(g, np.float64)
            if name in self.split:
                out[name] = self._transmission_step(name, g).astype(params[name].dtype)
            elif self.kind == "adam":
                out[name] = (params[name] - self._adam(name, g)).astype(params[name].dtype)
            else:
                out[name] = (params[name] - self._momentum(name, g)).astype(params[name].dtype)
        return out

    def _adam(self, name, g):
        s = self.state[name]
        s["m"] = BETAS[0] * s.get("m", 0.0) + (1 - BETAS[0]) * g
        s["v"] = BETAS[1] * s.get("v", 0.0) + (1 - BETAS[1]) * g * g
        m = s["m"] / (1 - BETAS[0] ** self.count)
        v = s["v"] / (1 - BETAS[1] ** self.count)
        return self.lr * m / (np.sqrt(v) + EPSILON)

    def _momentum(self, name, g):
        s = self.state[name]
        s["u"] = MOMENTUM * s.get("u", 0.0) + g
        return self.lr * s["u"]

    def _transmission_step(self, name, g):
        gain, tp, tn = self.split[name]
        for t, dt in ((tp, gain * g), (tn, -gain * g)):
            if self.kind == "nnsgd":
                rms = float(np.sqrt(np.mean(dt * dt)))
                t -= self.lr * np.abs(t) * np.tanh(dt / rms if rms > 0 else dt)
                np.minimum(t, 1.0, out=t)
            else:
                t -= self.lr * dt
                np.clip(t, 0.0, 1.0, out=t)
        return gain * (tp - tn)

    def transmissions(self) -> dict:
        """The transmissions (Tp, Tn) of every layer trained as its non-negative form."""
        return {name: (tp, tn) for name, (_, tp, tn) in self.split.items()}


def _transmissions(w: np.ndarray):
    """(g, Tp, Tn) of weights ``w`` (rows along axis 0), W = g (Tp - Tn): the non-negative split's
    weight columns and row gains (input range and bias play no part in them)."""
    rows = np.asarray(w, np.float64).reshape(1, w.shape[0], -1)
    zeros = np.zeros((1, rows.shape[2]))
    t, gain, _, _ = split_nonnegative(rows, np.zeros((1, rows.shape[1])), zeros, zeros)
    k = rows.shape[2]
    shape = (-1,) + (1,) * (w.ndim - 1)
    return gain[0].reshape(shape), t[0, :, :k].reshape(w.shape).copy(), t[0, :, k:2 * k].reshape(w.shape).copy()
