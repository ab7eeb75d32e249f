"""lower_ml: skl2onnx's linear models (``ai.onnx.ml`` LinearClassifier, LinearRegressor) as a Gemm
and electronic ops.

Maths (onnxruntime's semantics, ``ops/ml.py``), for X (N, F), coefficients W (E, F), intercepts b:

* scores = Gemm(X, W, b, transB=1): a bank (lower_linear);
* LinearRegressor: Y = scores (post transform NONE);
* LinearClassifier, E classes: Z = scores, Softmax(scores) or Sigmoid(scores) (post transform
  NONE, SOFTMAX, LOGISTIC); label = Gather(class labels, ArgMax(scores, axis 1));
* LinearClassifier, binary (one row of coefficients, two classes): t = scores or Sigmoid(scores)
  (LOGISTIC); Z = Concat(1 - t, t); label = Where(scores > 0, second class, first class).

String class labels, the SOFTMAX_ZERO and PROBIT transforms and other shapes of coefficients are
refused with the reason (annotated ``unsupported``).

Requires: fold_constants. Ensures: no LinearClassifier or LinearRegressor remains unless annotated;
numerics unchanged. Idempotent.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, TensorType, fresh_name, prune, type_of
from ..ops import unsupported
from ..ops.ml import POST_TRANSFORMS, classifier_parts

HINT = "photoncc maps linear models with integer class labels and post_transform NONE, SOFTMAX or LOGISTIC"


def lower_ml(g: Graph, ctx=None) -> Graph:
    if not any(n.op in ("LinearClassifier", "LinearRegressor") for n in g.nodes):
        return g
    w = _Writer(g)
    for n in g.nodes:
        if n.op not in ("LinearClassifier", "LinearRegressor") or "unsupported" in n.attrs:
            w.nodes.append(n)
            continue
        shape = w.types[n.inputs[0]].shape
        transform = n.attrs.get("post_transform", "NONE")
        coef, intercepts, labels = classifier_parts(n.attrs, int(np.prod(shape[1:])))
        reason = _refusal(n, shape, transform, coef, labels)
        if reason:
            w.nodes.append(unsupported(n, reason, HINT))
            continue
        outputs = list(n.outputs) + [""] * (2 - len(n.outputs))
        scores = _scores(w, n, transform, coef, intercepts, outputs)
        if n.op == "LinearRegressor":
            continue
        if coef.shape[0] == 1:  # binary: scores (N, 1)
            _binary(w, n, scores, transform, labels, outputs)
        else:
            _classes(w, n, scores, transform, labels, outputs)
    return prune(g.replace(nodes=tuple(w.nodes), consts=w.consts, types=w.types))


class _Writer:
    """The new graph's nodes, constants and types as they are written."""

    def __init__(self, g: Graph):
        self.nodes, self.consts, self.types = [], dict(g.consts), dict(g.types)
        self.names = {n.name for n in g.nodes}

    def value(self, base, shape, dtype):
        name = fresh_name(set(self.types) | set(self.consts), base)
        self.types[name] = TensorType(tuple(shape), np.dtype(dtype).name)
        return name

    def const(self, base, array):
        name = fresh_name(set(self.types) | set(self.consts), base)
        self.consts[name] = np.ascontiguousarray(array)
        self.types[name] = type_of(self.consts[name])
        return name

    def node(self, op, inputs, output, attrs, base):
        self.nodes.append(Node(op, tuple(inputs), (output,), attrs, fresh_name(self.names, base)))
        self.names.add(self.nodes[-1].name)
        return output


def _refusal(n: Node, shape, transform: str, coef, labels) -> str | None:
    """Why the model cannot be lowered, or None."""
    if len(shape) != 2:
        return f"its input is {len(shape)}-D; a linear model reads (batch, features)"
    if transform not in POST_TRANSFORMS or (n.op == "LinearRegressor" and transform != "NONE"):
        return f"post_transform {transform!r} is not mapped"
    if n.op == "LinearClassifier" and labels is None:
        return "its class labels are strings, which photoncc cannot place"
    if n.op == "LinearClassifier" and coef.shape[0] != labels.size and not (coef.shape[0] == 1 and labels.size == 2):
        return f"{coef.shape[0]} rows of coefficients for {labels.size} classes"
    return None


