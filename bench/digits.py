"""The digits models the bench scripts build (bench/sweep.py's and bench/finetune_accuracy.py's
CNNs): one way to write them. (Not in bench/models.py: the tests import their own ``models``.)"""
from __future__ import annotations

import onnx
from onnx import TensorProto, helper, numpy_helper


def save_digits_model(path, name: str, nodes: list, inits: dict):
    """Write a digits model (input ``pixels`` (batch, 64), output ``probabilities`` (batch, 10)) of
    ``nodes`` and initialisers ``inits`` to ``path``, checked; returns ``path`` (bench/sweep.py's
    and bench/finetune_accuracy.py's CNNs)."""
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        [numpy_helper.from_array(value, key) for key, value in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="photoncc-bench")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
