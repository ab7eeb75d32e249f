"""``photoncc inspect``, ``profiles`` and ``ops``: what a program, the profiles and the registry hold."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .. import text
from ..errors import UserError
from . import common
from .app import cli


@cli.command()
@click.argument("program_path", metavar="PROGRAM", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the compile report as JSON.")
def inspect(program_path, as_json):
    """Show what PROGRAM does on the device: per layer its tiles, rings used, alpha/shift, placement."""
    program = common.load_program(program_path)
    if as_json:
        click.echo(json.dumps(program.manifest["report"], indent=1, sort_keys=True))
        return
    for line in text.inspect_lines(program, program_path):
        click.echo(line)


@cli.command()
@click.argument("name", required=False)
def profiles(name):
    """List the built-in hardware profiles, or print one (NAME) as YAML."""
    from ..profile import BUILTIN_DIR, builtin_names, load_profile
    if name:
        load_profile(name)
        if name not in builtin_names():
            raise UserError(f"profile {name!r}: not a built-in profile (built-in: {', '.join(builtin_names())})")
        click.echo((BUILTIN_DIR / f"{name}.yaml").read_text(), nl=False)
        return
    for profile_name in builtin_names():
        click.echo(f"{profile_name:<20} {load_profile(profile_name).get('description', '')}")


@cli.command()
def ops():
    """The supported ONNX operators and how each is mapped onto the device.

    \b
    optical     a matrix product on the photonic banks (or a photonic activation)
    folded      into the neighbouring bank at compile time when it follows one; else electronic
    electronic  runs on the electronic side, after the ADC
    layout      data movement on the electronic side (no arithmetic)
    compile     evaluated at compile time (shape sub-graphs, constants); must not depend on data
    removed     vanishes in inference
    """
    from .. import ops as registry
    listed = registry.table()
    width = max(len(found.name) for found in listed) + 1
    for found in listed:
        click.echo(f"{found.name:<{width}} {found.placement:<12} {found.note}".rstrip())
