"""Models for the tests, built here (nothing is downloaded).

* ``light_model(name)``: an architecture from the onnx wheel's ``backend/test/data/light`` folder
  (AlexNet, ResNet-50, ...) whose constant weights (every ``ConstantOfShape`` node) are replaced by
  seeded random ones scaled like a trained network (He-normal weights, BatchNorm statistics near
  1), so that outputs vary and layers have mixed-sign weights.
* small hand-built graphs (``onnx.helper``) for single behaviours.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

ONNX_DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
LIGHT = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
         "squeezenet", "vgg19", "zfnet512")


def light_model(name: str, seed: int = 0) -> onnx.ModelProto:
    model = onnx.load(os.path.join(ONNX_DATA, "light", f"light_{name}.onnx"))
    rng = np.random.default_rng(seed)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    uses = {}
    for node in model.graph.node:
        for index, name_ in enumerate(node.input):
            uses.setdefault(name_, (node.op_type, index))
    for node in model.graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in inits:
            continue
        shape = tuple(int(d) for d in inits[node.input[0]])
        value = _random_value(uses.get(node.output[0], ("", 0)), shape, rng)
        node.op_type = "Constant"
        del node.input[:]
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(value)))
    return model


def _random_value(use, shape, rng) -> np.ndarray:
    op, index = use
    if op in ("Conv", "Gemm") and index == 1:
        fan_in = int(np.prod(shape[1:])) if op == "Conv" else shape[-1]
        return rng.normal(0, np.sqrt(2.0 / fan_in), shape).astype(np.float32)
    if (op == "BatchNormalization" and index in (1, 4)) or op == "Mul":
        return rng.uniform(0.5, 1.5, shape).astype(np.float32)
    return rng.normal(0, 0.05, shape).astype(np.float32)


def save(model: onnx.ModelProto, folder, name: str = "model.onnx") -> str:
    path = os.path.join(str(folder), name)
    onnx.save(model, path)
    return path


def image_batch(count: int, seed: int = 0, shape=(3, 224, 224)) -> np.ndarray:
    """Images normalised like ImageNet inputs (mean 0, std 1 per channel), so they are signed."""
    return np.random.default_rng(seed).normal(0, 1, (count,) + tuple(shape)).astype(np.float32)
