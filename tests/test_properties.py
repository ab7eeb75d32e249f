"""Properties of the maths, for random inputs (Hypothesis)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from photoncc.devices.tiles import tile, untile
from photoncc.devices.incoherent import split_nonnegative
from photoncc.devices.rings import power_of_two_ceil

# weights far below their row's largest entry (< 2^-1000 of it) would underflow in T = A / gain: excluded
floats = st.floats(-100, 100, allow_nan=False, width=64).filter(lambda v: v == 0 or abs(v) > 1e-200)


@st.composite
def layers(draw):
    groups = draw(st.integers(1, 3))
    m, k = draw(st.integers(1, 6)), draw(st.integers(1, 8))
    w = draw(hnp.arrays(np.float64, (groups, m, k), elements=floats))
    b = draw(hnp.arrays(np.float64, (groups, m), elements=floats))
    lo = draw(hnp.arrays(np.float64, (groups, k), elements=st.floats(-10, 10)))
    alpha = draw(hnp.arrays(np.float64, (groups, k), elements=st.floats(0, 10)))
    frac = draw(hnp.arrays(np.float64, (5, groups, k), elements=st.floats(0, 1)))
    return w, b, lo, alpha, lo + frac * alpha  # x inside [lo, lo + alpha]


@settings(max_examples=200, deadline=None, derandomize=True)
@given(layers())
def test_non_negative_split_reconstructs_the_layer(layer):
    w, b, lo, alpha, x = layer
    t, gain, shift, carrier = split_nonnegative(w, b, lo, alpha)
    k = w.shape[2]
    assert t.min() >= 0 and t.max() <= 1 and gain.min() > 0 and shift >= 0 and carrier >= 1
    a = gain[..., None] * t
    np.testing.assert_array_equal(a[..., :k] - a[..., k:2 * k], w)  # Wp - Wn = W, exactly
    assert a[..., 2 * k].min() >= 0  # b_nn >= 0
    weights_max = np.maximum(t[..., :2 * k].max(axis=-1, initial=0), 0)
    assert ((weights_max > 0.5) | (w == 0).all(axis=-1)).all()  # the bias never costs a row its weight range
    u = x - lo
    v = np.concatenate([u, alpha - u, np.full(u.shape[:-1] + (1,), carrier)], axis=-1)
    device = np.einsum("ngj,gmj->ngm", v, a) - shift
    exact = np.einsum("ngk,gmk->ngm", x, w) + b
    scale = np.abs(w).sum(-1).max() * (np.abs(lo).max() + alpha.max() + 1) + np.abs(b).max() + 1
    np.testing.assert_allclose(device, exact, atol=1e-9 * scale)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.integers(1, 3), st.integers(1, 20), st.integers(1, 30), st.integers(1, 7), st.integers(1, 9))
def test_tiling_then_untiling_is_the_identity(groups, m, j, banks, rings):
    t = np.random.default_rng(m * 31 + j).uniform(0, 1, (groups, m, j)).astype(np.float32)
    tiles = tile(t, banks, rings)
    assert tiles.shape == (groups, -(-m // banks), -(-j // rings), banks, rings)
    np.testing.assert_array_equal(untile(tiles, m, j), t)
    assert tiles.sum(dtype=np.float64) == t.sum(dtype=np.float64)  # the padding rings hold zeros
    padded = np.zeros((groups, tiles.shape[1] * banks, tiles.shape[2] * rings), np.float32)
    padded[:, :m, :j] = t
    for r in range(tiles.shape[1]):  # the definition: tile (g, r, q) = T[g, rB:(r+1)B, qC:(q+1)C], zero-padded
        for q in range(tiles.shape[2]):
            np.testing.assert_array_equal(tiles[:, r, q], padded[:, r * banks:(r + 1) * banks, q * rings:(q + 1) * rings])


@settings(max_examples=200, deadline=None, derandomize=True)
@given(hnp.arrays(np.float64, 20, elements=st.floats(0, 1e30)))
def test_power_of_two_gain_is_the_smallest_power_of_two_not_below_the_row_maximum(x):
    g = power_of_two_ceil(x)
    mantissa, _ = np.frexp(g)
    assert (mantissa == 0.5).all()  # a power of two
    positive = x > 0
    assert (g[positive] >= x[positive]).all() and (g[positive] < 2 * x[positive]).all()
    assert (g[~positive] == 1).all()
