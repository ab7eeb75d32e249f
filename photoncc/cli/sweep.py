"""``photoncc sweep``: compile and verify a model over a grid of profile values."""
from __future__ import annotations

from pathlib import Path

import click

from .. import text
from ..errors import UserError
from ..files import output_path, write_files
from ..sim import DEFAULT_NOISE_MODEL, NOISE_MODELS
from . import common
from .app import cli


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-p", "--profile", "profile_spec", default="ideal", show_default=True,
              help="Base profile (built-in name or YAML file); --vary overrides its keys.")
@click.option("--calibration", required=True, type=click.Path(path_type=Path),
              help="Samples (.npz) every point is calibrated on.")
@click.option("--inputs", required=True, type=click.Path(path_type=Path),
              help="Samples (.npz) every point is verified on; with a 'label' array, accuracies too.")
@click.option("--vary", multiple=True, required=True, metavar="KEY=V1,V2,...",
              help="A dotted profile key and its values (e.g. precision.weight_bits=4,6,8); repeat it: the "
                   "grid is the product of the lists.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Noisy points: seeded runs per point (seeds 0 to N-1).")
@click.option("--noise-model", type=click.Choice(NOISE_MODELS), default=DEFAULT_NOISE_MODEL, show_default=True,
              help=common.NOISE_MODEL_HELP)
@click.option("--workers", type=click.IntRange(min=1),
              help="Local worker processes [default: the number of cores].")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run the points on this Dask scheduler (tcp://HOST:8786) instead; needs photoncc[distributed].")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Results (.csv), one row per point; a run with the same file resumes it.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Also write the results as JSON.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path),
              help="Also draw accuracy against each varied key (.png); needs photoncc[plot].")
@common.DEVICE_OPTION
def sweep(model, profile_spec, calibration, inputs, vary, seeds, noise_model, workers, scheduler, output,
          json_path, plot_path, device):
    """Compile and verify MODEL for every point of a grid of profile values (design-space sweep).

    Each point is the profile with the --vary keys set to one combination of their values; it is
    compiled (calibrated on --calibration), verified on --inputs and gives one CSV row: accuracy,
    agreement, errors, worst layer SQNR, tiles, latency, energy. A failed point gets its error in
    the row and the sweep goes on. Points run in parallel, locally or on a Dask cluster.
    """
    from .. import sweep as engine
    from ..plot import require
    if workers is not None and scheduler is not None:
        raise UserError("--workers and --scheduler: give one of them (local processes, or a Dask cluster)")
    given, taken = {"MODEL": model, "--calibration": calibration, "--inputs": inputs,
                    "-p": common.profile_file(profile_spec)}, {}
    for path, option in ((output, "-o"), (json_path, "--json"), (plot_path, "--plot")):
        if path:
            output_path(path, option, given, taken)
    if plot_path:
        require()
    if scheduler:
        engine.require_distributed(scheduler)
    if device != "cpu" and scheduler is None:
        from ..sim.backend import backend
        backend(device)  # a missing CuPy or GPU is said before anything runs (a cluster's workers check their own)
    plan = engine.plan(model, common.profile(profile_spec), calibration, inputs, vary, seeds, noise_model, device)
    with common.Progress("sweep") as progress:
        outcome = engine.run(plan, output, workers=workers, scheduler=scheduler, progress=progress)
    files = {output: engine.csv_bytes(plan, outcome.rows)}
    if json_path:
        files[json_path] = engine.json_bytes(plan, outcome.rows)
    if plot_path:
        files[plot_path] = engine.plot_png(plan, outcome.rows)
    write_files(files)
    for index, error in outcome.failed[:text.WARN_LAYERS]:
        point = ", ".join(f"{k}={t}" for k, t in zip(plan.header, plan.texts(index)))
        common.say(f"photoncc: warning: point {point} failed: {error}")
    if len(outcome.failed) > text.WARN_LAYERS:
        common.say(f"photoncc: warning: {len(outcome.failed) - text.WARN_LAYERS} more point(s) failed (see the error column)")
    resumed = f", {outcome.resumed} already in {output}" if outcome.resumed else ""
    dropped = f"; {outcome.dropped} row(s) of points outside this grid dropped" if outcome.dropped else ""
    common.say(f"photoncc: swept {len(outcome.rows)} point(s) of {model} on {plan.profile_name}: {outcome.ran} run"
         f"{resumed}, {len(outcome.failed)} failed{dropped} -> {output}")
