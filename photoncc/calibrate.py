"""Calibration: estimate an MZI chip's static errors from measurements alone (``photoncc calibrate``).

The device is reached only through the measurement interface (``sim.measure``: program the mesh
pair, send input fields, read the outputs' in-phase and quadrature parts). The errors are not
given, only measurements, as in the DAT paper's setting (Zheng et al., arXiv 2212.06141).

1. **Each mesh on its own.** With one attenuator open (k) and the others closed, the device is the
   rank-1 matrix u_k v_k^T (column k of the output mesh, row k of the input mesh); sending the N
   unit fields reads it whole. A reference setting (U0, V0) is measured and split once,
   u_k v_k^T = x_k w_k^T (its SVD); then ``probes - 1`` settings of the output mesh with the input
   mesh at V0 give each column u_k = R_k conj(w_k) / |w_k|^2, and as many settings of the input mesh
   with the output one at U0 give v_k^T = x_k^H R_k / |x_k|^2. Every estimate is in the one gauge of
   the reference split (a phase per mode between the meshes, which the chip's model absorbs into
   its offsets), and is projected onto the nearest unitary.
2. **Fit each mesh's errors** to its measured matrices (``fit_mesh``): the chip's model of that
   mesh (``mzi_mesh``: every theta, phi and output phase with its offset and, when the profile
   has splitter errors, every coupler with its e) is run at each setting and fitted by least
   squares, sum over settings of |T_model - T_measured|^2, with L-BFGS on its analytic gradient
   (the mesh run forwards column by column, storing each column's input, then backwards). For
   the output mesh the measured matrices carry unknown phases on their inputs (the reference
   split's gauge): they are fitted too, then moved through the mesh into the phi and output
   offsets. The start is the ideal chip, with the output and gauge phases read off the
   measurements.

The estimate is a chip file (``kind`` "estimate", ``measurements``: the input vectors sent) that
``compile --chip`` programs for. Settings are drawn from ``seed``; each is probes x N x N vectors.
"""
from __future__ import annotations

import numpy as np

from . import chip as chips
from .devices.mzi_mesh import mesh_matrix, mzi_count, quantised
from .errors import UserError


def calibrate(profile, device, probes: int = 12, seed: int = 0, progress=None) -> chips.Chip:
    """The chip of ``profile`` that ``device`` (the measurement interface) is, estimated from
    ``probes`` settings of each mesh (module docstring); ``progress(done, total)`` per setting."""
    if profile["architecture"] != "mzi":
        raise UserError(f"calibrate: profile {profile['name']!r} is not an MZI-mesh profile (architecture "
                        f"{profile['architecture']!r}); calibration estimates the static errors of MZI meshes")
    if probes < 3:
        raise UserError("--probes must be at least 3 (each MZI's phase offset and couplers are fitted over settings)")
    n, bits = device.ports, device.phase_bits
    z = mzi_count(n)
    rng = np.random.default_rng(seed)
    draw = lambda: (quantised(rng.uniform(0, 2 * np.pi, (z, 2)), bits),  # noqa: E731
                    quantised(rng.uniform(0, 2 * np.pi, n), bits))
    u_settings = [draw() for _ in range(probes)]
    v_settings = [draw() for _ in range(probes)]
    total, done = 2 * probes - 1, 0

    def measure(u_set, v_set):
        nonlocal done
        out = np.empty((n, n, n), np.complex128)
        phases = np.stack([v_set[0], u_set[0]])
        screens = np.stack([v_set[1], u_set[1]])
        for k in range(n):
            atten = np.zeros(n)
            atten[k] = np.pi  # amplitude sin(pi / 2) = 1: this attenuator open, the others closed
            device.program(phases, screens, atten)
            out[k] = device.send(np.eye(n)).T  # column j: the outputs for unit field j
        done += 1
        if progress is not None:
            progress(done, total)
        return out

    reference = measure(u_settings[0], v_settings[0])
    left, s, right = np.linalg.svd(reference)
    x = left[:, :, 0] * np.sqrt(s[:, :1])            # (k, N): u_k in the reference's gauge
    w = right[:, 0, :] * np.sqrt(s[:, :1])           # (k, N): v_k^T
    u_hat = [x.T]
    v_hat = [w]
    for setting in u_settings[1:]:
        r = measure(setting, v_settings[0])
        u_hat.append(np.einsum("kij,kj->ik", r, np.conj(w)) / np.sum(np.abs(w) ** 2, axis=1))
    for setting in v_settings[1:]:
        r = measure(u_settings[0], setting)
        v_hat.append(np.einsum("ki,kij->kj", np.conj(x), r) / np.sum(np.abs(x) ** 2, axis=1)[:, None])
    meshes = {0: (np.stack([unitary(m) for m in v_hat]), v_settings),
              1: (np.stack([unitary(m) for m in u_hat]), u_settings)}
    fitted = [fit_mesh(measured, settings, profile, gauge=k == 1) for k, (measured, settings) in sorted(meshes.items())]
    arrays = {key: np.stack([f[key] for f in fitted]) for key in chips.MZI_ARRAYS}
    return chips.estimate(profile, arrays, seed, device.vectors)


