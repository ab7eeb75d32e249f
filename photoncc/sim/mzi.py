"""The coherent MZI-mesh device: how a program's ``Mesh`` layers are loaded onto meshes and read,
the simulator's executor for architecture ``mzi`` (``photoncc.devices``).

A ``Mesh`` instruction (one layer; its tensors ``program.MESH_INPUTS``) runs as the hardware does:

1. electronics form each input vector (a row of x, or one im2col patch of a convolution); the DACs
   drive the modulators: each channel's x is clipped to [lo, lo + alpha] (counted in ``clipped``)
   and, with ``input_bits`` = b, rounded to one of 2^b levels; the modulator's field is
   e = (x' - lo) / (alpha / 2) - 1 in [-1, 1] (no light where alpha = 0);
2. each tile (r, q) is set on the chip's mesh pair: the simulator rebuilds the transfer matrix of
   each mesh from the tile's phases (decoded from codes with ``phase_bits``) and the chip's static
   errors, with its own code (``devices.mzi_mesh.mesh_matrix``, the physics the compiler shares;
   never the compiler's decomposition): T = U_mesh diag(atten) V_mesh with the nominal loss of the
   two meshes. The chip is the one given (``--chip``), or one drawn from the seed
   (``photoncc.chip.draw``: the same draw as ``photoncc chip PROFILE --seed N``), or, noiseless,
   an ideal one;
3. per read, laser RIN makes each input field (1 + N(0, rin_sigma)) times itself (shared by the
   row tiles it feeds); homodyne detection reads the in-phase part of each output field,
   z = Re(T e) (signed), the detector adds N(0, detector_sigma x the width of its ADC range; the
   tile's largest read without an ADC), and the ADC (``output_bits``) clips z to its range for that
   tile and port and rounds it to one of 2^b levels (reads past an end: ``saturated``);
4. the electronics sum a row's reads over its tiles with each tile's gain and add the bias:
   y = sum_q gain_rq z_rq + bias.

Without an ADC and read noise, reads are only added, so a layer runs in its *direct form*: one
product of the matrix the chip realises, W = sum_q gain_rq Re(T_rq) assembled, on x' (with the
fields' affine map folded into it), identical in exact arithmetic. Meshes are built a block of
tiles at a time, every tile and every MZI of a column at once, in complex64 (``MESH_DTYPE``); the
tile matrices they give are float64.
"""
from __future__ import annotations

import numpy as np

from ..chip import draw_errors, has_static_errors
from ..devices.mzi_mesh import direct_form, mzi_count, tile_matrices
from ..errors import DeviceError
from ..ops.conv import conv_padded, pad_channel_last, unfold
from ..program import dac_step, levels, to_dac_levels
from .noise import gaussian

READ_BLOCK = 1 << 20  # tile reads formed at once (8 MB in float64)
# the meshes rebuilt in single precision: 2.6x faster on 64-port meshes, entries within 4e-7 of the
# double-precision build (the tiers' thresholds start at 1e-4 of the output range)
MESH_DTYPE = np.complex64


