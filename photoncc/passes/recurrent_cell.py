"""recurrent_cell: one time step of an unrolled RNN, GRU or LSTM, written as standard ops.

``Cell.step`` writes one time step of one direction from the step's input products gx (X_t W^T
and the biases, computed for every step at once by ``lower_recurrent``) and the previous state,
with f, g, h the layer's activations (ONNX's defaults: Tanh for an RNN; Sigmoid, Tanh, Tanh):

* RNN: H_t = f(gx + H_{t-1} R^T);
* GRU: z, r = f(gx_zr + H_{t-1} R_zr^T); n = g(gx_n + (r H_{t-1}) R_h^T), or with
  linear_before_reset g(gx_n + r (H_{t-1} R_h^T + Rb_h)); H_t = Blend(n, H_{t-1}, z)
  = (1 - z) n + z H_{t-1};
* LSTM: with gx + H_{t-1} R^T split into (i, o, f, c): I = f(i + P_i C_{t-1}),
  F = f(f + P_f C_{t-1}) (input_forget: F = 1 - I), C_t = F C_{t-1} + I g(c),
  H_t = f(o + P_o C_t) h(C_t) (peepholes P absent: 0).

Each H_{t-1} R^T is a MatMul by the constant R (a bank); the gates are electronic (Split,
activations, Mul, Add, Clip). A value is a name, ("const", array) or None (zero), so that a
constant or zero initial state folds: the first step's recurrent product is a constant (of a zero
state: the bias alone) and needs no bank.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ir import Node

if TYPE_CHECKING:
    from .lower_recurrent import Builder


class Cell:
    """Writes one time step of a layer (per direction: its R, recurrent bias and peepholes)."""

    def __init__(self, b: Builder, n: Node, dtype, hidden: int, clip, acts, per: int):
        self.b, self.n, self.dtype, self.hidden, self.clip, self.acts, self.per = b, n, dtype, hidden, clip, acts, per

    def direction(self, d: int, r, r_bias, peep):
        self.f = self.acts[d * self.per:(d + 1) * self.per]
        self.r, self.r_bias, self.peep = r, r_bias, peep
        self.weights = {}  # one constant per recurrent matrix and direction (lower_linear copies it per bank)
        self.d = d

    # -- helpers writing one op each; a value is a name, ("const", array) or None (zero)
    def _shape(self, width):
        return (1, int(width))

    def _value(self, v, width, name):
        if isinstance(v, tuple):
            return self.b.const(name, np.broadcast_to(v[1], (1, width)).astype(self.dtype))
        return v

    def add(self, x, y, width, name):
        if y is None:
            return x
        if x is None:
            return y
        if isinstance(x, tuple) and isinstance(y, tuple):
            return ("const", x[1] + y[1])
        x, y = (self._value(v, width, f"{name}.c") for v in (x, y))
        return self.b.op("Add", (x, y), self._shape(width), self.dtype, name)

    def mul(self, x, y, width, name):
        if x is None or y is None:
            return None
        if isinstance(x, tuple) and isinstance(y, tuple):
            return ("const", x[1] * y[1])
        x, y = (self._value(v, width, f"{name}.c") for v in (x, y))
        return self.b.op("Mul", (x, y), self._shape(width), self.dtype, name)

    def act(self, spec, x, width, name, clip=True):
        """The activation ``spec`` (ops.recurrent.activations) of ``x``, after the layer's clip
        (``clip``: the gates' inputs are clipped, an LSTM's cell state before h is not, as in
        onnxruntime)."""
        x = self._value(x, width, f"{name}.c") if x is not None else self._value(("const", np.zeros(width)), width,
                                                                                  f"{name}.c")
        shape, dtype = self._shape(width), self.dtype
        if self.clip is not None and clip:
            x = self.b.op("Clip", (x,), shape, dtype, f"{name}/clip", {"min": -float(self.clip), "max": float(self.clip)})
        kind, alpha, beta = spec
        simple = {"sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}), "relu": ("Relu", {}),
                  "leakyrelu": ("LeakyRelu", {"alpha": alpha}), "hardsigmoid": ("HardSigmoid", {"alpha": alpha, "beta": beta}),
                  "elu": ("Elu", {"alpha": alpha}), "softsign": ("Softsign", {}), "softplus": ("Softplus", {})}
        if kind in simple:
            op, attrs = simple[kind]
            return self.b.op(op, (x,), shape, dtype, name, attrs)
        scale = self.b.const(f"{name}.alpha", np.array(alpha, dtype))
        if kind == "affine":
            y = self.b.op("Mul", (x, scale), shape, dtype, f"{name}/scale")
            return self.b.op("Add", (y, self.b.const(f"{name}.beta", np.array(beta, dtype))), shape, dtype, name)
        y = self.b.op("Mul", (x, self.b.const(f"{name}.beta", np.array(beta, dtype))), shape, dtype, f"{name}/inner")
        y = self.b.op("Tanh", (y,), shape, dtype, f"{name}/tanh")
        return self.b.op("Mul", (y, scale), shape, dtype, name)

    def product(self, h, rows: slice, bias, name):
        """h R[rows]^T + bias, with h a value (a MatMul by a constant: a bank), a constant or
        None (zero); returns (value, number of banks)."""
        r = self.r[rows]
        width = r.shape[0]
        if h is None:
            return (("const", bias) if np.any(bias) else None), 0
        if isinstance(h, tuple):
            return ("const", h[1] @ r.T + bias), 0
        key = (rows.start, rows.stop)
        if key not in self.weights:
            self.weights[key] = self.b.const(f"{self.n.name}.R{self.d}_{rows.start}", r.T.astype(self.dtype))
        y = self.b.op("MatMul", (h, self.weights[key]), self._shape(width), self.dtype, f"{name}/recurrent")
        return (self.add(y, ("const", bias), width, f"{name}/recurrent_bias") if np.any(bias) else y), 1

    def split(self, v, sizes, name):
        if isinstance(v, tuple) or v is None:
            edges = np.cumsum([0] + list(sizes))
            return [None if v is None else ("const", v[1][..., s:e]) for s, e in zip(edges[:-1], edges[1:])]
        return self.b.split(v, sizes, self.dtype, name)

    def step(self, kind, lbr, gx, h, c, name):
        """One time step: (new h, new c, banks written)."""
        H = self.hidden
        if kind == "RNN":
            hr, used = self.product(h, slice(0, H), self.r_bias[:H], name)
            return self.act(self.f[0], self.add(gx[0], hr, H, f"{name}/pre"), H, f"{name}/h"), c, used
        if kind == "GRU":
            gx_zr, gx_h = gx
            hr, used = self.product(h, slice(0, 2 * H) if not lbr else slice(0, 3 * H),
                                    self.r_bias[:2 * H] if not lbr else self.r_bias, name)
            hr_zr, hr_h = self.split(hr, [2 * H, H], f"{name}/recurrent_parts") if lbr else (hr, None)
            # split before the activation: each gate an activation's own output, so that its bounds
            # ([0, 1] for a Sigmoid) reach Blend and the next step's recurrent bank gets a guaranteed range
            z_pre, r_pre = self.b.split(self.add(gx_zr, hr_zr, 2 * H, f"{name}/zr_pre"), [H, H], self.dtype,
                                        f"{name}/z_r")
            z, reset = self.act(self.f[0], z_pre, H, f"{name}/z"), self.act(self.f[0], r_pre, H, f"{name}/r")
            if lbr:
                pre = self.add(gx_h, self.mul(reset, hr_h, H, f"{name}/reset"), H, f"{name}/n_pre")
            else:
                rh = self.mul(reset, h, H, f"{name}/reset")
                candidate, more = self.product(rh, slice(2 * H, 3 * H), self.r_bias[2 * H:], f"{name}/n")
                used += more
                pre = self.add(gx_h, candidate, H, f"{name}/n_pre")
            new = self.act(self.f[1], pre, H, f"{name}/n")
            previous = self._value(h if h is not None else ("const", np.zeros(H)), H, f"{name}/h0")
            return self.b.op("Blend", (new, previous, z), (1, H), self.dtype, f"{name}/h"), c, used
        return self._lstm(gx[0], h, c, name)

    def _lstm(self, gx, h, c, name):
        H, f, peep = self.hidden, self.f, self.peep
        hr, used = self.product(h, slice(0, 4 * H), self.r_bias, name)
        pre = self.add(gx, hr, 4 * H, f"{name}/pre")
        coupled = bool(self.n.attrs.get("input_forget", 0))
        if peep is None and not coupled:  # each gate an activation's own output (its bounds reach H = o h(C))
            gi, go, gf, cg = self.split(pre, [H, H, H, H], f"{name}/gates")
            i, o, forget = (self.act(f[0], v, H, f"{name}/{k}") for v, k in ((gi, "i"), (go, "o"), (gf, "f")))
        else:
            gi, go, gf, cg = self.split(pre, [H, H, H, H], f"{name}/gates")
            pi, po, pf = (None,) * 3 if peep is None else (("const", peep[k * H:(k + 1) * H]) for k in range(3))
            i = self.act(f[0], self.add(gi, self.mul(c, pi, H, f"{name}/peep_i"), H, f"{name}/i_pre"), H, f"{name}/i")
            if coupled:
                forget = self.b.op("Sub", (self.b.const(f"{name}/one", np.ones((1, H), self.dtype)), i), (1, H),
                                   self.dtype, f"{name}/f")
            else:
                forget = self.act(f[0], self.add(gf, self.mul(c, pf, H, f"{name}/peep_f"), H, f"{name}/f_pre"), H,
                                  f"{name}/f")
            o = None
        candidate = self.act(f[1], cg, H, f"{name}/g")
        cell = self.add(self.mul(forget, c, H, f"{name}/keep"), self.mul(i, candidate, H, f"{name}/write"), H,
                        f"{name}/c")
        if o is None:
            po = None if peep is None else ("const", peep[H:2 * H])
            o = self.act(f[0], self.add(go, self.mul(cell, po, H, f"{name}/peep_o"), H, f"{name}/o_pre"), H,
                         f"{name}/o")
        out = self.b.op("Mul", (o, self.act(f[2], cell, H, f"{name}/h_act", clip=False)), (1, H), self.dtype,
                        f"{name}/h")
        return out, cell, used
