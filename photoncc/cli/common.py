"""What the commands share: the options several take, reading profiles, programs and data for them,
what they print to stderr (``say``: every line of the command's own), and the progress bar.
Commands refer to these as ``common.NAME`` so that a test can stand in for one."""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import click
import numpy as np

from .. import text
from ..errors import UserError
from ..sim import DEVICES

DEVICE_OPTION = click.option(
    "--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
    help='Where the per-read tile reads run: the CPU\'s cores, or an NVIDIA GPU (CuPy: pip install "photoncc[gpu]").')
NOISE_MODEL_HELP = ("Noisy profiles: statistical (the default) draws one Gaussian per output with the variance its "
                    "tile reads add up to, for every layer whose detector noise dithers its ADC (validated against "
                    "per-read: docs/accuracy.md); per-read simulates every tile read (RIN, detector noise, ADC "
                    "rounding and saturation), as the device does, for sign-off. Layers the statistical model does "
                    "not cover run per read either way.")



def profile(spec):
    from ..profile import load_profile
    return load_profile(spec)


def input_range(text: str | None):
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--input-range {text!r}: expected LO,HI (two numbers, e.g. 0,1)") from None
    if not lo <= hi:
        raise UserError(f"--input-range {text!r}: LO must not exceed HI")
    return lo, hi


def profile_file(spec: str):
    """A ``-p`` argument that names a file (not a built-in profile), else None."""
    return Path(spec) if spec and Path(spec).is_file() else None


def npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def say(message: str) -> None:
    click.echo(message, err=True)


def warn_layers(fractions: dict, what: str, short: str) -> None:
    for line in text.worst_layers(fractions, what, short):
        say(f"photoncc: warning: {line}" + ("; compile with calibration data that covers your inputs"
                                             if line.startswith("layer ") else ""))


class Progress:
    """A progress bar on stderr, shown only on a terminal and only once the work has run 2 s.

    Called as ``progress(done, total)`` or, for work in stages, ``progress(done, total, stage)``
    (photoncc/progress.py): each stage gets its own line, ended when its ``done`` reaches
    ``total`` or the next stage begins. Use it as a context manager, which ends an open line when
    the work stops (an error message then starts on a line of its own)."""
    DELAY, WIDTH, REDRAW = 2.0, 30, 0.1  # seconds before the first bar, bar width, seconds between redraws

    def __init__(self, what: str):
        self.what, self.start, self.drawn, self.open = what, time.monotonic(), 0.0, None

    def __call__(self, done: float, total: int, stage: str = "") -> None:
        now = time.monotonic()
        finished = done >= total
        if not sys.stderr.isatty() or now - self.start < self.DELAY or (
                stage == self.open and not finished and now - self.drawn < self.REDRAW):
            return
        if self.open is not None and stage != self.open:
            sys.stderr.write("\n")
        filled = int(self.WIDTH * min(done, total) / max(total, 1))
        label = f"{self.what}: {stage}" if stage else self.what
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {int(done)}/{total}"
                         + ("\n" if finished else ""))
        sys.stderr.flush()
        self.drawn, self.open = now, None if finished else stage

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.open is not None:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.open = None


def chip(path, profile):
    """The chip file given with --chip, read and checked against ``profile`` (None without one)."""
    if path is None:
        return None
    from ..chip import read
    return read(path, profile)


def load_program(path):
    from ..program import Program
    return Program.read(path)


def feeds_for_program(program, path, stream: bool = False):
    """The program's inputs from an .npz; with ``stream`` read batch by batch as they are used."""
    from ..data import load_npz, match_inputs
    specs = {s["name"]: (tuple(s["shape"]), s["dtype"]) for s in program.manifest["inputs"]}
    return match_inputs(path, load_npz(path, headers_only=stream), specs)
