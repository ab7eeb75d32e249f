"""The coherent MZI mesh (compile side): how a Linear layer becomes the phases of MZI meshes.

A coherent device multiplies fields, not powers: inputs and weights are signed, so no
non-negative transform is needed. For a layer y = W x + b whose input lies in [lo, hi] per channel:

1. **DAC**: each channel's modulator drives a field e = (x' - lo) / h - 1 in [-1, 1] (h = alpha / 2,
   alpha = hi - lo; x' is x clipped to [lo, hi], on ``input_bits`` levels; a channel with alpha = 0
   gets no light), so W x + b = W' e + b' with W' = W diag(h) and b' = b + W (lo + h), the bias
   added electronically after the detectors;
2. **tiles**: W' (per group) is cut into N x N tiles (``mesh.ports`` = N, zero-padded:
   ``devices.tiles``); a tile runs on one mesh pair at a time (time multiplexed);
3. **SVD**: each tile W'_rq = U S V^T; the input mesh realises V^T, a column of attenuators
   S / s_max (set as MZI attenuators, amplitude sin(theta_s / 2)), the output mesh U, and the
   electronics restore the tile's scale: gain = s_max / (nominal loss of the two meshes);
4. **Clements or Reck** (``mesh.layout``): U and V^T (stacked, every tile of the layer at once) as
   real rotations (``clements.givens``), then the phases of the physical MZIs
   (``clements.set_phases``), for an ideal mesh or, given a chip's measured static errors, for
   that chip (error-aware: each MZI
   solved for its own couplers, the phase offsets subtracted), quantised to ``phase_bits``;
5. **detection**: homodyne (the in-phase part of each output field: signed), one read per output
   port and tile; the electronics sum a row's reads over its Q tiles: y = sum_q gain_rq z_rq + b'.

IR/program form: ``Mesh(x, phases, screens, atten, gain, bias, lo, alpha[, adc])`` with phases
(G, R, Q, 2, Z, 2) (mesh 0 = V^T at the input, 1 = U; theta and phi of every MZI), screens
(G, R, Q, 2, N), atten (G, R, Q, N), all float64 radians or, with ``phase_bits``, uint16 codes;
gain (G, R, Q), bias (G, M) float64; lo and alpha (G, K) in the model's dtype; adc (G, R, Q, N, 2)
(``program.MESH_INPUTS``). The program holds phases and gains, never the matrix: the simulator
rebuilds each mesh's transfer matrix from them (``mzi_mesh.mesh_matrix``).
"""
from __future__ import annotations

import numpy as np

from .. import cpu
from . import clements
from .refine import refine, tile_error
from .mzi_mesh import decode, direct_form, encode, mesh_matrix, mzi_count, nominal_loss, tile_matrices
from .tiles import tile

SIGNED = True
OP = "Mesh"
MESHES = ("V", "U")  # mesh 0 realises V^T (input side), mesh 1 realises U


def lower(w, b, lo, alpha, dtype, profile, chip=None, refine_steps: int = 0):
    """The mesh form of one layer (``devices`` interface, ``lower``): per group W (G, M, K), b
    (G, M), lo and alpha (G, K) -> (tensors by MESH_INPUTS name, attributes, compile facts).
    ``chip``: the static errors to program for (``photoncc.chip.Chip``), or None (an ideal mesh);
    ``refine_steps``: with a chip, steps of global refinement of each tile after the local
    correction (``devices.refine``).
    The facts: per mesh MZIs that cannot be set exactly, and with a chip the meshes' fidelity to
    their SVD factors before and after the local correction, the tiles' relative error as
    detected before error-aware programming and after it (refinement included) and the
    refinement steps taken."""
    mesh = profile["mesh"]
    n, bits, kind = mesh["ports"], profile["precision"]["phase_bits"], mesh["layout"]
    w = np.asarray(w, np.float64)
    half = np.asarray(alpha, np.float64) / 2.0
    bias = np.asarray(b, np.float64) + np.einsum("gmk,gk->gm", w, np.asarray(lo, np.float64) + half)
    tiles = tile(w * half[:, None, :], n, n)                                    # (G, R, Q, N, N)
    errors = chip.mesh_errors() if chip is not None else [None, None]
    u, s, vt, tau, d, phases, screens, unreachable = _decompose(tiles, errors, bits, kind)
    top = s[..., 0]
    atten = np.where(top[..., None] > 0, s / np.where(top > 0, top, 1.0)[..., None], 0.0)
    atten = decode(encode(2.0 * np.arcsin(np.clip(atten, 0.0, 1.0)), bits), bits)   # the attenuators' settings
    scale = nominal_loss(n, mesh["loss_db"], kind) ** 2
    gain = top / scale
    facts = {"unreachable": [int(c) for c in unreachable.reshape(-1, 2).sum(axis=0)]}
    if chip is not None:
        facts["refine_steps"] = refine_steps
        nominal = [clements.set_phases(tau[..., k, :], d[..., k, :], None, bits, kind=kind)[:2] for k in range(2)]
        target = np.stack([vt, u], axis=-3)
        before = (np.stack([x for x, _ in nominal], axis=-3), np.stack([x for _, x in nominal], axis=-2))
        facts["fidelity_before"] = mesh_fidelity(*before, errors, target, kind)
        facts["fidelity_after"] = mesh_fidelity(phases, screens, errors, target, kind)
        detected = tiles * (scale / np.where(top > 0, top, 1.0))[..., None, None]   # the tiles over their gain
        phases, screens, atten = refine(phases, screens, atten, errors, detected, mesh["loss_db"], refine_steps, bits,
                                        kind=kind)
        facts["tile_error_before"] = relative_error(*before, atten, errors, detected, mesh["loss_db"], kind)
        facts["tile_error_after"] = relative_error(phases, screens, atten, errors, detected, mesh["loss_db"], kind)
    tensors = {"phases": encode(phases, bits), "screens": encode(screens, bits),
               "atten": encode(atten, bits), "gain": gain,
               "bias": bias, "lo": np.asarray(lo, dtype), "alpha": np.asarray(alpha, dtype)}
    attrs = {"ports": n, "layout": kind, "loss_db": float(mesh["loss_db"]), "phase_bits": bits,
             "input_bits": profile["precision"]["input_bits"], "output_bits": profile["precision"]["output_bits"]}
    return tensors, attrs, facts