def _scores(w: _Writer, n: Node, transform: str, coef, intercepts, outputs: list) -> str:
    """scores = Gemm(X, W, b, transB=1) in float32, written under the output it is (a regressor's
    Y, a classifier's probabilities without post transform) or a new value."""
    x = n.inputs[0]
    shape = w.types[x].shape
    batch, targets = shape[0], coef.shape[0]
    data = x
    if w.types[x].dtype != "float32":
        data = w.node("Cast", (x,), w.value(f"{n.name}/float", shape, np.float32), {"to": "float32"}, f"{n.name}/float")
    if n.op == "LinearRegressor":
        scores_name = outputs[0]
    elif targets > 1 and transform == "NONE" and outputs[1]:  # the scores are the probabilities output
        scores_name = outputs[1]
    else:
        scores_name = w.value(f"{n.name}/scores", (batch, targets), np.float32)
    w.types[scores_name] = TensorType((batch, targets), "float32")
    return w.node("Gemm", (data, w.const(f"{n.name}.coefficients", coef), w.const(f"{n.name}.intercepts", intercepts)),
                  scores_name, {"transB": 1}, f"{n.name}/Gemm")


def _binary(w: _Writer, n: Node, scores: str, transform: str, labels, outputs: list) -> None:
    """A binary classifier's probabilities Concat(1 - t, t), t = scores or Sigmoid(scores), and
    label Where(scores > 0, second class, first class)."""
    label, probabilities = outputs[0], outputs[1]
    batch = w.types[scores].shape[0]
    t = scores if transform != "LOGISTIC" else w.node("Sigmoid", (scores,), w.value(f"{n.name}/t", (batch, 1),
                                                                                     np.float32), {}, f"{n.name}/Sigmoid")
    if probabilities:
        rest = w.node("Sub", (w.const(f"{n.name}.one", np.ones(1, np.float32)), t),
                      w.value(f"{n.name}/complement", (batch, 1), np.float32), {}, f"{n.name}/Sub")
        w.types[probabilities] = TensorType((batch, 2), "float32")
        w.node("Concat", (rest, t), probabilities, {"axis": 1}, f"{n.name}/Concat")
    if label:
        positive = w.node("Greater", (scores, w.const(f"{n.name}.zero", np.zeros(1, np.float32))),
                          w.value(f"{n.name}/positive", (batch, 1), bool), {}, f"{n.name}/Greater")
        chosen = w.node("Where", (positive, w.const(f"{n.name}.second", labels[1:2]), w.const(f"{n.name}.first", labels[:1])),
                        w.value(f"{n.name}/chosen", (batch, 1), np.int64), {}, f"{n.name}/Where")
        w.types[label] = TensorType((batch,), "int64")
        w.node("Reshape", (chosen,), label, {"shape": []}, f"{n.name}/label")


def _classes(w: _Writer, n: Node, scores: str, transform: str, labels, outputs: list) -> None:
    """A classifier's probabilities Softmax(scores) or Sigmoid(scores) (without post transform: the
    scores themselves, already written), and label Gather(class labels, ArgMax(scores, axis 1))."""
    label, probabilities = outputs[0], outputs[1]
    batch, targets = w.types[scores].shape
    if probabilities and transform != "NONE":
        w.types[probabilities] = TensorType((batch, targets), "float32")
        if transform == "SOFTMAX":
            w.node("Softmax", (scores,), probabilities, {"axis": 1, "legacy": False}, f"{n.name}/Softmax")
        else:
            w.node("Sigmoid", (scores,), probabilities, {}, f"{n.name}/Sigmoid")
    if label:
        index = w.node("ArgMax", (scores,), w.value(f"{n.name}/argmax", (batch,), np.int64),
                       {"axis": 1, "keepdims": 0, "select_last_index": 0}, f"{n.name}/ArgMax")
        w.types[label] = TensorType((batch,), "int64")
        w.node("Gather", (w.const(f"{n.name}.classlabels", labels), index), label, {"axis": 0}, f"{n.name}/labels")