class MeshBanks:
    """The Mesh layers of one program loaded on one MZI-mesh device, with the counts of what
    saturated. ``chip``: the static errors of the device (``photoncc.chip.Chip``); None: drawn from
    ``rng`` (the seed) when the profile has any, none when ``noiseless``."""

    def __init__(self, profile: dict, noiseless: bool, rng, statistical=(), twin: dict | None = None, backend=None,
                 chip=None):
        self.profile, self.noiseless, self.rng = profile, noiseless, rng
        noise = profile["noise"]
        self.read_noise = not noiseless and (noise["rin_sigma"] > 0 or noise["detector_sigma"] > 0)
        self.chip = chip
        if chip is not None:
            self.errors = chip.mesh_errors()
        elif not noiseless and has_static_errors(profile):  # the chip of ``photoncc chip --seed``: first draws
            arrays = draw_errors(profile, rng)
            self.errors = [{key: value[k] for key, value in arrays.items()} for k in range(2)]
        else:
            self.errors = [None, None]
        self.statistical, self.twin = set(), twin  # no statistical read model: reads are per tile already
        self.backend = backend  # the reads run on the CPU (NumPy) whatever the backend asked
        self.loaded, self.clipped, self.saturated = {}, {}, {}

    def noiseless_twin(self) -> "MeshBanks":
        return MeshBanks(self.profile, True, self.rng)

    # ------------------------------------------------------------------ loading
    def load(self, inst: dict, tensors: dict) -> None:
        """Check and load one Mesh instruction; ``tensors`` by name (``program.mesh_inputs``)."""
        a, name = inst["attrs"], inst["name"]
        check_mesh(name, tensors, a, self.profile)
        f64 = np.float64
        lo, alpha = tensors["lo"].astype(f64), tensors["alpha"].astype(f64)
        bank = {"gain": tensors["gain"].astype(f64), "bias": tensors["bias"].astype(f64), "lo": lo, "alpha": alpha,
                "input_bits": a.get("input_bits"), "output_bits": a.get("output_bits"), "ports": a["ports"]}
        matrices = self._realised(tensors, a)                                   # (G, R, Q, N, N)
        adc = tensors.get("adc")
        if adc is None and not self.read_noise:
            bank["direct"] = direct_form(matrices, bank, a.get("conv"), tensors["lo"].dtype)
        else:
            bank["per_tile"] = np.ascontiguousarray(np.swapaxes(matrices, -1, -2))  # z = e @ T^T
            bank["adc"] = None if adc is None else adc.astype(f64)
        self.loaded[name] = bank

    def _realised(self, tensors: dict, a: dict) -> np.ndarray:
        """Re(U_mesh diag(atten) V_mesh) x nominal loss for every tile, realised on this chip."""
        return tile_matrices(tensors["phases"], tensors["screens"], tensors["atten"], a["phase_bits"], a["ports"],
                             a.get("loss_db", 0.0), self.errors, MESH_DTYPE, kind=a["layout"])

    # ------------------------------------------------------------------ reading
    def run(self, inst: dict, x: np.ndarray) -> np.ndarray:
        """The layer's output for its input ``x`` (a batch)."""
        bank = self.loaded[inst["name"]]
        conv = inst["attrs"].get("conv")
        if "direct" in bank:
            return self._direct(inst["name"], bank["direct"], bank["input_bits"], conv, x)
        groups, m = bank["bias"].shape
        if conv:
            cols = unfold(x, conv["kernel_shape"], conv["strides"], conv["pads"], conv["dilations"])
            lead = cols.shape[:cols.ndim - len(conv["kernel_shape"]) - 1]
        else:
            cols, lead = x, x.shape[:-1]
        flat = cols.reshape(-1, groups * bank["lo"].shape[1])
        y = self._read(inst["name"], bank, flat)
        y = y.reshape(lead + (groups * m,)).astype(x.dtype, copy=False)
        return np.moveaxis(y, -1, 1) if conv else y

    def _direct(self, name: str, d: dict, input_bits, conv, x: np.ndarray) -> np.ndarray:
        lo, alpha = d["lo"], d["alpha"]
        last = np.moveaxis(x, 1, -1) if conv else x
        self._count_clipped(name, last, lo, alpha)
        if conv:
            padded, u = pad_channel_last(x.shape, conv["pads"], d["weight"].dtype)
        else:
            u = np.empty(x.shape, d["weight"].dtype)
        np.clip(last, lo, lo + alpha, out=u, casting="same_kind")
        if input_bits:
            to_dac_levels(u, lo, alpha, dac_step(alpha, input_bits, u.dtype))
        if conv:
            y = conv_padded(padded, d["weight"], d["bias"], strides=conv["strides"], dilations=conv["dilations"],
                            group=conv["group"])
        else:
            y = u @ d["weight"].T + d["bias"]
        return y.astype(x.dtype, copy=False)

    def _count_clipped(self, name, values, lo, alpha) -> None:
        slack = 1e-6 * (alpha + np.abs(lo))  # float rounding at a bound is not clipping
        count = self.clipped.setdefault(name, [0, 0])
        count[0] += int(np.count_nonzero(values < lo - slack)) + int(np.count_nonzero(values > lo + alpha + slack))
        count[1] += values.size

    def _read(self, name: str, bank: dict, x: np.ndarray) -> np.ndarray:
        """Input vectors x (P, G*K) through modulators, meshes, detectors and ADCs: (P, G*M)."""
        groups, k = bank["lo"].shape
        m = bank["bias"].shape[1]
        w = bank["per_tile"]                                                      # (G, R, Q, N, N)
        _, r, q, n, _ = w.shape
        lo, alpha = bank["lo"], bank["alpha"]
        u = x.reshape(-1, groups, k).astype(np.float64)
        self._count_clipped(name, u, lo, alpha)
        u = np.clip(u, lo, lo + alpha)
        if bank["input_bits"]:
            step = dac_step(alpha, bank["input_bits"])
            u = np.minimum(np.round((u - lo) / step) * step, alpha) + lo
        half = alpha / 2.0
        e = np.where(half > 0, (u - lo) / np.where(half > 0, half, 1.0) - 1.0, 0.0)  # (P, G, K)
        count = e.shape[0]
        fields = np.zeros((groups, count, q * n))
        fields[:, :, :k] = e.transpose(1, 0, 2)
        noise = self.profile["noise"]
        rin = 0.0 if self.noiseless else noise["rin_sigma"]
        det = 0.0 if self.noiseless else noise["detector_sigma"]
        if rin:
            fields[:, :, :k] *= 1.0 + gaussian(self.rng, fields[:, :, :k].shape, rin)
        out = np.zeros((groups, r, count, n))
        chunk = max(1, READ_BLOCK // max(1, groups * r * q * n))
        adc = bank["adc"]
        tally = self.saturated.setdefault(name, [0, 0]) if adc is not None else None
        rows = (np.arange(r * n) < m).reshape(1, r, 1, 1, n)                     # ports that are matrix rows
        for start in range(0, count, chunk):
            part = fields[:, start:start + chunk].reshape(groups, -1, q, n).transpose(0, 2, 1, 3)  # (G, Q, p, N)
            reads = np.matmul(part[:, None], w)                                   # (G, R, Q, p, N)
            if adc is not None:
                low, high = adc[..., 0][:, :, :, None, :], adc[..., 1][:, :, :, None, :]
                width = high - low
                top = levels(bank["output_bits"])
                if det:
                    reads += gaussian(self.rng, reads.shape, det) * width
                codes = (reads - low) / width * top
                past = (codes < -0.5) | (codes > top + 0.5)
                tally[0] += int(np.count_nonzero(past & rows))  # the padding's ports read nothing of use
                tally[1] += int(np.count_nonzero(np.broadcast_to(rows, past.shape)))
                reads = low + np.round(np.clip(codes, 0.0, top)) * (width / top)
            elif det:
                reads += gaussian(self.rng, reads.shape, det) * np.abs(reads).max(axis=(3, 4), keepdims=True)
            out[:, :, start:start + chunk] = np.einsum("grqpn,grq->grpn", reads, bank["gain"])
        y = out.transpose(0, 2, 1, 3).reshape(groups, count, r * n)[:, :, :m] + bank["bias"][:, None, :]
        return y.transpose(1, 0, 2).reshape(count, groups * m)


def check_mesh(name: str, tensors: dict, a: dict, profile: dict) -> None:
    """The device rules; a program that breaks one is refused before it runs."""
    n = profile["mesh"]["ports"]
    if a.get("ports") != n or a.get("layout") != profile["mesh"]["layout"]:
        raise DeviceError(f"layer {name!r}: meshes of {a.get('ports')} ports ({a.get('layout')}) do not fit the "
                          f"profile's {n}-port {profile['mesh']['layout']} meshes")
    bits = a.get("phase_bits")
    phases = tensors["phases"]
    if phases.shape[3:] != (2, mzi_count(n), 2):
        raise DeviceError(f"layer {name!r}: its phases are not two meshes of {mzi_count(n)} MZIs")
    for key in ("phases", "screens", "atten"):
        value = tensors[key]
        if bits:
            if value.dtype.kind != "u" or (value.size and int(value.max()) >= 2 ** bits):
                raise DeviceError(f"layer {name!r}: its {key} are not {bits}-bit phase codes")
        elif value.dtype != np.float64 or not np.isfinite(value).all():
            raise DeviceError(f"layer {name!r}: its {key} are not finite phases (float64 radians)")
    for what, key in (("gain", "gain"), ("bias", "bias"), ("input range", "alpha"), ("ADC range", "adc")):
        value = tensors.get(key)
        if value is not None and value.size and not np.isfinite(value).all():
            raise DeviceError(f"layer {name!r}: its {what} holds NaN or infinite values")
    if tensors["gain"].size and tensors["gain"].min() < 0:
        raise DeviceError(f"layer {name!r}: a tile gain is negative")
    if tensors["alpha"].size and tensors["alpha"].min() < 0:
        raise DeviceError(f"layer {name!r}: a negative input range (alpha)")
    adc = tensors.get("adc")
    if a.get("output_bits") and (adc is None or not (adc[..., 1] > adc[..., 0]).all()):
        raise DeviceError(f"layer {name!r}: every ADC needs an input range [lo, hi] with lo < hi")


EXECUTOR = MeshBanks  # what the simulator loads a program of architecture mzi on (devices.ARCHITECTURES)
