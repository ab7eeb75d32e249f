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
    nodes, consts, types = [], dict(g.consts), dict(g.types)
    names = {n.name for n in g.nodes}

    def value(base, shape, dtype):
        name = fresh_name(set(types) | set(consts), base)
        types[name] = TensorType(tuple(shape), np.dtype(dtype).name)
        return name

    def const(base, array):
        name = fresh_name(set(types) | set(consts), base)
        consts[name] = np.ascontiguousarray(array)
        types[name] = type_of(consts[name])
        return name

    def node(op, inputs, output, attrs, base):
        nodes.append(Node(op, tuple(inputs), (output,), attrs, fresh_name(names, base)))
        names.add(nodes[-1].name)
        return output

    for n in g.nodes:
        if n.op not in ("LinearClassifier", "LinearRegressor") or "unsupported" in n.attrs:
            nodes.append(n)
            continue
        x = n.inputs[0]
        shape = types[x].shape
        transform = n.attrs.get("post_transform", "NONE")
        coef, intercepts, labels = classifier_parts(n.attrs, int(np.prod(shape[1:])))
        reason = None
        if len(shape) != 2:
            reason = f"its input is {len(shape)}-D; a linear model reads (batch, features)"
        elif transform not in POST_TRANSFORMS or (n.op == "LinearRegressor" and transform != "NONE"):
            reason = f"post_transform {transform!r} is not mapped"
        elif n.op == "LinearClassifier" and labels is None:
            reason = "its class labels are strings, which photoncc cannot place"
        elif n.op == "LinearClassifier" and coef.shape[0] != labels.size and not (coef.shape[0] == 1 and labels.size == 2):
            reason = f"{coef.shape[0]} rows of coefficients for {labels.size} classes"
        if reason:
            nodes.append(unsupported(n, reason, HINT))
            continue
        batch, targets = shape[0], coef.shape[0]
        data = x
        if types[x].dtype != "float32":
            data = node("Cast", (x,), value(f"{n.name}/float", shape, np.float32), {"to": "float32"}, f"{n.name}/float")
        outputs = list(n.outputs) + [""] * (2 - len(n.outputs))
        if n.op == "LinearRegressor":
            scores_name = outputs[0]
        elif targets > 1 and transform == "NONE" and outputs[1]:  # the scores are the probabilities output
            scores_name = outputs[1]
        else:
            scores_name = value(f"{n.name}/scores", (batch, targets), np.float32)
        types[scores_name] = TensorType((batch, targets), "float32")
        scores = node("Gemm", (data, const(f"{n.name}.coefficients", coef), const(f"{n.name}.intercepts", intercepts)),
                      scores_name, {"transB": 1}, f"{n.name}/Gemm")
        if n.op == "LinearRegressor":
            continue
        label, probabilities = outputs[0], outputs[1]
        if targets == 1:  # binary: scores (N, 1)
            t = scores if transform != "LOGISTIC" else node("Sigmoid", (scores,), value(f"{n.name}/t", (batch, 1),
                                                                                       np.float32), {}, f"{n.name}/Sigmoid")
            if probabilities:
                rest = node("Sub", (const(f"{n.name}.one", np.ones(1, np.float32)), t),
                            value(f"{n.name}/complement", (batch, 1), np.float32), {}, f"{n.name}/Sub")
                types[probabilities] = TensorType((batch, 2), "float32")
                node("Concat", (rest, t), probabilities, {"axis": 1}, f"{n.name}/Concat")
            if label:
                positive = node("Greater", (scores, const(f"{n.name}.zero", np.zeros(1, np.float32))),
                                value(f"{n.name}/positive", (batch, 1), bool), {}, f"{n.name}/Greater")
                chosen = node("Where", (positive, const(f"{n.name}.second", labels[1:2]), const(f"{n.name}.first", labels[:1])),
                              value(f"{n.name}/chosen", (batch, 1), np.int64), {}, f"{n.name}/Where")
                types[label] = TensorType((batch,), "int64")
                node("Reshape", (chosen,), label, {"shape": []}, f"{n.name}/label")
            continue
        if probabilities and transform != "NONE":
            types[probabilities] = TensorType((batch, targets), "float32")
            if transform == "SOFTMAX":
                node("Softmax", (scores,), probabilities, {"axis": 1, "legacy": False}, f"{n.name}/Softmax")
            else:
                node("Sigmoid", (scores,), probabilities, {}, f"{n.name}/Sigmoid")
        if label:
            index = node("ArgMax", (scores,), value(f"{n.name}/argmax", (batch,), np.int64),
                         {"axis": 1, "keepdims": 0, "select_last_index": 0}, f"{n.name}/ArgMax")
            types[label] = TensorType((batch,), "int64")
            node("Gather", (const(f"{n.name}.classlabels", labels), index), label, {"axis": 0}, f"{n.name}/labels")
    return prune(g.replace(nodes=tuple(nodes), consts=consts, types=types))
