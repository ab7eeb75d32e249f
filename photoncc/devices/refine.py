"""Global refinement of a chip's tile settings (compile side, ``compile --chip --refine STEPS``).

Local error correction (``clements.set_phases``) solves each MZI for its own couplers, one at a
time, so that each mesh realises its SVD factor; an MZI whose imperfect couplers cannot reach its
splitting ratio is set to the nearest one, and its error is left for nobody to absorb.
Refinement asks less of the meshes and lets every setting of a tile absorb it: what the device
detects is only the in-phase part of the tile's product, so gradient descent (Adam, Kingma and Ba
2015) on all theta, phi and output screens of the tile's two meshes and its attenuators at once,
from the local solution, minimises the error of the detected tile

    L = || c Re(M_U diag(a) M_V) - T ||_F^2,   M = diag(e^{i (s + ds)}) C_{N-1} ... C_0

with C_c the column-c MZIs (``mzi_mesh.mzi_entries``) realised with the chip's phase offsets,
splitting errors and losses, a = sin(theta_a / 2) the attenuators' amplitudes, c the meshes'
nominal loss and T the tile's target (its weights over its electronic gain). The two meshes
together have 2 N^2 + N settings for the N^2 entries of a real tile, which is how neighbours of
an unreachable MZI (in either mesh) can make up its error: on 64-port meshes with splitting
errors of 0.10, 300 steps take a tile's relative error ||realised - T|| / ||T|| from about 0.29
(local correction) to 0.01-0.05, where refining each mesh against its own SVD factor reached 0.17
(docs/accuracy.md).

The gradient is reverse mode. X = M_U A M_V (A = diag(a)) has dL/dX* = c E with E the residual, so
dL/dM_U* = c E (A M_V)^H, dL/dM_V* = (M_U A)^H c E, dL/da_i = 2 c Re((M_U^T E)_i . M_V_i). Through a
mesh, column by column: with A_c the product of the columns before c and Gbar_{c+1} = dL/dA_{c+1}*,
each MZI's block T on rows (r, r + 1) has dL/dT* = Gbar_{c+1}[r:r+2] A_c[r:r+2]^H and dL/dx =
2 Re sum conj(dL/dT*) dT/dx; then Gbar_c = C_c^H Gbar_{c+1}. A coupler with splitting error is
still unitary, so A_c is recovered from A_{c+1} as T^H A_{c+1} / loss^2 instead of stored (memory
O(N^2) per mesh, not O(N^3)); for the screen, dL/ds_n = -2 Im sum_k conj(G_nk) M_nk. The
attenuators stay in [0, pi] (amplitudes in [0, 1]). The settings are quantised to ``phase_bits``
afterwards, and a tile whose quantised refinement is no better than its local solution (coarse
phase steps undo small gains) keeps the local solution: refinement never makes a tile worse.
"""
from __future__ import annotations

import numpy as np

from .mzi_mesh import attenuation, column_product, decode, encode, layout, mzi_entries, nominal_loss, real_product, \
    tile_matrices

LEARNING_RATE = 0.02  # radians: Adam's step, below the local solution's typical residual per MZI
CHUNK = 32            # tiles refined at once: memory (CHUNK x N x N complex, a few arrays) stays bounded
BETA1, BETA2 = 0.9, 0.999


