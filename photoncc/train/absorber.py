"""``--activation saturable_absorber`` (Spall et al., arXiv 2308.05226): the model's ReLU-family
activations replaced by the saturable absorber g(z) = z T(z), T(z) = exp(-(OD/2) / (1 + z^2)).

Training: the graph's activations become ``SaturableAbsorber`` nodes (``ops.nn``). Where the
absorber runs optically (a profile whose ``activation.kind`` is ``saturable_absorber``, OD its
own), its backward pass is the optical one the paper measures with a pump and a probe: g'(z) is
replaced by the probe's transmission T(z), which keeps the slope's sign and shape but
underestimates it by up to 1 + OD/4. Elsewhere the absorber runs electronically, exactly, and so
does its exact slope g'(z) = [1 + OD z^2 / (1 + z^2)^2] T(z) (the op's VJP rule); OD is then the
schema's default, 10.

The tuned file writes each absorber with standard operators in place of the activation node it
replaces (the other nodes and initializers are the file's own):

    <name>/square = Mul(z, z);  <name>/denominator = Add(<name>/square, 1);
    <name>/exponent = Div(-OD/2, <name>/denominator);  <name>/transmission = Exp(<name>/exponent);
    <name> = Mul(z, <name>/transmission)          (the last node keeps the name and the output)

with the constants as the float32 initializers ``<name>/one`` and ``<name>/half_od``. ``compile``
for a ``saturable_absorber`` profile runs that pattern optically (``passes.map_activations``).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..ir import Graph
from ..ops.photonic import saturable_absorber, transmission
from ..profile import ACTIVATIONS
from .tape import Custom

FAMILY = ("Relu", "LeakyRelu", "Elu", "Selu", "Softplus")  # one-input ReLU-like activations


def optical(profile) -> bool:
    """Whether the profile runs the absorber optically (``passes.map_activations``: its kind, at I_sat 1)."""
    activation = profile["activation"]
    return activation["kind"] == "saturable_absorber" and float(activation["I_sat"]) == 1.0


def optical_depth(profile) -> float:
    return float(profile["activation"]["OD"]) if optical(profile) else float(ACTIVATIONS["saturable_absorber"]["OD"])


def replace(graph: Graph, od: float) -> tuple[Graph, list]:
    """The graph with every activation of FAMILY a SaturableAbsorber (same name and values);
    returns it and the names replaced."""
    names = [n.name for n in graph.nodes if n.op in FAMILY]
    nodes = tuple(n.replace(op="SaturableAbsorber", inputs=n.inputs[:1], attrs={"OD": od}) if n.op in FAMILY else n
                  for n in graph.nodes)
    return graph.replace(nodes=nodes), names


def pump_probe(names) -> dict:
    """The tape's runners of the absorbers with the optical backward pass: g * T(z)."""
    def forward(node, args):
        return saturable_absorber(args[0], OD=node.attrs["OD"]), args[0]

    def backward(node, z, cts):
        return ((cts[0] * transmission(z, node.attrs["OD"])).astype(cts[0].dtype),)
    return {name: Custom(forward, backward) for name in names}


def write(model: onnx.ModelProto, names, od: float, node_names) -> None:
    """Replace the named activation nodes of ``model`` (named as the importer names them:
    ``node_names``, per node of the file) by the absorber's standard-operator form."""
    wanted = set(names)
    nodes = []
    for node, base in zip(list(model.graph.node), node_names):
        if base not in wanted:
            nodes.append(node)
            continue
        z, y = node.input[0], node.output[0]
        one, half = f"{base}/one", f"{base}/half_od"
        model.graph.initializer.extend([numpy_helper.from_array(np.array(1.0, np.float32), one),
                                        numpy_helper.from_array(np.array(-od / 2.0, np.float32), half)])
        nodes += [helper.make_node("Mul", [z, z], [f"{base}/square"], name=f"{base}/square"),
                  helper.make_node("Add", [f"{base}/square", one], [f"{base}/denominator"], name=f"{base}/denominator"),
                  helper.make_node("Div", [half, f"{base}/denominator"], [f"{base}/exponent"], name=f"{base}/exponent"),
                  helper.make_node("Exp", [f"{base}/exponent"], [f"{base}/transmission"], name=f"{base}/transmission"),
                  helper.make_node("Mul", [z, f"{base}/transmission"], [y], name=base)]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
