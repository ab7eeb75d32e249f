"""The device in the loop: each optical layer of the trained graph run as the profile's device runs
it, differentiably.

Per epoch (``refresh``), the current weights are compiled for the profile by the compile's own
passes (``to_banks`` .. ``adc_ranges``: the input ranges on the calibration data, the tiles, the
codes, the ADC ranges). The static errors are each ring's programming error N(0, weight_sigma),
drawn anew at every step so that the weights learnt hold on any chip (on the digits MLP on
harsh-4b, 60 epochs: 96.6 % on the device against 95.6 % with one draw per epoch, two seeds each),
or the fixed errors of ``--chip``. Per step, each layer's device form comes from its architecture
(``devices.<arch>.train_form``: bank form, codes, crosstalk, programming errors, one effective
signed product), and the layer runs as the simulator's direct form does:

    x' = DAC(clip(x, lo, lo + alpha)),   y = W_eff x' + b_eff (+ read noise)

with the statistical noise model's read noise (``sim.noise``: one Gaussian per output of the
variance its tile reads add up to: detector noise, ADC rounding, RIN) on the layers that model
covers. Backward (straight-through estimates): the gradient of W is that of W_eff, g^T x'
(quantisation, crosstalk and errors pass it unchanged), of b that of b_eff; the input's is
(g W_eff) where x lies inside [lo, lo + alpha] and 0 where the modulator clipped it; the DAC's
rounding passes it unchanged; noise adds none.

On MZI meshes (``Mesh`` layers) the architecture's ``train_form`` is the compile's lowering of the
current weights for ``--chip`` (or an ideal mesh), realised on that chip or on a chip of the
profile drawn anew each step, as one effective product (no read noise, no ADC, no row gains).

Approximations (docs/cli.md, finetune): input and ADC ranges are held for an epoch while the
weights move; ADC rounding and saturation enter only as the statistical model's
variance (as in the simulator's default model); a photonic activation (``map_activations``) runs
as its electronic twin, which it equals exactly.
"""
from __future__ import annotations

import numpy as np

from .. import chip as chips, devices
from ..compiler import PIPELINE
from ..ops.conv import conv, conv_vjp
from ..passes.context import Context
from ..program import OPTICAL_OPS, bank_inputs, dac_step, mesh_inputs
from ..sim.noise import add_read_noise, programming_error, read_noise_rows, statistical_covers
from .model import TRAIN_STAGE
from .tape import Custom

STAGES = [(name, step) for name, step, _ in PIPELINE[[p[0] for p in PIPELINE].index(TRAIN_STAGE) + 1:]
          if name != "map_activations"]


