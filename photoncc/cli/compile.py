"""``photoncc compile`` and ``photoncc check``: a model, for a profile."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .. import text
from ..errors import UserError
from ..files import output_path, write_files
from . import common
from .app import cli


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-p", "--profile", "profile_spec", default="ideal", show_default=True,
              help="Built-in profile name (see `photoncc profiles`) or a YAML file.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Program file to write [default: MODEL with .pcc].")
@click.option("--calibration", type=click.Path(path_type=Path),
              help="Samples (.npz, like verify's inputs) to measure the layers' input ranges on.")
@click.option("--input-range", "input_range", metavar="LO,HI",
              help="Declared range of the model's inputs, used where no calibration data is given.")
@click.option("--headroom", type=click.FloatRange(min=0),
              help="Widen calibrated ranges by this fraction of their width on each side "
                   "[default: the profile's calibration.headroom].")
@click.option("--percentile", type=click.FloatRange(50, 100),
              help="Calibrated ranges span this percentile of the data (100 = min..max) "
                   "[default: the profile's calibration.percentile].")
@click.option("--report", type=click.Path(path_type=Path), help="Also write the compile report (JSON).")
@click.option("--dump-ir", type=click.Path(path_type=Path), help="Write the IR after every pass to this folder.")
@click.option("--chip", "chip_path", type=click.Path(path_type=Path),
              help="A chip's static errors (.npz from `photoncc chip` or `photoncc calibrate`): program for that chip (error-aware programming).")
@click.option("--refine", "refine_steps", type=click.IntRange(0, 100000), default=0, show_default=True, metavar="STEPS",
              help="With --chip on an MZI profile: steps of global refinement of each tile's settings (both meshes' "
                   "phases and the attenuators, against the tile as detected) after the local error correction "
                   "(helps with splitting errors; about 1.5 s per 100 steps of each 64-port tile).")
def compile(model, profile_spec, output, calibration, input_range, headroom, percentile, report, dump_ir, chip_path,
            refine_steps):
    """Compile MODEL (.onnx) into a device program (.pcc) for a hardware profile.

    Every layer's input range must be known: from the model (Sigmoid, Tanh, Clip...), from
    --input-range for the model inputs, or measured on --calibration data. Unsupported nodes are
    all listed at once (as `photoncc check` does).
    """
    from ..compiler import compile_model
    inputs, outputs = {"MODEL": model, "--calibration": calibration, "-p": common.profile_file(profile_spec),
                       "--chip": chip_path}, {}
    output = output_path(output or model.with_suffix(".pcc"), "-o", inputs, outputs)
    if report:
        output_path(report, "--report", inputs, outputs)
    profile = common.profile(profile_spec)
    if refine_steps and profile["architecture"] != "mzi":
        raise UserError(f"--refine: refines the phases of MZI meshes; profile {profile.name!r} is "
                        f"{profile['architecture']} (ring weights are set directly for a chip: give --chip alone)")
    chip = common.chip(chip_path, profile)
    if refine_steps and chip is None:
        raise UserError("--refine: refines the phases programmed for one chip's errors: give --chip CHIP.npz too")
    with common.Progress("compile") as progress:
        program = compile_model(model, profile, calibration, common.input_range(input_range), dump_ir,
                                headroom, percentile, progress, chip=chip, refine_steps=refine_steps)
    files = {output: program.write_to}
    if report:
        files[report] = (json.dumps(program.manifest["report"], indent=1, sort_keys=True) + "\n").encode()
    write_files(files)
    r = program.manifest["report"]
    common.say(f"photoncc: compiled {model} for {r['profile']}: {r['optical_layers']} optical layer(s) in "
         f"{r['tiles']} tile(s), {sum(r['electronic_ops'].values())} electronic op(s) -> {output}")
    if "chip" in r:
        c = r["chip"]
        common.say(f"photoncc: for chip {chip_path}: mesh fidelity {c['fidelity_before']:.6g} as compiled for an "
                   f"ideal chip, {c['fidelity_after']:.6g} programmed for this one; tile error {c['tile_error_before']:.4g} "
                   f"-> {c['tile_error_after']:.4g}; {c['unreachable_mzis']} MZI(s) cannot be set exactly")


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-p", "--profile", "profile_spec", default="ideal", show_default=True,
              help="Built-in profile name or a YAML file.")
def check(model, profile_spec):
    """List every node of MODEL the profile cannot run, with the reason and a hint (exit 2 if any)."""
    from ..compiler import check_model
    from ..report import mac_split
    g = check_model(model, common.profile(profile_spec))
    for line in text.check_lines(model, mac_split(g), sum(n.op == "Linear" for n in g.nodes)):
        click.echo(line)
