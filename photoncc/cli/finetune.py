"""``photoncc finetune``: device-aware fine-tuning (photoncc/train)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import UserError
from ..files import output_path, write_files
from . import common
from .app import cli

METHODS = ("backprop", "dfa")
OPTIMIZERS = ("adam", "sgd", "nnsgd", "csgd")
ACTIVATIONS = ("keep", "saturable_absorber")


def _positive_lr(ctx, param, value):
    if value is not None and not (value > 0 and value < float("inf")):
        raise click.BadParameter(f"{value} is not a positive, finite learning rate", ctx, param)
    return value


@cli.command()
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--train", "train_path", required=True, type=click.Path(path_type=Path),
              help="Training samples (.npz, like simulate's inputs). With a 'label' array (class ids) the model "
                   "learns the labels (cross-entropy); without one it learns to reproduce its own outputs on the "
                   "device (distillation), so no labels are needed.")
@click.option("-p", "--profile", "profile_spec", default="ideal", show_default=True,
              help="The device to fine-tune for: a built-in profile name or a YAML file.")
@click.option("--chip", "chip_path", type=click.Path(path_type=Path),
              help="Fine-tune for this one chip's static errors (.npz from `photoncc chip` or `calibrate`) instead of "
                   "for any chip of the profile; compile and run with the same --chip.")
@click.option("--val", "val_path", type=click.Path(path_type=Path),
              help="Held-out samples (.npz) that score each epoch and the device before and after "
                   "[default: 10 % of --train, drawn with --seed and left out of training].")
@click.option("--calibration", type=click.Path(path_type=Path),
              help="Samples the compile measures the layers' input ranges on, as compile --calibration: give the "
                   "file you will compile with [default: the first 256 training samples].")
@click.option("--method", type=click.Choice(METHODS), default="backprop", show_default=True,
              help="backprop: the exact gradient through the device model (straight-through for its quantisers); "
                   "dfa: direct feedback alignment, each hidden layer's error a fixed random projection of the output "
                   "error (computed on the device's banks, with their noise), no backward pass through the weights.")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True,
              help="adam; sgd (momentum 0.9); nnsgd or csgd (Kirtas et al.): each layer's weights trained as the "
                   "ring transmissions of its non-negative form [Wp | Wn], kept in [0, 1]: nnsgd by multiplicative "
                   "steps that never change a weight's sign, csgd by clipped steps.")
@click.option("--activation", type=click.Choice(ACTIVATIONS), default="keep", show_default=True,
              help="keep: the model's own activations; saturable_absorber: its ReLU-family activations replaced by "
                   "the saturable absorber g(z) = z exp(-(OD/2)/(1+z^2)) (OD: the profile's, else 10), trained with "
                   "the optical pump-probe gradient where the profile runs it optically (activation.kind "
                   "saturable_absorber), else with the exact one; the tuned model writes it with standard operators.")
@click.option("--epochs", type=click.IntRange(min=0), default=20, show_default=True,
              help="Passes over the training samples; the best one (scored on the held-out samples) is kept.")
@click.option("--lr", type=float, callback=_positive_lr,
              help="Learning rate, decayed over the epochs as a half cosine [default: adam 0.003, sgd and nnsgd "
                   "0.01, csgd 0.03; with dfa 30 times smaller, to keep a trained model's weights].")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
              help="Training samples per step.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the shuffles, the held-out split, the device's errors and noise: the same seed gives "
                   "the same model.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="The tuned model (.onnx): the same graph with new weights.")
@click.option("--report", "report_path", type=click.Path(path_type=Path),
              help="Also write the run's report (JSON): device accuracy before and after, every epoch.")
@common.DEVICE_OPTION
def finetune(model, train_path, profile_spec, chip_path, val_path, calibration, method, optimizer, activation,
             epochs, lr, batch_size, seed, output, report_path, device):
    """Fine-tune MODEL (.onnx) for a device: train its weights through a model of the profile's device
    (its ranges and clipping, weight/DAC/ADC quantisation, static errors and read noise) so that it
    wins back the accuracy the device costs, and write them into the same graph (-o).

    It prints each epoch's loss and the device model's score on the held-out samples, keeps the best
    epoch, and reports the device accuracy before and after as verify measures it (compiled for the
    profile, simulated with its default noise model). A run with --device cuda simulates the before
    and after on the GPU; the training itself runs on the CPU.
    """
    from ..sim.backend import backend
    from ..train.finetune import Diverged, Options, finetune as run
    backend(device)
    given = {"MODEL": model, "--train": train_path, "--val": val_path, "--calibration": calibration,
             "--chip": chip_path, "-p": common.profile_file(profile_spec)}
    taken = {}
    output_path(output, "-o", given, taken)
    if report_path:
        output_path(report_path, "--report", given, taken)
    profile = common.profile(profile_spec)
    chip = common.chip(chip_path, profile)
    options = Options(method, optimizer, activation, epochs, lr, batch_size, seed, device)
    with common.Progress("finetune") as progress:
        try:
            tuned, report = run(model, train_path, profile, val_path, options, chip, calibration, progress,
                                on_epoch=_epoch_line)
            failed = None
        except Diverged as e:
            tuned, report, failed = e.model, e.report, e
    files = {output: tuned}
    if report_path:
        files[report_path] = (json.dumps(report, indent=1, sort_keys=True) + "\n").encode()
    write_files(files)
    for line in report["frozen"]:
        common.say(f"photoncc: note: not trained: {line}")
    what = report["score"]
    common.say(f"photoncc: device {what} on {report['samples']['held_out']} held-out sample(s): "
         f"{_percent(report['before'])} before, {_percent(report['after'])} after (epoch {report['best_epoch']} of "
         f"{len(report['epochs']) - 1}) -> {output}")
    if failed is not None:
        raise UserError(f"{failed}; wrote the best epoch ({report['best_epoch']}) to {output}")


def _epoch_line(entry: dict) -> None:
    loss = "" if entry["loss"] is None else f"loss {entry['loss']:.4f}, "
    common.say(f"photoncc: epoch {entry['epoch']}: {loss}device model {100 * entry['surrogate_score']:.2f} % on the "
         f"held-out samples" + (" (best so far)" if entry["best"] and entry["epoch"] else ""))


def _percent(scores: dict) -> str:
    return f"{100 * scores['score']:.2f} %"
