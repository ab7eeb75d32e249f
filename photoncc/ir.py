"""The intermediate representation: one small, flat, typed graph.

A graph is a topologically ordered tuple of nodes ``outputs = op[attrs](inputs)``, a table of value
types (shape, dtype) and a table of constant arrays. Every pass returns a new graph; nothing is
mutated in place (the dataclasses are frozen and passes copy the dicts they change).

Axis 0 of every non-constant value is the batch. The importer binds a symbolic batch to 1, so value
types record batch 1; after ``fold_constants`` every op is polymorphic in the batch (a Reshape
carries its per-sample shape, ops that would mix samples are rejected), so a graph runs on any
number of samples.

Value names are strings; an empty string is an absent optional input. Constants are named values
held in ``consts`` (never produced by a node).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: "float32", "int64", ...

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(str(d) for d in self.shape)}]"


@dataclass(frozen=True)
class Node:
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict = field(default_factory=dict)
    name: str = ""

    def attr(self, key, default=None):
        return self.attrs.get(key, default)

    def replace(self, **changes) -> "Node":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    types: dict  # value name -> TensorType (graph inputs, node outputs and constants)
    consts: dict  # value name -> np.ndarray
    meta: dict = field(default_factory=dict)  # source path, sha256, opset, ...

    def replace(self, **changes) -> "Graph":
        return dataclasses.replace(self, **changes)

    def producers(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs if o}

    def consumers(self) -> dict[str, list[Node]]:
        users: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                users.setdefault(i, []).append(n)
        for o in self.outputs:
            users.setdefault(o, [])
        return users

    def ops(self) -> set[str]:
        return {n.op for n in self.nodes}


class Handover:
    """A graph handed to a function that frees its weights as it replaces them: whoever holds the
    Handover reads the graph (``peek``) until it passes it on with ``take``, in the call itself,
    keeping no reference (Python cannot drop a local in mid-call), so that the callee alone holds
    it."""

    def __init__(self, graph: "Graph"):
        self._graph = graph

    def peek(self) -> "Graph":
        return self._graph

    def take(self) -> "Graph":
        graph, self._graph = self._graph, None
        return graph


def type_of(array: np.ndarray) -> TensorType:
    return TensorType(tuple(int(d) for d in array.shape), array.dtype.name)


def fresh_name(taken, base: str) -> str:
    """``base``, or ``base_1``, ``base_2``... whichever is not in ``taken`` (a mapping or set of names)."""
    name, index = base, 0
    while name in taken:
        index += 1
        name = f"{base}_{index}"
    return name


def prune(g: Graph) -> Graph:
    """Drop nodes and constants that no graph output depends on."""
    live = set(g.outputs)
    kept = []
    for n in reversed(g.nodes):
        if any(o in live for o in n.outputs):
            kept.append(n)
            live.update(i for i in n.inputs if i)
    kept.reverse()
    consts = {k: v for k, v in g.consts.items() if k in live}
    names = live | set(g.inputs) | {o for n in kept for o in n.outputs if o}  # a kept node's unread outputs too
    types = {k: v for k, v in g.types.items() if k in names}
    return g.replace(nodes=tuple(kept), consts=consts, types=types)


def check(g: Graph) -> None:
    """Invariants every graph keeps after every pass; a failure is a compiler bug."""
    defined = set(g.inputs) | set(g.consts)
    for name in defined:
        assert name in g.types, f"value {name!r} has no type"
    for n in g.nodes:
        for i in n.inputs:
            assert i == "" or i in defined, f"node {n.name or n.op}: input {i!r} used before defined"
        for o in n.outputs:
            assert o not in defined or o == "", f"node {n.name or n.op}: value {o!r} defined twice"
            if o:
                assert o in g.types, f"node {n.name or n.op}: output {o!r} has no type"
                defined.add(o)
    for o in g.outputs:
        assert o in defined, f"graph output {o!r} is not defined"
    for name, value in g.consts.items():
        assert isinstance(value, np.ndarray), f"constant {name!r} is not an array"
        assert type_of(value) == g.types[name], f"constant {name!r} type differs from its table entry"


def _fmt_attr(value) -> str:
    if isinstance(value, np.ndarray):
        return f"<{value.dtype.name}{list(value.shape)}>"
    if isinstance(value, float):
        return repr(round(value, 9))
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_fmt_attr(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_fmt_attr(v)}" for k, v in sorted(value.items())) + "}"
    return repr(value)


def to_text(g: Graph) -> str:
    """Deterministic text form, read by tests and written by ``--dump-ir``."""
    lines = ["graph(" + ", ".join(f"{i}: {g.types[i]}" for i in g.inputs) + ")"]
    for name in sorted(g.consts):
        lines.append(f"  const {name}: {g.types[name]}")
    for n in g.nodes:
        attrs = ", ".join(f"{k}={_fmt_attr(v)}" for k, v in sorted(n.attrs.items()))
        outs = ", ".join(f"{o}: {g.types[o]}" if o else "_" for o in n.outputs)
        lines.append(f"  {outs} = {n.op}[{attrs}]({', '.join(n.inputs)})")
    lines.append("  return " + ", ".join(g.outputs))
    return "\n".join(lines) + "\n"


class UnsupportedNode:
    """One node the compiler cannot place, with why and what the user can do."""

    __slots__ = ("node", "op", "reason", "hint")

    def __init__(self, node: str, op: str, reason: str, hint: str = ""):
        self.node, self.op, self.reason, self.hint = node, op, reason, hint

    def __str__(self) -> str:
        text = f"node {self.node!r} ({self.op}): {self.reason}"
        return text + (f" (hint: {self.hint})" if self.hint else "")

    def as_dict(self) -> dict:
        return {"node": self.node, "op": self.op, "reason": self.reason, "hint": self.hint}