def unitary(m: np.ndarray) -> np.ndarray:
    """The unitary nearest to ``m`` (polar decomposition)."""
    p, _, q = np.linalg.svd(m)
    return p @ q


def fit_mesh(measured: np.ndarray, settings: list, profile, gauge: bool, iterations: int = 300) -> dict:
    """One mesh's errors (chip arrays for that mesh) from its measured matrices (S, N, N) at
    ``settings`` [(phases (Z, 2), screen (N,))]: the chip model (phase offsets of every theta, phi
    and output phase, and with the profile's splitter errors each coupler's e) fitted to the
    measurements by least squares, sum_s |T_model(s) - T_measured(s)|^2 (L-BFGS, analytic gradient
    through the mesh column by column). ``gauge``: the measured matrices carry unknown phases on
    their inputs (the output mesh, in the reference split's gauge): fitted too, then moved into the
    phi and output offsets (an input phase passes an MZI as T(theta, phi) diag(x0, x1) =
    x1 T(theta, phi + x0 - x1))."""
    phases_set = np.stack([p for p, _ in settings])                    # (S, Z, 2)
    screens_set = np.stack([s for _, s in settings])                   # (S, N)
    n = measured.shape[-1]
    z = mzi_count(n)
    splitters = profile["noise"]["splitter_sigma"] > 0
    kind = profile["mesh"]["layout"]
    nominal = mesh_matrix(phases_set, screens_set, kind=kind)
    g0 = np.angle(np.einsum("sin,sin->n", np.conj(nominal), measured)) if gauge else np.zeros(n)
    with_gauge = nominal * np.exp(1j * g0)[None, None, :]
    sc0 = np.angle(np.einsum("sni,sni->n", np.conj(with_gauge), measured))
    params = _Params(n, kind, splitters, gauge)
    x0 = params.pack(np.zeros(z), np.zeros(z), sc0, np.zeros(z), np.zeros(z), g0)
    x = _lbfgs(lambda v: _objective(v, params, phases_set, screens_set, measured), x0, iterations)
    d_theta, d_phi, d_screen, e1, e2, g = params.unpack(x)
    if gauge:  # move the input phases through the mesh into the phi and screen offsets
        d_phi, d_screen = _push_inputs(n, kind, g, d_phi, d_screen)
    wrap = lambda a: np.angle(np.exp(1j * a))  # noqa: E731
    return {"theta": wrap(d_theta), "phi": wrap(d_phi), "screen": wrap(d_screen), "e1": np.clip(e1, -1, 1),
            "e2": np.clip(e2, -1, 1), "loss_db": np.zeros(z)}


