"""map_activations: run Sigmoid and Tanh on the profile's photonic sigmoid, exactly.

The device curve (profile ``activation``: kind photonic_sigmoid, parameters A1, A2, x0, d) is

    f(u) = A2 + (A1 - A2) / (1 + exp((u - x0) / d)) = A1 + (A2 - A1) sigmoid((u - x0) / d)

so with u = k d z + x0 (k = 1 for Sigmoid, 2 for Tanh):

    sigmoid(z) = (f(u) - A1) / (A2 - A1)          tanh(z) = 2 (f(u) - A1) / (A2 - A1) - 1

The input affine map is absorbed by the Linear that produces z (W <- k d W, b <- k d b + x0). The
output affine map y = a f + c is absorbed by the dense Linear layers that read the activation
(W <- W a, b <- b + W c: their input is then f, bounded by [A1, A2]); where a reader is not a dense
Linear (a padded convolution, a graph output...) it stays as electronic Mul and Add nodes. The
cap (u - x0) <= 2 changes sigmoid(z) only for z > 2 / (k d) (about 60 / k), by less than 1e-26.

Activations that have no exact mapping (every other op, or a Sigmoid whose input is not a Linear
output read by it alone) stay electronic; the compile report says which ran where.

On a profile whose ``activation.kind`` is ``saturable_absorber`` (parameter OD), the absorber
g(z) = z exp(-(OD/2) / (1 + z^2)) written with standard operators, as ``photoncc finetune
--activation saturable_absorber`` writes it,

    y = Mul(z, Exp(Div(c, Add(Mul(z, z), 1))))      with c = -OD/2 (a scalar constant),

becomes one optical ``SaturableAbsorber`` node (``map_absorbers``), when c matches the profile's
OD, its I_sat is 1 (the form above) and nothing else reads the pattern's inner values; elsewhere
the pattern runs electronically, giving the same values.

Requires: fold_affine. Ensures: the outputs are unchanged (to float rounding). Idempotent.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, fresh_name, prune, type_of

SCALE = {"Sigmoid": 1.0, "Tanh": 2.0}


def map_activations(g: Graph, ctx) -> Graph:
    activation = ctx.profile["activation"]
    if activation["kind"] == "saturable_absorber":  # the field form above is the absorber at I_sat 1
        return map_absorbers(g, float(activation["OD"])) if float(activation["I_sat"]) == 1.0 else g
    if activation["kind"] != "photonic_sigmoid":
        return g
    a1, a2, x0, d = (float(activation[k]) for k in ("A1", "A2", "x0", "d"))
    producers, users = g.producers(), g.consumers()
    consts, types = dict(g.consts), dict(g.types)
    replaced: dict[int, list[Node]] = {}
    readers_done: dict[str, tuple] = {}  # activation output -> (optical name, scale, offset)
    for index, n in enumerate(g.nodes):
        lin = producers.get(n.inputs[0]) if n.op in SCALE else None
        if lin is None or lin.op != "Linear" or len(users[n.inputs[0]]) != 1 or n.inputs[0] in g.outputs:
            continue
        k = SCALE[n.op]
        for name, fn in ((lin.inputs[1], lambda w: w * (k * d)), (lin.inputs[2], lambda b: b * (k * d) + x0)):
            consts[name] = fn(consts[name].astype(np.float64)).astype(consts[name].dtype)
        optical = fresh_name(types, f"{n.outputs[0]}.optical")
        types[optical] = types[n.outputs[0]]
        scale = k / (a2 - a1)
        offset = -k * a1 / (a2 - a1) - (k - 1.0)
        photonic = Node("PhotonicSigmoid", (n.inputs[0],), (optical,), {"A1": a1, "A2": a2, "x0": x0, "d": d}, n.name)
        replaced[index] = [photonic]
        readers_done[n.outputs[0]] = (optical, scale, offset, n)
    if not replaced:
        return g
    nodes: list[Node] = []
    for index, n in enumerate(g.nodes):
        if index in replaced:
            nodes.extend(replaced[index])
            out = n.outputs[0]
            optical, scale, offset, _ = readers_done[out]
            readers = users[out]
            if out in g.outputs or not all(r.op == "Linear" and "conv" not in r.attrs and r.inputs[0] == out
                                           for r in readers):
                nodes.extend(_electronic_affine(n.name, optical, out, scale, offset, consts, types))
            continue
        source = readers_done.get(n.inputs[0]) if n.op == "Linear" and n.inputs else None
        if source and not any(x.outputs[0] == n.inputs[0] for x in nodes):
            optical, scale, offset, _ = source
            w = consts[n.inputs[1]].astype(np.float64)
            b = consts[n.inputs[2]].astype(np.float64)
            consts[n.inputs[2]] = (b + w @ np.full(w.shape[1], offset)).astype(consts[n.inputs[2]].dtype)
            consts[n.inputs[1]] = (w * scale).astype(consts[n.inputs[1]].dtype)
            n = n.replace(inputs=(optical,) + n.inputs[1:])
        nodes.append(n)
    for name in consts:
        types[name] = type_of(consts[name])
    return prune(g.replace(nodes=tuple(nodes), consts=consts, types=types))


def _electronic_affine(name, source, out, scale, offset, consts, types):
    dtype = np.dtype(types[source].dtype)
    s_name = fresh_name(types, f"{name}.scale")
    o_name = fresh_name(set(types) | {s_name}, f"{name}.offset")
    mid = fresh_name(set(types) | {s_name, o_name}, f"{out}.scaled")
    consts[s_name], consts[o_name] = np.asarray(scale, dtype), np.asarray(offset, dtype)
    types[mid] = types[out]
    return [Node("Mul", (source, s_name), (mid,), {}, f"{name}.undo_scale"),
            Node("Add", (mid, o_name), (out,), {}, f"{name}.undo_offset")]


def map_absorbers(g: Graph, od: float) -> Graph:
    """Every saturable-absorber pattern (module docstring) of constant -od/2 as one node."""
    producers, users = g.producers(), g.consumers()
    drop, replace = set(), {}
    for n in g.nodes:
        found = _absorber(n, producers, users, g, od) if n.op == "Mul" and len(n.inputs) == 2 else None
        if found is not None:
            z, inner = found
            drop.update(inner)
            replace[n.name] = Node("SaturableAbsorber", (z,), n.outputs, {"OD": od}, n.name)
    if not replace:
        return g
    nodes = tuple(replace.get(n.name, n) for n in g.nodes if n.name not in drop)
    return prune(g.replace(nodes=nodes))


def _absorber(n: Node, producers, users, g: Graph, od: float):
    """(z, the names of the pattern's four inner nodes) when ``n`` ends the pattern, else None."""
    def only(value, op):  # the node of ``op`` that makes ``value``, read by one node alone
        node = producers.get(value)
        single = len(users.get(value, [])) == 1 and value not in g.outputs
        return node if node is not None and node.op == op and single else None

    def scalar(name, value=None):
        c = g.consts.get(name)
        return c is not None and c.size == 1 and (value is None or np.isclose(float(c.reshape(-1)[0]), value, rtol=1e-6))

    for z, t in (n.inputs, n.inputs[::-1]):
        exp = only(t, "Exp")
        div = exp and only(exp.inputs[0], "Div")
        if not div or not scalar(div.inputs[0], -od / 2.0):
            continue
        add = only(div.inputs[1], "Add")
        square = add and next((only(i, "Mul") for i in add.inputs if not scalar(i)), None)
        if add and square and any(scalar(i, 1.0) for i in add.inputs) and square.inputs == (z, z):
            return z, {exp.name, div.name, add.name, square.name}
    return None
