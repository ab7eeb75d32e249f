"""lower_recurrent: every RNN, GRU and LSTM node unrolled into standard ops, with the batch first.

ONNX semantics (``ops/recurrent.py`` has the reference forms): activations with their alphas and
betas, clip, linear_before_reset, input_forget, peepholes, direction forward / reverse /
bidirectional, constant initial states, sequence_lens absent or equal to the sequence length,
layout 0 and 1. For X (N, T, I) batch first:

* the input products of every time step and both directions, X W^T + b, as ONE MatMul by the
  constant [W_forward; W_reverse]^T over the (batch, time, features) input (they are not
  recurrent): one bank, the rows of every time step through it;
* per direction and time step, the recurrent product of the previous state, H_{t-1} R^T: a
  MatMul by the constant R, hence a bank per step (a GRU without linear_before_reset has a second
  one, (r H_{t-1}) R_h^T); at the first step of a zero initial state it is the bias alone;
* the gates electronic: Split, Sigmoid/Tanh (or the layer's activations), Mul, Add, Clip, and
  ``Blend`` for a GRU's state update (ops/recurrent.py says why).

Unrolling holds the recurrent matrix once per step and direction in the program (a T-step
bidirectional layer: 2T copies of R after lower_linear); sharing one copy between the steps'
banks is a possible later improvement. The compile report lists the unrolled layers
(``meta["unrolled"]``). This module writes a layer's input products and outputs;
``recurrent_cell`` writes each time step.

The batch stays axis 0. ONNX layers are sequence-major (layout 0: X (T, N, I), Y (T, D, N, H),
Y_h and Y_c (D, N, H)); PyTorch writes a Transpose before (batch_first=True) and Transposes,
Squeezes and Reshapes after. The pass takes X from the Transpose that made it sequence-major,
computes every output batch first, and carries the layer's outputs through the layout ops that
read them (Transpose, Squeeze, Unsqueeze, Reshape, Gather and Slice off the batch axis) as a
batch-first value and the permutation that would give the ONNX layout, until a Transpose brings
the batch back to axis 0 (``sequence_major``). A sequence-major model input, a data-computed
initial state or sequence_lens, an activation photoncc does not have and an output read otherwise
are refused with the reason (annotated ``unsupported``, reported with canonicalize's problems).

Requires: fold_constants. Ensures: no RNN, GRU or LSTM remains unless annotated; numerics
unchanged (to float rounding). Idempotent.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, TensorType, fresh_name, prune, type_of
from ..ops import BATCH_HINT, unsupported
from ..ops.recurrent import DEFAULT_ACTIVATIONS, GATES, activations
from .recurrent_cell import Cell
from .sequence_major import batch_first_input, through

HINT = "export the recurrent layer with batch_first=True and a zero (or constant) initial state"


def lower_recurrent(g: Graph, ctx=None) -> Graph:
    if not any(n.op in GATES for n in g.nodes):
        return g
    b = Builder(g)
    virtual: dict[str, tuple[str, list[int]]] = {}  # ONNX-layout value -> (batch-first value, perm)
    rename: dict[str, str] = {}
    unrolled = list(g.meta.get("unrolled", ()))
    for n in g.nodes:
        n = n.replace(inputs=tuple(rename.get(i, i) for i in n.inputs))
        if n.op in GATES and "unsupported" not in n.attrs:
            done = _lower(n, b, virtual)
            if isinstance(done, str):
                b.add(unsupported(n, done, HINT))
            else:
                unrolled.append(done)
            continue
        if any(i in virtual for i in n.inputs):
            reason = through(n, b, virtual, rename, g.outputs)
            if reason:
                b.add(unsupported(n.replace(inputs=tuple(virtual[i][0] if i in virtual else i for i in n.inputs)),
                                  reason, BATCH_HINT))
            continue
        b.add(n)
    outputs = tuple(rename.get(o, o) for o in g.outputs)
    for o in outputs:
        if o in virtual:  # a graph output in the sequence-major layout: no batch-first form of it
            bm, perm = virtual[o]
            b.add(unsupported(Node("Transpose", (bm,), (o,), {"perm": perm}, fresh_name(b.names, f"{o}/layout")),
                              "the model outputs a recurrent layer's sequence-major value (batch on axis "
                              f"{perm.index(0)}), which photoncc cannot keep batch first", HINT))
    return prune(g.replace(nodes=tuple(b.nodes), outputs=outputs, consts=b.consts, types=b.types,
                           meta={**g.meta, "unrolled": tuple(unrolled)}))


class Builder:
    """The new graph's nodes, constants and types as they are written."""

    def __init__(self, g: Graph):
        self.g, self.nodes, self.consts, self.types = g, [], dict(g.consts), dict(g.types)
        self.producer: dict[str, Node] = {}
        self.names = {n.name for n in g.nodes}

    def add(self, n: Node) -> None:
        self.nodes.append(n)
        self.names.add(n.name)
        self.producer.update({o: n for o in n.outputs if o})

    def value(self, base: str) -> str:
        return fresh_name(set(self.types) | set(self.consts), base)

    def const(self, base: str, array) -> str:
        name = self.value(base)
        self.consts[name] = np.ascontiguousarray(array)
        self.types[name] = type_of(self.consts[name])
        return name

    def op(self, op: str, inputs, shape, dtype, name: str, attrs=None, output: str | None = None) -> str:
        """One node with one output of type (shape, dtype) (``shape`` with the batch of 1)."""
        out = output or self.value(name)
        self.types[out] = TensorType(tuple(int(d) for d in shape), np.dtype(dtype).name)
        self.add(Node(op, tuple(inputs), (out,), dict(attrs or {}), fresh_name(self.names, name)))
        return out

    def split(self, x: str, sizes, dtype, name: str) -> list[str]:
        """x (1, sum(sizes)) split along axis 1 (one part: x itself)."""
        if len(sizes) == 1:
            return [x]
        outs = [self.value(f"{name}_{k}") for k in range(len(sizes))]
        for out, size in zip(outs, sizes):
            self.types[out] = TensorType((1, int(size)), np.dtype(dtype).name)
        self.add(Node("Split", (x,), tuple(outs), {"axis": 1, "split": [int(s) for s in sizes]},
                      fresh_name(self.names, name)))
        return outs


