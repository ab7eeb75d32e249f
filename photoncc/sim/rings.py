"""The microring device: how a program's banks are loaded onto rings and read, the simulator's
executor for the incoherent and the balanced architectures (``photoncc.devices``).

A ``Bank`` instruction (one layer) runs as the hardware does:

1. electronics form each input vector (a row of x, or one im2col patch for a convolution) and
   offset it, u = x - lo;
2. the DACs drive the modulators: each channel's optical power is u clipped to [0, alpha] (a value
   outside is saturated; counted in ``clipped``) and, with ``input_bits`` = b, rounded to one of
   2^b levels; the channels are laid out by ``program.bank_channels`` (on an incoherent bank the
   complement channel alpha - u too, and on every bank a constant carrier of power c for the bias);
3. each tile of B x C rings weights the C channels it sees and each of its B photodetectors sums
   them: a partial sum per (row, tile). Ring weights are the program's codes times the code step
   with the profile's static errors (``devices.rings``: thermal crosstalk, always modelled, and the
   programming error N(0, weight_sigma), drawn once per load, off with ``noiseless``);
4. per read, laser RIN makes each channel's power (1 + N(0, rin_sigma)) times itself, and the
   detector adds N(0, detector_sigma x the width of its ADC range); the ADC (``output_bits``)
   clips each partial sum to its photodetector's range [lo, hi] for that tile and rounds it to
   one of 2^b levels (reads past either end are counted in ``saturated``);
5. the electronics add a row's partial sums, apply the row gain, subtract the layer's shift and
   add the row's offset: y = g * sum_tiles(partial) - s + offset.

The device rules are enforced when a bank is loaded (``check_bank``): a program that breaks them is
refused with a DeviceError naming the layer, never run.

Without an ADC or per-read noise (or under the statistical noise model) the partial sums of a row
are only added, so the layer runs in its *direct form* (``direct_form``): one signed product of the
device's own weights on the saturated, DAC-quantised input plus a per-row constant, identical in
exact arithmetic and free of the large offset Wn alpha that the physical sum carries (so the
model's float32 keeps it to rounding). Otherwise every tile's partial sums are formed
(``tile_reads``, float64: a read can sit far above its ADC's step).

The tile reads (``_read_chunk``) are written against an array module ``xp``, the backend's
(``sim.backend``: NumPy on the cores, or CuPy on a GPU), as whole-array steps; the backend shares
their chunks out, and the loops over blocks of rows or positions that bound the memory sit around
the physics, not in it. Loading, the direct form and the optical input powers run on the host in
NumPy, each step shared over the cores by ``share`` (``cpu.threaded``).
"""
from __future__ import annotations

import numpy as np

from .. import cpu
from ..devices.rings import coupled_weights, reach, realised
from ..errors import DeviceError
from ..ops.conv import conv_padded, pad_channel_last, unfold
from ..program import bank_channels, dac_step, levels, to_dac_levels, weight_step
from .backend import CPU
from .noise import add_read_noise, programming_error, read_noise_rows

READ_BLOCK = 1 << 20  # partial sums formed at once by a noisy or quantised bank (8 MB in float64)
LOAD_BLOCK = 1 << 20  # ring weights decoded at once when a bank is loaded (8 MB in float64)
INPUT_BLOCK = 1 << 22  # optical powers formed at once by such a bank (16 MB in float32)


