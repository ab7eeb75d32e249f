"""Global refinement of a chip's mesh settings (compile side, ``compile --chip --refine STEPS``).

Local error correction (``clements.set_phases``) solves each MZI for its own couplers, one at a
time; an MZI whose imperfect couplers cannot reach its splitting ratio is set to the nearest one,
and its error is left for nobody to absorb. Refinement lets every phase of the mesh absorb it:
gradient descent (Adam, Kingma and Ba 2015) on all theta, phi and the output screen of a mesh
at once, from the local solution, minimising

    L = || M(theta, phi, s) - U ||_F^2,   M = diag(e^{i (s + ds)}) C_{N-1} ... C_0

with C_c the column-c MZIs (``mzi_mesh.mzi_entries``) realised with the chip's phase offsets,
splitting errors and losses, U the target. The gradient is reverse mode, column by column: with
A_c the product of the columns before c and Gbar_{c+1} = dL/dA_{c+1}*, each MZI's block T on rows
(r, r + 1) has dL/dT* = Gbar_{c+1}[r:r+2] A_c[r:r+2]^H and dL/dx = 2 Re sum conj(dL/dT*) dT/dx; then
Gbar_c = C_c^H Gbar_{c+1}. A coupler with splitting error is still unitary, so A_c is recovered
from A_{c+1} as T^H A_{c+1} / loss^2 instead of stored (memory O(N^2) per mesh, not O(N^3)); for
the screen, dL/ds_n = -2 Im sum_k conj(G_nk) M_nk. A Clements mesh has no spare phases, but the
neighbours of an unreachable MZI can trade its error against theirs: on 64-port meshes with
splitting errors of 0.10, 300 steps take the matrix error ||M - U||_F / sqrt(N) from about 0.20 to
0.12 (docs/accuracy.md). The phases are quantised to ``phase_bits`` afterwards, and a mesh whose
quantised refinement is no better than its local solution (coarse phase steps undo small gains)
keeps the local solution: refinement never makes a mesh worse.
"""
from __future__ import annotations

import numpy as np

from .mzi_mesh import decode, encode, layout, mesh_matrix, mzi_entries

LEARNING_RATE = 0.02  # radians: Adam's step, below the local solution's typical residual per MZI
CHUNK = 64            # meshes refined at once: memory (CHUNK x N x N complex, a few arrays) stays bounded
BETA1, BETA2 = 0.9, 0.999


