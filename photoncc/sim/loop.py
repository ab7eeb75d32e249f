"""The simulator's instruction loop: load a program's device, run its instructions on batches.

Banks run on the executor of the device's architecture (``devices.ARCHITECTURES``; ``rings`` for
the ring banks: realise and read them); every other instruction is its op's kernel
(``photoncc.ops``), in the model's dtype, computed in its input's memory where nothing else reads
it (``memory``). A value is dropped after the last instruction that reads it
(``program.dead_after``), so a batch holds its live values, not all of them. Nothing loops in
Python over samples, pixels or rings.
"""
from __future__ import annotations

from importlib import import_module

import numpy as np

from .. import ops
from ..devices import ARCHITECTURES
from ..data import batches
from ..errors import ProgramError
from ..program import OPTICAL_OPS, Program, dead_after, optical_inputs
from . import kat
from .backend import backend
from .memory import in_place, track_ownership
from .noise import statistical_covers

DEFAULT_BATCH = 64
NOISE_MODELS = ("per-read", "statistical")
DEFAULT_NOISE_MODEL = "statistical"  # of the commands; validated against per-read in docs/accuracy.md
KERNELS = ops.kernels()


class Simulator:
    """A program loaded on a simulated device: ``run`` one batch, ``run_batches`` any number of
    samples; ``clipped_fraction`` and ``adc_saturated_fraction`` say what saturated."""

    def __init__(self, program: Program, seed: int | None = None, noiseless: bool = False,
                 noise_model: str = "per-read", check: str | None = None, progress=None, device: str = "cpu",
                 chip=None):
        """``seed``: of the device's noise (default: the profile's ``noise.seed``); ``noiseless``:
        no programming error and no read noise; ``noise_model`` (NOISE_MODELS): how noisy reads are
        drawn (noise.py). ``check``: run the program's known-answer test (``kat.selftest``, naming
        ``check`` in its error) once the device is loaded; a noisy statistical device then shares
        its decoded weights with the noiseless twin the test runs on instead of loading that a
        second time. ``progress(done, total)`` after each bank loaded (photoncc/progress.py).
        ``device``: where the per-read tile reads run (``backend.DEVICES``: ``cpu`` or ``cuda``).
        ``chip``: the device's static errors (``photoncc.chip.Chip``, read for this program's
        profile), which replace the ones drawn from the seed; the known-answer test still runs on
        the nominal device."""
        if noise_model not in NOISE_MODELS:
            raise ValueError(f"noise model {noise_model!r}: expected one of {', '.join(NOISE_MODELS)}")
        self.program = program
        self.manifest = program.manifest
        self.profile = self.manifest["profile"]
        self.seed, self.noiseless, self.noise_model, self.device = seed, noiseless, noise_model, device
        self.chip = chip
        self.saturation = None  # a sim.saturation.SampleRanges when the caller (verify) tracks each sample's ranges
        self.rng = np.random.default_rng(self.profile["noise"].get("seed", 0) if seed is None else seed)
        self._last_use = {name: i for i, inst in enumerate(self.manifest["instructions"]) for name in inst["inputs"]}
        banks = [inst for inst in self.manifest["instructions"] if inst["op"] in OPTICAL_OPS]
        # the layers whose reads are drawn by the statistical model: those with an ADC whose detector
        # noise dithers its rounding; noiseless, it runs them unquantised (its rounding error is noise)
        self.statistical = [inst["name"] for inst in banks if inst["op"] == "Bank"
                            and noise_model == "statistical" and statistical_covers(inst["attrs"], self.profile)]
        # the layers the statistical model leaves to the per-read model: read through ADCs or with read
        # noise, but not covered (no ADC, or detector noise too small to dither its rounding)
        noisy = not noiseless and (self.profile["noise"]["rin_sigma"] > 0 or self.profile["noise"]["detector_sigma"] > 0)
        self.per_read = [inst["name"] for inst in banks if noise_model == "statistical"
                         and inst["name"] not in self.statistical and (inst["attrs"].get("output_bits") or noisy)]
        # the banks of this device's noiseless twin (no programming error, no read noise), when the
        # known-answer test runs on it: every layer statistical and the program's answer recorded for it
        twin = {} if (check is not None and noise_model == "statistical" and not noiseless and banks
                      and "statistical" in self.manifest["kat"]
                      and all(statistical_covers(inst["attrs"], self.profile) for inst in banks)) else None
        executor = import_module(f"{__package__}.{ARCHITECTURES[self.profile['architecture']]}").EXECUTOR
        self.banks = executor(self.profile, noiseless, self.rng, self.statistical, twin, backend=backend(device),
                              **({} if chip is None else {"chip": chip}))
        if check is not None and twin is None and kat.kat_device(self) is None:
            kat.selftest(self, check)  # on a noiseless device of its own, loaded and freed before this one
            check = None
        for inst in self.manifest["instructions"]:
            if inst["op"] in OPTICAL_OPS:
                tensors = {key: program.tensors[name] for key, name in optical_inputs(inst["op"], inst["inputs"]).items()
                           if name and key != "x"}
                self.banks.load(inst, tensors)
                if progress is not None:
                    progress(len(self.banks.loaded), len(banks))
            elif inst["op"] not in KERNELS:
                raise ProgramError(f"program instruction {inst['name']!r}: unknown op {inst['op']!r}")
        if check is not None:
            kat.selftest(self, check)
            self.banks.twin = None

    def selftest(self, where: str = "<program>") -> None:
        """Run the program's known-answer test (``kat.selftest``)."""
        kat.selftest(self, where)

    def run(self, feeds: dict, keep=(), progress=None) -> dict:
        """One batch: ``feeds`` maps input name -> array (batch first); returns the outputs by name
        and the values named in ``keep`` (intermediate values, for per-layer metrics).
        ``progress(done, total)`` after each instruction (photoncc/progress.py)."""
        env = dict(self.program.tensors)
        env.update(feeds)
        env[""] = None
        held = {o["name"] for o in self.manifest["outputs"]} | set(keep)
        fresh = set()  # values in memory of their own that no other live value shares
        instructions = self.manifest["instructions"]
        dead = dead_after([(inst["inputs"], inst["outputs"]) for inst in instructions], held)
        with np.errstate(all="ignore"):
            for index, inst in enumerate(instructions):
                args = [env[i] for i in inst["inputs"]]
                try:
                    optical = inst["op"] in OPTICAL_OPS
                    if optical and self.saturation is not None:
                        self.saturation.observe(inst, args[0])
                    result = self.banks.run(inst, args[0]) if optical else \
                        in_place(inst, args, index, fresh, held, self._last_use)
                    computed_in_place = result is not None and not optical
                    if result is None:
                        result = KERNELS[inst["op"]](*[a for a in args if a is not None], **inst["attrs"])
                except (ValueError, IndexError, TypeError, KeyError, ArithmeticError) as e:  # shapes or settings
                    raise self._batch_error(inst, feeds, e) from e                            # that do not fit
                result = result if isinstance(result, tuple) else (result,)
                track_ownership(inst, args, result, fresh, computed_in_place)
                for name, value in zip(inst["outputs"], result):
                    if name:
                        env[name] = value
                del args, result
                for name in dead[index]:  # no later instruction reads it: its memory can go
                    del env[name]
                    fresh.discard(name)
                if progress is not None:
                    progress(index + 1, len(instructions))
        return {name: env[name] for name in [o["name"] for o in self.manifest["outputs"]] + list(keep)}

    def _batch_error(self, inst: dict, feeds: dict, error: Exception) -> ProgramError:
        count = len(next(iter(feeds.values()))) if feeds else 0
        fixed = self.manifest.get("batch")
        hint = (f"; the model was exported with a fixed batch of {fixed}: simulate in batches of {fixed} "
                f"(--batch-size {fixed})") if fixed and fixed != count else ""
        return ProgramError(f"instruction {inst['name']!r} ({inst['op']}) cannot run on {count} sample(s): "
                            f"{error}{hint}")

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
        return {name: c / n for name, (c, n) in self.banks.saturated.items() if n}

    def clipped_fraction(self) -> dict:
        """Per optical layer, the share of its modulated values outside the calibrated range."""
        return {name: c / n for name, (c, n) in self.banks.clipped.items() if n}
