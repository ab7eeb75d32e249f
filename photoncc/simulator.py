"""NumPy reference model of the device, executing a Program (program.py). Depends on the program
format, the electronic kernels and NumPy only: never on the compiler's IR, passes or interpreter, so
that ``verify`` compares the model against an independent account of what the device does.

A photonic instruction ``Bank`` (one layer) runs as the hardware does:

1. electronics form each input vector (a row of x, or one im2col patch for a convolution) and
   offset it, u = x - lo;
2. the DACs drive the modulators: each channel's optical power is u clipped to [0, alpha] (a value
   outside is saturated; the simulator counts these as *clipped*), and the complement channel
   carries alpha - u, plus one constant carrier at full power for the bias: v = [u ; alpha - u ; 1];
3. each tile of B x C rings (transmissions T in [0, 1]) weights the C channels it sees and each of
   its B photodetectors sums them: a partial sum per (row, tile);
4. the ADC reads the partial sums, the electronics add a row's partial sums, apply the row gain and
   subtract the layer's shift: y = g * sum_tiles(T v) - s.

The device rules are enforced when a program is loaded: on an incoherent bank every transmission
must lie in [0, 1] and every gain be positive; tiles must have the profile's bank shape. A program
that breaks them is refused with a DeviceError naming the layer, never run. The optical input power
is non-negative by construction of step 2 and checked on every run.

This profile family has no ADC quantisation, so the partial sums of a row are added exactly and
the simulator contracts all of a row's tiles in one matrix product (the same sum, fewer passes
over memory). The optical arithmetic is float64: a float-precision device is modelled as exact, and
the photodetected sum P carries the large offset Wn alpha that the shift removes again, which float32
would round visibly in deep networks. Electronic ops run in the model's dtype. Work is vectorised
over samples, pixels, rings and tiles; ``run`` takes any batch.
"""
from __future__ import annotations

import numpy as np

from . import kernels
from .errors import DeviceError, ProgramError
from .program import Program

DEFAULT_BATCH = 64