def refine(phases: np.ndarray, screen: np.ndarray, errors: dict, target: np.ndarray, steps: int,
           bits: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The settings (phases (..., Z, 2), screen (..., N)) after ``steps`` Adam steps on L (module
    docstring), from the given ones, for the mesh of static ``errors`` (``mzi_mesh.mesh_matrix``'s
    dict) and targets (..., N, N); quantised to ``bits``; per mesh the better of the two (the given
    settings or the refined ones). Deterministic."""
    if steps <= 0:
        return phases, screen
    lead, n = screen.shape[:-1], screen.shape[-1]
    flat_p = phases.reshape((-1,) + phases.shape[-2:]).copy()
    flat_s = screen.reshape(-1, n).copy()
    flat_t = np.broadcast_to(target, lead + (n, n)).reshape(-1, n, n)
    for start in range(0, len(flat_s), CHUNK):
        part = slice(start, start + CHUNK)
        flat_p[part], flat_s[part] = _adam(flat_p[part], flat_s[part], errors, flat_t[part], steps)
    flat_p, flat_s = (decode(encode(x, bits), bits) for x in (flat_p, flat_s))
    given_p, given_s = phases.reshape(flat_p.shape), screen.reshape(flat_s.shape)
    better = _error(flat_p, flat_s, errors, flat_t) < _error(given_p, given_s, errors, flat_t)
    flat_p, flat_s = np.where(better[:, None, None], flat_p, given_p), np.where(better[:, None], flat_s, given_s)
    return flat_p.reshape(phases.shape), flat_s.reshape(screen.shape)


def _error(p: np.ndarray, s: np.ndarray, errors: dict, target: np.ndarray) -> np.ndarray:
    """||M - U||_F^2 per mesh, from the simulator's own mesh_matrix."""
    return (np.abs(mesh_matrix(p, s, errors) - target) ** 2).sum(axis=(-2, -1))


def _adam(p: np.ndarray, s: np.ndarray, errors: dict, target: np.ndarray, steps: int):
    params = [p, s]
    first = [np.zeros_like(p), np.zeros_like(s)]
    second = [np.zeros_like(p), np.zeros_like(s)]
    for step in range(1, steps + 1):
        grads = gradient(p, s, errors, target)[1:]
        for i, g in enumerate(grads):
            first[i] = BETA1 * first[i] + (1 - BETA1) * g
            second[i] = BETA2 * second[i] + (1 - BETA2) * g * g
            scale = LEARNING_RATE * np.sqrt(1 - BETA2 ** step) / (1 - BETA1 ** step)
            params[i] -= scale * first[i] / (np.sqrt(second[i]) + 1e-12)
    return p, s


def _blocks(p: np.ndarray, errors: dict):
    """Each MZI's 2 x 2 block T (``mzi_mesh.mzi_entries``, with the chip's errors) and its
    derivatives in theta and phi, (M, Z, 2, 2) each, and |det T| = loss^2 per MZI. Every entry is
    A + e^{i theta} B, so dT/dtheta = i e^{i theta} B = i (T(theta) - T(theta + pi)) / 2; phi
    multiplies the first column: dT/dphi = i T there, 0 in the second. The couplers are unitary,
    so |det T| is the loss alone."""
    theta = p[..., 0] + errors.get("theta", 0.0)
    phi = p[..., 1] + errors.get("phi", 0.0)
    coupled = (errors.get("e1", 0.0), errors.get("e2", 0.0), errors.get("loss_db", 0.0))
    t = mzi_entries(theta, phi, *coupled)
    flipped = mzi_entries(theta + np.pi, phi, *coupled)
    d_theta = [0.5j * (a - b) for a, b in zip(t, flipped)]
    zero = np.zeros_like(t[1])
    d_phi = [1j * t[0], zero, 1j * t[2], zero]
    square = lambda e: np.stack([np.stack(e[:2], -1), np.stack(e[2:], -1)], -2)  # noqa: E731
    return square(t), square(d_theta), square(d_phi), np.abs(t[0] * t[3] - t[1] * t[2])


def gradient(p: np.ndarray, s: np.ndarray, errors: dict, target: np.ndarray):
    """(L per mesh (M,), dL/dphases (M, Z, 2), dL/dscreen (M, N)) for meshes set to ``p``, ``s``."""
    m, n = s.shape
    blocks, d_theta, d_phi, det = _blocks(p, errors)
    columns = [(start, tops) for start, tops in layout(n) if len(tops)]
    a = np.zeros((m, n, n), complex)
    a[:, np.arange(n), np.arange(n)] = 1.0
    for start, tops in columns:
        rows = slice(int(tops[0]), int(tops[0]) + 2 * len(tops))
        pairs = a[:, rows].reshape(m, len(tops), 2, n)
        a[:, rows] = np.matmul(blocks[:, start:start + len(tops)], pairs).reshape(m, -1, n)
    phase = np.exp(1j * (s + errors.get("screen", 0.0)))
    mesh = a * phase[:, :, None]
    g = mesh - target
    loss = (np.abs(g) ** 2).sum(axis=(-2, -1))
    d_screen = -2.0 * np.imag((np.conj(g) * mesh).sum(-1))
    d_phases = np.empty_like(p)
    back = np.conj(phase)[:, :, None] * g                                  # dL/dA_N*
    for start, tops in reversed(columns):
        k = len(tops)
        rows, mzis = slice(int(tops[0]), int(tops[0]) + 2 * k), slice(start, start + k)
        inverse = np.conj(np.swapaxes(blocks[:, mzis], -1, -2))
        after = a[:, rows].reshape(m, k, 2, n)
        before = np.matmul(inverse, after) / det[:, mzis, None, None]   # T^-1 = T^H / |det T|
        out = back[:, rows].reshape(m, k, 2, n)
        h = np.conj(np.matmul(out, np.conj(np.swapaxes(before, -1, -2))))   # conj(dL/dT*)
        d_phases[:, mzis, 0] = 2.0 * np.real((h * d_theta[:, mzis]).sum((-2, -1)))
        d_phases[:, mzis, 1] = 2.0 * np.real((h * d_phi[:, mzis]).sum((-2, -1)))
        back[:, rows] = np.matmul(inverse, out).reshape(m, -1, n)
        a[:, rows] = before.reshape(m, -1, n)
    return loss, d_phases, d_screen