class _Params:
    """Where each parameter sits in the fitted vector (of a mesh of N ports and layout ``kind``)."""

    def __init__(self, n: int, kind: str, splitters: bool, gauge: bool):
        self.n, self.kind, self.z, self.splitters, self.gauge = n, kind, mzi_count(n), splitters, gauge

    def pack(self, theta, phi, screen, e1, e2, g):
        parts = [theta, phi, screen] + ([e1, e2] if self.splitters else []) + ([g] if self.gauge else [])
        return np.concatenate(parts)

    def unpack(self, x):
        z, n = self.z, self.n
        theta, phi, screen = x[:z], x[z:2 * z], x[2 * z:2 * z + n]
        at = 2 * z + n
        e1 = e2 = np.zeros(z)
        if self.splitters:
            e1, e2 = x[at:at + z], x[at + z:at + 2 * z]
            at += 2 * z
        g = x[at:at + n] if self.gauge else np.zeros(n)
        return theta, phi, screen, e1, e2, g


def _objective(x, params, phases_set, screens_set, measured):
    """sum_s |T_model(s) - measured(s)|^2 and its gradient (the mesh run forwards, storing each
    column's input, then backwards)."""
    from .devices.mzi_mesh import layout as mesh_layout, mzi_entries
    d_theta, d_phi, d_screen, e1, e2, g = params.unpack(x)
    n = params.n
    theta = phases_set[..., 0] + d_theta
    phi = phases_set[..., 1] + d_phi
    t = np.stack(mzi_entries(theta, phi, e1, e2), -1).reshape(theta.shape + (2, 2))   # (S, Z, 2, 2)
    count = measured.shape[0]
    a = np.zeros((count, n, n), np.complex128)
    a[:, np.arange(n), np.arange(n)] = np.exp(1j * g)
    stored = []
    for start, tops in mesh_layout(n, params.kind):
        if not len(tops):
            stored.append(None)
            continue
        first = int(tops[0])
        pairs = a[:, first:first + 2 * len(tops), :].reshape(count, len(tops), 2, n)
        stored.append(pairs.copy())
        pairs[...] = np.matmul(t[:, start:start + len(tops)], pairs)
    screen = np.exp(1j * (screens_set + d_screen))                                     # (S, N)
    model = a * screen[:, :, None]
    diff = model - measured
    value = float(np.sum(np.abs(diff) ** 2))
    grad_t = 2.0 * diff                                  # dL = Re sum conj(G) dT
    g_screen = np.sum(np.real(np.conj(grad_t) * 1j * model), axis=(0, 2))
    grad_a = grad_t * np.conj(screen)[:, :, None]
    h = np.zeros(t.shape, np.complex128)                 # per MZI and setting: G in^H
    for (start, tops), pairs_in in zip(reversed(mesh_layout(n, params.kind)), reversed(stored)):
        if pairs_in is None:
            continue
        first = int(tops[0])
        gp = grad_a[:, first:first + 2 * len(tops), :].reshape(count, len(tops), 2, n)
        h[:, start:start + len(tops)] = np.matmul(gp, np.conj(np.swapaxes(pairs_in, -1, -2)))
        gp[...] = np.matmul(np.conj(np.swapaxes(t[:, start:start + len(tops)], -1, -2)), gp)
    g_g = np.real(np.conj(grad_a[:, np.arange(n), np.arange(n)]) * 1j * np.exp(1j * g)).sum(axis=0)
    hc = np.conj(h)
    # derivatives of the entries (module mzi_mesh.mzi_entries) in theta, phi, e1, e2
    r1, k1 = np.sqrt((1 + e1) / 2), np.sqrt((1 - e1) / 2)
    r2, k2 = np.sqrt((1 + e2) / 2), np.sqrt((1 - e2) / 2)
    w, p = np.exp(1j * theta), np.exp(1j * phi)
    d_t = np.stack([1j * w * r2 * r1 * p, -w * r2 * k1, -w * k2 * r1 * p, -1j * w * k2 * k1], -1).reshape(t.shape)
    g_theta = np.real(np.sum(d_t * hc, axis=(-2, -1))).sum(axis=0)
    d_p = np.stack([1j * t[..., 0, 0], np.zeros_like(p), 1j * t[..., 1, 0], np.zeros_like(p)], -1).reshape(t.shape)
    g_phi = np.real(np.sum(d_p * hc, axis=(-2, -1))).sum(axis=0)
    g_e1 = g_e2 = None
    if params.splitters:
        dr1, dk1 = 1 / (4 * np.maximum(r1, 1e-9)), -1 / (4 * np.maximum(k1, 1e-9))
        dr2, dk2 = 1 / (4 * np.maximum(r2, 1e-9)), -1 / (4 * np.maximum(k2, 1e-9))
        d1 = np.stack([(w * r2 * dr1 - k2 * dk1) * p, 1j * (w * r2 * dk1 + k2 * dr1), 1j * (w * k2 * dr1 + r2 * dk1) * p,
                       r2 * dr1 - w * k2 * dk1], -1).reshape(t.shape)
        d2 = np.stack([(w * dr2 * r1 - dk2 * k1) * p, 1j * (w * dr2 * k1 + dk2 * r1), 1j * (w * dk2 * r1 + dr2 * k1) * p,
                       dr2 * r1 - w * dk2 * k1], -1).reshape(t.shape)
        g_e1 = np.real(np.sum(d1 * hc, axis=(-2, -1))).sum(axis=0)
        g_e2 = np.real(np.sum(d2 * hc, axis=(-2, -1))).sum(axis=0)
    return value, params.pack(g_theta, g_phi, g_screen, g_e1, g_e2, g_g)


