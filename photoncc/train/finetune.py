"""The fine-tuning loop of ``photoncc finetune``.

1. The model is imported and run through the compile to ``fold_affine`` (``model.prepare``); its
   classifier output (``loss.head``) gives the loss. Every node on a gradient path needs a VJP
   rule: those without one are listed at once, as ``check`` lists unsupported nodes.
2. The device accuracy before: the original model compiled for the profile and simulated on the
   held-out samples (``evaluate.device_scores``).
3. Per epoch: the surrogate is compiled for the current weights and draws its static errors
   (``surrogate.Surrogate.refresh``); the training samples are read in shuffled mini-batches, each
   run forward through the surrogate on the tape, the loss's gradient run backward (backprop:
   every rule; DFA: ``dfa``), and the optimiser steps. After the epoch the surrogate's score on the
   held-out samples decides whether it is the best so far. Epoch 0 (the weights as given) is
   scored for reference but not a candidate: a held-out split of the data the model was trained
   on favours the weights that saw it (on the digits MLP, 98.2 % there for 96.5 % on new data).
   A loss or gradient that is not finite stops the run (``Diverged``), the best epoch kept.
4. The best epoch's weights go back into the ONNX file (``model.tuned_model``) and the device
   accuracy after is measured as before.

Deterministic for a seed: the shuffles, the held-out split, the static errors and the read noise
come from generators seeded by it (the same seed on the same machine gives the same file).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from ..data import load_npz, match_inputs
from ..errors import UnsupportedModel, UserError
from ..importer import import_proto
from ..reference import Reference
from . import data as training_data
from . import absorber, evaluate, loss, model, tape
from .optim import DEFAULT_LR, DFA_LR_SCALE, Optimizer
from .dfa import Feedback
from .surrogate import Surrogate


@dataclass(frozen=True)
class Options:
    method: str = "backprop"
    optimizer: str = "adam"
    activation: str = "keep"
    epochs: int = 20
    lr: float | None = None       # None: the optimiser's DEFAULT_LR
    batch_size: int = 32
    seed: int = 0
    device: str = "cpu"           # where the before/after simulations' per-read tile reads run


class Diverged(UserError):
    """The loss or a gradient stopped being finite: the run stopped, the best epoch kept."""


@dataclass
class Run:
    trainable: model.Trainable
    head: loss.Head
    train: training_data.Samples
    val: training_data.Samples
    calibration: dict
    reference: Reference
    surrogate: Surrogate
    feedback: Feedback | None = None   # --method dfa
    runners: dict | None = None        # the tape's runners of other nodes (absorbers with the pump-probe pass)

    def custom(self) -> dict:
        return {**self.surrogate.custom(), **(self.runners or {})}


def setup(model_path, train_path, profile, val_path, options: Options, chip=None, calibration_path=None) -> Run:
    """Read and check everything a run needs; every problem of the input is a UserError.
    ``calibration_path``: the samples the compile measures ranges on (default: the first
    ``data.CALIBRATION`` samples of the training split)."""
    if profile["architecture"] == "mzi" and (options.method == "dfa" or options.optimizer in ("nnsgd", "csgd")):
        what = "--method dfa" if options.method == "dfa" else f"--optimizer {options.optimizer}"
        raise UserError(f"{what}: a ring-bank method (its products or transmissions are a bank's); on MZI meshes "
                        f"(profile {profile.name!r}) use --method backprop with --optimizer adam or sgd")
    trainable = model.prepare(model_path, profile)
    runners = _absorbers(trainable, profile) if options.activation == "saturable_absorber" else {}
    head = loss.head(trainable.graph)
    missing = tape.missing_rules(trainable.graph, trainable.params, [head.logits], [*trainable.layers, *runners])
    if missing:
        raise UnsupportedModel(str(model_path), missing)
    if not trainable.params:
        raise UserError(f"{model_path}: nothing to train: " + ("; ".join(trainable.frozen) or "no optical layer"))
    g = trainable.graph
    specs = {i: (g.types[i].shape[1:], g.types[i].dtype) for i in g.inputs}
    train = training_data.Samples(train_path, specs)
    if val_path is not None:
        val = training_data.Samples(val_path, specs)
        if (val.labels is None) != (train.labels is None):
            raise UserError(f"{val_path}: {'has' if val.labels is not None else 'has no'} 'label' array and "
                            f"{train_path} {'has not' if val.labels is not None else 'has'}: give both or neither")
    else:
        train, val = training_data.split(train, options.seed)
    for samples in (train, val):
        training_data.check_labels(samples, head.classes)
    if calibration_path is not None:
        calibration, _ = match_inputs(calibration_path, load_npz(calibration_path), specs)
    else:
        calibration = train.head(training_data.CALIBRATION)
    surrogate = Surrogate(g, profile, calibration, np.random.default_rng([options.seed, 2]), chip)
    feedback = Feedback(g, head, surrogate, options.seed) if options.method == "dfa" else None
    return Run(trainable, head, train, val, calibration, Reference(model_path), surrogate, feedback, runners)


def _absorbers(trainable: model.Trainable, profile) -> dict:
    """Replace the activations by saturable absorbers; their runners with the pump-probe pass where
    the profile runs them optically (absorber.py), else none (the exact rule)."""
    trainable.od = absorber.optical_depth(profile)
    trainable.graph, names = absorber.replace(trainable.graph, trainable.od)
    if not names:
        raise UserError("--activation saturable_absorber: the model has no activation to replace "
                        f"({', '.join(absorber.FAMILY)})")
    trainable.absorbers = tuple(names)
    return absorber.pump_probe(names) if absorber.optical(profile) else {}


def train_epoch(run: Run, params: dict, optimizer: Optimizer, options: Options, rng, progress=None):
    """One pass over the training split: (the parameters after it, the mean loss)."""
    custom, losses, done = run.custom(), [], 0
    for feeds, labels in run.train.batches(options.batch_size, rng):
        record = tape.forward(run.trainable.graph, feeds, params, targets=[run.head.logits], custom=custom)
        logits = np.asarray(record.values[run.head.logits])
        if labels is not None:
            value, grad = loss.cross_entropy(logits, labels)
        else:
            teacher = loss.probabilities(run.head, run.reference(feeds)[run.head.output])
            value, grad = loss.distillation(logits, teacher)
        if run.feedback is None:
            grads = tape.gradients(record, {run.head.logits: grad}, params)
        else:
            seeds = {run.head.logits: grad, **run.feedback.seeds(grad)}
            grads = run.feedback.restrict(tape.gradients(record, seeds, params, run.feedback.cut))
        if not np.isfinite(value) or not all(g is None or np.isfinite(g).all() for g in grads.values()):
            raise Diverged("the loss is not finite")
        params = optimizer.step(params, grads)
        run.surrogate.step()
        losses.append(value * len(logits))
        done += len(logits)
        if progress is not None:
            progress(done, len(run.train))
    return params, float(np.sum(losses) / max(done, 1))


def finetune(model_path, train_path, profile, val_path=None, options: Options = Options(), chip=None,
             calibration_path=None, progress=None, on_epoch=None):
    """Fine-tune; returns (the tuned model's bytes, the report). ``progress(done, total, stage)``
    per training batch (stage "epoch i/n"), ``on_epoch(entry)`` after each epoch (its report
    entry). Raises Diverged (with ``.model`` and ``.report``: the best epoch's) when the run
    diverges."""
    run = setup(model_path, train_path, profile, val_path, options, chip, calibration_path)
    report = _report_head(run, model_path, profile, options)
    report["before"] = _device(run, model_path, profile, options, chip)
    best, diverged = _train(run, options, report, progress, on_epoch)
    report["best_epoch"] = best[0]["epoch"]
    tuned = model.tuned_model(model_path, run.trainable, best[1])
    graph = import_proto(onnx.load_from_string(tuned), source=f"{model_path} (tuned)")
    report["after"] = _device(run, graph, profile, options, chip)
    if diverged:
        report["stopped"] = diverged
        error = Diverged(diverged)
        error.model, error.report = tuned, report
        raise error
    return tuned, report


def _train(run: Run, options: Options, report: dict, progress, on_epoch):
    """The epochs: ((the best epoch's entry, its parameters), why it stopped early or None). The
    learning rate decays over the epochs as a half cosine, lr_e = lr (1 + cos(pi (e - 1) / E)) / 2."""
    params = dict(run.trainable.params)
    lr = learning_rate(options)
    optimizer = Optimizer(options.optimizer, params, lr, [n for n in params if run.trainable.links[n].kind == "weight"])
    shuffle = np.random.default_rng([options.seed, 3])
    first = _epoch_entry(run, params, 0, None, options)
    best = (first, dict(params))  # kept only when no epoch runs (--epochs 0) or the first one diverges
    report["epochs"] = [first]
    if on_epoch:
        on_epoch(first)
    for epoch in range(1, options.epochs + 1):
        optimizer.lr = lr * 0.5 * (1.0 + np.cos(np.pi * (epoch - 1) / options.epochs))
        step = None if progress is None else (lambda d, t, e=epoch: progress(d, t, f"epoch {e}/{options.epochs}"))
        try:
            params, mean = train_epoch(run, params, optimizer, options, shuffle, step)
            entry = _epoch_entry(run, params, epoch, mean, options)
        except UserError as e:  # Diverged, or weights the device cannot be set to (the compile refuses them)
            return best, f"training diverged in epoch {epoch} ({e}); stopped"
        entry["best"] = best[0]["epoch"] == 0 or entry["surrogate_score"] > best[0]["surrogate_score"]
        if entry["best"]:
            best = (entry, dict(params))
        report["epochs"].append(entry)
        if on_epoch:
            on_epoch(entry)
    return best, None


def learning_rate(options: Options) -> float:
    """--lr, or the optimiser's default (DFA: scaled by DFA_LR_SCALE)."""
    if options.lr is not None:
        return options.lr
    return DEFAULT_LR[options.optimizer] * (DFA_LR_SCALE if options.method == "dfa" else 1.0)


def _device(run: Run, model_or_graph, profile, options: Options, chip) -> dict:
    scores = evaluate.device_scores(model_or_graph, profile, run.calibration, run.val, run.reference, run.head,
                                    options.seed, chip, options.device)
    return {"score": float(np.mean(scores)), "per_trial": [float(v) for v in scores]}


def _epoch_entry(run: Run, params: dict, epoch: int, mean, options: Options) -> dict:
    run.surrogate.refresh(params)  # the next epoch's device: these weights' ranges, a new draw of errors
    score = evaluate.surrogate_score(run.trainable.graph, params, run.surrogate, run.val, run.reference, run.head,
                                     max(options.batch_size, 64), run.custom())
    return {"epoch": epoch, "loss": mean, "surrogate_score": score, "best": False}


def _report_head(run: Run, model_path, profile, options: Options) -> dict:
    return {"model": str(model_path), "profile": profile.name, "method": options.method,
            "optimizer": options.optimizer, "activation": options.activation, "epochs_asked": options.epochs,
            "lr": learning_rate(options),
            "batch_size": options.batch_size, "seed": options.seed,
            "target": "labels" if run.train.labels is not None else "distillation",
            "score": "accuracy" if run.train.labels is not None else "agreement with the original model",
            "samples": {"train": len(run.train), "held_out": len(run.val),
                        "calibration": len(next(iter(run.calibration.values())))},
            "frozen": list(run.trainable.frozen)}