class Simulator:
    def __init__(self, program: Program, seed: int | None = None, noiseless: bool = False):
        self.program = program
        self.manifest = program.manifest
        self.profile = self.manifest["profile"]
        self.seed, self.noiseless = seed, noiseless
        self.clipped = {}  # layer name -> [values clipped, values modulated]
        self._banks = {}
        for inst in self.manifest["instructions"]:
            if inst["op"] == "Bank":
                self._banks[inst["name"]] = self._load_bank(inst)
            elif inst["op"] not in kernels.ELECTRONIC:
                raise ProgramError(f"program instruction {inst['name']!r}: unknown op {inst['op']!r}")

    # ------------------------------------------------------------------ loading
    def _load_bank(self, inst: dict) -> dict:
        t = self.program.tensors
        tiles, gain, lo, alpha = (t[name] for name in inst["inputs"][1:5])
        name = inst["name"]
        bank = self.profile["bank"]
        if tiles.shape[3:] != (bank["banks"], bank["rings"]):
            raise DeviceError(f"layer {name!r}: tiles of {tiles.shape[3]}x{tiles.shape[4]} rings do not fit "
                              f"the profile's {bank['banks']}x{bank['rings']} banks")
        if self.profile["architecture"] == "incoherent" and tiles.size and tiles.min() < 0:
            where = np.unravel_index(np.argmin(tiles), tiles.shape)
            raise DeviceError(f"layer {name!r}: ring transmission {float(tiles.min()):.4g} at tile "
                              f"{list(where[:3])} ring {list(where[3:])} is negative; an incoherent bank "
                              "(single photodetector) cannot apply a negative weight")
        if tiles.size and tiles.max() > 1:
            raise DeviceError(f"layer {name!r}: ring transmission {float(tiles.max()):.4g} exceeds 1")
        if gain.size and gain.min() <= 0:
            raise DeviceError(f"layer {name!r}: a row gain is not positive")
        if alpha.size and alpha.min() < 0:
            raise DeviceError(f"layer {name!r}: a negative input range (alpha)")
        groups, r, q, b, c = tiles.shape
        m, k = gain.shape[1], lo.shape[1]
        # the rows of each group as one (R*B, Q*C) matrix: the sum over its tiles is one product
        matrix = tiles.transpose(0, 1, 3, 2, 4).reshape(groups, r * b, q * c)[:, :m, :]
        f64 = np.float64
        return {"matrix": np.ascontiguousarray(matrix.transpose(0, 2, 1), f64), "gain": gain.astype(f64),
                "lo": lo.astype(f64), "alpha": alpha.astype(f64), "k": k, "padded": q * c,
                "shift": f64(inst["attrs"]["shift"])}

    # ------------------------------------------------------------------ running
    def run(self, feeds: dict) -> dict:
        """One batch: ``feeds`` maps input name -> array (batch first); returns outputs by name."""
        env = dict(self.program.tensors)
        env.update(feeds)
        env[""] = None
        with np.errstate(all="ignore"):
            for inst in self.manifest["instructions"]:
                args = [env[i] for i in inst["inputs"]]
                if inst["op"] == "Bank":
                    result = self._bank(inst, args[0])
                else:
                    result = kernels.ELECTRONIC[inst["op"]](*[a for a in args if a is not None], **inst["attrs"])
                result = result if isinstance(result, tuple) else (result,)
                for name, value in zip(inst["outputs"], result):
                    if name:
                        env[name] = value
        return {o["name"]: env[o["name"]] for o in self.manifest["outputs"]}

    def _bank(self, inst: dict, x: np.ndarray) -> np.ndarray:
        bank = self._banks[inst["name"]]
        conv = inst["attrs"].get("conv")
        if conv:
            x = kernels.im2col(x, conv["kernel_shape"], conv["strides"], conv["pads"], conv["dilations"])
        lead = x.shape[:-1]
        groups, k = bank["lo"].shape
        u = x.reshape((-1, groups, k)) - bank["lo"]                       # (P, G, K)
        clipped = np.count_nonzero((u < 0) | (u > bank["alpha"]))
        count = self.clipped.setdefault(inst["name"], [0, 0])
        count[0] += int(clipped)
        count[1] += u.size
        u = np.clip(u, 0, bank["alpha"])                                   # the modulators saturate
        v = np.zeros((groups, u.shape[0], bank["padded"]), u.dtype)        # optical powers per channel
        v[:, :, :k] = u.transpose(1, 0, 2)
        v[:, :, k:2 * k] = bank["alpha"][:, None, :] - v[:, :, :k]
        v[:, :, 2 * k] = 1.0
        if v.min(initial=0.0) < 0:
            raise DeviceError(f"layer {inst['name']!r}: negative optical input power")
        sums = np.matmul(v, bank["matrix"])                                # (G, P, M): photodetected
        y = sums * bank["gain"][:, None, :] - bank["shift"]
        y = y.transpose(1, 0, 2).reshape(lead + (-1,)).astype(x.dtype)
        return np.moveaxis(y, -1, 1) if conv else y

    def run_batches(self, feeds: dict, batch_size: int = DEFAULT_BATCH, progress=None) -> dict:
        """All samples of ``feeds``, ``batch_size`` at a time; ``progress(done, total)`` after each."""
        total = len(next(iter(feeds.values())))
        parts = {}
        for start in range(0, total, batch_size):
            out = self.run({k: v[start:start + batch_size] for k, v in feeds.items()})
            for name, value in out.items():
                parts.setdefault(name, []).append(value)
            if progress:
                progress(min(start + batch_size, total), total)
        return {name: np.concatenate(values) for name, values in parts.items()}

    def clipped_fraction(self) -> dict:
        return {name: c / n for name, (c, n) in self.clipped.items() if n}

    def selftest(self, where: str = "<program>") -> None:
        """Run the program's known-answer test; a mismatch means the program or simulator is broken."""
        kat = self.manifest["kat"]
        t = self.program.tensors
        out = self.run({name: t[ref] for name, ref in kat["inputs"].items()})
        self.clipped = {}
        for name, ref in kat["outputs"].items():
            want, got = t[ref], out[name]
            if want.shape != got.shape:
                raise ProgramError(f"{where}: known-answer test failed: output {name!r} has shape {got.shape}")
            if want.dtype.kind == "f":
                scale = max(float(np.ptp(want)), float(np.abs(want).max()), 1e-30)
                err = float(np.abs(got.astype(np.float64) - want).max()) / scale
                if not err <= kat["rtol"]:
                    raise ProgramError(f"{where}: known-answer test failed: output {name!r} differs by "
                                       f"{err:.3g} of its range (allowed {kat['rtol']})")
            elif not np.array_equal(want, got):
                raise ProgramError(f"{where}: known-answer test failed: output {name!r} differs")
