"""The operators' kernels (photoncc.ops) against onnxruntime, one single-node ONNX model per case."""
from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings, strategies as st
from onnx import helper

from photoncc import cpu, ops
from photoncc.ops import conv, elementwise, layout, nn, pool, reduce, special

KERNELS = ops.kernels()  # every kernel a program may run, by op

RTOL = ATOL = 1e-5


# --------------------------------------------------------------------------------------------
# helpers


def run_ort(op, inputs, attrs=None, *, opset=17, out_dtype=None, domain=""):
    """Run a one-node model ``y = op[attrs](*inputs)`` on onnxruntime's CPU provider.

    ``inputs`` is a list of arrays (``None`` for an absent optional input); every present input
    is a graph input. Returns the single output.
    """
    names, values, infos = [], {}, []
    for i, a in enumerate(inputs):
        if a is None:
            names.append("")
            continue
        name = f"in{i}"
        a = np.asarray(a)
        names.append(name)
        values[name] = a
        infos.append(helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape))
    while names and names[-1] == "":
        names.pop()
    out_dtype = np.dtype(out_dtype or np.asarray(inputs[0]).dtype)
    node = helper.make_node(op, names, ["y"], domain=domain, **(attrs or {}))
    out = helper.make_tensor_value_info("y", helper.np_dtype_to_tensor_dtype(out_dtype), None)
    graph = helper.make_graph([node], "one_node", infos, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, opset)])
    model.ir_version = 8 if opset <= 17 else 10
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, values)[0]


