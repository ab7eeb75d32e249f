"""Recurrent layers: the ONNX RNN, GRU and LSTM operators, and the electronic op their cells use.

The layers never reach a program: ``passes/lower_recurrent`` unrolls each one into standard ops
(the input products of every time step as one constant-weight MatMul, per step the recurrent
product of the previous state by the constant R, hence a bank per step, the gates electronic).
Their ``onnx`` forms here are reference implementations of the ONNX operators (every attribute:
activations with their alphas and betas, clip, direction, layout, linear_before_reset,
input_forget, peepholes, initial states, sequence_lens), which the interpreter runs before that
pass (type inference at the import, constant folding).

``Blend(a, b, t) = (1 - t) * a + t * b`` is the GRU's state update H = (1 - z) h + z H_prev as one
electronic op, so that the range analysis knows the state stays within the hull of h and H_prev
whenever t lies in [0, 1] (a Sigmoid's output): written as Sub, Mul and Add, interval arithmetic
would widen the state's range by the width of h at every step, and the recurrent bank's input
range (hence its precision on a quantised device) with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import op, register
from .elementwise import elu, hard_sigmoid, leaky_relu, relu, scalar, sigmoid, softplus, softsign, tanh


@dataclass(frozen=True)
class Activation:
    """One of the activation functions an ONNX recurrent layer names: its NumPy form, whether it
    reads an alpha and a beta (consumed in order from ``activation_alpha``/``activation_beta``, as
    onnxruntime does) and their defaults, and the registry op(s) that compute it."""
    function: Callable
    alpha: float | None = None  # default alpha, None: the function reads none
    beta: float | None = None


def _affine(x, alpha, beta):
    return scalar(x, alpha) * x + scalar(x, beta)


def _scaled_tanh(x, alpha, beta):
    return scalar(x, alpha) * tanh(scalar(x, beta) * x)


ACTIVATIONS = {  # lower-case ONNX names (onnxruntime compares them so)
    "sigmoid": Activation(lambda x, a, b: sigmoid(x)),
    "tanh": Activation(lambda x, a, b: tanh(x)),
    "relu": Activation(lambda x, a, b: relu(x)),
    "leakyrelu": Activation(lambda x, a, b: leaky_relu(x, alpha=a), alpha=0.01),
    "hardsigmoid": Activation(lambda x, a, b: hard_sigmoid(x, alpha=a, beta=b), alpha=0.2, beta=0.5),
    "elu": Activation(lambda x, a, b: elu(x, alpha=a), alpha=1.0),
    "softsign": Activation(lambda x, a, b: softsign(x)),
    "softplus": Activation(lambda x, a, b: softplus(x)),
    "affine": Activation(_affine, alpha=1.0, beta=0.0),
    "scaledtanh": Activation(_scaled_tanh, alpha=1.0, beta=1.0),
}
DEFAULT_ACTIVATIONS = {"RNN": ("Tanh",), "GRU": ("Sigmoid", "Tanh"), "LSTM": ("Sigmoid", "Tanh", "Tanh")}
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}


def activations(node) -> list[tuple[str, float, float]]:
    """The node's activation functions, ``per direction x directions`` of (lower-case name, alpha,
    beta): the alphas and betas consumed in order by the functions that read them, defaults after
    them. A list written for one direction of a bidirectional layer serves both. Raises
    ValueError for a function photoncc does not know."""
    a = node.attrs
    directions = 2 if a.get("direction", "forward") == "bidirectional" else 1
    names = list(a.get("activations") or DEFAULT_ACTIVATIONS[node.op] * directions)
    per = len(DEFAULT_ACTIVATIONS[node.op])
    if len(names) == per and directions == 2:
        names = names * 2
    if len(names) != per * directions:
        raise ValueError(f"{len(names)} activations for {directions} direction(s) of {per} function(s)")
    alphas, betas = list(a.get("activation_alpha") or ()), list(a.get("activation_beta") or ())
    found = []
    for name in names:
        key = str(name).lower()
        if key not in ACTIVATIONS:
            raise ValueError(f"activation {name!r} is not supported (supported: {', '.join(sorted(ACTIVATIONS))})")
        fn = ACTIVATIONS[key]
        alpha = (alphas.pop(0) if alphas else fn.alpha) if fn.alpha is not None else 0.0
        beta = (betas.pop(0) if betas else fn.beta) if fn.beta is not None else 0.0
        found.append((key, float(alpha), float(beta)))
    return found


def apply(spec: tuple[str, float, float], x: np.ndarray) -> np.ndarray:
    name, alpha, beta = spec
    return ACTIVATIONS[name].function(x, alpha, beta)


# ------------------------------------------------------------------------------ reference forms

def _recurrent_onnx(node, x, w, r, b=None, lengths=None, h0=None, c0=None, p=None):
    """The ONNX RNN, GRU or LSTM operator on ``x``; returns (Y, Y_h) or (Y, Y_h, Y_c) in the
    node's layout (0: Y (T, D, N, H), states (D, N, H); 1: Y (N, T, D, H), states (N, D, H)).
    Steps at or past a sample's ``sequence_lens`` leave its state unchanged and give zeros in Y."""
    a, kind = node.attrs, node.op
    layout = int(a.get("layout", 0))
    if layout:
        x = np.swapaxes(x, 0, 1)
        h0 = None if h0 is None else np.swapaxes(h0, 0, 1)
        c0 = None if c0 is None else np.swapaxes(c0, 0, 1)
    steps, batch = x.shape[:2]
    directions, hidden = w.shape[0], int(a["hidden_size"])
    gates = GATES[kind]
    dtype = x.dtype
    b = np.zeros((directions, 2 * gates * hidden), dtype) if b is None else b
    h0 = np.zeros((directions, batch, hidden), dtype) if h0 is None else h0
    c0 = np.zeros((directions, batch, hidden), dtype) if c0 is None else c0
    p = np.zeros((directions, 3 * hidden), dtype) if p is None else p
    lengths = np.full(batch, steps) if lengths is None else np.resize(np.asarray(lengths).reshape(-1), batch)
    acts = activations(node)
    per = len(DEFAULT_ACTIVATIONS[kind])
    clip = a.get("clip")
    y = np.zeros((steps, directions, batch, hidden), dtype)
    final_h, final_c = np.array(h0, dtype), np.array(c0, dtype)
    for d in range(directions):
        reverse = a.get("direction", "forward") == "reverse" or d == 1
        f = acts[d * per:(d + 1) * per]
        wb, rb = b[d, :gates * hidden], b[d, gates * hidden:]
        h, c = np.array(h0[d], dtype), np.array(c0[d], dtype)
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            valid = (t < lengths)[:, None]
            xw = x[t] @ w[d].T + wb
            hr = h @ r[d].T + rb
            if kind == "RNN":
                new_h, new_c = apply(f[0], _clip(xw + hr, clip)), c
            elif kind == "GRU":
                new_h, new_c = _gru_cell(node, f, xw, hr, h, r[d], rb, hidden, clip), c
            else:
                new_h, new_c = _lstm_cell(node, f, xw + hr, c, p[d], hidden, clip)
            h, c = np.where(valid, new_h, h), np.where(valid, new_c, c)
            y[t, d] = np.where(valid, new_h, 0)
        final_h[d], final_c[d] = h, c
    if layout:
        y, final_h, final_c = np.transpose(y, (2, 0, 1, 3)), np.swapaxes(final_h, 0, 1), np.swapaxes(final_c, 0, 1)
    outputs = (y, final_h) if kind != "LSTM" else (y, final_h, final_c)
    return tuple(o.astype(dtype, copy=False) for o in outputs)


