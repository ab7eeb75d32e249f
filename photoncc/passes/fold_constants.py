"""fold_constants: evaluate every node whose inputs are all known, and drop no-op nodes.

Maths: a node f(c1, ..., cn) of constants is replaced by the constant it evaluates to (by the IR
interpreter). ``Shape``/``Size`` of a value with a static type are constants once the batch is bound
(importer), so shape sub-graphs (Shape -> Gather -> Concat -> Reshape) collapse; so is ``CastLike`` of a
constant, which reads only the other input's dtype. Identity, Dropout (unless its mask is read) and a
Cast to the same dtype forward their input.

Requires: a typed graph (importer).
Ensures: no node has only constant inputs; no Identity, unread-mask Dropout or no-op Cast remains; the outputs
on any input are unchanged. Idempotent.
"""
from __future__ import annotations

import numpy as np

from .. import interp
from ..ir import Graph, Node, prune, type_of


def fold_constants(g: Graph, ctx=None) -> Graph:
    consts = dict(g.consts)
    types = dict(g.types)
    rename: dict[str, str] = {}
    nodes: list[Node] = []
    for n in g.nodes:
        n = n.replace(inputs=tuple(rename.get(i, i) for i in n.inputs))
        if _forwards(n, types):
            rename[n.outputs[0]] = n.inputs[0]
            continue
        if _foldable(n, consts):
            args = [consts[i] if i in consts else np.ones(types[i].shape, types[i].dtype) if i else None
                    for i in n.inputs]
            with np.errstate(all="ignore"):
                result = interp.OPS[n.op](n, *args)
            result = result if isinstance(result, tuple) else (result,)
            for name, value in zip(n.outputs, result):
                if name:
                    consts[name] = np.asarray(value)
                    types[name] = type_of(consts[name])
            continue
        nodes.append(n)
    outputs = tuple(rename.get(o, o) for o in g.outputs)
    if outputs != g.outputs:  # a graph output must stay a named node output: keep its name
        return _keep_output_names(g, nodes, consts, types, rename)
    return prune(g.replace(nodes=tuple(nodes), consts=consts, types=types))


def _forwards(n: Node, types: dict) -> bool:
    if n.op == "Identity" or (n.op == "Dropout" and not any(n.outputs[1:])):  # a mask read stays: all true
        return True
    return n.op == "Cast" and types[n.inputs[0]].dtype == n.attrs["to"]


# inputs read for their type alone (known once the batch is bound): Shape(x), Size(x), CastLike(c, x)
TYPE_ONLY = {"Shape": (0,), "Size": (0,), "CastLike": (1,)}


def _foldable(n: Node, consts: dict) -> bool:
    typed = TYPE_ONLY.get(n.op, ())
    return all(i == "" or i in consts or k in typed for k, i in enumerate(n.inputs))


def _keep_output_names(g, nodes, consts, types, rename) -> Graph:
    """Give each graph output that folding renamed its name back: the node that computes its value
    writes it under the output's name. Only a value that cannot take the name (a graph input, or
    one that is also another output) is copied to it by an Identity."""
    produced = {o for n in nodes for o in n.outputs if o}
    back, copies = {}, []
    for o in g.outputs:
        source = rename.get(o, o)
        while source in rename:
            source = rename[source]
        if source == o:
            continue
        if source in consts:  # a constant output: the value is the constant itself
            consts[o], types[o] = consts[source], types[source]
        elif source in produced and source not in g.outputs and source not in back:
            back[source] = o
            types[o] = types[source]
        else:
            copies.append((source, o))
    nodes = [n.replace(inputs=tuple(back.get(i, i) for i in n.inputs), outputs=tuple(back.get(o, o) for o in n.outputs))
             for n in nodes]
    nodes += [Node("Identity", (back.get(source, source),), (o,), {}, f"output_{o}") for source, o in copies]
    return prune(g.replace(nodes=tuple(nodes), consts=consts, types=types))