def refine(phases: np.ndarray, screens: np.ndarray, atten: np.ndarray, errors, target: np.ndarray, loss_db: float,
           steps: int, bits: int | None = None, *, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The settings of tiles (phases (..., 2, Z, 2), screens (..., 2, N), atten (..., N), radians;
    mesh 0 = V at the input, 1 = U) after ``steps`` Adam steps on L (module docstring), from the
    given ones, for the meshes of static ``errors`` (one ``mzi_mesh.mesh_matrix`` dict per mesh)
    and targets (..., N, N), meshes of layout ``kind`` with the profile's loss per MZI section ``loss_db``; quantised to
    ``bits``; per tile the better of the two (the given settings or the refined ones).
    Deterministic."""
    if steps <= 0:
        return phases, screens, atten
    lead, n = atten.shape[:-1], atten.shape[-1]
    given = [phases.reshape((-1,) + phases.shape[-3:]), screens.reshape(-1, 2, n), atten.reshape(-1, n)]
    flat_t = np.broadcast_to(target, lead + (n, n)).reshape(-1, n, n)
    tuned = [x.copy() for x in given]
    scale = nominal_loss(n, loss_db, kind) ** 2
    for start in range(0, len(flat_t), CHUNK):
        part = slice(start, start + CHUNK)
        settings = _adam([x[part] for x in tuned], errors, flat_t[part], scale, steps, kind)
        for x, value in zip(tuned, settings):
            x[part] = value
    tuned = [decode(encode(x, bits), bits) for x in tuned]
    error = lambda settings: tile_error(*settings, errors, flat_t, loss_db, kind=kind)  # noqa: E731
    better = error(tuned) < error(given)
    chosen = [np.where(better.reshape((-1,) + (1,) * (x.ndim - 1)), x, g) for x, g in zip(tuned, given)]
    return tuple(x.reshape(shape) for x, shape in zip(chosen, (phases.shape, screens.shape, atten.shape)))


def tile_error(phases, screens, atten, errors, target, loss_db: float, *, kind: str) -> np.ndarray:
    """||c Re(M_U diag(a) M_V) - T||_F^2 per tile (settings in radians, (..., 2, Z, 2), (..., 2, N),
    (..., N); meshes of layout ``kind``), the tiles rebuilt as the simulator rebuilds them
    (``mzi_mesh.tile_matrices``)."""
    detected = tile_matrices(phases, screens, atten, None, atten.shape[-1], loss_db, errors, kind=kind)
    return ((detected - target) ** 2).sum(axis=(-2, -1))


def _adam(params: list, errors, target: np.ndarray, scale: float, steps: int, kind: str) -> list:
    first = [np.zeros_like(x) for x in params]
    second = [np.zeros_like(x) for x in params]
    for step in range(1, steps + 1):
        grads = gradient(*params, errors, target, scale, kind)[1:]
        size = LEARNING_RATE * np.sqrt(1 - BETA2 ** step) / (1 - BETA1 ** step)
        for i, g in enumerate(grads):
            first[i] = BETA1 * first[i] + (1 - BETA1) * g
            second[i] = BETA2 * second[i] + (1 - BETA2) * g * g
            params[i] = params[i] - size * first[i] / (np.sqrt(second[i]) + 1e-12)
        params[2] = np.clip(params[2], 0.0, np.pi)
    return params


def gradient(phases, screens, atten, errors, target, scale: float, kind: str):
    """(L per tile (T,), dL/dphases (T, 2, Z, 2), dL/dscreens (T, 2, N), dL/datten (T, N)) for
    tiles set to ``phases``, ``screens``, ``atten`` on meshes of layout ``kind`` (module docstring)."""
    (v, v_cache), (u, u_cache) = (_forward(phases[:, k], screens[:, k], errors[k], kind) for k in range(2))
    amp = attenuation(atten)
    ua = u * amp[:, None, :]
    residual = scale * real_product(ua, v) - target
    loss = (residual ** 2).sum(axis=(-2, -1))
    g = scale * residual                                                    # dL/dX*, X = M_U A M_V
    g_u = np.matmul(g, np.conj(np.swapaxes(amp[:, :, None] * v, -1, -2)))
    g_v = np.matmul(np.conj(np.swapaxes(ua, -1, -2)), g)
    d_amp = 2.0 * scale * np.real((np.matmul(np.swapaxes(u, -1, -2), residual) * v).sum(-1))
    d_phases, d_screens = np.empty_like(phases), np.empty_like(screens)
    for k, (mesh, cache, upstream) in enumerate(((v, v_cache, g_v), (u, u_cache, g_u))):
        d_phases[:, k], d_screens[:, k] = _backward(phases[:, k], mesh, cache, upstream, kind)
    return loss, d_phases, d_screens, d_amp * np.cos(atten / 2.0) / 2.0


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


def _forward(p: np.ndarray, s: np.ndarray, errors: dict, kind: str):
    """The meshes (M, N, N) set to ``p``, ``s``, and what ``_backward`` needs: the product of
    their columns before the screen, the screen's phases and the MZIs' blocks."""
    blocks = _blocks(p, errors)
    a = column_product(blocks[0], s.shape[-1], kind)
    phase = np.exp(1j * (s + errors.get("screen", 0.0)))
    return a * phase[:, :, None], (a, phase, blocks)


def _backward(p: np.ndarray, mesh: np.ndarray, cache, upstream: np.ndarray, kind: str):
    """(dL/dphases (M, Z, 2), dL/dscreen (M, N)) of meshes whose dL/dM* is ``upstream``."""
    a, phase, (blocks, d_theta, d_phi, det) = cache
    m, n = phase.shape
    a = a.copy()
    d_screen = -2.0 * np.imag((np.conj(upstream) * mesh).sum(-1))
    d_phases = np.empty_like(p)
    back = np.conj(phase)[:, :, None] * upstream                            # dL/dA_N*
    for start, tops in reversed([(start, tops) for start, tops in layout(n, kind) if len(tops)]):
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
    return d_phases, d_screen
