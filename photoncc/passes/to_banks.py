"""to_banks: every Linear in the form the profile's device runs, a ``Bank``.

First the input range [lo, hi] of every Linear is measured (``ranges.measure_ranges``: bounds the
model guarantees, the declared input range or the calibration data). Then the architecture's
``split`` (``photoncc.devices``: the non-negative isomorphic form on an incoherent bank, the signed
form on a balanced one) turns each layer y = W x + b, per group, into ring weights T, row gains g
(g * T exact) and the bank's attributes, for inputs u = x - lo in [0, alpha], alpha = hi - lo.

Convolutions: a zero-padded x stays exact when 0 lies in [lo, hi] (the pad maps to u = -lo in
[0, alpha], i.e. on an incoherent bank the complement channel is padded with hi; with lo = 0 that
is alpha-padding), so a padded conv widens its range to include 0. Groups (depthwise too) give
one matrix per group.

IR form: ``Bank(x, T, gain, lo, alpha)[shift, carrier, signed?, conv?]`` with T of shape
(G, 1, 1, M/G, J) (one tile per group; ``tile_banks`` cuts it for the hardware; J = 2K/G + 1 or
K/G + 1, ``program.bank_channels``), gain (G, M/G), lo and alpha (G, K/G) per matrix column.

Requires: fold_affine. Ensures: no Linear remains; every bank's weights within the device's reach
and its gains > 0; the outputs are unchanged for inputs inside the ranges. Sets ``ctx.range_info``
(the report's) and ``ctx.layers`` (the ADC calibration's). Idempotent.
"""
from __future__ import annotations

import numpy as np

from .. import devices
from ..errors import UserError
from ..ir import Graph, Node, fresh_name, prune, type_of
from ..progress import stage
from ..ranges import measure_ranges


def to_banks(g: Graph, ctx) -> Graph:
    """Measure the layers' input ranges, then the bank form the profile's architecture needs."""
    ctx.layers = g if ctx.profile["precision"]["output_bits"] else None  # read by adc_ranges alone
    ranges, ctx.range_info = measure_ranges(g, ctx.calibration, ctx.input_range, ctx.range_headroom,
                                            ctx.range_percentile, stage(ctx.progress, "input ranges"))
    arch = devices.architecture(ctx.profile)
    if hasattr(arch, "lower"):  # an architecture that lowers a whole layer itself (mzi: SVD, Clements phases)
        return layers_from_linears(g, ranges, arch, ctx, stage(ctx.progress, "mesh form"))
    split = arch.split
    return banks_from_linears(g, ranges, lambda w, b, lo, alpha, dtype: split(w, b, lo, alpha, dtype, ctx.profile),
                              stage(ctx.progress, "bank form"))


def banks_from_linears(g: Graph, ranges: dict, split, progress=None) -> Graph:
    """Every ``Linear`` node of ``g`` replaced by a ``Bank``: ``split(W, b, lo, alpha, dtype)``, on
    the per-group matrices and column ranges of ``column_ranges``, gives the bank's ring weights
    T (G, M, J), row gains (G, M) and attributes; the bank's inputs are x, T, gain, lo, alpha.
    ``progress(done, total)`` after each layer (photoncc/progress.py)."""
    def bank(n, wg, bg, lo_cols, alpha_cols, dtype):
        t, gain, attrs = split(wg, bg, lo_cols, alpha_cols, dtype)
        _check_finite(n.name, dtype, form=(t, gain, np.array([attrs["shift"], attrs["carrier"]])))
        tensors = {k: np.ascontiguousarray(v, dtype) for k, v in
                   (("T", t[:, None, None]), ("gain", gain), ("lo", lo_cols), ("alpha", alpha_cols))}
        return "Bank", tensors, attrs
    return _replace_linears(g, ranges, bank, progress)


