"""The mesh decomposition (compile side): a unitary as the phases of a Clements or Reck MZI mesh.

Clements et al., Optica 3:1460 (2016): for i = 0 .. N - 2, the lower triangle of U is nulled one
anti-diagonal at a time, alternately from the right (an MZI on columns i - j, i - j + 1, j = 0 .. i,
for even i) and from the left (an MZI on rows N + j - i - 2, N + j - i - 1, odd i). The right
nulls are the mesh's MZIs of column j (counted from the input), the left nulls those of column
N - 1 - j; what is left is diagonal, moved to the output through the left MZIs.

Reck et al., PRL 73:58 (1994): for s = 0 .. N - 2, row N - 1 - s of U is nulled from the right,
left to right (an MZI on columns k, k + 1 nulls entry k, k = 0 .. N - 2 - s); rows below it are
done, so what is left is diagonal. The nulls of row N - 1 - s are the triangle's diagonal s, the
MZI on (k, k + 1) in mesh column k + 2s (``mzi_mesh.layout``); nulls in different columns on
different modes commute, so the mesh applies them column by column.

``givens`` does this for real orthogonal matrices (the SVD factors of a real tile) with real
rotations R(tau) = [[cos, -sin], [sin, cos]]: U = diag(d) L_{D-1} ... L_0 with d = +-1 and each
L_c the rotations of column c (D columns: N for Clements, 2N - 3 for Reck). A diagonal of signs
passes through a rotation unchanged, with the rotation's angle times d_a d_{a+1}, so the left
nulls need no phase pushing. The nulling is O(N^2) sequential steps (``_nulls``, one list per
layout, run by one loop); each is one set of NumPy operations on every tile at once (tiles on
the last axis, so that a column or row of every tile is one contiguous block).

``set_phases`` then turns the rotations into the phases of physical MZIs (mzi_mesh: T(theta, phi)
= B diag(e^{i theta}, 1) B diag(e^{i phi}, 1)), column by column from the input (D steps, each on
every tile and every MZI of the column): each MZI must realise its rotation up to phases on its
outputs, which are carried to the next column (and at the end to the output screen). Given a
chip's static errors this is error-aware programming (Bandyopadhyay et al., arXiv 2103.04993,
local correction): theta is solved for the MZI's own couplers (|t00|^2 = A - B cos theta, Hamerly
et al.), phi and the carried phases for its own transfer matrix, the known phase offsets are
subtracted, and with ``phase_bits`` every phase is quantised as it is solved, so that the MZIs
after it absorb its rounding where they can. An MZI whose couplers cannot reach the splitting
ratio is set to the nearest one and counted.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .mzi_mesh import bar_power, encode, decode, layout, mzi_count, mzi_entries


def givens(u: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Real orthogonal matrices (..., N, N) -> (tau (..., Z), d (..., N)): U = diag(d) prod_c L_c
    with L_c the rotations R(tau) of the MZIs of column c of a mesh of layout ``kind``
    (mzi_mesh.layout order); d = +-1."""
    lead, n = u.shape[:-2], u.shape[-1]
    a = np.ascontiguousarray(np.moveaxis(u.reshape((-1, n, n)).astype(np.float64), 0, -1))  # (N, N, T)
    count = a.shape[-1]
    tau = np.zeros((mzi_count(n), count))
    left = np.zeros(mzi_count(n), bool)
    starts = [start for start, _ in layout(n, kind)]
    index = lambda column, top: starts[column] + (top - column % 2) // 2  # noqa: E731
    for from_left, r, col, column in _nulls(n, kind):
        if not from_left:  # null (r, col): rotate columns col, col + 1 (rows below r are zero)
            t = np.arctan2(-_settled(a[r, col]), a[r, col + 1])
            c, s = np.cos(t), np.sin(t)
            x, y = a[:r + 1, col].copy(), a[:r + 1, col + 1]
            a[:r + 1, col] = c * x + s * y
            a[:r + 1, col + 1] = c * y - s * x
            a[r, col] = 0.0
            tau[index(column, col)] = -t
        else:  # null (r + 1, col): rotate rows r, r + 1 (columns left of col are zero)
            t = np.arctan2(_settled(a[r + 1, col]), a[r, col])
            c, s = np.cos(t), np.sin(t)
            x, y = a[r, col:].copy(), a[r + 1, col:]
            a[r, col:] = c * x + s * y
            a[r + 1, col:] = c * y - s * x
            a[r + 1, col] = 0.0
            k = index(column, r)
            tau[k], left[k] = t, True
    d = np.where(a[np.arange(n), np.arange(n)] < 0, -1.0, 1.0)  # (N, T)
    if left.any():  # diag(d) passes a left rotation with its angle times d_a d_{a+1}
        tops = np.concatenate([t for _, t in layout(n, kind)])
        tau[left] *= d[tops[left]] * d[tops[left] + 1]
    return np.moveaxis(tau, -1, 0).reshape(lead + (-1,)), np.moveaxis(d, -1, 0).reshape(lead + (n,))


@lru_cache(maxsize=None)
def _nulls(n: int, kind: str) -> tuple[tuple[bool, int, int, int], ...]:
    """The nulling steps of an N-port mesh of layout ``kind`` in order (module docstring): (from the
    left, row, column of the entry's rotation, the MZI's mesh column). From the right the step
    nulls entry (row, column) with columns column, column + 1; from the left entry (row + 1,
    column) with rows row, row + 1."""
    if kind == "reck":
        return tuple((False, n - 1 - s, k, k + 2 * s) for s in range(n - 1) for k in range(n - 1 - s))
    return tuple((False, n - 1 - j, i - j, j) if i % 2 == 0 else (True, n + j - i - 2, j, n - 1 - j)
                 for i in range(n - 1) for j in range(i + 1))


