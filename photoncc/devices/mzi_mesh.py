"""MZI-mesh physics shared by the compiler and the simulator: the mesh's layout, one MZI's transfer
matrix with its chip's static errors, a mesh's transfer matrix rebuilt from its phases, and the
phase codes. Nothing here decomposes a matrix (that is the compiler's ``devices.clements``).

**One MZI** on modes (a, a + 1): a phase phi on its upper input, a directional coupler, a phase
theta on the upper arm, a second coupler (Clements et al., Optica 3:1460, 2016, with the physical
couplers of neurophox's ``bs_error``):

    T(theta, phi) = B(e2) diag(e^{i theta}, 1) B(e1) diag(e^{i phi}, 1)
    B(e) = [[sqrt((1 + e) / 2), i sqrt((1 - e) / 2)], [i sqrt((1 - e) / 2), sqrt((1 + e) / 2)]]

e is a coupler's splitting error (its bar power is (1 + e) / 2 instead of 1/2). With e = 0,
T = i e^{i theta / 2} [[e^{i phi} sin(theta / 2), cos(theta / 2)], [e^{i phi} cos(theta / 2),
-sin(theta / 2)]]. A chip's static errors (``photoncc.chip``): every theta and phi is realised
with an offset (the phase shifter's error), every coupler has its e, every MZI an insertion loss
in dB (both outputs scaled by 10^(-dB / 20)).

**Layouts** (``mesh.layout``), each a sequence of columns from the input; column c holds MZIs on
mode pairs (m, m + 1) with m = c mod 2, c mod 2 + 2, ..., N(N - 1) / 2 MZIs in all, numbered column
by column, top to bottom (``layout``):

* ``clements`` (rectangular; Clements et al., Optica 3:1460, 2016): N columns, every pair of its
  parity (m + 1 < N) in each;
* ``reck`` (triangular; Reck et al., PRL 73:58, 1994): 2N - 3 columns, column c holding the pairs
  of its parity with m <= min(c, 2N - 4 - c): diagonal s of the triangle (s = 0 .. N - 2) is the
  MZIs on (k, k + 1), k = 0 .. N - 2 - s, in columns k + 2s.

Light enters column 0; after the last column an output phase screen diag(e^{i s_n}) (one phase
shifter per mode). A mode that passes a column without an MZI (the edge modes; in a Reck mesh
every mode outside the triangle) crosses a loss-matched section: every path crosses as many
sections as the layout has columns (``depth``), so the nominal loss is one factor
10^(-depth dB / 20) per mesh, which the compiler restores electronically.

**Phase codes** (``precision.phase_bits`` = b): a phase is set as code x 2 pi / 2^b, codes
0 .. 2^b - 1 (uint16); without phase_bits the program holds the phases as float64 radians.

Every function is vectorised over leading axes (tiles): the mesh is built column by column, each
column one set of NumPy operations on every tile and every MZI of that column at once.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .. import cpu

LAYOUTS = ("clements", "reck")
PHASE_CODE = np.uint16  # the integer type of phase codes (phase_bits <= 16)


@lru_cache(maxsize=None)
def layout(ports: int, kind: str) -> tuple:
    """Per column of an N-port mesh of layout ``kind`` (module docstring), (first MZI index, upper
    modes of its MZIs)."""
    assert kind in LAYOUTS, kind  # the profile's schema and the program check allow no other
    if kind == "clements":  # per column, the highest upper mode of its MZIs
        highest = [ports - 2] * ports
    else:
        highest = [min(c, 2 * ports - 4 - c) for c in range(max(2 * ports - 3, 1))]
    columns, start = [], 0
    for c, last in enumerate(highest):
        tops = np.arange(c % 2, last + 1, 2)
        tops.flags.writeable = False
        columns.append((start, tops))
        start += len(tops)
    assert start == mzi_count(ports)
    return tuple(columns)


def depth(ports: int, kind: str) -> int:
    """The columns of a mesh: the sections every path crosses (N for Clements, 2N - 3 for Reck)."""
    return len(layout(ports, kind))


def mzi_count(ports: int) -> int:
    """MZIs of an N-port mesh (either layout): N (N - 1) / 2."""
    return ports * (ports - 1) // 2


def coupler(e) -> tuple[np.ndarray, np.ndarray]:
    """(bar, cross) amplitudes of a coupler with splitting error e: sqrt((1 + e) / 2), sqrt((1 - e) / 2)."""
    e = np.clip(np.asarray(e, np.float64), -1.0, 1.0)
    return np.sqrt((1.0 + e) / 2.0), np.sqrt((1.0 - e) / 2.0)


def mzi_entries(theta, phi, e1=0.0, e2=0.0, loss_db=0.0):
    """The four entries (t00, t01, t10, t11) of T(theta, phi) (module docstring) with couplers of
    splitting errors e1 (input side) and e2 and an insertion loss in dB; broadcast over arrays."""
    r1, k1 = coupler(e1)
    r2, k2 = coupler(e2)
    w = np.exp(1j * np.asarray(theta, np.float64))
    m00 = w * (r2 * r1) - k2 * k1
    m01 = 1j * (w * (r2 * k1) + k2 * r1)
    m10 = 1j * (w * (k2 * r1) + r2 * k1)
    m11 = r2 * r1 - w * (k2 * k1)
    p = np.exp(1j * np.asarray(phi, np.float64))
    if np.any(loss_db):
        amplitude = 10.0 ** (-np.asarray(loss_db, np.float64) / 20.0)
        m00, m01, m10, m11 = (m * amplitude for m in (m00, m01, m10, m11))
    return m00 * p, m01, m10 * p, m11


def bar_power(e1, e2) -> tuple[np.ndarray, np.ndarray]:
    """The bar powers |t00|^2 an MZI with couplers e1, e2 reaches, as (low, gap): it reaches
    [low, 1 - gap], low = (r1 r2 - k1 k2)^2, 1 - gap = (r1 r2 + k1 k2)^2 (|t00|^2 = A - B cos
    theta with A, B their mean and half-difference): all of [0, 1] only when e1 = e2 = 0 (e1 + e2 = 0
    reaches 0, e1 = e2 reaches 1). In forms exact at those points: r1 r2 - k1 k2 = (e1 + e2) /
    (sqrt(P) + sqrt(Q)) and gap = (e1 - e2)^2 / (2 (1 - e1 e2 + sqrt(P Q))), P = (1 + e1)(1 + e2),
    Q = (1 - e1)(1 - e2)."""
    e1 = np.clip(np.asarray(e1, np.float64), -1.0, 1.0)
    e2 = np.clip(np.asarray(e2, np.float64), -1.0, 1.0)
    p, q = (1.0 + e1) * (1.0 + e2), (1.0 - e1) * (1.0 - e2)
    low = ((e1 + e2) / np.maximum(np.sqrt(p) + np.sqrt(q), 1e-300)) ** 2
    gap = (e1 - e2) ** 2 / (2.0 * (1.0 - e1 * e2 + np.sqrt(p * q)))
    return low, gap


def mesh_matrix(phases: np.ndarray, screen: np.ndarray, errors: dict | None = None,
                dtype=np.complex128, *, kind: str) -> np.ndarray:
    """The transfer matrices (..., N, N) of meshes of layout ``kind`` set to ``phases`` (..., Z, 2)
    (theta, phi per MZI, radians) and output ``screen`` (..., N), realised with the static
    ``errors`` of one physical mesh (None: an ideal mesh), a dict of arrays broadcast against the
    settings:
    ``theta``, ``phi`` (Z,) phase offsets, ``screen`` (N,), ``e1``, ``e2`` (Z,) splitting errors,
    ``loss_db`` (Z,) per-MZI insertion loss (without the nominal loss, which the caller scales).
    Built column by column on every mesh at once: a column's MZIs act on pairs of adjacent rows,
    a (pairs, 2, N) view of the matrix, one small product per pair."""
    ports = screen.shape[-1]
    errors = errors or {}
    theta = phases[..., 0] + errors.get("theta", 0.0)
    phi = phases[..., 1] + errors.get("phi", 0.0)
    t00, t01, t10, t11 = mzi_entries(theta, phi, errors.get("e1", 0.0), errors.get("e2", 0.0),
                                     errors.get("loss_db", 0.0))
    blocks = np.stack([np.stack([t00, t01], -1), np.stack([t10, t11], -1)], -2).astype(dtype)  # (..., Z, 2, 2)
    a = column_product(blocks, ports, kind)
    s = np.exp(1j * (screen + errors.get("screen", 0.0))).astype(dtype)
    return a * s[..., :, None]


def column_product(blocks: np.ndarray, ports: int, kind: str) -> np.ndarray:
    """C_last ... C_0 (..., N, N), the product of the columns of MZIs of a mesh of layout ``kind``,
    from each MZI's 2 x 2 block (..., Z, 2, 2) in the layout's order (in the blocks' dtype): the
    mesh before its output screen."""
    lead = blocks.shape[:-3]
    a = np.zeros(lead + (ports, ports), blocks.dtype)
    idx = np.arange(ports)
    a[..., idx, idx] = 1.0
    for start, tops in layout(ports, kind):
        if not len(tops):
            continue
        first = int(tops[0])
        rows = a[..., first:first + 2 * len(tops), :]
        pairs = rows.reshape(lead + (len(tops), 2, ports))
        pairs[...] = np.matmul(blocks[..., start:start + len(tops), :, :], pairs)
    return a


def real_product(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Re(u @ v) of complex matrices as Re u Re v - Im u Im v: two real products where the complex
    one does four (the same sums, the same float64 result; about 5x faster on 64-port meshes)."""
    return np.matmul(u.real, v.real) - np.matmul(u.imag, v.imag)


TILE_BLOCK = 128  # tiles whose meshes are built at once, a block per thread (a 64-port pair: 128 x 128 KB)


def tile_matrices(phases, screens, atten, bits, ports: int, loss_db: float, errors=(None, None),
                  dtype=np.complex128, *, kind: str) -> np.ndarray:
    """The detected matrices of a layer's tiles (..., N, N), float64: Re(U_mesh diag(atten)
    V_mesh) x the two meshes' nominal loss, each mesh (layout ``kind``) rebuilt from its phases
    (``phases`` (..., 2, Z, 2), ``screens`` (..., 2, N), ``atten`` (..., N): codes with ``bits``,
    or radians) on the chip of ``errors`` (one dict per mesh, or None), in ``dtype``. In fixed
    blocks of TILE_BLOCK tiles shared over the cores (``cpu.threaded_map``); every tile on its
    own, so the result does not depend on the cores."""
    lead = phases.shape[:-3]
    count = int(np.prod(lead))
    flat = (phases.reshape((count,) + phases.shape[-3:]), screens.reshape((count, 2, ports)),
            atten.reshape(count, ports))
    out = np.empty((count, ports, ports))
    loss = nominal_loss(ports, loss_db, kind) ** 2

    def build(part):  # one block of tiles, wholly in one thread
        ph, sc = decode(flat[0][part], bits), decode(flat[1][part], bits)
        v = mesh_matrix(ph[:, 0], sc[:, 0], errors[0], dtype, kind=kind)
        u = mesh_matrix(ph[:, 1], sc[:, 1], errors[1], dtype, kind=kind)
        u *= attenuation(decode(flat[2][part], bits))[:, None, :]
        out[part] = real_product(u, v) * loss
    cpu.threaded_map(build, [slice(start, start + TILE_BLOCK) for start in range(0, count, TILE_BLOCK)])
    return out.reshape(lead + (ports, ports))


def phase_step(bits: int) -> float:
    """The phase of one code step: 2 pi / 2^b."""
    return 2.0 * np.pi / 2 ** bits


def decode(values: np.ndarray, bits: int | None) -> np.ndarray:
    """Phases in radians (float64) from a program's tensor: codes x step, or the float phases."""
    if bits:
        return values.astype(np.float64) * phase_step(bits)
    return values.astype(np.float64, copy=False)


def encode(phases: np.ndarray, bits: int | None) -> np.ndarray:
    """A program's tensor from phases: the nearest codes (uint16), or float64 radians in [0, 2 pi)."""
    if bits:
        return (np.round(np.asarray(phases) / phase_step(bits)) % 2 ** bits).astype(PHASE_CODE)
    return np.mod(phases, 2 * np.pi).astype(np.float64)


def quantised(phases: np.ndarray, bits: int | None) -> np.ndarray:
    """The phases a setting of ``bits`` realises (``decode(encode(...))``)."""
    return decode(encode(phases, bits), bits)


def attenuation(setting: np.ndarray) -> np.ndarray:
    """An attenuator's amplitude transmission sin(theta_s / 2) from its phase theta_s (an MZI
    attenuator driven push-pull: no phase of its own)."""
    return np.sin(np.asarray(setting, np.float64) / 2.0)


def nominal_loss(ports: int, loss_db: float, kind: str) -> float:
    """The amplitude factor of one mesh's nominal loss: ``depth`` sections of ``loss_db`` each."""
    return 10.0 ** (-depth(ports, kind) * loss_db / 20.0)


def direct_form(matrices: np.ndarray, layer: dict, conv, dtype) -> dict:
    """A Mesh layer as one product on the modulated input x' (the simulator's direct form, and
    fine-tuning's device forward): from the tiles' detected matrices (G, R, Q, N, N) and the
    layer's float64 ``gain`` (G, R, Q), ``bias`` (G, M), ``lo``, ``alpha`` (G, K), the weight
    W_eff (G*M, K) or a convolution's kernel, and the constants, in the model's float type:
    y = sum_q gain_rq T_rq e + bias with e = (x' - lo) / h - 1 (h = alpha / 2) is
    W_eff x' + b_eff with W_eff = W / h and b_eff = bias - W (lo / h + 1)."""
    groups, r, q, n, _ = matrices.shape
    m, k = layer["bias"].shape[1], layer["lo"].shape[1]
    w = (matrices * layer["gain"][..., None, None]).transpose(0, 1, 3, 2, 4).reshape(groups, r * n, q * n)[:, :m, :k]
    half = layer["alpha"] / 2.0
    live = half > 0
    scale = np.where(live, 1.0 / np.where(live, half, 1.0), 0.0)               # (G, K)
    const = layer["bias"] - np.einsum("gmk,gk->gm", w, np.where(live, layer["lo"] * scale + 1.0, 0.0))
    weight = w * scale[:, None, :]
    taps = int(np.prod(conv["kernel_shape"])) if conv else 1
    dtype = dtype if np.dtype(dtype).kind == "f" else np.float32
    weight = weight.reshape(groups * m, k).astype(dtype)
    if conv:
        weight = weight.reshape((groups * m, k // taps) + tuple(conv["kernel_shape"]))
    return {"weight": weight, "bias": const.reshape(-1).astype(dtype),
            "lo": layer["lo"].reshape(groups, -1, taps)[..., 0].reshape(-1).astype(dtype),
            "alpha": layer["alpha"].reshape(groups, -1, taps)[..., 0].reshape(-1).astype(dtype)}