def check(got, want, rtol=RTOL, atol=ATOL):
    want = np.asarray(want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def rand(*shape, seed=0, dtype=np.float32, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def ints(values):
    return [int(v) for v in values]


# --------------------------------------------------------------------------------------------
# Conv


CONV_CASES = [
    # (N, C, spatial, M, kernel, strides, pads, dilations, group, bias)
    (2, 3, (11,), 4, (3,), (2,), (1, 2), (1,), 1, True),
    (1, 2, (13,), 3, (3,), (1,), (0, 0), (3,), 1, False),
    (1, 4, (10,), 4, (5,), (3,), (2, 1), (2,), 4, True),
    (2, 3, (8, 9), 5, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
    (1, 3, (9, 10), 4, (3, 2), (2, 3), (0, 1, 2, 1), (1, 2), 1, True),
    (1, 4, (7, 7), 6, (3, 3), (1, 2), (1, 0, 0, 1), (2, 1), 2, False),
    (2, 4, (8, 8), 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4, True),   # depthwise
    (1, 3, (7, 9), 6, (3, 3), (2, 2), (1, 2, 1, 0), (1, 1), 3, True),   # depthwise, multiplier 2
    (1, 3, (6, 6), 8, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1, True),   # 1x1, stride > kernel
    (1, 2, (5, 6, 7), 3, (2, 3, 2), (1, 2, 1), (1, 0, 1, 0, 1, 1), (1, 1, 2), 1, True),
    (1, 4, (4, 5, 6), 6, (3, 1, 2), (2, 1, 2), (1, 1, 0, 1, 0, 1), (1, 1, 1), 2, False),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{len(c[2])}d-g{c[8]}")
def test_conv(case):
    n, c, spatial, m, ks, strides, pads, dil, group, bias = case
    x = rand(n, c, *spatial, seed=1)
    w = rand(m, c // group, *ks, seed=2)
    b = rand(m, seed=3) if bias else None
    attrs = dict(kernel_shape=ints(ks), strides=ints(strides), pads=ints(pads),
                 dilations=ints(dil), group=group)
    want = run_ort("Conv", [x, w, b], attrs)
    got = conv.conv(x, w, b, strides=strides, pads=pads, dilations=dil, group=group)
    check(got, want, atol=2e-5)
    assert np.moveaxis(got, 1, -1).flags.c_contiguous  # channel-last in memory, for the next Conv
    # the IR passes the whole ONNX attribute set, kernel_shape included
    check(conv.conv(x, w, b, **attrs), want, atol=2e-5)


@pytest.mark.parametrize("block", ["row", "rows", "samples"])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{len(c[2])}d-g{c[8]}")
def test_conv_in_blocks(case, block, monkeypatch):
    """Blocks of one output row, of a few rows of one sample, and of two whole samples (three
    samples: the last block is short), each unfolded by three threads, give the whole product."""
    n, c, spatial, m, ks, strides, pads, dil, group, bias = case
    x, w = rand(n + 1, c, *spatial, seed=1), rand(m, c // group, *ks, seed=2)
    b = rand(m, seed=3) if bias else None
    whole = conv.conv(x, w, b, strides=strides, pads=pads, dilations=dil, group=group)
    out = whole.shape[2:]
    row = int(np.prod(out[1:])) * int(np.prod(ks)) * c          # unfolded values per output row
    size = {"row": 1, "rows": 2 * row, "samples": 2 * out[0] * row}[block]
    monkeypatch.setattr(conv, "CONV_BLOCK", size)
    monkeypatch.setattr(cpu, "THREADS", 3)
    monkeypatch.setattr(cpu, "THREADED", 1)
    blocks = conv.conv(x, w, b, strides=strides, pads=pads, dilations=dil, group=group)
    np.testing.assert_allclose(blocks, whole, rtol=1e-6, atol=1e-6)  # a GEMM's sum order may depend on its size


@given(samples=st.integers(0, 5), rows=st.integers(1, 7), per_row=st.integers(1, 40), budget=st.integers(1, 300))
def test_row_blocks_cover_the_output_once_in_contiguous_blocks(samples, rows, per_row, budget):
    """Every (sample, output row) in exactly one block, in order (so each block's outputs follow the
    last's); whole samples when one fits in the budget, else rows of one sample; no block over the
    budget unless it is a single row."""
    blocks = cpu.row_blocks(samples, rows, per_row, budget)
    cells = [(i, r) for s, rr in blocks for i in range(samples)[s] for r in range(rows)[rr]]
    assert cells == [(i, r) for i in range(samples) for r in range(rows)]
    for s, rr in blocks:
        taken = len(range(samples)[s]), len(range(rows)[rr])
        assert taken[1] == rows if rows * per_row <= budget else taken[0] == 1
        assert taken[0] * taken[1] * per_row <= budget or taken == (1, 1)


@given(groups=st.integers(1, 3), m=st.integers(1, 40), banks=st.integers(1, 6), q=st.integers(1, 4),
       rings=st.integers(1, 5), budget=st.integers(1, 400))
def test_tile_row_blocks_cover_every_tile_row_and_matrix_row_once(groups, m, banks, q, rings, budget):
    """Whole tile rows, in order, each once; each block's matrix rows are its tile rows' (the last
    tile row's padding left out); no block over the budget unless it is a single tile row."""
    r = -(-m // banks)
    tiles = np.zeros((groups, r, q, banks, rings), np.uint8)
    blocks = cpu.tile_row_blocks(tiles, m, budget)
    assert [t for block, _ in blocks for t in range(r)[block]] == list(range(r))
    assert [row for _, part in blocks for row in range(m)[part]] == list(range(m))
    for block, part in blocks:
        held = range(r)[block]
        assert (part.start, part.stop) == (held[0] * banks, min((held[-1] + 1) * banks, m))
        assert len(held) * tiles[:, :1].size <= budget or len(held) == 1


@pytest.mark.parametrize("shape", [(7, 5, 3), (1, 2, 9), (1, 1, 4), (2, 1, 1)])
def test_threaded_copy_of_a_strided_source(shape, monkeypatch):
    """Split along the first axis with room for every thread (or not at all): the same values."""
    monkeypatch.setattr(cpu, "THREADS", 2)
    monkeypatch.setattr(cpu, "THREADED", 1)
    source = np.arange(np.prod(shape) * 2, dtype=np.float32).reshape(shape[::-1] + (2,))[..., 0].T
    out = np.full(shape, -1, np.float32)
    cpu.threaded(np.copyto, out, source)
    np.testing.assert_array_equal(out, source)
    first = np.arange(shape[0], dtype=np.float32).reshape((-1,) + (1,) * (len(shape) - 1))
    for axis in range(1, len(shape)):  # or along the axis given, so that an operand broadcast along another fits
        out = np.full(shape, -1, np.float32)
        cpu.threaded(lambda o, s: np.add(s, first, out=o), out, source, axis=axis)
        np.testing.assert_array_equal(out, source + first)


def test_conv_rejects_inconsistent_arguments():
    x, w = rand(1, 4, 5, 5), rand(6, 2, 3, 3)
    geometry = dict(strides=(1, 1), pads=(0,) * 4, dilations=(1, 1))
    with pytest.raises(ValueError, match="kernel_shape"):
        conv.conv(x, w, kernel_shape=(3, 2), group=2, **geometry)
    with pytest.raises(ValueError, match="group"):
        conv.conv(x, w, group=1, **geometry)


@st.composite
def conv_geometry(draw):
    nd = draw(st.integers(1, 3))
    max_size = {1: 12, 2: 8, 3: 5}[nd]
    ks = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    dil = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    pads = tuple(draw(st.integers(0, k - 1)) for k in ks) + tuple(draw(st.integers(0, k - 1))
                                                                  for k in ks)
    spatial = tuple(draw(st.integers(d * (k - 1) + 1, max_size)) for k, d in zip(ks, dil))
    return dict(n=draw(st.integers(1, 2)), c=draw(st.integers(1, 4)), m=draw(st.integers(1, 4)),
                spatial=spatial, ks=ks, strides=strides, pads=pads, dil=dil,
                seed=draw(st.integers(0, 2**16)))


@settings(max_examples=40, deadline=None, derandomize=True)
@given(conv_geometry())
def test_im2col_matmul_equals_ort_conv(g):
    x = rand(g["n"], g["c"], *g["spatial"], seed=g["seed"])
    w = rand(g["m"], g["c"], *g["ks"], seed=g["seed"] + 1)
    attrs = dict(kernel_shape=ints(g["ks"]), strides=ints(g["strides"]), pads=ints(g["pads"]),
                 dilations=ints(g["dil"]))
    want = run_ort("Conv", [x, w], attrs)
    cols = conv.im2col(x, g["ks"], g["strides"], g["pads"], g["dil"])
    assert cols.shape == (g["n"], *want.shape[2:], g["c"] * int(np.prod(g["ks"])))
    assert cols.dtype == np.float32
    got = np.moveaxis(cols @ w.reshape(g["m"], -1).T, -1, 1)
    check(got, want)
    assert conv.conv_output_shape(g["spatial"], g["ks"], g["strides"], g["pads"],
                               g["dil"]) == want.shape[2:]


def test_im2col_layout():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(1, 2, 3, 4)
    cols = conv.im2col(x, (2, 2), (1, 2), (0, 1, 0, 0), (1, 1))
    assert cols.shape == (1, 2, 2, 8)
    # output (0, 0): rows 0..1, columns -1..0 -> padded column first
    np.testing.assert_array_equal(cols[0, 0, 0], [0, 0, 0, 4, 0, 12, 0, 16])
    np.testing.assert_array_equal(cols[0, 1, 1], [5, 6, 9, 10, 17, 18, 21, 22])


def test_conv_output_shape_ceil_drops_window_starting_in_end_pad():
    # floor: (5 + 1 - 2) // 3 + 1 = 2; ceil would give 3 but its window starts at 6 >= 5 + 0
    assert conv.conv_output_shape((5,), (2,), (3,), (0, 1), (1,), ceil_mode=True) == (2,)
    assert conv.conv_output_shape((6,), (2,), (3,), (0, 0), (1,), ceil_mode=True) == (2,)
    assert conv.conv_output_shape((7,), (2,), (3,), (0, 0), (1,), ceil_mode=True) == (3,)
    with pytest.raises(ValueError):
        conv.conv_output_shape((2,), (3,), (1,), (0, 0), (1,))


# --------------------------------------------------------------------------------------------
# pooling


POOL_CASES = [
    # (spatial, kernel, strides, pads, dilations)
    ((11,), (3,), (2,), (1, 1), (1,)),
    ((10,), (2,), (3,), (0, 1), (1,)),          # ceil_mode adds a partial window, then drops one
    ((5,), (2,), (3,), (0, 1), (1,)),           # ceil window would start inside the end pad
    ((12,), (3,), (2,), (2, 0), (2,)),
    ((7, 8), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    ((8, 7), (2, 3), (2, 2), (0, 1, 1, 0), (1, 1)),
    ((9, 9), (3, 2), (3, 2), (1, 0, 2, 1), (1, 1)),
    ((6, 6), (2, 2), (2, 2), (0, 0, 0, 0), (1, 1)),
    ((9, 10), (3, 2), (2, 3), (1, 0, 1, 1), (2, 2)),
    ((5, 6, 7), (2, 3, 2), (2, 2, 2), (0, 1, 1, 1, 1, 0), (1, 1, 1)),
    ((6, 5, 7), (3, 2, 2), (2, 1, 3), (1, 0, 1, 1, 1, 1), (1, 1, 2)),
]


def _pool_id(case):
    return f"{len(case[0])}d-s{'x'.join(map(str, case[2]))}-d{'x'.join(map(str, case[4]))}"


@pytest.mark.parametrize("ceil_mode", [0, 1])
@pytest.mark.parametrize("case", POOL_CASES, ids=_pool_id)
def test_max_pool(case, ceil_mode):
    spatial, ks, strides, pads, dil = case
    x = rand(2, 3, *spatial, seed=4)
    attrs = dict(kernel_shape=ints(ks), strides=ints(strides), pads=ints(pads),
                 dilations=ints(dil), ceil_mode=ceil_mode)
    want = run_ort("MaxPool", [x], attrs, opset=12)
    got = pool.max_pool(x, kernel_shape=ks, strides=strides, pads=pads, dilations=dil,
                     ceil_mode=bool(ceil_mode))
    check(got, want)


@pytest.mark.parametrize("case", POOL_CASES, ids=_pool_id)
def test_pools_do_not_depend_on_memory_layout(case):
    """A channel-last activation (a Conv's output) pools exactly as its C-ordered copy does."""
    spatial, ks, strides, pads, dil = case
    x = rand(2, 3, *spatial, seed=5)
    last = np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 1, -1)), -1, 1)  # same values, channels innermost
    geometry = dict(kernel_shape=ks, strides=strides, pads=pads, dilations=dil, ceil_mode=True)
    np.testing.assert_array_equal(pool.max_pool(last, **geometry), pool.max_pool(x, **geometry))
    np.testing.assert_array_equal(pool.average_pool(last, **geometry), pool.average_pool(x, **geometry))


@st.composite
def pool_geometry(draw):
    g = draw(conv_geometry())
    g["ceil_mode"] = draw(st.integers(0, 1))
    g["count_include_pad"] = draw(st.integers(0, 1))
    return g


@settings(max_examples=40, deadline=None, derandomize=True)
@given(pool_geometry())
def test_pools_random_geometry(g):
    x = rand(g["n"], g["c"], *g["spatial"], seed=g["seed"])
    geometry = dict(kernel_shape=g["ks"], strides=g["strides"], pads=g["pads"],
                    dilations=g["dil"], ceil_mode=g["ceil_mode"])
    attrs = {k: ints(v) if isinstance(v, tuple) else v for k, v in geometry.items()}
    check(pool.max_pool(x, **geometry), run_ort("MaxPool", [x], attrs, opset=12))
    attrs["count_include_pad"] = g["count_include_pad"]
    want = run_ort("AveragePool", [x], attrs, opset=19)
    check(pool.average_pool(x, count_include_pad=g["count_include_pad"], **geometry), want)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(conv_geometry(), st.sampled_from([(1, 1), (2, 1), (2, 2), (3, 1), (3, 2)]))
def test_conv_random_geometry_and_groups(g, group_mult):
    group, mult = group_mult  # channels per group in g["c"] (1..4), outputs per group mult
    c, m = group * g["c"], group * mult
    x = rand(g["n"], c, *g["spatial"], seed=g["seed"])
    w = rand(m, g["c"], *g["ks"], seed=g["seed"] + 1)
    b = rand(m, seed=g["seed"] + 2)
    attrs = dict(kernel_shape=ints(g["ks"]), strides=ints(g["strides"]), pads=ints(g["pads"]),
                 dilations=ints(g["dil"]), group=group)
    want = run_ort("Conv", [x, w, b], attrs)
    got = conv.conv(x, w, b, strides=g["strides"], pads=g["pads"], dilations=g["dil"], group=group)
    check(got, want)


def test_max_pool_padding_never_wins():
    x = -np.ones((1, 1, 3, 3), np.float32) * 5
    got = pool.max_pool(x, kernel_shape=(2, 2), strides=(1, 1), pads=(1, 1, 1, 1),
                     dilations=(1, 1))
    np.testing.assert_array_equal(got, np.full((1, 1, 4, 4), -5, np.float32))


def test_max_pool_integer_input():
    x = np.random.default_rng(5).integers(-100, 100, (1, 2, 5, 5)).astype(np.int8)
    attrs = dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1])
    want = run_ort("MaxPool", [x], attrs, opset=12)
    got = pool.max_pool(x, kernel_shape=(2, 2), strides=(2, 2), pads=(1, 1, 1, 1),
                     dilations=(1, 1))
    check(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("ceil_mode", [0, 1])
@pytest.mark.parametrize("case", [c for c in POOL_CASES if set(c[4]) == {1}], ids=_pool_id)
def test_average_pool(case, ceil_mode, count_include_pad):
    spatial, ks, strides, pads, _ = case
    x = rand(2, 3, *spatial, seed=6)
    attrs = dict(kernel_shape=ints(ks), strides=ints(strides), pads=ints(pads),
                 ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    want = run_ort("AveragePool", [x], attrs, opset=17)
    got = pool.average_pool(x, kernel_shape=ks, strides=strides, pads=pads,
                         ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad))
    check(got, want)


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("ceil_mode", [0, 1])
@pytest.mark.parametrize("case", [c for c in POOL_CASES if set(c[4]) != {1}], ids=_pool_id)
def test_average_pool_dilated(case, ceil_mode, count_include_pad):
    spatial, ks, strides, pads, dil = case
    x = rand(2, 3, *spatial, seed=7)
    attrs = dict(kernel_shape=ints(ks), strides=ints(strides), pads=ints(pads),
                 dilations=ints(dil), ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    want = run_ort("AveragePool", [x], attrs, opset=19)
    got = pool.average_pool(x, kernel_shape=ks, strides=strides, pads=pads, dilations=dil,
                         ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad))
    check(got, want)


def test_average_pool_ceil_window_past_end_pad_counts_only_declared_pads():
    # S=5, k=3, s=2, pads (1, 0), ceil: windows cover input [-1, 1], [1, 3], [3, 5]; position -1
    # is declared padding (counted with count_include_pad), position 5 is past the end: never
    x = np.array([[[1.0, 2.0, 3.0, 4.0, 5.0]]], np.float32)
    geometry = dict(kernel_shape=(3,), strides=(2,), pads=(1, 0), ceil_mode=True)
    got = pool.average_pool(x, count_include_pad=True, **geometry)
    np.testing.assert_allclose(got, [[[3.0 / 3, 9.0 / 3, 9.0 / 2]]])
    want = run_ort("AveragePool", [x], dict(kernel_shape=[3], strides=[2], pads=[1, 0],
                                            ceil_mode=1, count_include_pad=1))
    check(got, want)
    got = pool.average_pool(x, count_include_pad=False, **geometry)
    np.testing.assert_allclose(got, [[[3.0 / 2, 9.0 / 3, 9.0 / 2]]])


@pytest.mark.parametrize("spatial", [(7,), (5, 6), (3, 4, 5)])
@pytest.mark.parametrize("op, fn", [("GlobalAveragePool", pool.global_average_pool),
                                    ("GlobalMaxPool", pool.global_max_pool)])
def test_global_pool(op, fn, spatial):
    x = rand(2, 3, *spatial, seed=8)
    check(fn(x), run_ort(op, [x]))


# --------------------------------------------------------------------------------------------
# normalisation


LRN_PARAMS = [(3, 1e-4, 0.75, 1.0), (5, 0.3, 0.6, 2.0), (1, 0.2, 0.5, 1.0), (7, 0.5, 0.8, 1.2)]


@pytest.mark.parametrize("shape", [(2, 7, 4, 5), (1, 3, 2, 6)])
@pytest.mark.parametrize("size, alpha, beta, bias", LRN_PARAMS)
def test_lrn(shape, size, alpha, beta, bias):
    x = rand(*shape, seed=9, scale=2.0)
    want = run_ort("LRN", [x], dict(size=size, alpha=alpha, beta=beta, bias=bias), opset=13)
    check(nn.lrn(x, size=size, alpha=alpha, beta=beta, bias=bias), want)


def _lrn_by_the_spec(x, size, alpha, beta, bias):
    """The ONNX LRN formula, channel by channel (onnxruntime only runs 4-D input and odd sizes,
    and onnx.reference's LRN loops over the batch instead of the channels)."""
    y = np.empty_like(x)
    c = x.shape[1]
    for ch in range(c):
        lo = max(0, ch - math.floor((size - 1) / 2))
        hi = min(c - 1, ch + math.ceil((size - 1) / 2))
        square_sum = (x[:, lo:hi + 1] ** 2).sum(axis=1)
        y[:, ch] = x[:, ch] / (bias + alpha / size * square_sum) ** beta
    return y


@pytest.mark.parametrize("shape", [(2, 7, 4, 5), (1, 6, 3, 3, 2), (2, 4, 9), (3, 5)])
@pytest.mark.parametrize("size", [2, 4, 5])
def test_lrn_even_size_and_other_ranks(shape, size):
    x = rand(*shape, seed=10, scale=2.0)
    want = _lrn_by_the_spec(x, size, 0.3, 0.6, 1.5)
    check(nn.lrn(x, size=size, alpha=0.3, beta=0.6, bias=1.5), want)


@pytest.mark.parametrize("shape", [(3, 4), (2, 4, 7), (2, 4, 5, 6), (1, 4, 2, 3, 2)])
def test_batch_norm(shape):
    x = rand(*shape, seed=10)
    c = shape[1]
    scale, bias, mean = rand(c, seed=11), rand(c, seed=12), rand(c, seed=13)
    var = np.abs(rand(c, seed=14)) + 0.1
    want = run_ort("BatchNormalization", [x, scale, bias, mean, var], dict(epsilon=1e-3),
                   opset=15)
    check(nn.batch_norm(x, scale, bias, mean, var, epsilon=1e-3), want)


# --------------------------------------------------------------------------------------------
# softmax family, arg reductions, reductions


@pytest.mark.parametrize("axis", [-1, 0, 1, 2, 3])
@pytest.mark.parametrize("op, fn", [("Softmax", nn.softmax), ("LogSoftmax", nn.log_softmax)])
def test_softmax(op, fn, axis):
    x = rand(2, 3, 4, 5, seed=15, scale=10.0)
    check(fn(x, axis=axis), run_ort(op, [x], dict(axis=axis), opset=13))


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
@pytest.mark.parametrize("op, fn", [("Softmax", nn.softmax), ("LogSoftmax", nn.log_softmax)])
def test_softmax_legacy(op, fn, axis):
    x = rand(2, 3, 4, 5, seed=16, scale=10.0)
    want = run_ort(op, [x], dict(axis=axis), opset=11)
    got = fn(x, axis=axis, legacy=True)
    check(got, want)
    if op == "Softmax" and axis == 1:  # really differs from the opset-13 semantics
        assert not np.allclose(got, fn(x, axis=1))


def test_softmax_extreme_values_stay_finite():
    x = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]], np.float32)
    assert np.all(np.isfinite(nn.softmax(x)))
    assert np.all(np.isfinite(nn.log_softmax(x[:, :2])))


@pytest.mark.parametrize("select_last_index", [0, 1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("op, fn", [("ArgMax", reduce.argmax), ("ArgMin", reduce.argmin)])
def test_arg_reduce(op, fn, axis, keepdims, select_last_index):
    # small integers so that there are ties
    x = np.random.default_rng(17).integers(-2, 3, (3, 4, 5)).astype(np.float32)
    attrs = dict(axis=axis, keepdims=keepdims, select_last_index=select_last_index)
    want = run_ort(op, [x], attrs, opset=13, out_dtype=np.int64)
    got = fn(x, axis=axis, keepdims=bool(keepdims), select_last_index=bool(select_last_index))
    check(got, want, rtol=0, atol=0)


REDUCE_OPS = sorted(reduce.REDUCTIONS)


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("axes", [None, (1,), (-1, 0), (0, 2, 3)])
@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce(op, axes, keepdims):
    x = rand(2, 3, 4, 5, seed=18, scale=0.8 if op == "ReduceProd" else 3.0)
    inputs = [x] if axes is None else [x, np.array(axes, np.int64)]
    want = run_ort(op, inputs, dict(keepdims=keepdims), opset=18)
    check(reduce.reduce(x, op=op, axes=axes, keepdims=bool(keepdims)), want)


def test_reduce_log_sum_exp_is_stable():
    x = np.array([[1000.0, 1000.0], [-1000.0, -1001.0]], np.float32)
    got = reduce.reduce(x, op="ReduceLogSumExp", axes=(1,), keepdims=False)
    np.testing.assert_allclose(got, [1000 + math.log(2), -1000 + math.log1p(math.exp(-1))],
                               rtol=1e-6)


# --------------------------------------------------------------------------------------------
# element-wise


def _x(seed=19, scale=4.0, shape=(2, 3, 4, 5)):
    x = rand(*shape, seed=seed, scale=scale)
    x.flat[:6] = [0.0, -0.0, 30.0, -30.0, 100.0, -100.0]
    return x


def _pos(seed=20):
    return np.abs(rand(2, 3, 4, 5, seed=seed, scale=3.0)) + 0.05


def _away_from_zero(seed=21):
    x = rand(2, 3, 4, 5, seed=seed, scale=3.0)
    return np.where(np.abs(x) < 0.1, 0.5, x).astype(np.float32)


UNARY_CASES = [
    # (onnx op, attrs, opset, kernel, kernel kwargs, input)
    ("Relu", {}, 14, elementwise.relu, {}, _x()),
    ("LeakyRelu", {}, 16, elementwise.leaky_relu, {}, _x()),
    ("LeakyRelu", {"alpha": 0.2}, 16, elementwise.leaky_relu, {"alpha": 0.2}, _x()),
    ("Sigmoid", {}, 13, elementwise.sigmoid, {}, _x(scale=30.0)),
    ("Tanh", {}, 13, elementwise.tanh, {}, _x()),
    ("Elu", {}, 6, elementwise.elu, {}, _x()),
    ("Elu", {"alpha": 0.5}, 6, elementwise.elu, {"alpha": 0.5}, _x()),
    ("Selu", {}, 6, elementwise.selu, {}, _x()),
    ("Selu", {"alpha": 1.5, "gamma": 2.0}, 6, elementwise.selu, {"alpha": 1.5, "gamma": 2.0}, _x()),
    ("Softplus", {}, 1, elementwise.softplus, {}, _x(scale=20.0)),
    ("Softsign", {}, 1, elementwise.softsign, {}, _x()),
    ("HardSigmoid", {}, 6, elementwise.hard_sigmoid, {}, _x()),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, 6, elementwise.hard_sigmoid,
     {"alpha": 0.3, "beta": 0.4}, _x()),
    ("HardSwish", {}, 14, elementwise.hard_swish, {}, _x()),
    ("Gelu", {}, 20, special.gelu, {}, _x()),
    ("Gelu", {"approximate": "tanh"}, 20, special.gelu, {"approximate": "tanh"}, _x()),
    ("Exp", {}, 13, elementwise.exp, {}, _x(scale=3.0)),
    ("Log", {}, 13, elementwise.log, {}, _pos()),
    ("Sqrt", {}, 13, elementwise.sqrt, {}, _pos()),
    ("Abs", {}, 13, elementwise.abs, {}, _x()),
    ("Neg", {}, 13, elementwise.neg, {}, _x()),
    ("Reciprocal", {}, 13, elementwise.reciprocal, {}, _away_from_zero()),
    ("Erf", {}, 13, special.erf, {}, _x(scale=2.0)),
]


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")
@pytest.mark.parametrize("case", UNARY_CASES,
                         ids=lambda c: c[0] + ("-" + "-".join(map(str, c[1].values()))
                                               if c[1] else ""))
def test_unary(case):
    op, attrs, opset, fn, kwargs, x = case
    want = run_ort(op, [x], attrs, opset=opset)
    got = fn(x, **kwargs)
    check(got, want)
    check(KERNELS[op](x, **kwargs), want)


@pytest.mark.parametrize("slope_shape", [(1,), (3, 1, 1), (5,), (1, 3, 4, 5)])
def test_prelu(slope_shape):
    x = _x()
    slope = rand(*slope_shape, seed=22)
    check(elementwise.prelu(x, slope), run_ort("PRelu", [x, slope], opset=16))


@pytest.mark.parametrize("lo, hi", [(None, None), (-1.0, None), (None, 0.5), (-0.5, 2.0),
                                    (1.0, -1.0)])
def test_clip(lo, hi):
    x = _x()
    inputs = [x, None if lo is None else np.float32(lo), None if hi is None else np.float32(hi)]
    want = run_ort("Clip", inputs, opset=13)
    check(elementwise.clip(x, min=lo, max=hi), want)


def test_clip_legacy_attributes():
    x = _x()
    want = run_ort("Clip", [x], dict(min=-0.3, max=0.7), opset=6)
    check(elementwise.clip(x, min=-0.3, max=0.7), want)


def test_sigmoid_softplus_stable_for_large_inputs():
    x = np.array([-1e4, -100.0, 0.0, 100.0, 1e4], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = elementwise.sigmoid(x)
        sp = elementwise.softplus(x)
    np.testing.assert_allclose(s, [0, 3.7200760e-44, 0.5, 1, 1], rtol=1e-7, atol=1e-44)
    np.testing.assert_allclose(sp, [0, 3.7200760e-44, math.log(2), 100, 1e4], rtol=1e-7,
                               atol=1e-44)


def test_erf_accuracy_float64():
    x = np.concatenate([np.linspace(-7, 7, 20001), [0.0, -0.0, 1e-300, 2.5, -2.5, 26.0, 40.0]])
    want = np.array([math.erf(v) for v in x])
    got = special.erf(x)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    # erfc tail, through gelu at large negative arguments: relative accuracy is kept
    xs = -np.linspace(3, 37, 500)
    g = special.gelu(xs)
    ref = np.array([0.5 * v * math.erfc(-v / math.sqrt(2)) for v in xs])
    np.testing.assert_allclose(g, ref, rtol=1e-13, atol=0)
    e = special.erf(np.array([np.inf, -np.inf, np.nan]))
    assert e[0] == 1 and e[1] == -1 and np.isnan(e[2])


# --------------------------------------------------------------------------------------------
# Pad


PAD_CASES = [
    (3, 5), [1, 2, 2, 0],
    (2, 3, 4, 5), [0, 0, 1, 2, 0, 1, 2, 1],
    (2, 3, 4, 5), [0, 1, -1, 2, 0, -1, 1, -2],
    (4, 6), [-1, 3, 2, -2],
    (2, 5, 6), [0, -2, 4, 0, 2, -1],
    (2, 3), [0, 4, 0, 5],                   # wrap/edge/constant beyond the size (not reflect)
]
PAD_CASES = list(zip(PAD_CASES[::2], PAD_CASES[1::2]))


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("shape, pads", PAD_CASES, ids=lambda v: str(v))
def test_pad(shape, pads, mode):
    x = rand(*shape, seed=23)
    if mode == "reflect" and pads == [0, 4, 0, 5]:
        with pytest.raises(ValueError, match="reflect"):
            layout.pad(x, pads=pads, mode=mode)
        return
    value = np.float32(1.5)
    inputs = [x, np.array(pads, np.int64)] + ([value] if mode == "constant" else [])
    want = run_ort("Pad", inputs, dict(mode=mode), opset=19)
    got = layout.pad(x, pads=pads, mode=mode, value=1.5 if mode == "constant" else 0.0)
    check(got, want, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# dtype and the op table


def test_float64_in_float64_out():
    x = rand(1, 4, 6, 6, seed=24, dtype=np.float64)
    w = rand(4, 2, 3, 3, seed=25, dtype=np.float64)
    outs = [
        conv.conv(x, w, None, strides=(1, 1), pads=(1, 1, 1, 1), dilations=(1, 1), group=2),
        pool.max_pool(x, kernel_shape=(2, 2), strides=(2, 2), pads=(0,) * 4, dilations=(1, 1)),
        pool.average_pool(x, kernel_shape=(3, 3), strides=(2, 2), pads=(1,) * 4, ceil_mode=True),
        nn.lrn(x, size=3), nn.softmax(x, axis=1), special.gelu(x), special.erf(x), elementwise.sigmoid(x),
        reduce.reduce(x, op="ReduceL2", axes=(1,)), layout.pad(x, pads=(0, 0, 1, 1, 0, 0, 1, 1), mode="reflect"),
        elementwise.hard_swish(x), elementwise.selu(x), elementwise.softplus(x),
    ]
    assert all(o.dtype == np.float64 for o in outs)


MATH_KERNELS = {
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Clip", "Elu", "Selu", "Softplus",
    "Softsign", "HardSigmoid", "HardSwish", "Gelu", "Exp", "Log", "Sqrt", "Abs", "Neg",
    "Reciprocal", "Erf", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
    "LRN", "Softmax", "LogSoftmax", "ArgMax", "ArgMin", "Pad", "BatchNormalization",
}


def test_float32_everywhere():
    x = rand(2, 3, 4, 5, seed=32)
    for name in sorted(MATH_KERNELS - {"PRelu", "BatchNormalization"}):
        fn = KERNELS[name]
        kwargs = {}
        if name in {"MaxPool", "AveragePool"}:
            kwargs = dict(kernel_shape=(2, 2), strides=(1, 1), pads=(0, 0, 1, 1))
            if name == "MaxPool":
                kwargs["dilations"] = (1, 1)
        elif name == "LRN":
            kwargs = dict(size=3)
        elif name == "Pad":
            kwargs = dict(pads=(0,) * 8)
        with np.errstate(invalid="ignore"):  # Log, Sqrt of negatives
            y = fn(x, **kwargs)
        assert y.dtype == (np.int64 if name in {"ArgMax", "ArgMin"} else np.float32), name


def test_electronic_table_is_complete():
    layout = {"Reshape", "Transpose", "Concat", "Split", "Slice", "Gather", "Cast", "Identity"}
    assert MATH_KERNELS | layout <= set(KERNELS)
    assert all(callable(f) for f in KERNELS.values())


def test_table_calls_with_inputs_and_attrs():
    x = rand(2, 3, 5, 5, seed=26)
    attrs = dict(kernel_shape=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1), dilations=(1, 1),
                 ceil_mode=True)
    want = run_ort("MaxPool", [x], {k: ints(v) if isinstance(v, tuple) else int(v)
                                    for k, v in attrs.items()}, opset=12)
    check(KERNELS["MaxPool"](x, **attrs), want)
    c = 3
    params = [rand(c, seed=s) for s in (27, 28, 29)] + [np.abs(rand(c, seed=30)) + 0.5]
    want = run_ort("BatchNormalization", [x, *params], dict(epsilon=1e-5), opset=15)
    check(KERNELS["BatchNormalization"](x, *params, epsilon=1e-5), want)
    slope = rand(c, 1, 1, seed=31)
    check(KERNELS["PRelu"](x, slope), run_ort("PRelu", [x, slope], opset=16))


def test_threaded_work_in_a_forked_child_after_the_parent_used_the_threads(monkeypatch):
    """A child forked after the parent's pool started has none of its threads: it makes its own
    pool instead of queueing work that no thread would ever run (a hang)."""
    import multiprocessing
    monkeypatch.setattr(cpu, "THREADS", 2)
    monkeypatch.setattr(cpu, "THREADED", 1)
    source = np.arange(64, dtype=np.float32).reshape(8, 8)
    out = np.empty_like(source)
    cpu.threaded(np.copyto, out, source)  # the parent's pool now exists
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        result = pool.apply_async(_threaded_copy_in_child)
        assert result.get(timeout=60) == float(source.T.sum())


def _threaded_copy_in_child() -> float:
    cpu.THREADS, cpu.THREADED = 2, 1
    source = np.arange(64, dtype=np.float32).reshape(8, 8).T
    out = np.empty_like(source)
    cpu.threaded(np.copyto, out, source)
    return float(out.sum())


@pytest.mark.parametrize("count", [0, 1, 2, 7])
def test_threaded_map_gives_each_items_result_in_order(count, monkeypatch):
    """The items shared over three threads (or run here when there are too few): the results of
    ``fn`` on each, in the items' order."""
    monkeypatch.setattr(cpu, "THREADS", 3)
    items = [np.arange(i, i + 1000.0) for i in range(count)]
    assert [float(v) for v in cpu.threaded_map(lambda a: a.sum(), items)] == [float(a.sum()) for a in items]


# --------------------------------------------------------------------------------------------
# LayerNormalization: an operator added in one file (photoncc/ops/nn.py) is compiled, simulated
# and listed by `photoncc ops` with no other change


@pytest.mark.parametrize("axis", [-1, -2, 1])
@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm(axis, bias):
    x = rand(3, 4, 6, seed=40, scale=3.0) + 1.5
    shape = x.shape[axis % 3:]
    scale, b = rand(*shape, seed=41), rand(*shape, seed=42) if bias else None
    got = nn.layer_norm(x, scale, b, axis=axis, epsilon=1e-5)
    want = run_ort("LayerNormalization", [x, scale, b], dict(axis=axis, epsilon=1e-5), opset=17)
    check(got[0], want)


def test_a_transformer_style_block_with_layer_norm_compiles_and_matches_onnxruntime(tmp_path):
    """Gemm -> LayerNormalization -> Gelu -> Gemm on tokens (batch x tokens x features): the
    matrix products on banks, the normalisation electronic; compiled for `ideal` and run by the
    simulator, within 1e-4 of onnxruntime. A LayerNormalization over the batch axis is refused."""
    from helpers import compile_and_compare, make_model, save, vinfo
    from photoncc.errors import UnsupportedModel
    rng = np.random.default_rng(5)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("LayerNormalization", ["h", "g", "b"], ["n"], axis=-1, epsilon=1e-5),
             helper.make_node("Gelu", ["n"], ["a"], domain=""),
             helper.make_node("MatMul", ["a", "w2"], ["y"])]
    inits = [("w1", rng.normal(0, 0.3, (8, 16)).astype(np.float32)), ("g", rng.uniform(0.5, 1.5, 16).astype(np.float32)),
             ("b", rng.normal(0, 0.1, 16).astype(np.float32)), ("w2", rng.normal(0, 0.3, (16, 4)).astype(np.float32))]
    model = make_model(nodes, [vinfo("x", ["N", 5, 8])], [vinfo("y", ["N", 5, 4])], inits, opset=20)
    program, _, _ = compile_and_compare(save(model, tmp_path), {"x": rand(6, 5, 8, seed=7)})
    assert "LayerNormalization" in [i["op"] for i in program.instructions]
    nodes[1] = helper.make_node("LayerNormalization", ["h", "g", "b"], ["n"], axis=0)
    inits[1], inits[2] = ("g", np.ones((2, 5, 16), np.float32)), ("b", np.zeros((2, 5, 16), np.float32))
    bad = make_model(nodes, [vinfo("x", [2, 5, 8])], [vinfo("y", [2, 5, 4])], inits, opset=20)
    with pytest.raises(UnsupportedModel, match="normalises across the batch axis"):
        compile_and_compare(save(bad, tmp_path, "bad.onnx"), {"x": rand(2, 5, 8, seed=7)})