def _lbfgs(f, x, iterations: int, memory: int = 12) -> np.ndarray:
    """Minimise f (returning value and gradient) from x by L-BFGS with a backtracking line search."""
    value, grad = f(x)
    s_hist, y_hist = [], []
    for _ in range(iterations):
        q = grad.copy()
        alphas = []
        for s_k, y_k in reversed(list(zip(s_hist, y_hist))):
            a_k = np.dot(s_k, q) / np.dot(y_k, s_k)
            alphas.append(a_k)
            q -= a_k * y_k
        if y_hist:
            q *= np.dot(s_hist[-1], y_hist[-1]) / np.dot(y_hist[-1], y_hist[-1])
        else:
            q *= 1e-3 / max(np.abs(q).max(), 1e-300)
        for (s_k, y_k), a_k in zip(zip(s_hist, y_hist), reversed(alphas)):
            b_k = np.dot(y_k, q) / np.dot(y_k, s_k)
            q += (a_k - b_k) * s_k
        direction = -q
        slope = np.dot(grad, direction)
        if slope >= 0:
            direction, slope = -grad, -np.dot(grad, grad)
            s_hist, y_hist = [], []
        step = 1.0
        for _ in range(30):
            candidate = x + step * direction
            new_value, new_grad = f(candidate)
            if new_value <= value + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        s_k, y_k = candidate - x, new_grad - grad
        if np.dot(s_k, y_k) > 1e-300:
            s_hist.append(s_k)
            y_hist.append(y_k)
            if len(s_hist) > memory:
                s_hist.pop(0)
                y_hist.pop(0)
        done = value - new_value <= 1e-12 * max(value, 1e-300)
        x, value, grad = candidate, new_value, new_grad
        if done:
            break
    return x


def _push_inputs(n: int, kind: str, g: np.ndarray, d_phi: np.ndarray, d_screen: np.ndarray):
    """Input phases g moved through the mesh into its phi offsets and output screen."""
    from .devices.mzi_mesh import layout as mesh_layout
    pending, d_phi = g.copy(), d_phi.copy()
    for start, tops in mesh_layout(n, kind):
        if len(tops):
            d_phi[start:start + len(tops)] += pending[tops] - pending[tops + 1]
            pending[tops] = pending[tops + 1]
    return d_phi, d_screen + pending