def _clip(x, clip):
    return x if clip is None else np.clip(x, -clip, clip)


def _gru_cell(node, f, xw, hr, h, r, rb, hidden, clip):
    """z = f(.), r = f(.); n = g(x Wh + (r h) Rh + Rbh + Wbh), or with linear_before_reset
    g(x Wh + r (h Rh + Rbh) + Wbh); H = (1 - z) n + z h."""
    z = apply(f[0], _clip(xw[:, :hidden] + hr[:, :hidden], clip))
    reset = apply(f[0], _clip(xw[:, hidden:2 * hidden] + hr[:, hidden:2 * hidden], clip))
    if node.attrs.get("linear_before_reset", 0):
        pre = xw[:, 2 * hidden:] + reset * hr[:, 2 * hidden:]
    else:
        pre = xw[:, 2 * hidden:] + (reset * h) @ r[2 * hidden:].T + rb[2 * hidden:]
    n = apply(f[1], _clip(pre, clip))
    return blend(n, h, z)


def _lstm_cell(node, f, pre, c, p, hidden, clip):
    """i = f(. + Pi C), f = f(. + Pf C) (1 - i with input_forget), c~ = g(.), C = f C + i c~,
    o = f(. + Po C_new), H = o h(C); ``pre`` holds the gates in ONNX order i, o, f, c."""
    gi, go, gf, gc = (pre[:, k * hidden:(k + 1) * hidden] for k in range(4))
    pi, po, pf = p[:hidden], p[hidden:2 * hidden], p[2 * hidden:]
    i = apply(f[0], _clip(gi + pi * c, clip))
    forget = 1 - i if node.attrs.get("input_forget", 0) else apply(f[0], _clip(gf + pf * c, clip))
    cell = forget * c + i * apply(f[1], _clip(gc, clip))
    o = apply(f[0], _clip(go + po * cell, clip))
    return o * apply(f[2], cell), cell


def _blend_interval(node, lows, highs):
    """The hull of ``a``'s and ``b``'s bounds, when ``t`` lies in [0, 1]; else None."""
    (alo, blo, tlo), (ahi, bhi, thi) = lows, highs
    if np.min(tlo) < 0 or np.max(thi) > 1:
        return None
    shape = np.broadcast_shapes(np.shape(alo), np.shape(blo), np.shape(tlo))
    return (np.broadcast_to(np.minimum(alo, blo), shape).astype(np.float64),
            np.broadcast_to(np.maximum(ahi, bhi), shape).astype(np.float64))


@op("Blend", "electronic", interval=_blend_interval, onnx_op=False,
    note="IR: (1 - t) a + t b, a GRU's state update (its range stays within those of a and b)")
def blend(a, b, t):
    """``(1 - t) * a + t * b`` in ``a``'s dtype."""
    a = np.asarray(a)
    return (scalar(a, 1) - t) * a + t * b


_NOTE = "unrolled: input products of all steps as one bank, the recurrent product a bank per step, gates electronic"
register("RNN", "optical", onnx=_recurrent_onnx, note=_NOTE)
register("GRU", "optical", onnx=_recurrent_onnx, note=_NOTE)
register("LSTM", "optical", onnx=_recurrent_onnx, note=_NOTE)
