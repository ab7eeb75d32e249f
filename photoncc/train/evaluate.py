"""How well a model does: on the real device model (compiled for the profile and simulated, as
``verify`` does) and on the training surrogate (cheap, once per epoch).

The score is the accuracy on the labels, or without labels the agreement of the top class with
the original model's (onnxruntime). The device's is the mean over the profile's noisy trials
(``verify.noisy.trials`` seeded runs, seeds seed, seed + 1, ...; one run on a noiseless profile)
of the simulator's default noise model, on batches of ``sim.DEFAULT_BATCH`` samples in order: the
number ``photoncc verify MODEL -p PROFILE --calibration CAL --inputs VAL --seed SEED`` reports as
the device accuracy when VAL is a file and CAL the calibration samples finetune used.
"""
from __future__ import annotations

import numpy as np

from ..compiler import compile_model
from ..sim import DEFAULT_BATCH, DEFAULT_NOISE_MODEL, Simulator
from . import tape

SCORED, REPEATS = 2048, 16


def trials(profile) -> int:
    return profile["verify"]["noisy"]["trials"] if profile.noisy else 1


def targets(samples_labels, feeds, reference, head):
    """The classes to score against: the labels, or the original model's top class."""
    if samples_labels is not None:
        return samples_labels
    return reference(feeds)[head.output].argmax(axis=1)


def device_scores(model, profile, calibration: dict, samples, reference, head, seed: int, chip=None,
                  device: str = "cpu") -> list:
    """Per trial, the device's score on ``samples`` for ``model`` (a path or an imported Graph)."""
    program = compile_model(model, profile, calibration, chip=chip)
    scores = []
    for trial in range(trials(profile)):
        simulator = Simulator(program, seed=seed + trial, noise_model=DEFAULT_NOISE_MODEL, device=device,
                              **({} if chip is None else {"chip": chip}))
        right = total = 0
        for feeds, labels in samples.batches(DEFAULT_BATCH):
            out = simulator.run(feeds)[head.output]
            right += int(np.count_nonzero(out.argmax(axis=1) == targets(labels, feeds, reference, head)))
            total += len(out)
        scores.append(right / total)
    return scores


def surrogate_score(graph, params, surrogate, samples, reference, head, batch_size: int, custom=None) -> float:
    """The surrogate device's score on ``samples``, averaged over enough passes (each batch on a new
    draw of the static errors and read noise) to score SCORED samples at least (at most REPEATS
    passes): a single draw on a small held-out split would pick the best epoch by chance."""
    right = total = 0
    custom = custom if custom is not None else surrogate.custom()
    for _ in range(min(REPEATS, -(-SCORED // len(samples)))):
        for feeds, labels in samples.batches(batch_size):
            surrogate.step()
            out = tape.forward(graph, feeds, params, custom=custom).values[head.output]
            right += int(np.count_nonzero(np.asarray(out).argmax(axis=1) == targets(labels, feeds, reference, head)))
            total += len(out)
    return right / total
