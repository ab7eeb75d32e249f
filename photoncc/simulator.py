"""NumPy reference model of the device, executing a Program (program.py). Depends on the program
format, the operators' kernels (``photoncc.ops``) and NumPy only: never on the compiler's IR,
passes or interpreter, so that ``verify`` compares the model against an independent account of
what the device does.

A photonic instruction ``Bank`` (one layer) runs as the hardware does:

1. electronics form each input vector (a row of x, or one im2col patch for a convolution) and
   offset it, u = x - lo;
2. the DACs drive the modulators: each channel's optical power is u clipped to [0, alpha] (a value
   outside is saturated; the simulator counts these as *clipped*) and, with ``input_bits`` = b,
   rounded to one of 2^b levels; an incoherent bank also gets the complement channel alpha - u
   (the complementary DAC code), and every bank a constant carrier of power c for the bias:
   v = [u ; alpha - u ; c] (incoherent) or [u ; c] (balanced);
3. each tile of B x C rings weights the C channels it sees and each of its B photodetectors sums
   them: a partial sum per (row, tile). Ring weights are the program's codes times the code step,
   plus the profile's static errors: thermal crosstalk (each ring picks up ``crosstalk`` times its
   neighbours' weights; systematic, pre-compensated by the compiler, always modelled) and the
   programming error N(0, weight_sigma), drawn once per load (off with ``noiseless``);
4. per read, laser RIN makes each channel's power (1 + N(0, rin_sigma)) times itself, and the
   detector adds N(0, detector_sigma x the width of its ADC range); the ADC (``output_bits``)
   clips each partial sum to its photodetector's range [lo, hi] for that tile and rounds it to
   one of 2^b levels;
5. the electronics add a row's partial sums, apply the row gain, subtract the layer's shift and
   add the row's offset (the part of the bias the bias ring's codes cannot express, quantised
   programs only): y = g * sum_tiles(partial) - s + offset.

Noise is seeded: the same program, inputs, seed and batch size give the same outputs. RIN is drawn
per channel (one draw per sample and channel, shared by every row that channel feeds, as on the
chip); detector noise, independent per read, is drawn once per partial sum.

The device rules are enforced when a program is loaded: on an incoherent bank every weight must lie
in [0, 1] (a balanced bank: in its reachable range) and every gain be positive; tiles must have the
profile's bank shape. A program that breaks them is refused with a DeviceError naming the layer,
never run. The optical input power is non-negative by construction of step 2 and checked per run.

Without an ADC or per-read noise the partial sums of a row are only added, so the simulator runs
the layer in its *direct form* (``_direct_form``): one signed product of the device's own weights
on the saturated, DAC-quantised input plus a per-row constant, identical in exact arithmetic and
free of the large offset Wn alpha that the physical sum carries (so the model's float32 keeps it
to rounding). Otherwise it forms every tile's partial sums (float64: a read can sit far above its
ADC's step), in chunks of positions to bound memory.

The *statistical* noise model (``noise_model="statistical"``, opt-in) runs a noisy layer with an
ADC in its direct form too and adds one Gaussian per output with the variance its tile reads add
up to (``_read_noise_rows``): much faster, but it does not model ADC saturation; noiseless, it runs those
layers unquantised (its rounding error is part of that noise). Electronic ops run in
the model's dtype. Nothing loops in Python over samples, pixels or rings.
"""
from __future__ import annotations

import copy

import numpy as np

from . import cpu, ops
from .data import batches
from .errors import DeviceError, KnownAnswerError, ProgramError
from .ops.conv import conv_padded, pad_channel_last, unfold
from .program import Program, dead_after, levels, weight_step

DEFAULT_BATCH = 64
NOISE_MODELS = ("per-read", "statistical")
DITHER = 0.5  # detector noise (in ADC code steps) from which rounding errors are uniform and independent
READ_BLOCK = 1 << 20  # partial sums formed at once by a noisy or quantised bank (8 MB in float64)
LOAD_BLOCK = 1 << 20  # ring weights decoded at once when a bank is loaded (8 MB in float64)
INPUT_BLOCK = 1 << 22  # optical powers formed at once by such a bank (16 MB in float32)
NOISE_BLOCK = 1 << 20  # outputs given their statistical read noise at once (4 MB in float32)
STREAMS = 8  # a draw of at least STREAM_PAIRS pairs of normals comes from this many random streams,
STREAM_PAIRS = 1 << 16  # shared by the cores (fixed numbers: the draws never depend on the machine)
KAT_LAYERS = {"outputs": "layers", "statistical": "statistical_layers"}  # kat key -> its final layers' key
KERNELS = ops.kernels()
# the ops that can be computed in their first input's memory (``Op.in_place``), used when that input
# is a value in memory of its own that nothing reads afterwards (saves a large fresh allocation and
# a pass per layer), with how many inputs they then take
IN_PLACE = {name: (found.in_place, found.in_place.__code__.co_argcount)
            for name, found in ops.REGISTRY.items() if found.in_place is not None}


def _rowdot(a: np.ndarray, v: np.ndarray) -> np.ndarray:
    """sum_k a[g, m, k] v[g, k] in float64 for a float32 ``a`` and float64 ``v``: einsum casts
    ``a`` a buffer at a time (never a float64 copy of a layer's weights) and sums in float64."""
    return np.einsum("gmk,gk->gm", a, v.astype(np.float64, copy=False))