class RingBanks:
    """The banks of one program loaded on one ring device, with the counts of what saturated.

    ``statistical``: the layers the statistical noise model runs; ``twin``: a dict to fill with the
    banks of this device's noiseless twin (no programming error, no read noise), or None."""

    def __init__(self, profile: dict, noiseless: bool, rng, statistical=(), twin: dict | None = None, backend=CPU,
                 chip=None):
        self.profile, self.noiseless, self.rng, self.backend = profile, noiseless, rng, backend
        # a chip (photoncc.chip): each physical ring's programming offset, the same for every tile loaded
        # onto the bank, instead of errors drawn per load, and its measured crosstalk
        self.chip = chip
        if chip is not None:
            self.profile = {**profile, "noise": {**profile["noise"], "crosstalk": float(chip.arrays["crosstalk"])}}
        noise = profile["noise"]
        self.dynamic_noise = not noiseless and (noise["rin_sigma"] > 0 or noise["detector_sigma"] > 0)
        self.statistical, self.twin = set(statistical), twin
        self.loaded = {}
        self.clipped = {}  # layer name -> [values clipped, values modulated]
        self.saturated = {}  # layer name -> [ADC reads saturated, ADC reads] (tile reads only)
        # the array module the tile reads compute with (the backend's), and how a step of the
        # loading and the direct form is shared over the cores
        self.xp, self.share = backend.xp, cpu.threaded

    def noiseless_twin(self) -> "RingBanks":
        """The same device without programming error or read noise, on the twin's banks."""
        twin = RingBanks(self.profile, True, self.rng, self.statistical, backend=self.backend)
        twin.loaded = self.twin
        return twin

    # ------------------------------------------------------------------ loading
    def load(self, inst: dict, tensors: dict) -> None:
        """Check and load one Bank instruction; ``tensors`` its tensors by name (``program.bank_inputs``)."""
        a, name = inst["attrs"], inst["name"]
        tiles, gain, lo, alpha, adc = (tensors.get(key) for key in ("tiles", "gain", "lo", "alpha", "adc"))
        offset = tensors["offset"] if tensors.get("offset") is not None else np.zeros(gain.shape)
        check_bank(name, tiles, gain, alpha, adc, a, self.profile)
        noise = self.profile["noise"]
        statistical = name in self.statistical
        # the rings' programming errors, drawn once per load (whole: the draws never depend on blocks)
        error = programming_error(self.rng, tiles.shape, self.profile) \
            if noise["weight_sigma"] and not self.noiseless and self.chip is None else None
        if self.chip is not None:
            error = np.broadcast_to(self.chip.arrays["offset"].astype(np.float32), tiles.shape)
        q, c = tiles.shape[2], tiles.shape[4]
        f64 = np.float64
        bank = {"gain": gain.astype(f64), "offset": offset.astype(f64), "lo": lo.astype(f64), "alpha": alpha.astype(f64),
                "channels": bank_channels(a, lo.shape[1]), "padded": q * c, "shift": f64(a["shift"]),
                "carrier": f64(a.get("carrier", 1.0)), "input_bits": a.get("input_bits"),
                "output_bits": a.get("output_bits")}
        if (not a.get("output_bits") and not self.dynamic_noise) or statistical:
            self._load_direct(name, bank, tiles, adc, a, error, noisy=statistical and not self.noiseless)
        else:
            self._load_tiles(bank, tiles, adc, a, error)
        self.loaded[name] = bank

    def _load_direct(self, name, bank, tiles, adc, a, error, noisy: bool) -> None:
        """The direct form: the device's weights in the model's float type, a block of tile rows at a
        time; with ``noisy`` the statistical model's read-noise constants too."""
        groups, r, q, b, c = tiles.shape
        m, k = bank["gain"].shape[1], bank["channels"].k
        dtype = tiles.dtype if tiles.dtype.kind == "f" else np.float32
        own_twin = self.twin is not None and error is not None  # else the twin shares the form
        weight, const = np.empty((groups, m, k), dtype), np.empty((groups, m))
        clean = (np.empty_like(weight), np.empty_like(const)) if own_twin else (weight, const)
        if noisy:  # the read-noise constants of noise.read_noise_rows, per row and input channel
            conv = a.get("conv")
            channels = k // (int(np.prod(conv["kernel_shape"])) if conv else 1)
            read_noise = {"var": np.empty((groups, m)), "gain": bank["gain"],
                          "rin_u": np.empty((groups, m, channels)),
                          "rin_c": np.empty((groups, m, channels)) if bank["channels"].complement else None}
            width = (adc[..., 1] - adc[..., 0]).astype(np.float64).transpose(0, 1, 3, 2).reshape(groups, r * b, q)
        for block, part in cpu.tile_row_blocks(tiles, m, LOAD_BLOCK):  # part: the block's matrix rows
            count = part.stop - part.start
            coupled = coupled_weights(tiles[:, block], a, self.profile, dtype)
            rows = self._rows(realised(coupled, a, self.profile, None if error is None else error[:, block]), count)
            weight[:, part], const[:, part] = direct_rows(bank, rows, part)
            if own_twin:  # the same bank without programming error (and without noise)
                clean[0][:, part], clean[1][:, part] = direct_rows(
                    bank, self._rows(realised(coupled, a, self.profile), count), part)
            if noisy:
                read_noise_rows(read_noise, bank, rows, part, width[:, part], a, self.profile)
        bank["direct"] = direct_form(bank, weight, const, a.get("conv"))
        if self.twin is not None:
            self.twin[name] = {**bank, "direct": direct_form(bank, *clean, a.get("conv"))}
        if noisy:
            bank["direct"]["noise"] = read_noise

    def _load_tiles(self, bank, tiles, adc, a, error) -> None:
        """The tile reads' weights (G, Q, C [+ 1], M) in float64, built a block of tile rows at a time
        (no other float64 copy of a large layer is ever whole); with ADCs, their map into codes."""
        groups, r, q, b, c = tiles.shape
        m = bank["gain"].shape[1]
        per_tile = np.empty((groups, q, c + (adc is not None), m))
        for block, part in cpu.tile_row_blocks(tiles, m, LOAD_BLOCK):  # part: the block's matrix rows
            weights = realised(coupled_weights(tiles[:, block], a, self.profile, np.float64), a, self.profile,
                               None if error is None else error[:, block])
            per_tile[:, :, :c, part] = (
                weights.transpose(0, 2, 4, 1, 3).reshape(groups, q, c, -1)[..., :part.stop - part.start])
        bank["adc"] = None  # per (G, Q, M): the range [lo, hi] of row m's photodetector in tile q
        if adc is None:
            bank["per_tile"] = self.backend.to_device(per_tile)
            return
        ranges = adc.astype(np.float64).transpose(0, 1, 3, 2, 4).reshape(groups, r * b, q, 2)[:, :m]
        bank["adc"] = ranges = ranges.transpose(0, 2, 1, 3)  # (G, Q, M, 2)
        # the ADC's affine map into codes, (read - lo) x top / width, folded into the product: one
        # more channel of constant power 1 whose weight is -lo x top / width (``tile_reads``)
        to_codes = levels(a["output_bits"]) / (ranges[..., 1] - ranges[..., 0])  # (G, Q, M)
        per_tile[:, :, :c] *= to_codes[:, :, None]
        per_tile[:, :, c] = -ranges[..., 0] * to_codes
        bank["per_tile"] = self.backend.to_device(per_tile)

    def _rows(self, weights: np.ndarray, m: int) -> np.ndarray:
        """(G, M, Q*C): every row of a group with all its channels, the tiles side by side; a
        transposing copy of the tiles (G, R, Q, B, C), shared over the cores."""
        groups, r, q, b, c = weights.shape
        rows = np.empty((groups, r * b, q * c), weights.dtype)
        self.share(np.copyto, rows.reshape(groups, r, b, q, c), weights.transpose(0, 1, 3, 2, 4))
        return rows[:, :m]

    # ------------------------------------------------------------------ reading
    def run(self, inst: dict, x: np.ndarray) -> np.ndarray:
        """The bank's output for its input ``x`` (a batch)."""
        bank = self.loaded[inst["name"]]
        conv = inst["attrs"].get("conv")
        if "direct" in bank:
            return self._direct(inst["name"], bank, conv, x)
        groups, m = bank["gain"].shape
        if conv:  # im2col a block of output rows (all samples) at a time: (N, rows, *out[1:], C, *k)
            cols = unfold(x, conv["kernel_shape"], conv["strides"], conv["pads"], conv["dilations"])
            lead = cols.shape[:cols.ndim - len(conv["kernel_shape"]) - 1]
            per_row = int(np.prod((lead[0],) + lead[2:], dtype=np.int64))
        else:
            cols, lead = x, x.shape[:-1]
            per_row = int(np.prod(lead[1:], dtype=np.int64))
        y = np.empty(lead + (groups * m,), x.dtype)
        rows = max(1, INPUT_BLOCK // max(1, per_row * groups * bank["padded"]))
        axis = 1 if conv else 0
        for r0 in range(0, lead[axis], rows):
            block = (slice(None), slice(r0, r0 + rows)) if conv else (slice(r0, r0 + rows),)
            part = cols[block].reshape(-1, groups * bank["lo"].shape[1])
            y[block] = self._read(inst["name"], bank, part).reshape(y[block].shape)
        return np.moveaxis(y, -1, 1) if conv else y

    def _read(self, name: str, bank: dict, x: np.ndarray) -> np.ndarray:
        """One block of bank input vectors ``x (P, G*K)`` through modulators, DACs, tiles, detectors
        and ADCs; returns ``(P, G*M)``, the electronics' output. The modulation is done a chunk of
        positions at a time with the chunk's reads (``_tile_reads``), so that it is shared over the
        cores too."""
        groups, k = bank["lo"].shape
        u = x.reshape((-1, groups, k))
        sums, clipped = self._tile_reads(name, bank, u.shape[0],
                                         lambda part: self._powers(name, bank, u[part]))  # (G, P, M): photodetected
        count = self.clipped.setdefault(name, [0, 0])
        count[0] += clipped
        count[1] += u.size
        y = sums * bank["gain"][:, None, :] - bank["shift"] + bank["offset"][:, None, :]
        return y.transpose(1, 0, 2).reshape(x.shape[0], -1)

    @staticmethod
    def _powers(name: str, bank: dict, x: np.ndarray) -> tuple[np.ndarray, int]:
        """The optical powers (G, p, channels) float32 of bank inputs ``x`` (p, G, K): each clipped
        to its modulator's range [lo, lo + alpha] and put on the DAC's levels, u = x' - lo, then the
        bank's channels (``program.bank_channels``: u, alpha - u on an incoherent bank, the
        carrier); and how many inputs were clipped."""
        groups, k = bank["lo"].shape
        alpha, channels = bank["alpha"], bank["channels"]
        u = x - bank["lo"]                                                 # (p, G, K)
        slack = 1e-6 * (alpha + np.abs(bank["lo"]))  # float rounding at a bound is not clipping
        clipped = int(np.count_nonzero((u < -slack) | (u > alpha + slack)))
        u = np.clip(u, 0, alpha)                                           # the modulators saturate
        if bank["input_bits"]:                                             # the DAC's levels
            step = dac_step(alpha, bank["input_bits"])
            u = np.minimum(np.round(u / step) * step, alpha)
        v = np.zeros((groups, u.shape[0], bank["padded"]), np.float32)     # optical powers per channel
        v[:, :, :k] = u.transpose(1, 0, 2)
        if channels.complement:
            v[:, :, k:2 * k] = alpha[:, None, :] - v[:, :, :k]
        v[:, :, channels.carrier] = bank["carrier"]
        if v.min(initial=0.0) < 0:
            raise DeviceError(f"layer {name!r}: negative optical input power")
        return v, clipped

    def _direct(self, name: str, bank: dict, conv, x: np.ndarray) -> np.ndarray:
        """A bank without ADC or per-read noise: modulator saturation and DAC levels per input
        channel (before im2col: every column of a channel has its range), then one product.
        A convolution's input is saturated straight into its zero-padded channel-last buffer."""
        d = bank["direct"]
        lo, alpha = d["lo"], d["alpha"]                                   # per input channel
        hi = lo + alpha
        last = np.moveaxis(x, 1, -1) if conv else x                        # channels last
        slack = 1e-6 * (alpha + np.abs(lo))  # float rounding at a bound is not clipping
        count = self.clipped.setdefault(name, [0, 0])
        count[0] += int(np.count_nonzero(last < lo - slack)) + int(np.count_nonzero(last > hi + slack))
        count[1] += x.size
        if conv:  # u: the interior of the padded buffer
            padded, u = pad_channel_last(x.shape, conv["pads"], d["weight"].dtype)
        else:
            u = np.empty(x.shape, d["weight"].dtype)
        step = dac_step(alpha, bank["input_bits"], u.dtype) if bank["input_bits"] else None

        def modulate(u, x):  # a part of the inputs, elementwise (``share`` splits them)
            np.clip(x, lo, hi, out=u, casting="same_kind")                # the modulators saturate
            if step is not None:                                           # the DAC's levels
                to_dac_levels(u, lo, alpha, step)
        self.share(modulate, u, last)
        if conv:
            y = conv_padded(padded, d["weight"], d["bias"], strides=conv["strides"], dilations=conv["dilations"],
                            group=conv["group"])
        else:
            y = u @ d["weight"].T + d["bias"]
        if "noise" in d:
            add_read_noise(self.rng, y, u, d, conv)
        return y.astype(x.dtype, copy=False)

    def _tile_reads(self, name: str, bank: dict, positions: int, powers) -> tuple[np.ndarray, int]:
        """Sum over tiles of each tile's partial sums, with RIN, detector noise and the ADC per read,
        for ``positions`` input vectors whose optical powers ``powers(part)`` gives a slice at a time
        (``_powers``); returns the sums (G, P, M) and how many inputs were clipped.

        float64 per read: a read can sit far above its ADC's step (a narrow range [lo, hi] at a large
        power, e.g. a tile of complement channels), where float32 would resolve it only to about a
        code; noise is drawn in float32. With an ADC, the product gives each read in codes of its
        ADC, (read - lo) x top / width: the weights are scaled by top / width and a last channel of
        power 1 carries -lo x top / width (``_load_tiles``). In chunks of positions, so that memory
        stays bounded, shared out by the backend (the cores, or a GPU one after another): each
        chunk draws from a stream of its own, seeded in chunk order, so the reads never depend on
        how the chunks are shared. Reads that land more than half a code past either end of their
        ADC's range (so that the clip, not the rounding, decides their code) are counted as
        saturated in ``saturated``."""
        groups, q, _, m = bank["per_tile"].shape
        c = bank["padded"] // q
        adc = None
        if bank["adc"] is not None:  # value = lo + code x width / top
            scale, top, to_device = bank["adc"], levels(bank["output_bits"]), self.backend.to_device
            adc = {"top": top, "to_value": to_device(((scale[..., 1] - scale[..., 0]) / top)[:, :, None, :]),
                   "low_sum": to_device(scale[..., 0].sum(axis=1)[:, None, :])}  # (G, 1, M): sum over tiles of lo
        out = np.empty((groups, positions, m))
        chunk = max(1, READ_BLOCK // max(1, groups * q * max(m, c)))
        starts = range(0, positions, chunk)
        seeds = self.rng.integers(0, 2 ** 63, size=len(starts)) if self.dynamic_noise else [0] * len(starts)

        def read(job):  # one chunk, wholly in this thread (or on the GPU): its inputs, reads and counts
            start, seed = job
            v, clipped = powers(slice(start, start + chunk))
            out[:, start:start + chunk], saturated = self._read_chunk(bank, v, adc, int(seed))
            return saturated, clipped
        counts = self.backend.map(read, zip(starts, seeds))
        if adc is not None:
            tally = self.saturated.setdefault(name, [0, 0])
            tally[0] += sum(saturated for saturated, _ in counts)
            tally[1] += groups * q * positions * m
        return out, sum(clipped for _, clipped in counts)

    def _read_chunk(self, bank: dict, v: np.ndarray, adc: dict | None, seed: int):
        """The reads of a chunk of positions ``v`` (G, p, Q*C), summed over tiles, as a host array
        (G, p, M), and how many saturated an ADC. Every step is one array operation on the
        backend's module (``xp``), drawing from the chunk's stream ``seed``."""
        xp, backend = self.xp, self.backend
        w = bank["per_tile"]                                               # (G, Q, C [+ 1], M) float64
        groups, q, _, m = w.shape
        c = bank["padded"] // q
        noise = self.profile["noise"]
        rin = 0.0 if self.noiseless else noise["rin_sigma"]
        det = 0.0 if self.noiseless else noise["detector_sigma"]
        rng = backend.generator(seed)
        part = backend.to_device(v).reshape(groups, -1, q, c).transpose(0, 2, 1, 3)  # (G, Q, p, C)
        vt = xp.empty(part.shape[:3] + (w.shape[2],))                      # (G, Q, p, C [+ 1]) float64
        vt[..., :c] = part
        if adc is not None:
            vt[..., c] = 1.0                                               # the ADC offset's channel
        if rin:  # each channel's power fluctuates, shared by every row it feeds: v (1 + eps)
            eps = backend.gaussian(rng, part.shape, rin)
            eps += 1.0
            vt[..., :c] *= eps
        partial = xp.matmul(vt, w)                                         # (G, Q, p, M): every read
        saturated = 0
        if adc is not None:  # the ADC: detector noise (det x the ADC's width: det x top codes), clip, round
            top = adc["top"]
            if det:
                partial += backend.gaussian(rng, partial.shape, det * top)
            if float(partial.min()) < -0.5 or float(partial.max()) > top + 0.5:  # two reductions; counted only then
                saturated = int(xp.count_nonzero(partial < -0.5)) + int(xp.count_nonzero(partial > top + 0.5))
            xp.clip(partial, 0.0, top, out=partial)
            xp.round(partial, out=partial)
            partial *= adc["to_value"]
            return backend.to_host(partial.sum(axis=1) + adc["low_sum"]), saturated
        if det:  # no ADC: detector noise relative to the largest read of the tile
            partial += backend.gaussian(rng, partial.shape, det) * xp.abs(partial).max(axis=2, keepdims=True)
        return backend.to_host(partial.sum(axis=1)), saturated


def check_bank(name, tiles, gain, alpha, adc, a, profile) -> None:
    """The device rules; a program that breaks one is refused before it runs."""
    bank, signed = profile["bank"], bool(a.get("signed"))
    limits = reach(profile, signed)
    if tiles.shape[3:] != (bank["banks"], bank["rings"]):
        raise DeviceError(f"layer {name!r}: tiles of {tiles.shape[3]}x{tiles.shape[4]} rings do not fit "
                          f"the profile's {bank['banks']}x{bank['rings']} banks")
    step = weight_step(a["weight_bits"], signed) if a.get("weight_bits") else 1.0
    if tiles.size:
        low, high = float(tiles.min()) * step, float(tiles.max()) * step
        if low < limits[0] - 1e-12 or high > limits[1] + 1e-12:
            bad = low if low < limits[0] - 1e-12 else high
            where = np.unravel_index(np.argmin(tiles) if bad == low else np.argmax(tiles), tiles.shape)
            if signed:
                what = f"is outside the reachable range [{limits[0]}, {limits[1]}]"
            elif bad < 0:
                what = "is negative; an incoherent bank (single photodetector) cannot apply a negative weight"
            else:
                what = "exceeds 1; a ring cannot transmit more light than it receives"
            raise DeviceError(f"layer {name!r}: ring weight {bad:.4g} at tile "
                              f"{[int(i) for i in where[:3]]} ring {[int(i) for i in where[3:]]} {what}")
    for what, value in (("gain", gain), ("input range", alpha), ("ADC range", adc),
                        ("shift or carrier", np.array([a.get("shift", 0.0), a.get("carrier", 1.0)], float))):
        if value is not None and value.size and not np.isfinite(value).all():
            raise DeviceError(f"layer {name!r}: its {what} holds NaN or infinite values")
    if gain.size and gain.min() <= 0:
        raise DeviceError(f"layer {name!r}: a row gain is not positive")
    if alpha.size and alpha.min() < 0:
        raise DeviceError(f"layer {name!r}: a negative input range (alpha)")
    if a.get("output_bits") and (adc is None or not (adc[..., 1] > adc[..., 0]).all()):
        raise DeviceError(f"layer {name!r}: every ADC needs an input range [lo, hi] with lo < hi")


def _rowdot(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """sum_k a[g, m, k] v[g, k] in float64 for a float32 ``a`` and float64 ``v``: einsum casts
    ``a`` a buffer at a time (never a float64 copy of a layer's weights) and sums in float64."""
    return np.einsum("gmk,gk->gm", a, v.astype(np.float64, copy=False))


def direct_rows(bank: dict, rows: np.ndarray, part: slice):
    """The direct form of matrix rows ``part`` (a slice of M) from their ``rows`` (G, rows, Q*C)
    in the model's float type: the signed weights g (T_u - T_c) (G, rows, K) and the constants
    (G, rows) of ``direct_form``."""
    gain, offset, channels = bank["gain"][:, part], bank["offset"][:, part], bank["channels"]
    k = channels.k
    signed = rows[:, :, :k] - rows[:, :, k:2 * k] if channels.complement else rows[:, :, :k]   # (G, rows, K)
    const = gain * rows[:, :, channels.carrier].astype(np.float64) * bank["carrier"] - bank["shift"] + offset
    if channels.complement:
        const += gain * _rowdot(rows[:, :, k:2 * k], bank["alpha"])
    const -= gain * _rowdot(signed, bank["lo"])
    return signed * gain[..., None].astype(rows.dtype), const


def direct_form(bank: dict, weight: np.ndarray, const: np.ndarray, conv) -> dict:
    """The same layer as one signed matrix product, for reads that are neither quantised nor noisy.

    Without an ADC or per-read noise the photodetected sums are only ever added, so
    g (T_u u + T_c (alpha - u) + t_b c) - s + offset = g (T_u - T_c) x' + const with
    x' = clip(x, lo, lo + alpha) (the modulators' saturation; DAC levels applied to x') and
    const = g (T_c alpha + t_b c - (T_u - T_c) lo) - s + offset: identical in exact arithmetic,
    computed with the device's weights (codes, crosstalk, programming error), and free of the
    large offset T_c alpha that the physical sum carries, so the model's float32 keeps it to
    rounding (T_u - T_c is exact: one of the two is zero; the constants are float64 sums).
    ``weight`` (G, M, K) and ``const`` (G, M) come from ``direct_rows``, a block of rows at a time.
    """
    groups, m, k = weight.shape
    taps = int(np.prod(conv["kernel_shape"])) if conv else 1
    lo = bank["lo"].reshape(groups, -1, taps)[..., 0].reshape(-1)                      # per input channel
    alpha = bank["alpha"].reshape(groups, -1, taps)[..., 0].reshape(-1)
    weight = weight.reshape(groups * m, k)                                              # (M, K) per group
    if conv:
        weight = weight.reshape((groups * m, k // taps) + tuple(conv["kernel_shape"]))
    dtype = weight.dtype
    return {"weight": weight, "bias": const.reshape(-1).astype(dtype), "lo": lo.astype(dtype),
            "alpha": alpha.astype(dtype)}


EXECUTOR = RingBanks  # what the simulator loads a program of a ring architecture on (devices.ARCHITECTURES)
