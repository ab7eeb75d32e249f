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
(``meta["unrolled"]``).

The batch stays axis 0. ONNX layers are sequence-major (layout 0: X (T, N, I), Y (T, D, N, H),
Y_h and Y_c (D, N, H)); PyTorch writes a Transpose before (batch_first=True) and Transposes,
Squeezes and Reshapes after. The pass takes X from the Transpose that made it sequence-major,
computes every output batch first, and carries the layer's outputs through the layout ops that
read them (Transpose, Squeeze, Unsqueeze, Reshape, Gather and Slice off the batch axis) as a
batch-first value and the permutation that would give the ONNX layout, until a Transpose brings
the batch back to axis 0. A sequence-major model input, a data-computed initial state or
sequence_lens, an activation photoncc does not have and an output read otherwise are refused
with the reason (annotated ``unsupported``, reported with canonicalize's problems).

Requires: fold_constants. Ensures: no RNN, GRU or LSTM remains unless annotated; numerics
unchanged (to float rounding). Idempotent.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..ir import Graph, Node, TensorType, fresh_name, prune, type_of
from ..ops import BATCH_HINT, unsupported
from ..ops.recurrent import DEFAULT_ACTIVATIONS, GATES, activations

HINT = "export the recurrent layer with batch_first=True and a zero (or constant) initial state"
LAYOUT_OPS = ("Transpose", "Squeeze", "Unsqueeze", "Reshape", "Gather", "Slice", "Concat")


def lower_recurrent(g: Graph, ctx=None) -> Graph:
    if not any(n.op in GATES for n in g.nodes):
        return g
    b = _Builder(g)
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
            reason = _through(n, b, virtual, rename, g.outputs)
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


class _Builder:
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


def _lower(n: Node, b: _Builder, virtual: dict):
    """Unroll ``n`` into ``b``; returns the report's entry, or the reason it cannot be."""
    g, a, kind = b.g, n.attrs, n.op
    names = list(n.inputs) + [""] * (8 - len(n.inputs))
    x, w_name, r_name, b_name, lengths, h0_name, c0_name, p_name = names[:8]
    for what, name in (("W", w_name), ("R", r_name), ("B", b_name), ("P", p_name)):
        if name and name not in g.consts:
            return f"its {what} input is computed from data; a bank needs constant weights"
    layout = int(a.get("layout", 0))
    x_bm, reason = _batch_first_input(x, layout, b, virtual)
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
    peep = _const(g, p_name)
    peep = peep.astype(np.float64) if peep is not None and np.any(peep) else None
    lbr = kind == "GRU" and bool(a.get("linear_before_reset", 0))
    x_bias, r_bias = _biases(kind, bias, gates, hidden, lbr)
    cell = _Cell(b, n, dtype, hidden, a.get("clip"), acts, len(DEFAULT_ACTIVATIONS[kind]))

    # the input products of every step and direction: one MatMul by a constant, then its bias
    width = directions * gates * hidden
    product = b.op("MatMul", (x_bm, b.const(f"{n.name}.W", w.reshape(width, features).T.astype(dtype))),
                   (1, steps, width), dtype, f"{n.name}/input_product")
    product = b.op("Add", (product, b.const(f"{n.name}.B", x_bias.reshape(-1).astype(dtype))),
                   (1, steps, width), dtype, f"{n.name}/input_bias")
    per_step = _split_steps(b, product, steps, width, dtype, n.name)
    parts = {"GRU": [2 * hidden, hidden], "LSTM": [gates * hidden], "RNN": [hidden]}[kind]
    step_parts = [b.split(s, parts * directions, dtype, f"{n.name}/gates_t{t}") for t, s in enumerate(per_step)]

    outputs = {}
    banks = 0
    for d in range(directions):
        reverse = a.get("direction", "forward") == "reverse" or d == 1
        cell.direction(d, r[d].astype(np.float64), r_bias[d], peep[d] if peep is not None else None)
        h = ("const", states["h"][d]) if "h" in states else None
        c = ("const", states["c"][d]) if "c" in states else None
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            gx = step_parts[t][d * len(parts):(d + 1) * len(parts)]
            h, c, used = cell.step(kind, lbr, gx, h, c, f"{n.name}/d{d}t{t}")
            banks += used
            outputs[("h", d, t)], outputs[("c", d, t)] = h, c
        outputs[("h", d)], outputs[("c", d)] = h, c
    _outputs(n, b, outputs, steps, directions, hidden, dtype, layout, virtual)
    return {"name": n.name, "op": kind, "steps": int(steps), "directions": int(directions),
            "recurrent_products": int(banks)}


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


def _split_steps(b: _Builder, product: str, steps: int, width: int, dtype, name: str) -> list[str]:
    """(1, T, width) -> T values (1, width)."""
    if steps == 1:
        return [b.op("Reshape", (product,), (1, width), dtype, f"{name}/step", {"shape": [width]})]
    slices = [b.value(f"{name}/step_{t}") for t in range(steps)]
    for s in slices:
        b.types[s] = TensorType((1, 1, width), np.dtype(dtype).name)
    b.add(Node("Split", (product,), tuple(slices), {"axis": 1, "split": [1] * steps}, fresh_name(b.names, f"{name}/steps")))
    return [b.op("Reshape", (s,), (1, width), dtype, f"{name}/step_{t}", {"shape": [width]}) for t, s in enumerate(slices)]


def _batch_first_input(x: str, layout: int, b: _Builder, virtual: dict) -> tuple[str | None, str | None]:
    """(the layer's input as a batch-first (N, T, I) value, None), or (None, the reason there is none)."""
    want = [1, 0, 2] if layout == 0 else [0, 1, 2]  # axis j of (N, T, I) is axis want[j] of X
    if x in virtual:
        source, perm = virtual[x]
    elif layout:
        return x, None
    else:
        made = b.producer.get(x)
        if made is None or made.op != "Transpose" or "unsupported" in made.attrs:
            return None, ("its input X is sequence-major (time on axis 0), so axis 0 of the model's input is not "
                          "the batch")
        source = made.inputs[0]
        perm = [int(p) % 3 for p in made.attrs.get("perm") or [2, 1, 0]]
    q = [perm[k] for k in want]
    if q[0] != 0:
        return None, "its input X does not come batch first from the model (a Transpose would move the batch axis)"
    if q == [0, 1, 2]:
        return source, None
    shape = b.types[source].shape
    return b.op("Transpose", (source,), tuple(shape[k] for k in q), b.types[source].dtype, f"{x}/batch_first",
                {"perm": q}), None


class _Cell:
    """Writes one time step of a layer (per direction: its R, recurrent bias and peepholes)."""

    def __init__(self, b: _Builder, n: Node, dtype, hidden: int, clip, acts, per: int):
        self.b, self.n, self.dtype, self.hidden, self.clip, self.acts, self.per = b, n, dtype, hidden, clip, acts, per

    def direction(self, d: int, r, r_bias, peep):
        self.f = self.acts[d * self.per:(d + 1) * self.per]
        self.r, self.r_bias, self.peep = r, r_bias, peep
        self.weights = {}  # one constant per recurrent matrix and direction (lower_linear copies it per bank)
        self.d = d

    # -- helpers writing one op each; a value is a name, ("const", array) or None (zero)
    def _shape(self, width):
        return (1, int(width))

    def _value(self, v, width, name):
        if isinstance(v, tuple):
            return self.b.const(name, np.broadcast_to(v[1], (1, width)).astype(self.dtype))
        return v

    def add(self, x, y, width, name):
        if y is None:
            return x
        if x is None:
            return y
        if isinstance(x, tuple) and isinstance(y, tuple):
            return ("const", x[1] + y[1])
        x, y = (self._value(v, width, f"{name}.c") for v in (x, y))
        return self.b.op("Add", (x, y), self._shape(width), self.dtype, name)

    def mul(self, x, y, width, name):
        if x is None or y is None:
            return None
        if isinstance(x, tuple) and isinstance(y, tuple):
            return ("const", x[1] * y[1])
        x, y = (self._value(v, width, f"{name}.c") for v in (x, y))
        return self.b.op("Mul", (x, y), self._shape(width), self.dtype, name)

    def act(self, spec, x, width, name, clip=True):
        """The activation ``spec`` (ops.recurrent.activations) of ``x``, after the layer's clip
        (``clip``: the gates' inputs are clipped, an LSTM's cell state before h is not, as in
        onnxruntime)."""
        x = self._value(x, width, f"{name}.c") if x is not None else self._value(("const", np.zeros(width)), width,
                                                                                  f"{name}.c")
        shape, dtype = self._shape(width), self.dtype
        if self.clip is not None and clip:
            x = self.b.op("Clip", (x,), shape, dtype, f"{name}/clip", {"min": -float(self.clip), "max": float(self.clip)})
        kind, alpha, beta = spec
        simple = {"sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}), "relu": ("Relu", {}),
                  "leakyrelu": ("LeakyRelu", {"alpha": alpha}), "hardsigmoid": ("HardSigmoid", {"alpha": alpha, "beta": beta}),
                  "elu": ("Elu", {"alpha": alpha}), "softsign": ("Softsign", {}), "softplus": ("Softplus", {})}
        if kind in simple:
            op, attrs = simple[kind]
            return self.b.op(op, (x,), shape, dtype, name, attrs)
        scale = self.b.const(f"{name}.alpha", np.array(alpha, dtype))
        if kind == "affine":
            y = self.b.op("Mul", (x, scale), shape, dtype, f"{name}/scale")
            return self.b.op("Add", (y, self.b.const(f"{name}.beta", np.array(beta, dtype))), shape, dtype, name)
        y = self.b.op("Mul", (x, self.b.const(f"{name}.beta", np.array(beta, dtype))), shape, dtype, f"{name}/inner")
        y = self.b.op("Tanh", (y,), shape, dtype, f"{name}/tanh")
        return self.b.op("Mul", (y, scale), shape, dtype, name)

    def product(self, h, rows: slice, bias, name):
        """h R[rows]^T + bias, with h a value (a MatMul by a constant: a bank), a constant or
        None (zero); returns (value, number of banks)."""
        r = self.r[rows]
        width = r.shape[0]
        if h is None:
            return (("const", bias) if np.any(bias) else None), 0
        if isinstance(h, tuple):
            return ("const", h[1] @ r.T + bias), 0
        key = (rows.start, rows.stop)
        if key not in self.weights:
            self.weights[key] = self.b.const(f"{self.n.name}.R{self.d}_{rows.start}", r.T.astype(self.dtype))
        y = self.b.op("MatMul", (h, self.weights[key]), self._shape(width), self.dtype, f"{name}/recurrent")
        return (self.add(y, ("const", bias), width, f"{name}/recurrent_bias") if np.any(bias) else y), 1

    def split(self, v, sizes, name):
        if isinstance(v, tuple) or v is None:
            edges = np.cumsum([0] + list(sizes))
            return [None if v is None else ("const", v[1][..., s:e]) for s, e in zip(edges[:-1], edges[1:])]
        return self.b.split(v, sizes, self.dtype, name)

    def step(self, kind, lbr, gx, h, c, name):
        """One time step: (new h, new c, banks written)."""
        H = self.hidden
        if kind == "RNN":
            hr, used = self.product(h, slice(0, H), self.r_bias[:H], name)
            return self.act(self.f[0], self.add(gx[0], hr, H, f"{name}/pre"), H, f"{name}/h"), c, used
        if kind == "GRU":
            gx_zr, gx_h = gx
            hr, used = self.product(h, slice(0, 2 * H) if not lbr else slice(0, 3 * H),
                                    self.r_bias[:2 * H] if not lbr else self.r_bias, name)
            hr_zr, hr_h = self.split(hr, [2 * H, H], f"{name}/recurrent_parts") if lbr else (hr, None)
            # split before the activation: each gate an activation's own output, so that its bounds
            # ([0, 1] for a Sigmoid) reach Blend and the next step's recurrent bank gets a guaranteed range
            z_pre, r_pre = self.b.split(self.add(gx_zr, hr_zr, 2 * H, f"{name}/zr_pre"), [H, H], self.dtype,
                                        f"{name}/z_r")
            z, reset = self.act(self.f[0], z_pre, H, f"{name}/z"), self.act(self.f[0], r_pre, H, f"{name}/r")
            if lbr:
                pre = self.add(gx_h, self.mul(reset, hr_h, H, f"{name}/reset"), H, f"{name}/n_pre")
            else:
                rh = self.mul(reset, h, H, f"{name}/reset")
                candidate, more = self.product(rh, slice(2 * H, 3 * H), self.r_bias[2 * H:], f"{name}/n")
                used += more
                pre = self.add(gx_h, candidate, H, f"{name}/n_pre")
            new = self.act(self.f[1], pre, H, f"{name}/n")
            previous = self._value(h if h is not None else ("const", np.zeros(H)), H, f"{name}/h0")
            return self.b.op("Blend", (new, previous, z), (1, H), self.dtype, f"{name}/h"), c, used
        return self._lstm(gx[0], h, c, name)

    def _lstm(self, gx, h, c, name):
        H, f, peep = self.hidden, self.f, self.peep
        hr, used = self.product(h, slice(0, 4 * H), self.r_bias, name)
        pre = self.add(gx, hr, 4 * H, f"{name}/pre")
        coupled = bool(self.n.attrs.get("input_forget", 0))
        if peep is None and not coupled:  # each gate an activation's own output (its bounds reach H = o h(C))
            gi, go, gf, cg = self.split(pre, [H, H, H, H], f"{name}/gates")
            i, o, forget = (self.act(f[0], v, H, f"{name}/{k}") for v, k in ((gi, "i"), (go, "o"), (gf, "f")))
        else:
            gi, go, gf, cg = self.split(pre, [H, H, H, H], f"{name}/gates")
            pi, po, pf = (None,) * 3 if peep is None else (("const", peep[k * H:(k + 1) * H]) for k in range(3))
            i = self.act(f[0], self.add(gi, self.mul(c, pi, H, f"{name}/peep_i"), H, f"{name}/i_pre"), H, f"{name}/i")
            if coupled:
                forget = self.b.op("Sub", (self.b.const(f"{name}/one", np.ones((1, H), self.dtype)), i), (1, H),
                                   self.dtype, f"{name}/f")
            else:
                forget = self.act(f[0], self.add(gf, self.mul(c, pf, H, f"{name}/peep_f"), H, f"{name}/f_pre"), H,
                                  f"{name}/f")
            o = None
        candidate = self.act(f[1], cg, H, f"{name}/g")
        cell = self.add(self.mul(forget, c, H, f"{name}/keep"), self.mul(i, candidate, H, f"{name}/write"), H,
                        f"{name}/c")
        if o is None:
            po = None if peep is None else ("const", peep[H:2 * H])
            o = self.act(f[0], self.add(go, self.mul(cell, po, H, f"{name}/peep_o"), H, f"{name}/o_pre"), H,
                         f"{name}/o")
        out = self.b.op("Mul", (o, self.act(f[2], cell, H, f"{name}/h_act", clip=False)), (1, H), self.dtype,
                        f"{name}/h")
        return out, cell, used


def _outputs(n: Node, b: _Builder, found: dict, steps: int, directions: int, hidden: int, dtype, layout: int,
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


# --------------------------------------------------------------------------- the layout ops after it

def _through(n: Node, b: _Builder, virtual: dict, rename: dict, graph_outputs) -> str | None:
    """Carry a virtual value through the layout op ``n`` (its data input), or say why not."""
    if n.op == "Concat" and all(i in virtual for i in n.inputs) and len({tuple(virtual[i][1]) for i in n.inputs}) == 1:
        perm = virtual[n.inputs[0]][1]  # the layers' states side by side (stacked layers: h_n)
        axis = perm[int(n.attrs["axis"]) % len(perm)]
        if axis == 0:
            return "concatenates along the batch axis"
        sources = [virtual[i][0] for i in n.inputs]
        shape = list(b.types[sources[0]].shape)
        shape[axis] = sum(b.types[v].shape[axis] for v in sources)
        return _emit(b, n, "Concat", sources, {"axis": axis}, shape, perm, virtual)
    if n.op not in LAYOUT_OPS or n.op == "Concat" or n.inputs[0] not in virtual or any(i in virtual for i in n.inputs[1:]):
        return (f"reads a recurrent layer's sequence-major output (batch not on axis 0) as {n.op}; photoncc "
                "follows it only through " + ", ".join(LAYOUT_OPS))
    source, perm = virtual[n.inputs[0]]
    base = b.types[source]
    args = [b.g.consts.get(i) if i else None for i in n.inputs[1:]]
    if any(i and i not in b.g.consts for i in n.inputs[1:]):
        return f"its {n.op} settings are computed from data"
    a = ops.settings(n, args) if n.op != "Gather" else dict(n.attrs)
    rank = len(perm)
    if n.op == "Transpose":
        order = [int(q) % rank for q in a.get("perm") or list(range(rank))[::-1]]
        result = (source, [perm[q] for q in order], base.shape)
    elif n.op == "Squeeze":
        if "axes" not in a:
            return "squeezes without axes (the batch axis would go at batch 1)"
        gone = {perm[int(x) % rank] for x in a["axes"]}
        if 0 in gone:
            return "squeezes the batch axis"
        keep = [k for k in range(len(base.shape)) if k not in gone]
        rest = [perm[i] for i in range(rank) if perm[i] not in gone]
        result = (None, [keep.index(k) for k in rest], tuple(base.shape[k] for k in keep))
    elif n.op == "Unsqueeze":
        axes = sorted(int(x) % (rank + len(a["axes"])) for x in a["axes"])
        extra = iter(range(len(base.shape), len(base.shape) + len(axes)))
        inner = iter(perm)
        result = (None, [next(extra) if k in axes else next(inner) for k in range(rank + len(axes))],
                  tuple(base.shape) + (1,) * len(axes))
    elif n.op == "Reshape":
        result = _reshape(perm, base.shape, b.g.types[n.outputs[0]].shape)
        if isinstance(result, str):
            return result
    elif n.op == "Gather":
        index = args[0]
        axis = perm[int(a.get("axis", 0)) % rank]
        if axis == 0:
            return "gathers along the batch axis"
        k = np.ndim(index)
        shape = base.shape[:axis] + np.shape(index) + base.shape[axis + 1:]
        moved = [p if p < axis else p + k - 1 for p in perm]
        at = int(a.get("axis", 0)) % rank
        order = moved[:at] + [axis + j for j in range(k)] + moved[at + 1:]
        return _emit(b, n, "Gather", (source, n.inputs[1]), {"axis": axis}, shape, order, virtual)
    else:  # Slice
        count = len(a["starts"])
        axes = [perm[int(x) % rank] for x in a.get("axes", range(count))]
        if 0 in axes:
            return "slices the batch axis"
        probe = np.empty(base.shape, np.int8)
        shape = ops.kernels()["Slice"](probe, starts=a["starts"], ends=a["ends"], axes=axes,
                                       steps=a.get("steps", [1] * count)).shape
        return _emit(b, n, "Slice", (source,), {"starts": a["starts"], "ends": a["ends"], "axes": axes,
                                                "steps": a.get("steps", [1] * count)}, shape, perm, virtual)
    kind, order, shape = result
    if kind is not None:  # a Transpose: nothing to compute until the batch is first again
        if order[0] == 0:
            if order == sorted(order):
                if n.outputs[0] in graph_outputs:
                    b.op("Identity", (source,), shape, base.dtype, n.name, output=n.outputs[0])
                else:
                    rename[n.outputs[0]] = source
            else:
                b.op("Transpose", (source,), tuple(shape[k] for k in order), base.dtype, n.name, {"perm": order},
                     output=n.outputs[0])
        else:
            virtual[n.outputs[0]] = (source, order)
        return None
    return _emit(b, n, "Reshape", (source,), {"shape": list(shape[1:])}, shape, order, virtual)


def _emit(b, n, op, inputs, attrs, shape, order, virtual):
    """The batch-first form of ``n``'s output: under its name when ``order`` is the identity, else a
    new value carried on as virtual."""
    real = order == list(range(len(order)))
    out = b.op(op, inputs, shape, b.types[inputs[0]].dtype, n.name, attrs, output=n.outputs[0] if real else None)
    if not real:
        virtual[n.outputs[0]] = (out, order)
    return None


def _reshape(perm, base, onnx_out):
    """A Reshape of the virtual value (the batch-first ``base`` shape permuted by ``perm``) to
    ``onnx_out``, done on the batch-first value: (None, order, new batch-first shape), or the
    reason it cannot be (it would merge or split axes that the batch-first layout does not hold
    side by side in the same order)."""
    onnx_in = tuple(base[p] for p in perm)
    batch = perm.index(0)
    kept = [i for i in range(len(onnx_in)) if onnx_in[i] != 1 or i == batch]
    out_ones = [j for j, d in enumerate(onnx_out) if d == 1]
    for candidate in out_ones:  # the output's batch axis: a size-1 axis the grouping works with
        groups = _groups([onnx_in[i] if i != batch else None for i in kept],
                         [d if j != candidate else None for j, d in enumerate(onnx_out) if d != 1 or j == candidate])
        if groups is not None:
            break
    else:
        return "reshapes a recurrent layer's sequence-major output across its batch axis"
    # the batch-first value with its size-1 axes (except the batch) dropped, axes ranked as they sit
    squeezed = sorted(perm[i] for i in kept)
    rank_of = {p: k for k, p in enumerate(squeezed)}
    new_shape, position = [], {}
    out_kept = [j for j, d in enumerate(onnx_out) if d != 1 or j == candidate]
    starts = {}
    for (ins, outs) in groups:
        axes = [rank_of[perm[kept[i]]] for i in ins]
        if axes != list(range(axes[0], axes[0] + len(axes))):
            return ("merges or splits axes of a recurrent layer's output that are not side by side batch first; "
                    "photoncc cannot keep the batch on axis 0 there")
        starts[axes[0]] = outs
    for first in sorted(starts):
        for j in starts[first]:
            position[out_kept[j]] = len(new_shape)
            new_shape.append(onnx_out[out_kept[j]])
    for j, d in enumerate(onnx_out):
        if j not in position:
            position[j] = len(new_shape)
            new_shape.append(1)
    order = [position[j] for j in range(len(onnx_out))]
    if new_shape[0] != 1 or order.index(0) != candidate:
        return "reshapes a recurrent layer's sequence-major output across its batch axis"
    return None, order, tuple(new_shape)


def _groups(left, right):
    """Contiguous groups of ``left`` and ``right`` (sizes; None: the batch, a group of its own) with
    equal products, as lists of indices; None when there are none."""
    groups, i, j = [], 0, 0
    while i < len(left) and j < len(right):
        if left[i] is None or right[j] is None:
            if left[i] is not None or right[j] is not None:
                return None
            groups.append(([i], [j]))
            i, j = i + 1, j + 1
            continue
        gi, gj, pi, pj = [i], [j], left[i], right[j]
        i, j = i + 1, j + 1
        while pi != pj:
            if pi < pj:
                if i >= len(left) or left[i] is None:
                    return None
                pi *= left[i]
                gi.append(i)
                i += 1
            else:
                if j >= len(right) or right[j] is None:
                    return None
                pj *= right[j]
                gj.append(j)
                j += 1
        groups.append((gi, gj))
    return groups if i == len(left) and j == len(right) else None
