"""canonicalize: one spelling per op, every config value an attribute, the batch axis left alone.

After ``fold_constants`` the config inputs of newer opsets (Reshape shape, Clip min/max, Pad pads,
Slice starts/ends/axes/steps, Split sizes, Squeeze/Unsqueeze/Reduce axes) are constants; they move
into attributes under the names the importer uses for older opsets. Then:

* Reshape, Flatten, Squeeze and Unsqueeze become ``Reshape[shape]`` with the PER-SAMPLE target
  shape (the value's type without axis 0), so the graph runs on any batch;
* ``auto_pad`` is resolved to explicit pads for the (static) spatial size;
* negative axes become positive, Transpose gets an explicit perm.

An op that would mix samples (touch axis 0: Concat/Split/Softmax/Reduce on axis 0, a Transpose that
moves it, a Reshape that changes it, or a constant Reshape target [1, ...] in a dynamic-batch model),
or, in a dynamic-batch model, that fails on 2 samples (a shape computed from the batch and folded
at batch 1: the graph is run once on 2 samples of zeros to find it; a model with a static batch is
compiled for that batch and its constants may be batch-sized) or whose config is not constant is annotated
``attrs["unsupported"] = (reason, hint)``; the pipeline reports every annotated node at once.

Requires: fold_constants. Ensures: the above; numerics unchanged. Idempotent.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..interp import OPS, per_sample_product
from ..ir import Graph, Node, prune
from ..ops import settings, unsupported


def canonicalize(g: Graph, ctx=None) -> Graph:
    nodes = [_canonical(n, g) for n in g.nodes]
    g = prune(g.replace(nodes=tuple(nodes)))
    failing = _batch_probe(g) if g.meta.get("dynamic_batch") else None
    if failing is None:
        return g
    return g.replace(nodes=tuple(
        unsupported(n, "depends on the batch size the model was compiled for (batch 1): a shape computed "
                       "from the batch was fixed to 1 and this node fails for other batch sizes",
                    "compute batch-dependent shapes per sample (broadcast instead of Shape(x)[0])")
        if n.name == failing else n for n in g.nodes))


def _batch_probe(g: Graph) -> str | None:
    """The first node that fails, or loses the batch, when the graph runs on 2 samples (None: all fine).

    A ``per_sample_product`` (interp) given an input of its recorded shape at batch 2 is not run:
    its output is zeros of its recorded shape at batch 2 (the probe only needs the shapes); an
    input of another shape stops the probe at that node, as running it would."""
    env = dict(g.consts)
    env.update({i: np.zeros((2,) + g.types[i].shape[1:], g.types[i].dtype) for i in g.inputs})
    env[""] = None
    with np.errstate(all="ignore"):
        for n in g.nodes:
            if "unsupported" in n.attrs or n.op not in OPS:
                return None  # reported already; nothing more to learn
            if per_sample_product(n, g.consts, len(g.types[n.inputs[0]].shape)):
                if np.shape(env[n.inputs[0]]) != (2,) + g.types[n.inputs[0]].shape[1:]:
                    return n.name
                out = g.types[n.outputs[0]]
                env[n.outputs[0]] = np.zeros((2,) + out.shape[1:], out.dtype)
                continue
            try:
                result = OPS[n.op](n, *[env[i] for i in n.inputs])
            except (ValueError, IndexError):
                return n.name
            result = result if isinstance(result, tuple) else (result,)
            for name, value in zip(n.outputs, result):
                if name:
                    if g.types[name].shape[:1] == (1,) and np.shape(value)[:1] != (2,):
                        return n.name
                    env[name] = value
    return None


def _canonical(n: Node, g: Graph) -> Node:
    """The node with its setting inputs (constants by now) moved into attributes, then in its op's
    canonical form (``Op.canonical``: per-sample reshapes, positive axes, explicit pads...)."""
    found = ops.get(n.op)
    config = found.settings if found else ()
    data_inputs = 1 if config else len(n.inputs)
    for key, name in zip(config, n.inputs[data_inputs:]):
        if name and name not in g.consts:
            return unsupported(n, f"its {key!r} input is computed from data, not constant",
                               "photoncc needs static shapes and constant operator settings")
    a = settings(n, [g.consts.get(i) if i else None for i in n.inputs[data_inputs:]])
    source, n = n, n.replace(inputs=n.inputs[:data_inputs], attrs=a)
    return found.canonical(n, g, source) if found and found.canonical else n