# --------------------------------------------------------------------------- one recurrent layer

def _const(g: Graph, name: str):
    return g.consts.get(name) if name else None


def _lower(n: Node, b: Builder, virtual: dict):
    """Unroll ``n`` into ``b``; returns the report's entry, or the reason it cannot be."""
    g, a, kind = b.g, n.attrs, n.op
    names = list(n.inputs) + [""] * (8 - len(n.inputs))
    x, w_name, r_name, b_name, lengths, h0_name, c0_name, p_name = names[:8]
    for what, name in (("W", w_name), ("R", r_name), ("B", b_name), ("P", p_name)):
        if name and name not in g.consts:
            return f"its {what} input is computed from data; a bank needs constant weights"
    layout = int(a.get("layout", 0))
    x_bm, reason = batch_first_input(x, layout, b, virtual)
    if reason:
        return reason
    _, steps, features = b.types[x_bm].shape
    if lengths and (lengths not in g.consts or np.any(np.asarray(g.consts[lengths]) != steps)):
        return "its sequence_lens is computed from data or shorter than the sequence; photoncc unrolls whole sequences"
    try:
        acts = activations(n)
    except ValueError as e:
        return str(e)
    w, r = g.consts[w_name], g.consts[r_name]
    directions, hidden, gates = w.shape[0], int(a["hidden_size"]), GATES[kind]
    dtype = g.types[x].dtype
    bias = _const(g, b_name)
    bias = np.zeros((directions, 2 * gates * hidden)) if bias is None else bias.astype(np.float64)
    states = _initial_states(g, h0_name, c0_name, layout)
    if isinstance(states, str):
        return states
    peep = _const(g, p_name)
    peep = peep.astype(np.float64) if peep is not None and np.any(peep) else None
    lbr = kind == "GRU" and bool(a.get("linear_before_reset", 0))
    x_bias, r_bias = _biases(kind, bias, gates, hidden, lbr)
    cell = Cell(b, n, dtype, hidden, a.get("clip"), acts, len(DEFAULT_ACTIVATIONS[kind]))
    parts = {"GRU": [2 * hidden, hidden], "LSTM": [gates * hidden], "RNN": [hidden]}[kind]
    step_parts = _input_products(n, b, x_bm, w.reshape(directions * gates * hidden, features), x_bias, steps, parts,
                                 directions, dtype)
    outputs, banks = _unroll(n, cell, step_parts, len(parts), directions, (r, r_bias, peep), states, lbr)
    _outputs(n, b, outputs, steps, directions, hidden, dtype, layout, virtual)
    return {"name": n.name, "op": kind, "steps": int(steps), "directions": int(directions),
            "recurrent_products": int(banks)}


def _initial_states(g: Graph, h0_name: str, c0_name: str, layout: int):
    """{"h": H_0, "c": C_0} (D, H) of the non-zero constant initial states, or the reason they
    cannot be unrolled (computed from data, or one per sample)."""
    states = {}
    for key, name in (("h", h0_name), ("c", c0_name)):
        if name and name not in g.consts:
            return ("its initial state is computed from data (sequence-major: directions, batch, hidden), which "
                    "photoncc cannot keep batch first")
        value = _const(g, name)
        if value is not None and np.any(value):
            value = np.swapaxes(value, 0, 1) if layout else value   # (D, batch, H)
            if value.shape[1] != 1:
                return f"its constant initial state holds {value.shape[1]} samples; photoncc needs one state for all"
            states[key] = value[:, 0].astype(np.float64)            # (D, H)
    return states


