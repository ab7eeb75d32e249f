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

from ..interp import CONFIG_INPUTS, OPS, explicit_pads, per_sample_product, settings
from ..ir import Graph, Node, prune

BATCH_HINT = "photoncc keeps axis 0 as the batch; export the model with a batch axis it does not mix"
AXIS_OPS = {"Concat", "Split", "Softmax", "LogSoftmax", "ArgMax", "ArgMin", "Gather", "Flatten"}


def canonicalize(g: Graph) -> Graph:
    nodes = [_canonical(n, g) for n in g.nodes]
    g = prune(g.replace(nodes=tuple(nodes)))
    failing = _batch_probe(g) if g.meta.get("dynamic_batch") else None
    if failing is None:
        return g
    return g.replace(nodes=tuple(
        _unsupported(n, "depends on the batch size the model was compiled for (batch 1): a shape computed "
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


def _unsupported(n: Node, reason: str, hint: str = "") -> Node:
    return n.replace(attrs={**n.attrs, "unsupported": (reason, hint)})


def _canonical(n: Node, g: Graph) -> Node:
    config = CONFIG_INPUTS.get(n.op, ())
    data_inputs = 1 if config else len(n.inputs)
    if (n.op == "Reshape" and len(n.inputs) > 1 and g.meta.get("dynamic_batch")
            and n.inputs[1] in g.meta.get("model_constants", ()) and int(g.consts[n.inputs[1]].reshape(-1)[0]) == 1):
        return _unsupported(n, "reshapes to a fixed leading dimension of 1 although the model's batch is dynamic: "
                               "at batch N it would mix the samples", "reshape with 0 or -1 on the batch axis")
    for key, name in zip(config, n.inputs[data_inputs:]):
        if name and name not in g.consts:
            return _unsupported(n, f"its {key!r} input is computed from data, not constant",
                                "photoncc needs static shapes and constant operator settings")
    a = settings(n, [g.consts.get(i) if i else None for i in n.inputs[data_inputs:]])
    n = n.replace(inputs=n.inputs[:data_inputs], attrs=a)
    x = g.types[n.inputs[0]] if n.inputs and n.inputs[0] in g.types else None
    rank = len(x.shape) if x else 0
    out = g.types.get(n.outputs[0]) if n.outputs else None

    if n.op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze"):
        if out.shape[:1] != x.shape[:1] or (n.op == "Flatten" and a.get("axis", 1) % rank == 0):
            return _unsupported(n, f"changes the batch axis ({x} -> {out})", BATCH_HINT)
        return Node("Reshape", n.inputs, n.outputs, {"shape": list(out.shape[1:])}, n.name)
    if n.op in ("Conv", "MaxPool", "AveragePool") and "auto_pad" in a:
        a = explicit_pads(a, x.shape[2:])
    if n.op == "Transpose":
        perm = a.get("perm") or list(range(rank))[::-1]
        a["perm"] = [int(p) % rank for p in perm]
        if a["perm"][0] != 0:
            return _unsupported(n, f"moves the batch axis (perm {a['perm']})", BATCH_HINT)
    if n.op in AXIS_OPS and n.op != "Flatten":
        if n.op == "Gather" and n.inputs[0] in g.consts:
            pass  # a lookup table indexed by data: axis 0 is the table's, not the batch
        else:
            default = 0 if n.op in ("Split", "Gather", "ArgMax", "ArgMin") else a.get("axis")
            a["axis"] = int(a.get("axis", default)) % rank
            if a["axis"] == 0:
                return _unsupported(n, "works across the batch axis (axis 0)", BATCH_HINT)
    if n.op.startswith("Reduce"):
        axes = a.get("axes")
        if not axes and not a.get("noop_with_empty_axes", 0):
            return _unsupported(n, "reduces over every axis, including the batch", BATCH_HINT)
        a["axes"] = sorted(int(v) % rank for v in (axes or []))
        if 0 in a["axes"]:
            return _unsupported(n, "reduces over the batch axis", BATCH_HINT)
    if n.op == "Slice":
        axes = [int(v) % rank for v in a.get("axes", range(len(a["starts"])))]
        if 0 in axes and out.shape[0] != x.shape[0]:
            return _unsupported(n, "slices the batch axis", BATCH_HINT)
        a["axes"] = axes
        a.setdefault("steps", [1] * len(axes))
    if n.op == "Pad":
        pads = list(a.get("pads", []))
        if "axes" in a:
            full = [0] * (2 * rank)
            for i, axis in enumerate(int(v) % rank for v in a.pop("axes")):
                full[axis], full[axis + rank] = pads[i], pads[i + len(pads) // 2]
            pads = full
        a["pads"] = pads
        a["value"] = float(a.get("value", 0.0) or 0.0)
        if pads[0] or pads[rank]:
            return _unsupported(n, "pads the batch axis", BATCH_HINT)
    if n.op == "Split" and "split" not in a:
        a["split"] = [g.types[o].shape[a["axis"]] for o in n.outputs]
        a.pop("num_outputs", None)
    return n.replace(attrs=a)

