"""``photoncc simulate``: a program on the device simulator."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from ..files import output_path, write_files
from ..sim import DEFAULT_NOISE_MODEL, NOISE_MODELS
from . import common
from .app import cli


@cli.command()
@click.argument("program_path", metavar="PROGRAM", type=click.Path(path_type=Path))
@click.option("--inputs", required=True, type=click.Path(path_type=Path),
              help="Input samples (.npz): one array per model input, keyed by its name, batch first.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Outputs file (.npz) [default: PROGRAM with .outputs.npz].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the device noise.")
@click.option("--noiseless", is_flag=True, help="Switch the profile's noise off (with --noise-model statistical: "
              "that model without its noise, so the ADC layers it covers are not rounded either).")
@click.option("--noise-model", type=click.Choice(NOISE_MODELS), default=DEFAULT_NOISE_MODEL, show_default=True,
              help=common.NOISE_MODEL_HELP)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Samples simulated at once.")
@common.DEVICE_OPTION
@click.option("--chip", "chip_path", type=click.Path(path_type=Path),
              help="Run on this chip's static errors (.npz from `photoncc chip` or `calibrate`) instead of drawing "
                   "them from the seed.")
def simulate(program_path, inputs, output, seed, noiseless, noise_model, batch_size, device, chip_path):
    """Run PROGRAM on the device simulator and write its outputs (.npz, keyed by output name)."""
    from ..sim import Simulator
    from ..sim.backend import backend
    output = output_path(output or program_path.with_suffix(".outputs.npz"), "-o",
                         {"PROGRAM": program_path, "--inputs": inputs, "--chip": chip_path}, {})
    backend(device)  # a missing CuPy or GPU is said before anything is read
    program = common.load_program(program_path)
    chip = common.chip(chip_path, program.manifest["profile"])
    feeds, _ = common.feeds_for_program(program, inputs, stream=True)
    simulator = Simulator(program, seed=seed, noiseless=noiseless, noise_model=noise_model, check=str(program_path),
                          device=device, **({} if chip is None else {"chip": chip}))
    with common.Progress("simulate") as progress:
        outputs = simulator.run_batches(feeds, batch_size, progress)
    write_files({output: common.npz_bytes(outputs)})
    if simulator.per_read:
        common.say(f"photoncc: note: the statistical noise model does not cover {len(simulator.per_read)} layer(s) (MZI meshes, no ADC, "
             f"or detector noise below half a code), simulated per read: {', '.join(simulator.per_read[:5])}"
             + (", ..." if len(simulator.per_read) > 5 else ""))
    for name, value in outputs.items():
        bad = int(np.count_nonzero(~np.isfinite(value))) if value.dtype.kind == "f" else 0
        if bad:
            common.say(f"photoncc: warning: output {name!r}: {bad} of {value.size} values are NaN or infinite")
    common.warn_layers(simulator.clipped_fraction(), "inputs were outside the calibrated range and clipped", "clipped inputs")
    common.warn_layers(simulator.adc_saturated_fraction(), "ADC reads were outside their calibrated ranges and saturated",
                 "saturated ADC reads")
    count = len(next(iter(feeds.values())))
    common.say(f"photoncc: simulated {count} sample(s) -> {output}")
