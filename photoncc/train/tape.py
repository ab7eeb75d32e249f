"""The tape: reverse-mode differentiation of an IR graph, from the registry's VJP rules.

Forward, the graph runs node by node on the interpreter's kernels (``interp.OPS``), with the
trained parameters in place of their constants. A node lies on a gradient path when one of its
inputs depends on a parameter and one of its outputs leads to a target (the values the loss
seeds: logits, say); for each such node the tape keeps what its rule reads (``Op.vjp``'s
``saves``: its inputs, its outputs, or both; for the others a stand-in of their shape and dtype
that holds no memory) and nothing else, so the other values are freed after their last reader,
as in ``interp.run``.

Backward, the rules run in reverse order: each node's output cotangents c give its input
cotangents vjp(c), summed into every value read more than once (the chain rule over the graph's
fan-out); the parameters' sums are the gradient.

A node may be run by functions of its own instead of its op's kernel and rule (``Custom``: the
device layers of fine-tuning, whose forward is the device model and whose backward is a
straight-through estimate). ``backward``'s ``cut`` names nodes whose data input gets no
cotangent (direct feedback alignment: no backward pass through the weights).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import ops
from ..interp import OPS, NodeError
from ..ir import Graph
from ..program import dead_after

BOTH = frozenset({"inputs", "outputs"})


@dataclass
class Custom:
    """A node run by ``forward(node, inputs) -> (outputs, residual)`` and differentiated by
    ``backward(node, residual, cotangents) -> input cotangents``."""
    forward: Callable
    backward: Callable


@dataclass
class Record:
    values: dict                          # graph outputs and the values asked to be kept, by name
    steps: list = field(default_factory=list)  # (node, inputs or residual, outputs, custom) on gradient paths
    active: set = field(default_factory=set)   # values that depend on a parameter


def upstream(g: Graph, targets) -> set[str]:
    """The values some target depends on (the targets included)."""
    needed = set(targets)
    for n in reversed(g.nodes):
        if any(o in needed for o in n.outputs):
            needed.update(i for i in n.inputs if i)
    return needed


def forward(g: Graph, feeds: dict, params: dict, targets=(), custom: dict | None = None, keep=()) -> Record:
    """Run ``g`` on ``feeds`` with ``params`` (const name -> array) for its constants; returns the
    Record of the gradient paths to ``targets`` and the graph outputs plus ``keep``'s values.
    ``custom`` maps node names to ``Custom`` runners."""
    custom = custom or {}
    env = {**g.consts, **params, **feeds, "": None}
    wanted = set(g.outputs) | set(keep) | set(targets)
    dead = dead_after([(n.inputs, n.outputs) for n in g.nodes], wanted)
    leads = upstream(g, targets)
    record = Record({}, active=set(params))
    with np.errstate(all="ignore"):
        for index, n in enumerate(g.nodes):
            args = [env[i] for i in n.inputs]
            on_path = any(i in record.active for i in n.inputs) and any(o in leads for o in n.outputs)
            try:
                if n.name in custom:
                    result, residual = custom[n.name].forward(n, args)
                else:
                    result, residual = OPS[n.op](n, *args), None
            except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as e:
                raise NodeError(n, e, feeds) from e
            result = result if isinstance(result, tuple) else (result,)
            if on_path:
                _record(record, n, args, result, residual, custom.get(n.name))
            for name, value in zip(n.outputs, result):
                if name:
                    env[name] = value
            del args, result, residual
            for name in dead[index]:
                del env[name]
    record.values.update({name: env[name] for name in wanted if name in env})
    return record


def _record(record: Record, n, args, result, residual, runner) -> None:
    float_out = [o for o, v in zip(n.outputs, result) if o and np.asarray(v).dtype.kind == "f"]
    record.active.update(float_out)
    if runner is not None:
        record.steps.append((n, residual, None, runner))
        return
    rule = ops.REGISTRY[n.op].vjp
    if rule is None:
        raise AssertionError(f"node {n.name!r} ({n.op}) has no VJP rule")  # trainable() refuses such graphs
    saved = getattr(rule, "saves", BOTH)
    record.steps.append((n, [v if "inputs" in saved else stand_in(v) for v in args],
                         [v if "outputs" in saved else stand_in(v) for v in result], None))


def stand_in(value):
    """What a rule that does not read ``value`` gets instead: an array of its shape and dtype
    that holds no memory (one zero, broadcast)."""
    if value is None:
        return None
    value = np.asarray(value)
    return np.broadcast_to(np.zeros((), value.dtype), value.shape)


def backward(record: Record, seeds: dict, cut=frozenset()) -> dict:
    """The cotangents of the parameters (those that got any) from ``seeds`` (value name ->
    cotangent of the loss). ``cut``: names of nodes whose first (data) input gets none."""
    cts = {name: value for name, value in seeds.items() if value is not None}
    with np.errstate(all="ignore"):
        for n, saved_in, saved_out, runner in reversed(record.steps):
            out_cts = [cts.pop(o, None) for o in n.outputs]
            if all(c is None for c in out_cts):
                continue
            if runner is not None:
                in_cts = runner.backward(n, saved_in, out_cts)
            else:
                in_cts = ops.REGISTRY[n.op].vjp(n, saved_in, saved_out, out_cts)
            for position, (name, c) in enumerate(zip(n.inputs, in_cts)):
                if c is None or not name or name not in record.active or (position == 0 and n.name in cut):
                    continue
                cts[name] = c if name not in cts else cts[name] + c
    return cts


def gradients(record: Record, seeds: dict, params, cut=frozenset()) -> dict:
    """``backward``'s cotangents of the parameters named in ``params`` (zeros for one none reached)."""
    cts = backward(record, seeds, cut)
    return {name: cts.get(name) for name in params}


def missing_rules(g: Graph, params, targets, custom=()) -> list:
    """The nodes on a gradient path whose op has no VJP rule (``photoncc check``'s shape: every
    one of them), as ``ir.UnsupportedNode``."""
    from ..ir import UnsupportedNode
    active, leads, found = set(params), upstream(g, targets), []
    for n in g.nodes:
        if any(i in active for i in n.inputs) and any(o in leads for o in n.outputs):
            active.update(o for o in n.outputs if o)
            ruled = n.op in ops.REGISTRY and ops.REGISTRY[n.op].vjp is not None
            if n.name not in custom and not ruled:
                found.append(UnsupportedNode(n.name, n.op, "has no VJP rule: fine-tuning cannot run backwards through it",
                                             "see `photoncc ops`; fine-tune a model without it"))
    return found
