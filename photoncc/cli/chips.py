"""``photoncc chip`` and ``photoncc calibrate``: one chip's static errors, drawn or estimated."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from ..files import output_path, write_files
from . import common
from .app import cli


@cli.command("chip")
@click.argument("profile_spec", metavar="PROFILE")
@click.option("--seed", type=click.IntRange(0, 2 ** 63 - 1), required=True, help="Seed of the draw.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Chip file to write (.npz).")
def chip_command(profile_spec, seed, output):
    """Draw one chip of PROFILE: every static error (MZI phase offsets, splitter imbalance, loss; a ring
    bank's programming offsets and crosstalk), as if measured on a fabricated device.

    compile/simulate/verify --chip CHIP.npz program for it or run on it; without --chip, simulate and
    verify draw the same chip from their --seed (architecture mzi).
    """
    from ..chip import draw
    output = output_path(output, "-o", {"PROFILE": common.profile_file(profile_spec)}, {})
    profile = common.profile(profile_spec)
    drawn = draw(profile, seed)
    write_files({output: drawn.to_bytes()})
    common.say(f"photoncc: drew a chip of {profile.name} (seed {seed}): {drawn.describe()} -> {output}")


@cli.command()
@click.argument("profile_spec", metavar="PROFILE")
@click.option("--device", "device_path", required=True, type=click.Path(path_type=Path),
              help="The device to measure: a chip file standing in for a physical device (the simulator loaded "
                   "with it, reached only through the measurement interface).")
@click.option("--probes", type=click.IntRange(3, 64), default=12, show_default=True,
              help="Random settings of each mesh measured (each: N attenuator states x N unit fields). More "
                   "settings fit each MZI's couplers better (on 64-port meshes 12 estimate splitting errors "
                   "about 10 times closer than 6).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the probe settings and of the device's read noise.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Estimate to write (.npz).")
def calibrate(profile_spec, device_path, probes, seed, output):
    """Estimate a chip's static errors from measurements alone (architecture mzi).

    Probe settings are programmed on the device and its outputs read (read noise on); the errors are
    fitted to the measurements, never read from the device. The estimate is a chip file:
    compile --chip ESTIMATE.npz programs for it.
    """
    from ..calibrate import calibrate as estimate
    from ..chip import read
    from ..sim.measure import SimulatedDevice
    output = output_path(output, "-o", {"PROFILE": common.profile_file(profile_spec), "--device": device_path}, {})
    profile = common.profile(profile_spec)
    device = SimulatedDevice(profile, read(device_path, profile, "--device"), seed) if profile["architecture"] == "mzi" \
        else None
    if device is None:
        raise UserError(f"calibrate: profile {profile.name!r} is not an MZI-mesh profile (architecture "
                        f"{profile['architecture']!r}); calibration estimates the static errors of MZI meshes")
    with common.Progress("calibrate") as progress:
        found = estimate(profile, device, probes, seed, progress)
    write_files({output: found.to_bytes()})
    common.say(f"photoncc: calibrated a chip of {profile.name} from {device.vectors} input vectors sent "
         f"({device.reads} detector reads, {2 * probes - 1} settings): {found.describe()} -> {output}")