def layers_from_linears(g: Graph, ranges: dict, arch, ctx, progress=None) -> Graph:
    """Every ``Linear`` node replaced by the architecture's own op (``arch.OP``, e.g. ``Mesh``):
    ``arch.lower`` gives its tensors by name (``program.MESH_INPUTS``), attributes and compile
    facts (kept in ``ctx.mesh_facts`` for the report), for ``ctx.chip`` when one is given."""
    from ..program import MESH_INPUTS

    def layer(n, wg, bg, lo_cols, alpha_cols, dtype):
        tensors, attrs, facts = arch.lower(wg, bg, lo_cols, alpha_cols, dtype, ctx.profile, ctx.chip, ctx.refine_steps)
        _check_finite(n.name, np.float64, form=(tensors["gain"], tensors["bias"]))
        ctx.mesh_facts[n.name] = facts
        return arch.OP, {k: np.ascontiguousarray(tensors[k]) for k in MESH_INPUTS[1:] if k in tensors}, attrs
    return _replace_linears(g, ranges, layer, progress)


def _replace_linears(g: Graph, ranges: dict, lower, progress=None) -> Graph:
    """Every ``Linear`` node replaced by ``lower(node, W, b, lo, alpha, dtype)``'s (op, tensors by
    key in input order, attributes), on the per-group matrices and column ranges of
    ``column_ranges``; the new node reads x then those tensors (named ``<layer>.<key>``) and keeps
    the Linear's conv settings. ``progress(done, total)`` after each layer."""
    consts, types = dict(g.consts), dict(g.types)
    nodes, done, total = [], 0, sum(n.op == "Linear" for n in g.nodes)
    for n in g.nodes:
        if n.op != "Linear":
            nodes.append(n)
            continue
        conv = n.attrs.get("conv")
        wg, bg, lo_cols, alpha_cols = column_ranges(n, consts, ranges)
        dtype = consts[n.inputs[1]].dtype
        _check_finite(n.name, dtype, weights=(wg, bg), range=(lo_cols, lo_cols + alpha_cols))
        op, tensors, attrs = lower(n, wg, bg, lo_cols, alpha_cols, dtype)
        names = []
        for key, value in tensors.items():
            names.append(fresh_name(set(types) | set(names), f"{n.name}.{key}"))
            consts[names[-1]] = value
            types[names[-1]] = type_of(value)
        nodes.append(Node(op, (n.inputs[0], *names), n.outputs, {**attrs, **({"conv": conv} if conv else {})}, n.name))
        done += 1
        if progress is not None:
            progress(done, total)
    return prune(g.replace(nodes=tuple(nodes), consts=consts, types=types))


PROBLEMS = {
    "weights": "its weights or bias hold NaN or infinite values, which no device can be set to",
    "range": "its input range exceeds {dtype} (the calibration data holds values too large for the model)",
    "form": "its bank form (weights, bias and input range together) exceeds {dtype}",
}


def _check_finite(layer: str, dtype, **parts) -> None:
    """Each part (a tuple of arrays) finite and within ``dtype``'s range, else a UserError naming
    the layer and what of it (PROBLEMS) is out of range."""
    largest = float(np.finfo(dtype).max) if np.dtype(dtype).kind == "f" else np.inf
    for what, arrays in parts.items():
        for a in arrays:
            if a.size and not (np.isfinite(a).all() and float(np.abs(a).max()) <= largest):
                raise UserError(f"layer {layer!r}: {PROBLEMS[what].format(dtype=np.dtype(dtype).name)}")


def column_ranges(n: Node, consts: dict, ranges: dict):
    """Per group: W (G, M/G, K/G), a view of the weights in their dtype, and b (G, M/G), lo and
    alpha (G, K/G) per matrix column in float64.

    Column order is the im2col order (channel, kernel offsets); a padded conv's range is widened to
    include 0 (see the module docstring).
    """
    conv = n.attrs.get("conv")
    lo, hi = (np.asarray(v, np.float64) for v in ranges[n.inputs[0]])
    if conv and any(conv["pads"]):
        lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    w = consts[n.inputs[1]]  # in its own dtype: the splits read it in float64 a block at a time
    groups = conv["group"] if conv else 1
    taps = int(np.prod(conv["kernel_shape"])) if conv else 1
    wg = w.reshape(groups, w.shape[0] // groups, -1)
    bg = consts[n.inputs[2]].astype(np.float64).reshape(groups, -1)
    lo_cols = np.repeat(lo.reshape(groups, -1), taps, axis=-1)
    alpha_cols = np.repeat((hi - lo).reshape(groups, -1), taps, axis=-1)
    return wg, bg, lo_cols, alpha_cols