CHUNK_TILES = 256  # tiles decomposed at once, shared over the cores; fixed, so programs never depend on the cores


def _decompose(tiles: np.ndarray, errors, bits, kind: str):
    """Per tile (..., N, N): the SVD U S V^T, the rotations (tau (..., 2, Z), d (..., 2, N)) of V^T
    (mesh 0) and U (mesh 1) on meshes of layout ``kind``, their phases (..., 2, Z, 2) and screens (..., 2, N) for the
    meshes of ``errors``, and per mesh the MZIs that cannot be set exactly (..., 2). Every tile is
    computed on its own, so the tiles go in fixed chunks to ``cpu.threaded_map``."""
    lead, n = tiles.shape[:-2], tiles.shape[-1]
    flat = tiles.reshape(-1, n, n)

    def chunk(part):
        u, s, vt = np.linalg.svd(flat[part])
        tau, d = clements.givens(np.stack([vt, u], axis=-3), kind)            # (T, 2, Z), (T, 2, N)
        phases, screens, unreachable = np.empty(tau.shape + (2,)), np.empty(d.shape), np.empty(tau.shape[:2], np.int64)
        for k in range(2):
            phases[:, k], screens[:, k], unreachable[:, k] = clements.set_phases(tau[:, k], d[:, k], errors[k], bits,
                                                                                 kind=kind)
        return u, s, vt, tau, d, phases, screens, unreachable
    parts = [slice(i, i + CHUNK_TILES) for i in range(0, max(len(flat), 1), CHUNK_TILES)]
    results = cpu.threaded_map(chunk, parts)
    return tuple(np.concatenate(arrays).reshape(lead + arrays[0].shape[1:]) for arrays in zip(*results))


def relative_error(phases, screens, atten, errors, target, loss_db: float, kind: str) -> np.ndarray:
    """Per tile, ||detected - T||_F / ||T||_F (0 for a zero tile): the tiles of these settings
    (phases (..., 2, Z, 2), screens (..., 2, N), atten (..., N), radians) as the chip of
    ``errors`` (meshes of layout ``kind``) detects them (``refine.tile_error``), against their targets T."""
    norm = (target ** 2).sum(axis=(-2, -1))
    error = tile_error(phases, screens, atten, errors, target, loss_db, kind=kind)
    return np.sqrt(np.where(norm > 0, error / np.where(norm > 0, norm, 1.0), 0.0))


def mesh_fidelity(phases, screens, errors, target, kind: str) -> np.ndarray:
    """Per tile and mesh (..., 2), the ``fidelity`` of the meshes these settings (phases (..., 2,
    Z, 2), screens (..., 2, N), radians) realise on the chip of ``errors`` to their targets (...,
    2, N, N), CHUNK_TILES tiles at a time (memory stays bounded)."""
    n = screens.shape[-1]
    flat = (phases.reshape((-1,) + phases.shape[-3:]), screens.reshape(-1, 2, n), target.reshape(-1, 2, n, n))
    parts = [np.stack([fidelity(mesh_matrix(p[:, k], sc[:, k], errors[k], kind=kind), t[:, k]) for k in range(2)],
                      axis=-1)
             for p, sc, t in (tuple(x[i:i + CHUNK_TILES] for x in flat) for i in range(0, len(flat[1]), CHUNK_TILES))]
    return np.concatenate(parts or [np.zeros((0, 2))]).reshape(screens.shape[:-1])


