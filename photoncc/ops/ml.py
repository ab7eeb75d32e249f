"""Classic-ML linear models of the ``ai.onnx.ml`` domain, as skl2onnx writes them: LinearClassifier
(LogisticRegression, LinearSVC, ...), LinearRegressor (LinearRegression, Ridge, ...) and the
Normalizer that follows a LogisticRegression.

LinearClassifier and LinearRegressor never reach a program: ``passes/lower_ml`` decomposes them
into a Gemm (their matrix product, a bank), the post transform (Softmax, Sigmoid) and the label
lookup (ArgMax, then a Gather from the class labels). Their ``onnx`` forms here are reference
implementations (onnxruntime's semantics, binary case included) for the interpreter before that
pass. Normalizer runs electronically.
"""
from __future__ import annotations

import numpy as np

from . import op, register
from .elementwise import sigmoid
from .nn import softmax

POST_TRANSFORMS = ("NONE", "SOFTMAX", "LOGISTIC")  # the ones photoncc maps (SOFTMAX_ZERO, PROBIT: refused)


def classifier_parts(attrs: dict, features: int):
    """(coefficients (E, F) float32, intercepts (E,) float32, integer class labels (C,) int64 or
    None for string labels): the classifier's attributes as arrays."""
    coef = np.asarray(attrs["coefficients"], np.float32)
    targets = coef.size // features
    coef = coef.reshape(targets, features)
    intercepts = np.asarray(attrs.get("intercepts") or [0.0] * targets, np.float32).reshape(-1)
    labels = attrs.get("classlabels_ints")
    return coef, np.broadcast_to(intercepts, (targets,)).copy(), \
        None if labels is None else np.asarray(labels, np.int64).reshape(-1)


def _transform(name: str, scores: np.ndarray) -> np.ndarray:
    if name == "LOGISTIC":
        return sigmoid(scores)
    if name == "SOFTMAX":
        return softmax(scores, axis=-1)
    return scores  # NONE; lower_ml refuses the others (SOFTMAX_ZERO, PROBIT): here they give the types only


def _linear_classifier_onnx(node, x):
    """onnxruntime's LinearClassifier: scores = x W^T + b; with one row of coefficients and two
    classes (binary) the label is the second class where the score is > 0 and the scores output
    is [1 - t(s), t(s)] (t: the post transform, the identity for NONE and SOFTMAX); otherwise the
    label is the class of the largest score and the scores go through the post transform."""
    x = np.asarray(x, np.float32).reshape(x.shape[0], -1)
    coef, intercepts, labels = classifier_parts(node.attrs, x.shape[1])
    if labels is None:
        raise ValueError("string class labels are not supported")
    scores = x @ coef.T + intercepts
    transform = node.attrs.get("post_transform", "NONE")
    if coef.shape[0] == 1 and labels.size == 2:
        t = sigmoid(scores) if transform == "LOGISTIC" else _transform("NONE", scores)
        return np.where(scores[:, 0] > 0, labels[1], labels[0]), np.concatenate([np.float32(1) - t, t], axis=1)
    return labels[np.argmax(scores, axis=1)], _transform(transform, scores)


def _linear_regressor_onnx(node, x):
    """y = x W^T + b with W (targets, F); post transform NONE."""
    x = np.asarray(x, np.float32).reshape(x.shape[0], -1)
    coef, intercepts, _ = classifier_parts(node.attrs, x.shape[1])
    return _transform(node.attrs.get("post_transform", "NONE"), x @ coef.T + intercepts)


@op("Normalizer", "electronic", domain="ai.onnx.ml", note="ai.onnx.ml: MAX, L1, L2 per row (skl2onnx)")
def normalizer(x, *, norm="MAX"):
    """ai.onnx.ml Normalizer (onnxruntime): each row divided by its maximum (MAX), the sum of its
    absolute values (L1) or its Euclidean norm (L2); a row whose divisor is 0 is left as it is.
    float32 out."""
    x = np.asarray(x).astype(np.float32, copy=False)
    if norm == "MAX":
        scale = x.max(axis=-1, keepdims=True)
    elif norm == "L1":
        scale = np.abs(x).sum(axis=-1, keepdims=True)
    elif norm == "L2":
        scale = np.sqrt((x * x).sum(axis=-1, keepdims=True))
    else:
        raise ValueError(f"Normalizer norm {norm!r} is not MAX, L1 or L2")
    return np.where(scale != 0, x / np.where(scale != 0, scale, np.float32(1)), x)


register("LinearClassifier", "optical", onnx=_linear_classifier_onnx, domain="ai.onnx.ml",
         note="ai.onnx.ml: Gemm (a bank), post transform NONE/SOFTMAX/LOGISTIC, label lookup")
register("LinearRegressor", "optical", onnx=_linear_regressor_onnx, domain="ai.onnx.ml",
         note="ai.onnx.ml: Gemm (a bank), post transform NONE")
