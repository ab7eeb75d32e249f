"""What fine-tuning minimises, on the model's classifier output (the first float output of shape
(N, C), C >= 2, as ``verify`` takes it).

The loss is taken on the logits z: the input of the Softmax (or LogSoftmax) that makes the output,
or the output itself when it is no softmax. With p = softmax(z), over a batch of N samples:

* labels y (cross-entropy): L = -1/N sum_n log p_n[y_n],        dL/dz = (p - onehot(y)) / N;
* the original model's probabilities q (distillation, no labels):
  L = -1/N sum_n sum_c q_nc log p_nc,                            dL/dz = (p - q) / N.

The teacher's q are onnxruntime's outputs of the original model (``reference``): its Softmax's
output, or the softmax of its logits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError


@dataclass(frozen=True)
class Head:
    output: str      # the classifier output of the graph
    logits: str      # the value the loss differentiates
    kind: str        # how the output follows from the logits: "softmax", "log_softmax" or "logits"
    classes: int


def head(graph) -> Head:
    """The classifier output of ``graph`` and its logits; a UserError when it has none."""
    producers = graph.producers()
    for out in graph.outputs:
        t = graph.types[out]
        if len(t.shape) != 2 or t.shape[1] < 2 or np.dtype(t.dtype).kind != "f":
            continue
        n = producers.get(out)
        last = n is not None and n.attrs.get("axis", -1) % 2 == 1
        if n is not None and n.op in ("Softmax", "LogSoftmax") and last:
            return Head(out, n.inputs[0], "softmax" if n.op == "Softmax" else "log_softmax", t.shape[1])
        return Head(out, out, "logits", t.shape[1])
    raise UserError("the model has no classifier output (a float output of shape [N, C], C >= 2): finetune "
                    "trains classifiers, on labels or on the model's own outputs")


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def probabilities(h: Head, output: np.ndarray) -> np.ndarray:
    """The class probabilities of the classifier output ``output`` (teacher or device)."""
    output = np.asarray(output, np.float64)
    if h.kind == "softmax":
        return output
    return np.exp(output if h.kind == "log_softmax" else log_softmax(output))


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean cross-entropy, its gradient by the logits) for integer ``labels``."""
    logp = log_softmax(logits)
    n = len(labels)
    loss = -float(logp[np.arange(n), labels].mean())
    grad = np.exp(logp)
    grad[np.arange(n), labels] -= 1.0
    return loss, (grad / n).astype(logits.dtype)


def distillation(logits: np.ndarray, teacher: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean cross-entropy against the teacher's probabilities, its gradient by the logits)."""
    logp = log_softmax(logits)
    n = len(teacher)
    loss = -float((teacher * logp).sum(axis=1).mean())
    return loss, ((np.exp(logp) - teacher) / n).astype(logits.dtype)