def _input_products(n: Node, b: Builder, x_bm: str, w, x_bias, steps: int, parts: list, directions: int,
                    dtype) -> list[list[str]]:
    """X W^T + b for every step and direction as one MatMul by the constant ``w`` (D*G*H, I) over
    the batch-first (N, T, I) input, then per step t its gate parts (``parts`` per direction)."""
    width = w.shape[0]
    product = b.op("MatMul", (x_bm, b.const(f"{n.name}.W", w.T.astype(dtype))),
                   (1, steps, width), dtype, f"{n.name}/input_product")
    product = b.op("Add", (product, b.const(f"{n.name}.B", x_bias.reshape(-1).astype(dtype))),
                   (1, steps, width), dtype, f"{n.name}/input_bias")
    per_step = _split_steps(b, product, steps, width, dtype, n.name)
    return [b.split(s, parts * directions, dtype, f"{n.name}/gates_t{t}") for t, s in enumerate(per_step)]


def _unroll(n: Node, cell: Cell, step_parts: list, per: int, directions: int, recurrent, states: dict, lbr: bool):
    """Every time step of every direction (a reverse one from the last step): the states
    {("h" | "c", d, t): value, ("h" | "c", d): the last}, and the number of recurrent banks."""
    r, r_bias, peep = recurrent
    steps, a, kind = len(step_parts), n.attrs, n.op
    outputs = {}
    banks = 0
    for d in range(directions):
        reverse = a.get("direction", "forward") == "reverse" or d == 1
        cell.direction(d, r[d].astype(np.float64), r_bias[d], peep[d] if peep is not None else None)
        h = ("const", states["h"][d]) if "h" in states else None
        c = ("const", states["c"][d]) if "c" in states else None
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            gx = step_parts[t][d * per:(d + 1) * per]
            h, c, used = cell.step(kind, lbr, gx, h, c, f"{n.name}/d{d}t{t}")
            banks += used
            outputs[("h", d, t)], outputs[("c", d, t)] = h, c
        outputs[("h", d)], outputs[("c", d)] = h, c
    return outputs, banks


def _biases(kind: str, bias, gates: int, hidden: int, lbr: bool):
    """(bias added to the input products, bias added to the recurrent products), (D, G*H) each:
    Wb + Rb, except a GRU's R_bh with linear_before_reset, which the reset gate scales."""
    wb, rb = bias[:, :gates * hidden], bias[:, gates * hidden:]
    if lbr:
        x_bias = wb.copy()
        x_bias[:, :2 * hidden] += rb[:, :2 * hidden]
        r_bias = np.zeros_like(rb)
        r_bias[:, 2 * hidden:] = rb[:, 2 * hidden:]
        return x_bias, r_bias
    return wb + rb, np.zeros_like(rb)


def _split_steps(b: Builder, product: str, steps: int, width: int, dtype, name: str) -> list[str]:
    """(1, T, width) -> T values (1, width)."""
    if steps == 1:
        return [b.op("Reshape", (product,), (1, width), dtype, f"{name}/step", {"shape": [width]})]
    slices = [b.value(f"{name}/step_{t}") for t in range(steps)]
    for s in slices:
        b.types[s] = TensorType((1, 1, width), np.dtype(dtype).name)
    b.add(Node("Split", (product,), tuple(slices), {"axis": 1, "split": [1] * steps}, fresh_name(b.names, f"{name}/steps")))
    return [b.op("Reshape", (s,), (1, width), dtype, f"{name}/step_{t}", {"shape": [width]}) for t, s in enumerate(slices)]


def _outputs(n: Node, b: Builder, found: dict, steps: int, directions: int, hidden: int, dtype, layout: int,
             virtual: dict) -> None:
    """Y (N, T, D, H), Y_h and Y_c (N, D, H) batch first: under the node's output names for layout 1,
    else carried as virtual values with the permutation to the ONNX layout."""
    consumers = {i for m in b.g.nodes for i in m.inputs} | set(b.g.outputs)
    wanted = [(k, o) for k, o in enumerate(n.outputs) if o and o in consumers]
    for k, o in wanted:
        if k == 0:
            parts = [found[("h", d, t)] for t in range(steps) for d in range(directions)]
            shape = (steps, directions, hidden)
        else:
            parts = [found[("h" if k == 1 else "c", d)] for d in range(directions)]
            shape = (directions, hidden)
        parts = [b.const(f"{o}.part", np.broadcast_to(p[1], (1, hidden)).astype(dtype)) if isinstance(p, tuple) else p
                 for p in parts]
        flat = parts[0] if len(parts) == 1 else b.op("Concat", parts, (1, len(parts) * hidden), dtype, f"{o}/concat",
                                                     {"axis": 1})
        target = o if layout else None
        value = b.op("Reshape", (flat,), (1,) + shape, dtype, f"{o}/batch_first", {"shape": list(shape)}, output=target)
        if not layout:
            virtual[o] = (value, [1, 2, 0, 3] if k == 0 else [1, 0, 2])