def fidelity(realised: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per matrix, |Tr(target^H realised)|^2 / (N Tr(realised^H realised)): 1 when the mesh
    realises its target exactly (up to a global phase)."""
    n = target.shape[-1]
    overlap = np.abs(np.einsum("...ij,...ij->...", np.conj(target), realised)) ** 2
    power = np.einsum("...ij,...ij->...", np.conj(realised), realised).real
    return overlap / np.maximum(n * power, 1e-300)


def realised_tiles(tensors: dict, attrs: dict, profile, errors=(None, None), dtype=np.complex128) -> np.ndarray:
    """The tiles' real transfer matrices as detected (G, R, Q, N, N), float64, gain excluded: the
    in-phase part of U_mesh diag(atten) V_mesh with the nominal loss, rebuilt from the phases
    (``mzi_mesh.tile_matrices``, as the simulator rebuilds them), in ``dtype``."""
    return tile_matrices(tensors["phases"], tensors["screens"], tensors["atten"], attrs["phase_bits"], attrs["ports"],
                         attrs["loss_db"], errors, dtype, kind=attrs["layout"])


def fields(x: np.ndarray, lo: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The modulators' fields e = (clip(x, lo, hi) - lo) / h - 1 (0 where alpha = 0), x (P, G, K)."""
    half = alpha / 2.0
    e = (np.clip(x, lo, lo + alpha) - lo) / np.where(half > 0, half, 1.0) - 1.0
    return np.where(half > 0, e, 0.0)


def read_extremes(matrices: np.ndarray, x: np.ndarray, lo: np.ndarray, alpha: np.ndarray):
    """Per tile and output port, the smallest and largest homodyne read (gain excluded) of the
    input vectors x (P, G*K) (im2col columns for a convolution) through ``matrices`` (G, R, Q, N,
    N): two arrays (G, R, Q, N)."""
    groups, r, q, n, _ = matrices.shape
    k = lo.shape[1]
    e = fields(x.reshape(-1, groups, k).astype(np.float64), lo.astype(np.float64), alpha.astype(np.float64))
    flat = np.zeros((groups, e.shape[0], q * n))
    flat[:, :, :k] = e.transpose(1, 0, 2)
    inputs = flat.reshape(groups, e.shape[0], q, n).transpose(0, 2, 1, 3)      # (G, Q, P, N)
    reads = np.matmul(inputs[:, None], np.swapaxes(matrices, -1, -2))           # (G, R, Q, P, N)
    return reads.min(axis=3), reads.max(axis=3)


def count_mzis(tensors: dict, attrs: dict) -> int:
    """MZIs the layer's tiles set: 2 meshes of N (N - 1) / 2 per tile."""
    return int(np.prod(tensors["phases"].shape[:3])) * 2 * mzi_count(attrs["ports"])


def train_form(w, b, lo, alpha, profile, error=None, chip=None, adc=None) -> dict:
    """The layer as a chip's meshes run it, for fine-tuning's forward (``photoncc.train``): the
    compile's own lowering of weights ``w`` (M, K) or a convolution's (M, C/G, *k) and bias ``b``
    (M,) for input ranges ``lo``, ``alpha`` (G, K/G), programmed for ``chip`` (its measured errors)
    or for an ideal mesh, realised on ``chip`` or on ``error`` (another chip's static errors: a
    fresh draw per step, so that the weights learnt hold on any chip), then the simulator's direct
    form (``mzi_mesh.direct_form``): ``weight`` (w's shape, float32) and ``bias`` (M,) of
    y = W_eff x' + b_eff. Read noise and the ADC are not modelled (the layer's ``adc`` is unused);
    no row gains (``gain`` None)."""
    groups = alpha.shape[0]
    wg = np.asarray(w, np.float64).reshape(groups, w.shape[0] // groups, -1)
    bg = np.asarray(b, np.float64).reshape(groups, -1)
    lo, alpha = np.asarray(lo, np.float64), np.asarray(alpha, np.float64)
    tensors, attrs, _ = lower(wg, bg, lo, alpha, np.float32, profile, chip)
    realised_on = chip if chip is not None else error
    errors = realised_on.mesh_errors() if realised_on is not None else (None, None)
    layer = {"gain": tensors["gain"], "bias": tensors["bias"], "lo": lo, "alpha": alpha}
    form = direct_form(realised_tiles(tensors, attrs, profile, errors), layer, None, np.float32)
    return {"weight": form["weight"].reshape(w.shape), "bias": form["bias"].astype(np.float64), "gain": None}