class Surrogate:
    """The optical layers of ``graph`` on the device of ``profile`` (see the module docstring)."""

    def __init__(self, graph, profile, calibration: dict, rng: np.random.Generator, chip=None, noisy: bool = True):
        self.graph, self.profile, self.calibration, self.chip, self.rng = graph, profile, calibration, chip, rng
        self.arch = devices.architecture(profile)
        self.noisy, self.layers, self.forms, self.version = noisy, {}, {}, 0

    def refresh(self, params: dict) -> None:
        """Compile the current weights (ranges, tiles, codes, ADC ranges); draw the static errors."""
        g = self.graph.replace(consts={**self.graph.consts, **params})
        ctx = Context(self.profile, self.calibration, chip=self.chip)
        for _, step in STAGES:
            g = step(g, ctx)
        for n in g.nodes:
            if n.op not in OPTICAL_OPS:
                continue
            inputs = bank_inputs(n.inputs) if n.op == "Bank" else mesh_inputs(n.inputs)
            named = {k: g.consts[v] for k, v in inputs.items() if v and k != "x"}
            lo, alpha = named["lo"].astype(np.float64), named["alpha"].astype(np.float64)
            conv_geometry = n.attrs.get("conv")
            taps = int(np.prod(conv_geometry["kernel_shape"])) if conv_geometry else 1
            self.layers[n.name] = {
                "lo": lo, "alpha": alpha, "adc": named.get("adc"), "op": n.op,
                "lo_ch": lo.reshape(lo.shape[0], -1, taps)[..., 0].reshape(-1),
                "alpha_ch": alpha.reshape(alpha.shape[0], -1, taps)[..., 0].reshape(-1),
                "statistical": n.op == "Bank" and self.noisy and statistical_covers(n.attrs, self.profile),
                "conv": conv_geometry, "tiles": named["tiles"].shape if n.op == "Bank" else None}
            self.layers[n.name]["error"] = self._draw(self.layers[n.name])
        self.step()

    def _draw(self, layer: dict):
        """A layer's static errors for one step (none with a chip: its errors are fixed): each
        ring's programming error (a bank), or a whole chip of the profile (meshes)."""
        if self.chip is not None:
            return None
        if layer["op"] == "Bank":
            return programming_error(self.rng, layer["tiles"], self.profile) \
                if self.profile["noise"]["weight_sigma"] else None
        return chips.draw(self.profile, int(self.rng.integers(2 ** 31))) if chips.has_static_errors(self.profile) else None

    def step(self) -> None:
        """The weights changed: every layer's device form is formed again when next used, on a new
        draw of its static errors (``_draw``; none with a chip: its errors are fixed)."""
        self.version += 1
        self.forms.clear()
        for s in self.layers.values():
            if s["error"] is not None:
                s["error"] = self._draw(s)

    def custom(self) -> dict:
        """The tape's runners of the optical layers (node name -> ``tape.Custom``)."""
        return {name: Custom(self.forward, self.backward) for name in self.layers}

    def form(self, name: str, w, b) -> dict:
        if name not in self.forms:
            s = self.layers[name]
            form = self.arch.train_form(w, b, s["lo"], s["alpha"], self.profile, s["error"], self.chip, s["adc"])
            if s["statistical"]:
                form["noise"] = noise_constants(form, s["lo_ch"].size // form["gain"].shape[0], s["conv"],
                                                adc_widths(s["adc"], form["gain"].shape[1]), self.profile)
            self.forms[name] = form
        return self.forms[name]

    def forward(self, node, args):
        x, w, b = args
        s, geometry = self.layers[node.name], node.attrs.get("conv")
        form = self.form(node.name, w, b)
        xq, inside = modulate(x, s["lo_ch"], s["alpha_ch"], self.profile["precision"]["input_bits"], geometry)
        y = _product(xq, form["weight"], form["bias"].astype(x.dtype), geometry)
        if "noise" in form:
            u = np.moveaxis(xq, 1, -1) if geometry else xq
            add_read_noise(self.rng, y, u, {"noise": form["noise"], "lo": s["lo_ch"], "alpha": s["alpha_ch"]}, geometry)
        gain = None if form["gain"] is None else form["gain"].reshape(-1)
        return y.astype(x.dtype, copy=False), (xq, inside, form["weight"], w, b, gain, y)

    def backward(self, node, residual, cts):
        """Straight-through gradients (module docstring), plus the gradient of the error's scale:
        every error of the layer (codes, crosstalk, programming errors, read noise) is its row's
        gain g_m times a draw, and g_m is the row's largest weight magnitude, so the row's largest
        weight gets d L / d g_m = sum g * error / g_m (times d g_m / d max|W_m|): the training
        learns to keep rows from growing one large weight, which would raise the row's noise. The
        error is the device's output y less the model's own W x' + b, whose sum against g needs no
        second product: sum_n g_nm (W x'_n + b)_m = <dW_m, W_m> + b_m db_m (dW = g^T x')."""
        xq, inside, weight, w, b, gain, y = residual
        g, geometry = cts[0], node.attrs.get("conv")
        if geometry:
            dx, dw, db = conv_vjp(xq, weight, g, strides=geometry["strides"], pads=geometry["pads"],
                                  dilations=geometry["dilations"], group=geometry["group"])
        else:
            flat_g, flat_x = g.reshape(-1, g.shape[-1]), xq.reshape(-1, xq.shape[-1])
            dx, dw, db = g @ weight, flat_g.T @ flat_x, flat_g.sum(axis=0)
        if gain is None:  # no row gains (meshes): no error-scale gradient
            return np.where(inside, dx, 0).astype(g.dtype), dw.astype(g.dtype), db.astype(g.dtype)
        axes = (0,) + tuple(range(2, g.ndim)) if geometry else tuple(range(g.ndim - 1))
        model_part = np.einsum("mk,mk->m", np.asarray(w, np.float64).reshape(len(gain), -1),
                               np.asarray(dw, np.float64).reshape(len(gain), -1)) + np.asarray(b, np.float64) * db
        d_gain = ((g * y).sum(axis=axes, dtype=np.float64) - model_part) / gain
        dw = _add_gain_gradient(dw, w, gain, d_gain)
        return np.where(inside, dx, 0).astype(g.dtype), dw.astype(g.dtype), db.astype(g.dtype)


