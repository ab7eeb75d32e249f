"""IR interpreter: each node evaluated by its op's NumPy function from the registry (``photoncc.ops``,
like onnx's ReferenceEvaluator).

It runs a graph at every stage of the pipeline, which is how every pass is checked by execution,
how value types are inferred (one run on a batch-1 input) and how calibration statistics are
gathered. ``OPS`` maps each op name to ``evaluate(node, *inputs)``: the ONNX form of the op
before ``canonicalize``, its kernel after, and the IR's own ``Linear`` and ``Bank``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import ops
from .errors import UserError
from .ir import Graph, type_of
from .program import dead_after

OPS: dict[str, Callable] = {name: found.evaluate for name, found in ops.REGISTRY.items()
                            if found.kernel is not None or found.onnx is not None}


def run(g: Graph, feeds: dict, watch: Callable[[str, np.ndarray], None] | None = None, evaluators: dict = OPS,
        progress=None) -> dict:
    """Evaluate ``g`` on ``feeds`` (input name -> array); returns the graph outputs by name.

    ``watch(name, value)`` is called for every value a node produces, in order; ``evaluators`` maps op
    names to their functions (``OPS``; ``infer_types`` replaces the matrix products);
    ``progress(done, total)`` after each node (see photoncc/progress.py). A value is dropped after
    the last node that reads it (``program.dead_after``): memory holds the live values, not all.
    """
    env = dict(g.consts)
    env.update(feeds)
    env[""] = None
    dead = dead_after([(n.inputs, n.outputs) for n in g.nodes], set(g.outputs))
    with np.errstate(all="ignore"):
        for index, n in enumerate(g.nodes):
            args = [env[i] for i in n.inputs]
            try:
                result = evaluators[n.op](n, *args)
            except (ValueError, TypeError, IndexError, KeyError, ArithmeticError) as e:
                raise NodeError(n, e, feeds) from e
            if not isinstance(result, tuple):
                result = (result,)
            for name, value in zip(n.outputs, result):
                if name:
                    env[name] = value
                    if watch is not None:
                        watch(name, value)
            del args, result
            for name in dead[index]:
                del env[name]
            if progress is not None:
                progress(index + 1, len(g.nodes))
    return {o: env[o] for o in g.outputs}


class NodeError(UserError):
    """A node that cannot run on the values it is given: the model's shapes or settings disagree
    (the model's fault, exit 2), named with its op and the samples it ran on."""

    def __init__(self, node, error: Exception, feeds: dict):
        self.node = node
        count = len(next(iter(feeds.values()))) if feeds else 0
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        super().__init__(f"node {node.name!r} ({node.op}) cannot run on {count} sample(s) of the shapes the model "
                         f"declares: {reason[:300]}")


def per_sample_product(node, consts: dict, rank: int) -> bool:
    """Whether ``node``, whose data input has rank ``rank``, is a matrix product that computes each
    sample on its own whatever the batch: a Conv, Gemm (not transA) or MatMul (weights of rank
    <= 2) of a data input of rank >= 2 by constant weights. Type inference and canonicalize's
    batch probe need only its output's shape, and skip its arithmetic (the products are most of
    a model's work)."""
    if node.op not in ("Conv", "Gemm", "MatMul") or node.attrs.get("transA") or node.inputs[0] in consts:
        return False
    weights = [i for i in node.inputs[1:] if i]
    return (rank >= 2 and all(i in consts for i in weights)
            and not (node.op == "MatMul" and np.ndim(consts[weights[0]]) > 2))


def infer_types(g: Graph) -> Graph:
    """Fill the type table by running the graph once on ones shaped like the declared inputs.

    A ``per_sample_product`` is run on none of the samples (its input's first 0 rows) and gives
    zeros of the shape that returns with the samples restored: its output type for a fraction of
    its cost (no later shape can depend on its values in a graph photoncc takes)."""
    feeds = {i: np.ones(g.types[i].shape, g.types[i].dtype) for i in g.inputs}
    types = {k: v for k, v in g.types.items() if k in g.inputs or k in g.consts}

    def record(name, value):
        types[name] = type_of(np.asarray(value))

    def outline(fn):
        def product(node, x, *weights):
            if not per_sample_product(node, g.consts, np.ndim(x)):
                return fn(node, x, *weights)
            y = fn(node, x[:0], *weights)
            return np.zeros(x.shape[:1] + y.shape[1:], y.dtype)
        return product

    run(g, feeds, watch=record, evaluators={**OPS, **{name: outline(OPS[name]) for name in ("Conv", "Gemm", "MatMul")}})
    for i in g.inputs:
        types[i] = g.types[i]
    return g.replace(types=types)