def gaussian(rng: np.random.Generator, shape, sigma: float = 1.0) -> np.ndarray:
    """N(0, sigma^2) float32 samples by the Box-Muller transform of float32 uniforms:
    z1 = r cos(t), z2 = r sin(t) with r = sigma sqrt(-2 ln(1 - u1)), t = 2 pi u2, u1, u2 ~ U[0, 1),
    each pair of uniforms giving two independent normals. About 3x faster than the ziggurat of
    ``Generator.standard_normal`` in float32, which dominated noisy runs (one draw per tile read).
    1 - u1 >= 2^-24 bounds |z| by 5.77 sigma (the cut tail has probability 8e-9).
    A large draw comes in STREAMS parts, each from its own stream spawned from ``rng``
    (``Generator.spawn``: independent streams), so that the cores share the drawing; the parts are
    fixed, not the cores, so the samples do not depend on the machine. Uses ``cpu.threaded_map``:
    not to be called from a task that ``cpu.threaded`` or ``threaded_map`` runs."""
    count = int(np.prod(shape, dtype=np.int64))
    half = (count + 1) // 2
    z = np.empty((half, 2), np.float32)
    parts = STREAMS if half >= STREAM_PAIRS else 1
    streams = rng.spawn(parts) if parts > 1 else [rng]
    bounds = [half * i // parts for i in range(parts + 1)]

    def draw(i):  # one part: its uniform pairs, then their normals
        z_part = z[bounds[i]:bounds[i + 1]]
        u = streams[i].random((2, len(z_part)), dtype=np.float32)
        radius = np.log1p(-u[0])
        radius *= -2.0 * sigma * sigma
        np.sqrt(radius, out=radius)
        angle = u[1]
        angle *= np.float32(2 * np.pi)
        np.cos(angle, out=z_part[:, 0])
        np.sin(angle, out=z_part[:, 1])
        z_part[:, 0] *= radius
        z_part[:, 1] *= radius
    cpu.threaded_map(draw, range(parts))
    return z.reshape(-1)[:count].reshape(shape)


def apply_crosstalk(tiles: np.ndarray, c: float) -> np.ndarray:
    """Thermal crosstalk along each bank: ring i's weight becomes w_i + c (w_{i-1} + w_{i+1})."""
    if not c:
        return tiles

    def couple(out, w):  # w_{i+1} + w_{i-1} (0 past the ends), then c x that + w_i; banks apart
        out[..., :-1] = w[..., 1:]
        out[..., -1] = 0
        out[..., 1:] += w[..., :-1]
        out *= c
        out += w
    out = np.empty_like(tiles)
    cpu.threaded(couple, out, tiles)
    return out


def statistical_covers(attrs: dict, profile: dict) -> bool:
    """Whether the statistical noise model runs a bank with these attributes: one with an ADC whose
    detector noise dithers its rounding (at least DITHER code steps)."""
    bits = attrs.get("output_bits")
    return bool(bits) and profile["noise"]["detector_sigma"] * levels(bits) >= DITHER


def reach(profile: dict, signed: bool) -> tuple[float, float]:
    """The weights a ring can realise: a transmission in [0, 1], or a balanced bank's weight_range."""
    return tuple(profile["bank"]["weight_range"]) if signed else (0.0, 1.0)


def device_weights(tiles: np.ndarray, attrs: dict, profile: dict, dtype, rng=None) -> np.ndarray:
    """The ring weights (G, R, Q, B, C) a bank realises, in ``dtype``: the program's weights (decoded
    from codes when quantised) with the profile's thermal crosstalk (systematic: part of the device,
    always on; the compiler pre-compensates it) and, given ``rng``, the programming error
    N(0, weight_sigma) of each ring, clipped to the reachable range. Without decoding, crosstalk or
    error it is the program's read-only tensor itself. The simulator loads its banks with it and
    the compiler calibrates the ADC ranges on it (``ranges.adc_ranges``). In two steps,
    ``realised(coupled_weights(...), ...)``, so that one decoding serves a device with programming
    error and its noiseless twin."""
    error = None if rng is None else programming_error(rng, tiles.shape, profile)
    return realised(coupled_weights(tiles, attrs, profile, dtype), attrs, profile, error)


def coupled_weights(tiles: np.ndarray, attrs: dict, profile: dict, dtype) -> np.ndarray:
    """The program's weights, decoded, with the profile's thermal crosstalk (not yet clipped)."""
    weights = tiles.astype(dtype, copy=False)
    if attrs.get("weight_bits"):
        weights = weights * np.dtype(dtype).type(weight_step(attrs["weight_bits"], bool(attrs.get("signed"))))
    return apply_crosstalk(weights, profile["noise"]["crosstalk"])


def programming_error(rng: np.random.Generator, shape, profile: dict) -> np.ndarray:
    """Each ring's programming error, N(0, weight_sigma), float32; drawn once per device load."""
    return gaussian(rng, shape, profile["noise"]["weight_sigma"])


def realised(weights: np.ndarray, attrs: dict, profile: dict, error: np.ndarray | None = None) -> np.ndarray:
    """``coupled_weights`` plus, given them, the rings' programming errors (``programming_error``,
    of ``weights``' shape), clipped to the reachable range: with ``error`` a new array (``weights``
    is left as it was), without it ``weights`` clipped in place (when crosstalk made it a new
    array) or returned as it is."""
    if error is not None:  # in the weights' dtype (float64 for tile reads), a new array
        weights = weights + error
    if profile["noise"]["crosstalk"] or error is not None:
        weights = np.clip(weights, *reach(profile, bool(attrs.get("signed"))), out=weights)
    return weights


class Simulator:
    def __init__(self, program: Program, seed: int | None = None, noiseless: bool = False,
                 noise_model: str = "per-read", check: str | None = None, progress=None):
        """``check``: run the program's known-answer test (``selftest``, naming ``check`` in its
        error) once the device is loaded; a noisy statistical device then shares its decoded
        weights with the noiseless twin the test runs on instead of loading that a second time.
        ``progress(done, total)`` after each bank loaded (photoncc/progress.py)."""
        if noise_model not in NOISE_MODELS:
            raise ValueError(f"noise model {noise_model!r}: expected one of {', '.join(NOISE_MODELS)}")
        self.program = program
        self.manifest = program.manifest
        self.profile = self.manifest["profile"]
        self.seed, self.noiseless = seed, noiseless
        self.clipped = {}  # layer name -> [values clipped, values modulated]
        self.saturated = {}  # layer name -> [ADC reads saturated, ADC reads] (per-read model only)
        self.rng = np.random.default_rng(self.profile["noise"].get("seed", 0) if seed is None else seed)
        self.dynamic_noise = not noiseless and (self.profile["noise"]["rin_sigma"] > 0
                                                or self.profile["noise"]["detector_sigma"] > 0)
        self.noise_model = noise_model
        self._banks = {}
        self._last_use = {name: i for i, inst in enumerate(self.manifest["instructions"]) for name in inst["inputs"]}
        banks = [inst for inst in self.manifest["instructions"] if inst["op"] == "Bank"]
        # the layers whose reads are drawn by the statistical model: those with an ADC whose detector
        # noise dithers its rounding; noiseless, it runs them unquantised (its rounding error is noise)
        self.statistical = [inst["name"] for inst in banks
                            if noise_model == "statistical" and statistical_covers(inst["attrs"], self.profile)]
        # the banks of this device's noiseless twin (no programming error, no read noise), when the
        # known-answer test runs on it: every layer statistical and the program's answer recorded for it
        self._twin = {} if (check is not None and noise_model == "statistical" and not noiseless and banks
                            and "statistical" in self.manifest["kat"]
                            and all(statistical_covers(inst["attrs"], self.profile) for inst in banks)) else None
        if check is not None and self._twin is None and self._kat_device() is None:
            self.selftest(check)  # on a noiseless device of its own, loaded and freed before this one
            check = None
        for inst in self.manifest["instructions"]:
            if inst["op"] == "Bank":
                self._banks[inst["name"]] = self._load_bank(inst, self.rng)
                if progress is not None:
                    progress(len(self._banks), len(banks))
            elif inst["op"] not in KERNELS:
                raise ProgramError(f"program instruction {inst['name']!r}: unknown op {inst['op']!r}")
        if check is not None:
            self.selftest(check)
            self._twin = None

    # ------------------------------------------------------------------ loading
    def _load_bank(self, inst: dict, rng) -> dict:
        t = self.program.tensors
        a = inst["attrs"]
        tiles, gain, lo, alpha = (t[name] for name in inst["inputs"][1:5])
        adc = t[inst["inputs"][5]] if len(inst["inputs"]) > 5 and inst["inputs"][5] else None
        offset = t[inst["inputs"][6]] if len(inst["inputs"]) > 6 and inst["inputs"][6] else np.zeros(gain.shape)
        name, signed = inst["name"], bool(a.get("signed"))
        self._check_bank(name, tiles, gain, alpha, adc, a, signed)
        noise = self.profile["noise"]
        statistical = name in self.statistical
        direct = (not a.get("output_bits") and not self.dynamic_noise) or statistical
        # the rings' programming errors, drawn once per load (whole: the draws never depend on blocks)
        error = programming_error(rng, tiles.shape, self.profile) if noise["weight_sigma"] and not self.noiseless else None
        groups, r, q, b, c = tiles.shape
        m, k = gain.shape[1], lo.shape[1]
        f64 = np.float64
        bank = {"gain": gain.astype(f64), "offset": offset.astype(f64), "lo": lo.astype(f64), "alpha": alpha.astype(f64),
                "k": k, "padded": q * c, "shift": f64(a["shift"]), "carrier": f64(a.get("carrier", 1.0)),
                "signed": signed, "input_bits": a.get("input_bits"), "output_bits": a.get("output_bits")}
        if direct:  # the device's weights in the model's float type, a block of tile rows at a time
            dtype = tiles.dtype if tiles.dtype.kind == "f" else np.float32
            own_twin = self._twin is not None and error is not None  # else the twin shares the form
            noisy = statistical and not self.noiseless
            weight, const = np.empty((groups, m, k), dtype), np.empty((groups, m))
            clean = (np.empty_like(weight), np.empty_like(const)) if own_twin else (weight, const)
            if noisy:  # the read-noise constants of _read_noise_rows, per row and input channel
                conv = a.get("conv")
                channels = k // (int(np.prod(conv["kernel_shape"])) if conv else 1)
                read_noise = {"var": np.empty((groups, m)), "gain": bank["gain"],
                              "rin_u": np.empty((groups, m, channels)),
                              "rin_c": None if signed else np.empty((groups, m, channels))}
                width = (adc[..., 1] - adc[..., 0]).astype(f64).transpose(0, 1, 3, 2).reshape(groups, r * b, q)
            for block, part in cpu.tile_row_blocks(tiles, m, LOAD_BLOCK):  # part: the block's matrix rows
                count = part.stop - part.start
                coupled = coupled_weights(tiles[:, block], a, self.profile, dtype)
                rows = self._rows(realised(coupled, a, self.profile, None if error is None else error[:, block]), count)
                weight[:, part], const[:, part] = self._direct_rows(bank, rows, part)
                if own_twin:  # the same bank without programming error (and without noise)
                    clean[0][:, part], clean[1][:, part] = self._direct_rows(
                        bank, self._rows(realised(coupled, a, self.profile), count), part)
                if noisy:
                    self._read_noise_rows(read_noise, bank, rows, part, width[:, part], a)
            bank["direct"] = self._direct_form(bank, weight, const, a.get("conv"))
            if self._twin is not None:
                self._twin[name] = {**bank, "direct": self._direct_form(bank, *clean, a.get("conv"))}
            if noisy:
                bank["direct"]["noise"] = read_noise
            return bank
        # the tile reads keep only their (G, Q, C [+ 1], M) float64 weights, built a block of tile rows
        # at a time: on a large layer (VGG-19's first Gemm: 205 M rings, 1.6 GB in float64) no other
        # float64 copy of the layer is ever whole
        per_tile = np.empty((groups, q, c + (adc is not None), m))
        for block, part in cpu.tile_row_blocks(tiles, m, LOAD_BLOCK):  # part: the block's matrix rows
            weights = realised(coupled_weights(tiles[:, block], a, self.profile, f64), a, self.profile,
                               None if error is None else error[:, block])
            per_tile[:, :, :c, part] = (
                weights.transpose(0, 2, 4, 1, 3).reshape(groups, q, c, -1)[..., :part.stop - part.start])
        bank["per_tile"], bank["adc"] = per_tile, None  # adc per (G, Q, M): the range [lo, hi] of row m's photodetector in tile q
        if adc is None:
            return bank
        ranges = adc.astype(f64).transpose(0, 1, 3, 2, 4).reshape(groups, r * b, q, 2)[:, :m]
        bank["adc"] = ranges = ranges.transpose(0, 2, 1, 3)  # (G, Q, M, 2)
        # the ADC's affine map into codes, (read - lo) x top / width, folded into the product: one
        # more channel of constant power 1 whose weight is -lo x top / width (``_tile_reads``)
        to_codes = levels(a["output_bits"]) / (ranges[..., 1] - ranges[..., 0])  # (G, Q, M)
        per_tile[:, :, :c] *= to_codes[:, :, None]
        per_tile[:, :, c] = -ranges[..., 0] * to_codes
        return bank

    @staticmethod
    def _rows(weights: np.ndarray, m: int) -> np.ndarray:
        """(G, M, Q*C): every row of a group with all its channels, the tiles side by side; a
        transposing copy of the tiles (G, R, Q, B, C), shared over the cores."""
        groups, r, q, b, c = weights.shape
        rows = np.empty((groups, r * b, q * c), weights.dtype)
        cpu.threaded(np.copyto, rows.reshape(groups, r, b, q, c), weights.transpose(0, 1, 3, 2, 4))
        return rows[:, :m]

    def _check_bank(self, name, tiles, gain, alpha, adc, a, signed) -> None:
        """The device rules; a program that breaks one is refused before it runs."""
        bank = self.profile["bank"]
        limits = reach(self.profile, signed)
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
        if gain.size and gain.min() <= 0:
            raise DeviceError(f"layer {name!r}: a row gain is not positive")
        if alpha.size and alpha.min() < 0:
            raise DeviceError(f"layer {name!r}: a negative input range (alpha)")
        if a.get("output_bits") and (adc is None or not (adc[..., 1] > adc[..., 0]).all()):
            raise DeviceError(f"layer {name!r}: every ADC needs an input range [lo, hi] with lo < hi")

    @staticmethod
    def _direct_rows(bank: dict, rows: np.ndarray, part: slice):
        """The direct form of matrix rows ``part`` (a slice of M) from their ``rows`` (G, rows, Q*C)
        in the model's float type: the signed weights g (T_u - T_c) (G, rows, K) and the constants
        (G, rows) of ``_direct_form``."""
        gain, offset, k = bank["gain"][:, part], bank["offset"][:, part], bank["k"]
        width = k if bank["signed"] else 2 * k
        signed = rows[:, :, :k] if bank["signed"] else rows[:, :, :k] - rows[:, :, k:2 * k]   # (G, rows, K)
        const = gain * rows[:, :, width].astype(np.float64) * bank["carrier"] - bank["shift"] + offset
        if not bank["signed"]:
            const += gain * _rowdot(rows[:, :, k:2 * k], bank["alpha"])
        const -= gain * _rowdot(signed, bank["lo"])
        return signed * gain[..., None].astype(rows.dtype), const

    @staticmethod
    def _direct_form(bank: dict, weight: np.ndarray, const: np.ndarray, conv) -> dict:
        """The same layer as one signed matrix product, for reads that are neither quantised nor noisy.

        Without an ADC or per-read noise the photodetected sums are only ever added, so
        g (T_u u + T_c (alpha - u) + t_b c) - s + offset = g (T_u - T_c) x' + const with
        x' = clip(x, lo, lo + alpha) (the modulators' saturation; DAC levels applied to x') and
        const = g (T_c alpha + t_b c - (T_u - T_c) lo) - s + offset: identical in exact arithmetic,
        computed with the device's weights (codes, crosstalk, programming error), and free of the
        large offset T_c alpha that the physical sum carries, so the model's float32 keeps it to
        rounding (T_u - T_c is exact: one of the two is zero; the constants are float64 sums).
        ``weight`` (G, M, K) and ``const`` (G, M) come from ``_direct_rows``, a block of rows at a time.
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

    def _read_noise_rows(self, noise: dict, bank: dict, rows: np.ndarray, part: slice, width: np.ndarray,
                         attrs: dict) -> None:
        """The statistical noise model's constants for matrix rows ``part``, written into ``noise``:
        what every tile read adds, drawn once per output.

        Per read (row m, tile q) the device adds detector noise N(0, (det w_q)^2) (w_q: the width of
        that photodetector's ADC range, ``width`` (G, rows, Q)) and rounds to one of top + 1 levels,
        a step of w_q / top. With detector noise of at least DITHER steps the rounding error is (to
        a few parts in a thousand) uniform and independent of the signal, of variance
        (w_q / top)^2 / 12; RIN makes each channel's power v_j (1 + N(0, rin^2)), adding
        sum_j T_mj^2 v_j^2 rin^2. Summed over a row's tiles (independent reads), each output gets
        one Gaussian of variance

            var_m = sum_q (w_q / top)^2 ((det top)^2 + 1/12) + rin^2 (sum_j T_mj^2 E[v_j^2] + t_b^2 c^2)

        times g_m^2 (the row gain). E[v_j^2] is each input vector's own for a fully connected bank,
        and each input channel's mean over the feature map for a convolution (the variance is exact
        on average over positions; how it varies from one position to the next is not modelled).
        Not modelled: ADC saturation of a read (the per-read model clips it) and the correlation of
        RIN between the rows a channel feeds. ``noise`` holds the input-independent variance
        ``var`` (G, M) and the RIN weights ``rin_u``, ``rin_c`` (G, M, channels; ``rin_c`` None on
        a signed bank) for E[u^2] and E[(alpha - u)^2].
        """
        top = levels(attrs["output_bits"])
        det, rin = self.profile["noise"]["detector_sigma"], self.profile["noise"]["rin_sigma"]
        groups, count = rows.shape[:2]
        k = bank["k"]
        conv = attrs.get("conv")
        taps = int(np.prod(conv["kernel_shape"])) if conv else 1
        carrier = k if bank["signed"] else 2 * k                          # the bias carrier's channel
        var = ((width / top) ** 2).sum(axis=-1) * ((det * top) ** 2 + 1.0 / 12.0)
        var += rin ** 2 * rows[:, :, carrier].astype(np.float64) ** 2 * bank["carrier"] ** 2
        noise["var"][:, part] = var

        def per_channel(t):  # sum over a channel's taps of T^2, in float32 (enough for a variance), no copy
            t = t.reshape(groups, count, k // taps, taps)
            return rin ** 2 * np.einsum("gmct,gmct->gmc", t, t).astype(np.float64)
        noise["rin_u"][:, part] = per_channel(rows[:, :, :k])
        if not bank["signed"]:
            noise["rin_c"][:, part] = per_channel(rows[:, :, k:2 * k])

    def _add_read_noise(self, y: np.ndarray, u: np.ndarray, d: dict, conv) -> None:
        """Add the statistical model's noise (``_read_noise_rows``) to a bank's outputs ``y``, in place;
        ``u`` holds the modulated inputs x' (channel-last for a convolution). A convolution's channel
        moments come from sums over the feature map without a copy (E[u] in float64, E[u^2] summed in
        float32: a few parts in a million, enough for a variance); the noise is drawn a block of
        output rows (all samples) at a time, in ``y``'s memory order."""
        n = d["noise"]
        groups, m = n["gain"].shape
        lo = d["lo"].astype(np.float64)
        if conv:  # each channel's power u - lo, its moments over the feature map (N, *S, C) -> (N, C)
            positions = int(np.prod(u.shape[1:-1], dtype=np.int64))
            mean = u.sum(axis=tuple(range(1, u.ndim - 1)), dtype=np.float64) / positions
            space = "defghijk"[:u.ndim - 2]                                  # spatial axes (not n, c)
            square = np.einsum(f"n{space}c,n{space}c->nc", u, u)  # float32 sums: a few parts in a million
            if not np.isfinite(square).all():  # overflowed (inputs beyond 1e19): sum in float64 instead
                square = np.einsum(f"n{space}c,n{space}c->nc", u, u, dtype=np.float64)
            square = square.astype(np.float64) / positions
            first = mean - lo
            second = np.maximum(square - 2 * lo * mean + lo * lo, 0.0)   # E[(u - lo)^2]
        else:
            first = u.astype(np.float64) - lo
            second = first * first
        lead = first.shape[:-1]
        first, second = first.reshape(lead + (groups, -1)), second.reshape(lead + (groups, -1))
        var = n["var"] + np.einsum("...gc,gmc->...gm", second, n["rin_u"])
        if n["rin_c"] is not None:  # the complement channel carries alpha - u: E[(a - u)^2]
            alpha = d["alpha"].astype(np.float64).reshape(groups, -1)
            var += np.einsum("...gc,gmc->...gm", alpha ** 2 - 2 * alpha * first + second, n["rin_c"])
        std = (np.sqrt(var) * n["gain"]).reshape(lead + (groups * m,)).astype(y.dtype)
        last = np.moveaxis(y, 1, -1) if conv else y                      # y's memory order
        if conv:
            std = std.reshape((std.shape[0],) + (1,) * (y.ndim - 2) + (groups * m,))
        axis = 1 if conv else 0
        rows = max(1, NOISE_BLOCK // max(1, last[:1].size if not conv else last[:, :1].size))
        for r0 in range(0, last.shape[axis], rows):
            part = last[:, r0:r0 + rows] if conv else last[r0:r0 + rows]
            z = gaussian(self.rng, part.shape)
            z *= std if conv else std[r0:r0 + rows]
            part += z

    # ------------------------------------------------------------------ running
    def run(self, feeds: dict, keep=(), progress=None) -> dict:
        """One batch: ``feeds`` maps input name -> array (batch first); returns the outputs by name
        and the values named in ``keep`` (intermediate values, for per-layer metrics).
        ``progress(done, total)`` after each instruction (photoncc/progress.py)."""
        env = dict(self.program.tensors)
        env.update(feeds)
        env[""] = None
        held = {o["name"] for o in self.manifest["outputs"]} | set(keep)
        fresh = set()  # values in memory of their own that no other live value shares
        dead = dead_after([(inst["inputs"], inst["outputs"]) for inst in self.manifest["instructions"]], held)
        with np.errstate(all="ignore"):
            for index, inst in enumerate(self.manifest["instructions"]):
                args = [env[i] for i in inst["inputs"]]
                try:
                    result = self._bank(inst, args[0]) if inst["op"] == "Bank" else \
                        self._in_place(inst, args, index, fresh, held)
                    in_place = result is not None and inst["op"] != "Bank"
                    if result is None:
                        result = KERNELS[inst["op"]](*[a for a in args if a is not None], **inst["attrs"])
                except (ValueError, IndexError) as e:  # shapes that do not fit: the program's inputs
                    raise self._batch_error(inst, feeds, e) from e
                result = result if isinstance(result, tuple) else (result,)
                self._track_ownership(inst, args, result, fresh, in_place)
                for name, value in zip(inst["outputs"], result):
                    if name:
                        env[name] = value
                del args, result
                for name in dead[index]:  # no later instruction reads it: its memory can go
                    del env[name]
                    fresh.discard(name)
                if progress is not None:
                    progress(index + 1, len(self.manifest["instructions"]))
        return {name: env[name] for name in [o["name"] for o in self.manifest["outputs"]] + list(keep)}

    def _in_place(self, inst: dict, args: list, index: int, fresh: set, held: set):
        """The instruction computed in its first input's memory, or None when that is not safe: the
        input must be owned (``fresh``), not wanted afterwards (an output, kept, or read by a later
        instruction) and, for a binary op, already of the result's shape and dtype."""
        op, names = inst["op"], inst["inputs"]
        if op not in IN_PLACE or len(names) != IN_PLACE[op][1]:
            return None
        if len(names) == 2 and names[1] in fresh and self._last_use[names[1]] == index and names[1] not in held:
            names, args = names[::-1], args[::-1]  # Add and Sum commute: overwrite whichever operand dies
        source = names[0]
        if source not in fresh or source in held or self._last_use[source] != index:
            return None
        if len(args) == 2:
            a, b = args
            if not isinstance(b, np.ndarray) or np.result_type(a, b) != a.dtype or \
                    np.broadcast_shapes(a.shape, b.shape) != a.shape or np.may_share_memory(a, b):
                return None
        return IN_PLACE[op][0](*args)

    @staticmethod
    def _track_ownership(inst: dict, args: list, result: tuple, fresh: set, in_place: bool) -> None:
        """Update ``fresh``: an output is owned when it shares memory with no input and no other
        output (a new array), or when it was computed in place (it takes over its input's memory,
        which nothing reads afterwards); an input that an output shares memory with (a view, an
        input returned as is) is no longer owned under its own name."""
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        outputs = [(n, v) for n, v in zip(inst["outputs"], result) if n and isinstance(v, np.ndarray)]
        for name, value in zip(inst["inputs"], args):
            if name in fresh and any(np.may_share_memory(value, v) for _, v in outputs):
                fresh.discard(name)
        for name, value in outputs:
            others = [v for n, v in outputs if n != name] + ([] if in_place else arrays)
            if any(np.may_share_memory(value, a) for a in others):
                fresh.discard(name)
            else:
                fresh.add(name)

    def _batch_error(self, inst: dict, feeds: dict, error: Exception) -> ProgramError:
        count = len(next(iter(feeds.values()))) if feeds else 0
        fixed = self.manifest.get("batch")
        hint = (f"; the model was exported with a fixed batch of {fixed}: simulate in batches of {fixed} "
                f"(--batch-size {fixed})") if fixed and fixed != count else ""
        return ProgramError(f"instruction {inst['name']!r} ({inst['op']}) cannot run on {count} sample(s): "
                            f"{error}{hint}")

    def _bank(self, inst: dict, x: np.ndarray) -> np.ndarray:
        bank = self._banks[inst["name"]]
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
        and ADCs; returns ``(P, G*M)``, the electronics' output."""
        groups, k = bank["lo"].shape
        alpha = bank["alpha"]
        u = x.reshape((-1, groups, k)) - bank["lo"]                       # (P, G, K)
        slack = 1e-6 * (alpha + np.abs(bank["lo"]))  # float rounding at a bound is not clipping
        clipped = np.count_nonzero((u < -slack) | (u > alpha + slack))
        count = self.clipped.setdefault(name, [0, 0])
        count[0] += int(clipped)
        count[1] += u.size
        u = np.clip(u, 0, alpha)                                           # the modulators saturate
        if bank["input_bits"]:                                             # the DAC's levels
            top = levels(bank["input_bits"])
            step = np.where(alpha > 0, alpha / top, 1.0)
            u = np.minimum(np.round(u / step) * step, alpha)
        v = np.zeros((groups, u.shape[0], bank["padded"]), np.float32)     # optical powers per channel
        v[:, :, :k] = u.transpose(1, 0, 2)
        if bank["signed"]:
            v[:, :, k] = bank["carrier"]
        else:
            v[:, :, k:2 * k] = alpha[:, None, :] - v[:, :, :k]
            v[:, :, 2 * k] = bank["carrier"]
        if v.min(initial=0.0) < 0:
            raise DeviceError(f"layer {name!r}: negative optical input power")
        sums = self._tile_reads(name, bank, v)                             # (G, P, M): photodetected
        y = sums * bank["gain"][:, None, :] - bank["shift"] + bank["offset"][:, None, :]
        return y.transpose(1, 0, 2).reshape(x.shape[0], -1)

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
        if conv:  # u: the interior of the padded buffer xp
            xp, u = pad_channel_last(x.shape, conv["pads"], d["weight"].dtype)
        else:
            u = np.empty(x.shape, d["weight"].dtype)
        step = np.where(alpha > 0, alpha / levels(bank["input_bits"]), 1.0).astype(u.dtype) \
            if bank["input_bits"] else None

        def modulate(u, x):  # a part of the inputs, elementwise (``cpu.threaded`` shares the parts)
            np.clip(x, lo, hi, out=u, casting="same_kind")                # the modulators saturate
            if step is not None:                                           # the DAC's levels
                u -= lo
                u /= step
                np.round(u, out=u)
                u *= step
                np.minimum(u, alpha, out=u)
                u += lo
        cpu.threaded(modulate, u, last)
        if conv:
            y = conv_padded(xp, d["weight"], d["bias"], strides=conv["strides"],
                                    dilations=conv["dilations"], group=conv["group"])
        else:
            y = u @ d["weight"].T + d["bias"]
        if "noise" in d:
            self._add_read_noise(y, u, d, conv)
        return y.astype(x.dtype, copy=False)

    def _tile_reads(self, name: str, bank: dict, v: np.ndarray) -> np.ndarray:
        """Sum over tiles of each tile's partial sums, with RIN, detector noise and the ADC per read.

        float64 per read: a read can sit far above its ADC's step (a narrow range [lo, hi] at a large
        power, e.g. a tile of complement channels), where float32 would resolve it only to about a
        code; noise is drawn in float32. With an ADC, the product gives each read in codes of its
        ADC, (read - lo) x top / width: the weights are scaled by top / width and a last channel of
        power 1 carries -lo x top / width (``_load_bank``). In chunks of positions so that memory
        stays bounded; the product and the conversion are shared over the cores along the positions.
        Reads that land more than half a code past either end of their ADC's range (so that the
        clip, not the rounding, decides their code) are counted as saturated in ``self.saturated``."""
        w = bank["per_tile"]                                               # (G, Q, C [+ 1], M) float64
        groups, q, _, m = w.shape
        c = bank["padded"] // q
        noise = self.profile["noise"]
        rin = 0.0 if self.noiseless else noise["rin_sigma"]
        det = 0.0 if self.noiseless else noise["detector_sigma"]
        scale = bank["adc"]                                                # (G, Q, M, 2) or None
        if scale is not None:  # value = lo + code x width / top
            top = levels(bank["output_bits"])
            to_value = ((scale[..., 1] - scale[..., 0]) / top)[:, :, None, :]
            low_sum = scale[..., 0].sum(axis=1)[:, None, :]              # (G, 1, M): sum over tiles of lo
        out = np.empty((groups, v.shape[1], m))
        chunk = max(1, READ_BLOCK // max(1, groups * q * max(m, c)))

        def fluctuate(v, eps):  # RIN: v (1 + eps)
            eps += 1.0
            v *= eps

        def product(partial, vt):  # row by row: a part of the positions
            np.matmul(vt, w, out=partial)

        saturated = []  # per part of a block: its reads past an end of the ADC's range (list.append: thread-safe)

        def convert(reads, detector):  # codes: detector noise (det x the ADC's width: det x top codes), clip, round
            if det:
                reads += detector
            if reads.min() < -0.5 or reads.max() > top + 0.5:  # two reductions; counted only then
                saturated.append(int(np.count_nonzero(reads < -0.5)) + int(np.count_nonzero(reads > top + 0.5)))
            np.clip(reads, 0.0, top, out=reads)
            np.round(reads, out=reads)
            reads *= to_value
        for start in range(0, v.shape[1], chunk):
            part = v[:, start:start + chunk].reshape(groups, -1, q, c).transpose(0, 2, 1, 3)  # (G, Q, p, C)
            vt = np.empty(part.shape[:3] + (w.shape[2],))                  # (G, Q, p, C [+ 1]) float64
            cpu.threaded(np.copyto, vt[..., :c], part, axis=2)
            if scale is not None:
                vt[..., c] = 1.0                                           # the ADC offset's channel
            if rin:  # each channel's power fluctuates, shared by every row it feeds
                cpu.threaded(fluctuate, vt[..., :c], gaussian(self.rng, part.shape, rin))
            partial = np.empty(part.shape[:3] + (m,))                      # (G, Q, p, M)
            cpu.threaded(product, partial, vt, axis=2)
            if scale is not None:  # the ADC, position by position
                detector = gaussian(self.rng, partial.shape, det * top) if det else partial
                cpu.threaded(convert, partial, detector, axis=2)
                out[:, start:start + chunk] = partial.sum(axis=1) + low_sum
            else:
                if det:  # no ADC: detector noise relative to the largest read of the tile
                    partial += gaussian(self.rng, partial.shape, det) * np.abs(partial).max(axis=2, keepdims=True)
                out[:, start:start + chunk] = partial.sum(axis=1)
        if scale is not None:
            tally = self.saturated.setdefault(name, [0, 0])
            tally[0] += sum(saturated)
            tally[1] += groups * q * v.shape[1] * m
        return out

    def run_batches(self, feeds: dict, batch_size: int = DEFAULT_BATCH, progress=None, keep=(),
                    keep_samples: int | None = None) -> dict:
        """All samples of ``feeds``, ``batch_size`` at a time; ``progress(done, total)`` in samples,
        after each instruction of each batch (photoncc/progress.py). The values named in ``keep``
        are returned for the first ``keep_samples`` samples (all when None), kept only from the
        batches that hold them."""
        outputs = {o["name"] for o in self.manifest["outputs"]}
        parts, kept = {}, {}
        for index, (batch, step) in enumerate(batches(feeds, batch_size, progress)):
            wanted = keep if keep_samples is None or index * batch_size < keep_samples else ()
            out = self.run(batch, wanted, step)
            for name, value in out.items():
                (parts if name in outputs else kept).setdefault(name, []).append(value)

        def joined(values):  # one batch: its arrays as they are (nothing else holds them), no copy
            return values[0] if len(values) == 1 else np.concatenate(values)
        return {**{name: joined(values)[:keep_samples] for name, values in kept.items()},
                **{name: joined(values) for name, values in parts.items()}}

    def adc_saturated_fraction(self) -> dict:
        """Per layer with ADCs, the share of its tile reads (per-read model) that saturated an ADC:
        more than half a code past either end of the range it was calibrated for."""
        return {name: c / n for name, (c, n) in self.saturated.items() if n}

    def clipped_fraction(self) -> dict:
        return {name: c / n for name, (c, n) in self.clipped.items() if n}

    def _kat_key(self) -> str:
        """The known answers this device is checked against: its own noise model's ("statistical"
        when it has statistical layers and the program records them, else "outputs", per read)."""
        return "statistical" if self.statistical and "statistical" in self.manifest["kat"] else "outputs"

    def _kat_device(self):
        """The device the known-answer test runs on: this one, when it is noiseless and of the
        answers' form; its noiseless twin, loaded with it (``check``); else None: a noiseless
        device of its own."""
        noise = self.profile["noise"]
        quiet = self.noiseless or not (noise["weight_sigma"] or noise["rin_sigma"] or noise["detector_sigma"])
        statistical = self._kat_key() == "statistical"
        if quiet and statistical == bool(self.statistical):
            return self
        if self._twin and statistical:
            device = copy.copy(self)
            device.noiseless, device.dynamic_noise, device._banks = True, False, self._twin
            device.clipped, device.saturated = {}, {}
            return device
        return None

    def selftest(self, where: str = "<program>") -> None:
        """Run the program's known-answer test, noiseless, in this simulator's noise model; a mismatch
        means the program no longer computes what was compiled (edited weights) or the simulator
        changed. It compares the outputs and the values of the final optical layers (``kat.layers``,
        which a saturated softmax cannot hide). The statistical model checks those recorded for its
        own noiseless form (``kat.statistical``, ``kat.statistical_layers``: its layers unquantised,
        one product per layer instead of every tile read); a program recorded without them (older
        photoncc) is checked per read."""
        kat = self.manifest["kat"]
        t = self.program.tensors
        key = self._kat_key()
        layers = kat.get(KAT_LAYERS[key], {})  # the final optical layers' values
        expected = {**kat[key], **layers}
        device = self._kat_device() or Simulator(self.program, noiseless=True,
                                                 noise_model="statistical" if key == "statistical" else "per-read")
        out = device.run({name: t[ref] for name, ref in kat["inputs"].items()}, keep=list(layers))
        device.clipped, device.saturated = {}, {}
        for name, ref in expected.items():
            want, got = t[ref], out[name]
            what = f"{'layer value' if name in layers else 'output'} {name!r}"
            if want.shape != got.shape:
                raise KnownAnswerError(f"{where}: known-answer test failed: {what} has shape {got.shape}")
            if want.dtype.kind == "f":
                finite = np.isfinite(want)
                if not np.array_equal(finite, np.isfinite(got)) or not np.array_equal(want[~finite], got[~finite],
                                                                                       equal_nan=True):
                    raise KnownAnswerError(f"{where}: known-answer test failed: {what} is NaN or infinite "
                                           "at other places than recorded")
                want, got = want[finite], got[finite]
                scale = max(float(np.ptp(want)), float(np.abs(want).max()), 1e-30) if want.size else 1.0
                err = float(np.abs(got.astype(np.float64) - want).max()) / scale if want.size else 0.0
                if not err <= kat["rtol"]:
                    raise KnownAnswerError(f"{where}: known-answer test failed: {what} differs by "
                                           f"{err:.3g} of its range (allowed {kat['rtol']})")
            elif not np.array_equal(want, got):
                raise KnownAnswerError(f"{where}: known-answer test failed: {what} differs")