ROUNDOFF = 1e-13  # an entry to null this close to 0 is rounding error: it is nulled already


def _settled(entry: np.ndarray) -> np.ndarray:
    """The entry a rotation is to null, 0 where it is rounding error: the angle is then an exact 0
    or pi, not the angle between two rounding errors (which the later steps must undo, and which
    left a 20 x 20 permutation 1.03e-12 off after its round trip)."""
    return np.where(np.abs(entry) < ROUNDOFF, 0.0, entry)


def rotations_matrix(tau: np.ndarray, d: np.ndarray, kind: str) -> np.ndarray:
    """diag(d) prod_c L_c(tau): the real matrix ``givens`` decomposed (for tests)."""
    n = d.shape[-1]
    a = np.broadcast_to(np.eye(n), tau.shape[:-1] + (n, n)).copy()
    for start, tops in layout(n, kind):
        if len(tops):
            c, s = np.cos(tau[..., start:start + len(tops), None]), np.sin(tau[..., start:start + len(tops), None])
            x, y = a[..., tops, :].copy(), a[..., tops + 1, :]
            a[..., tops, :] = c * x - s * y
            a[..., tops + 1, :] = s * x + c * y
    return a * d[..., :, None]


def set_phases(tau: np.ndarray, d: np.ndarray, errors: dict | None = None, bits: int | None = None, *, kind: str):
    """The settings of the physical MZIs of a mesh of layout ``kind`` that realise diag(d) prod_c
    L_c(tau) (module docstring).

    ``tau`` (..., Z), ``d`` (..., N); ``errors``: the static errors of the physical mesh the
    settings are for (mzi_mesh.mesh_matrix's dict: phase offsets ``theta``, ``phi`` (Z,),
    ``screen`` (N,), splitting errors ``e1``, ``e2`` (Z,); loss is not corrected), None for an
    ideal mesh. Returns (phases (..., Z, 2) and screen (..., N) as set, i.e. in radians before the
    chip adds its offsets, quantised to ``bits``; the count of MZIs, per leading index, whose
    splitting ratio their couplers cannot reach)."""
    errors = errors or {}
    n = d.shape[-1]
    lead = tau.shape[:-1]
    zero = np.zeros(mzi_count(n))
    off_t, off_p = errors.get("theta", zero), errors.get("phi", zero)
    e1, e2 = errors.get("e1", zero), errors.get("e2", zero)
    low, gap = bar_power(e1, e2)
    pending = np.zeros(lead + (n,))
    phases = np.empty(lead + (mzi_count(n), 2))
    unreachable = np.zeros(lead, np.int64)
    for start, tops in layout(n, kind):
        if not len(tops):
            continue
        part = slice(start, start + len(tops))
        t = tau[..., part]
        g00, g01 = np.cos(t), -np.sin(t)
        g10, g11 = -g01, g00
        # |t00|^2 = A - B cos(theta) = g00^2: theta / 2 = atan2(sqrt(g00^2 - low), sqrt(g01^2 - gap))
        # with [low, 1 - gap] the bar powers the couplers reach (exact, and well conditioned near 0 and pi)
        bar, cross = g00 * g00 - low[part], g01 * g01 - gap[part]
        unreachable += ((bar < -1e-12) | (cross < -1e-12)).sum(axis=-1)
        theta = 2.0 * np.arctan2(np.sqrt(np.maximum(bar, 0.0)), np.sqrt(np.maximum(cross, 0.0)))
        theta_set = _quantise(theta - off_t[part], bits)
        m00, m01, m10, m11 = mzi_entries(theta_set + off_t[part], 0.0, e1[part], e2[part])
        p0, p1 = pending[..., tops], pending[..., tops + 1]
        z = g00 * g01 * np.conj(m00) * m01 + g10 * g11 * np.conj(m10) * m11
        # z is a product of two of the MZI's entries: near full cross (|g00| ~ 1e-8) it is ~1e-16 and its
        # angle still matters; below ROUNDOFF^2 both are rounding error (a settled rotation): phi = 0
        delta = np.where(np.abs(z) > ROUNDOFF ** 2, np.angle(z), 0.0)
        phi_set = _quantise(delta - p0 + p1 - off_p[part], bits)
        rot = np.exp(1j * (phi_set + off_p[part] + p0))
        e_p1 = np.exp(1j * p1)
        v00, v01, v10, v11 = m00 * rot, m01 * e_p1, m10 * rot, m11 * e_p1
        pending[..., tops] = np.angle(v00 * g00 + v01 * g01)
        pending[..., tops + 1] = np.angle(v10 * g10 + v11 * g11)
        phases[..., part, 0], phases[..., part, 1] = theta_set, phi_set
    screen = _quantise(np.where(d < 0, np.pi, 0.0) - pending - errors.get("screen", 0.0), bits)
    return phases, screen, unreachable


def _quantise(phases: np.ndarray, bits: int | None) -> np.ndarray:
    """Phases wrapped into [0, 2 pi), rounded to ``bits`` (as the hardware will set them)."""
    return decode(encode(phases, bits), bits)