def _add_gain_gradient(dw, w, gain, d_gain) -> np.ndarray:
    """``dw`` plus the gradient through each row's gain g_m = max_k |W_mk| (up to the
    codes' power-of-two or rescaled form: d g_m / d max|W_m| = g_m / max|W_m|), which only the
    row's largest weight gets, with its sign."""
    rows = np.abs(np.asarray(w, np.float64).reshape(len(gain), -1))
    index = np.arange(len(gain))
    top = rows.argmax(axis=1)
    largest = rows[index, top]
    sign = np.sign(np.asarray(w).reshape(len(gain), -1)[index, top])
    slope = np.where(largest > 0, gain / np.where(largest > 0, largest, 1.0), 0.0)
    flat = dw.reshape(len(gain), -1).copy()
    flat[index, top] += (d_gain * slope * sign).astype(dw.dtype)
    return flat.reshape(dw.shape)


def _product(x, w, b, geometry):
    """y = W x + b along x's last axis, or the convolution of x by W (the Linear's ``conv``)."""
    if geometry:
        return conv(x, w, b, strides=geometry["strides"], pads=geometry["pads"], dilations=geometry["dilations"],
                    group=geometry["group"])
    return np.ascontiguousarray(x @ np.asarray(w).T + b)


def modulate(x, lo, alpha, bits, geometry):
    """(x', inside): x clipped to [lo, lo + alpha] per input channel (axis 1 for a convolution,
    the last axis else) and put on the DAC's levels; where x was inside the range."""
    shape = (1, -1) + (1,) * (x.ndim - 2) if geometry else (-1,)
    low, width = lo.reshape(shape).astype(x.dtype), alpha.reshape(shape).astype(x.dtype)
    high = low + width
    inside = (x >= low) & (x <= high)
    xq = np.clip(x, low, high)
    if bits:
        step = dac_step(alpha, bits, x.dtype).reshape(shape)
        xq = np.minimum(np.round((xq - low) / step) * step, width) + low
    return xq.astype(x.dtype, copy=False), inside


def adc_widths(adc: np.ndarray, m: int) -> np.ndarray:
    """The width of every photodetector's ADC range per matrix row and tile (G, M, Q), from a
    bank's ADC ranges (G, R, Q, B, 2)."""
    width = (adc[..., 1] - adc[..., 0]).astype(np.float64)
    return width.transpose(0, 1, 3, 2).reshape(adc.shape[0], -1, adc.shape[2])[:, :m]


def noise_constants(form: dict, channels: int, geometry, width: np.ndarray, profile) -> dict:
    """The statistical read-noise model's constants of a layer (``sim.noise.read_noise_rows``) with
    ``channels`` input channels per group and ADC widths ``width`` (G, M, Q)."""
    rows, gain = form["rows"], form["gain"]
    attrs = {**form["attrs"], **({"conv": geometry} if geometry else {})}
    groups, m = gain.shape
    noise = {"var": np.empty((groups, m)), "gain": gain, "rin_u": np.empty((groups, m, channels)),
             "rin_c": np.empty((groups, m, channels)) if form["channels"].complement else None}
    read_noise_rows(noise, {"channels": form["channels"], "carrier": attrs.get("carrier", 1.0)}, rows,
                    slice(None), width, attrs, profile)
    return noise
