"""quantise_banks: turn every bank's ring weights into the integer codes the hardware is set with.

Per bank row (one photodetector and its TIA gain g), for a profile with ``weight_bits`` = b:

1. the row is rescaled to use the whole code range: T <- T / r, g <- g r, r = max over the row of
   T / limit (limit 1 for transmissions; w_max / -w_min for signed weights), so g T is unchanged;
2. static thermal crosstalk (profile ``noise.crosstalk`` = c: a ring's effective weight is
   T_i + c (T_{i-1} + T_{i+1}) along its bank) is pre-compensated: T <- (I + c N)^-1 T along the
   rings of each bank, clipped back into the reachable range;
3. codes = round(T / step), step = 1 / (2^b - 1) (incoherent, codes 0 .. 2^b - 1) or
   1 / (2^(b-1) - 1) (signed, codes clipped to the reachable range);
4. every input-independent error of the realised weights (rounding and crosstalk left over on the
   complement channels, which carry alpha - u, and on the bias ring) is cancelled by a per-row
   electronic offset (``<layer>.offset``, see _correct_bias).

The DAC (``input_bits``) and ADC (``output_bits``) settings are recorded on the instruction and
``set_adc_ranges`` adds each photodetector's ADC input range per tile (measured on the quantised
weights by ranges.adc_ranges; an ADC with a programmable offset and gain); the simulator applies
them.

Requires: tile_banks. Ensures: quantised banks hold integer codes (attrs weight_bits...);
unquantised profiles leave the graph unchanged. The interpreter reads the codes as code x step,
without the crosstalk they compensate (it does not know the profile) and with offsets that cancel
the errors of the weights the device realises: with crosstalk its values are not the device's.
The simulator models the device, and ``adc_ranges`` measures on the graph before this pass.
"""
from __future__ import annotations

import numpy as np

from .. import cpu
from ..ir import Graph, fresh_name, prune, type_of
from ..program import weight_step
from ..simulator import apply_crosstalk
from .tile_banks import tile, untile

BLOCK = 1 << 20  # weights quantised at once (float64 blocks of 8 MB, at least one row of tiles)


def quantise_banks(g: Graph, profile, progress=None) -> Graph:
    """The graph with its banks quantised for ``profile`` (see the module docstring);
    ``progress(done, total)`` after each bank (photoncc/progress.py)."""
    precision = profile["precision"]
    if not any(v is not None for v in precision.values()):
        return g
    consts, types, nodes = dict(g.consts), dict(g.types), []
    signed = profile["architecture"] == "balanced"
    w_min, w_max = profile["bank"].get("weight_range", (0.0, 1.0))
    todo, done = sum(n.op == "Bank" and "weight_bits" not in n.attrs for n in g.nodes), 0
    for n in g.nodes:
        if n.op != "Bank" or "weight_bits" in n.attrs:
            nodes.append(n)
            continue
        tname, gname = n.inputs[1], n.inputs[2]
        gain = consts[gname].astype(np.float64)
        q, rings = consts[tname].shape[2], consts[tname].shape[4]
        m, j = gain.shape[1], q * rings
        attrs = {**n.attrs, **precision}
        inputs = n.inputs
        if precision["weight_bits"]:
            bits = precision["weight_bits"]
            dtype = (np.int8 if bits <= 8 else np.int16) if signed else (np.uint8 if bits <= 8 else np.uint16)
            tiles, alpha = consts[tname], consts[n.inputs[4]].astype(np.float64)
            codes, offset = np.empty(tiles.shape, dtype), np.empty(gain.shape)
            for block, rows in cpu.tile_row_blocks(tiles, m, BLOCK):  # every step is row by row
                codes[:, block], offset[:, rows] = _quantise_rows(
                    tiles[:, block], gain[:, rows], alpha, j, bits, (w_min, w_max) if signed else (0.0, 1.0),
                    attrs, profile["noise"]["crosstalk"], signed)
            consts[tname] = codes
            oname = fresh_name(types, f"{n.name}.offset")
            consts[oname] = offset.astype(g.consts[gname].dtype)
            types[oname] = type_of(consts[oname])
            inputs = n.inputs[:5] + ("", oname)
            consts[gname] = gain.astype(g.consts[gname].dtype)
            for name in (tname, gname):
                types[name] = type_of(consts[name])
        nodes.append(n.replace(inputs=inputs, attrs=attrs))
        done += 1
        if progress is not None:
            progress(done, todo)
    return prune(g.replace(nodes=tuple(nodes), consts=consts, types=types))


def _quantise_rows(tiles, gain, alpha, j, bits, reach, attrs, crosstalk, signed):
    """Steps 1-4 of the module docstring for a block of tile rows (G, r, Q, B, C) of a bank whose
    matrix has j columns: (codes as float64, offsets of the block's rows); ``gain`` (G, rows), the
    block's rows' gains, is rescaled in place (step 1)."""
    banks, rings = tiles.shape[3:]
    step = weight_step(bits, signed)
    t = untile(tiles, gain.shape[1], j).astype(np.float64)
    need = np.maximum(np.maximum(t, 0).max(-1) / reach[1], np.maximum(-t, 0).max(-1) / -reach[0] if signed else 0)
    need = np.where(need > 0, need, 1.0)
    t /= need[..., None]
    gain *= need
    wanted = tile(t, banks, rings)
    codes = compensate_crosstalk(wanted, crosstalk, reach) / step
    low, high = (np.ceil(reach[0] / step), np.floor(reach[1] / step)) if signed else (0, 2 ** bits - 1)
    np.clip(np.round(codes, out=codes), low, high, out=codes)
    return codes, _correct_bias(codes, wanted, step, gain, alpha, attrs, crosstalk, signed)


def set_adc_ranges(g: Graph, scales: dict) -> Graph:
    """Give every bank its ADC input range per tile and photodetector (G, R, Q, B, 2) as a sixth
    input ``<layer>.adc``."""
    consts, types, nodes = dict(g.consts), dict(g.types), []
    for n in g.nodes:
        if n.op == "Bank" and n.name in scales:
            name = fresh_name(types, f"{n.name}.adc")
            consts[name] = scales[n.name].astype(np.float32)
            types[name] = type_of(consts[name])
            n = n.replace(inputs=n.inputs[:5] + (name,) + n.inputs[6:])
        nodes.append(n)
    return g.replace(nodes=tuple(nodes), consts=consts, types=types)


def _correct_bias(codes, tiles, step, gain, alpha, attrs, crosstalk, signed):
    """The electronic per-row offset that cancels every input-independent error of the bank.

    The bank realises its weights through codes and thermal crosstalk: w_eff = crosstalk(code x
    step). The complement channel of input k carries alpha_k - u_k, so an error e_k = w_k - w_eff,k
    of its weight adds g e_k alpha_k to every output whatever the input; the bias ring (carrier
    power c) is off by g c (b_k - b_eff). Both are known at compile time: the electronics add
    offset = g sum_k e_k alpha_k + g c (b - b_eff) after the ADC (y = g P - s + offset). Only the
    input-dependent rounding errors (e_k u_k) remain, as on a balanced bank.

    Only the tile columns that hold complement channels or the bias ring are formed (crosstalk
    couples rings within a bank, never across tiles).
    """
    groups, m = gain.shape
    k = alpha.shape[1]
    width = k if signed else 2 * k
    rings = tiles.shape[4]
    first = (width if signed else k) // rings  # the first tile column needed
    shift = first * rings                      # its first matrix column
    error = apply_crosstalk(codes[:, :, first:] * step, crosstalk)
    np.subtract(tiles[:, :, first:], error, out=error)  # wanted - realised
    error = untile(error, m, tiles.shape[2] * rings - shift)
    offset = error[:, :, width - shift] * gain * attrs.get("carrier", 1.0)
    if not signed:
        offset = offset + np.einsum("gmk,gk->gm", error[:, :, k - shift:2 * k - shift], alpha) * gain
    return offset


def crosstalk_matrix(rings: int, c: float) -> np.ndarray:
    """(I + c N): each ring's effective weight picks up c times each neighbour's along the bank."""
    return np.eye(rings) + c * (np.eye(rings, k=1) + np.eye(rings, k=-1))


def compensate_crosstalk(tiles: np.ndarray, c: float, reach: tuple[float, float]) -> np.ndarray:
    """Weights to program so that, after crosstalk, the banks hold ``tiles`` (as far as reachable)."""
    if c == 0:
        return tiles
    inverse = np.linalg.inv(crosstalk_matrix(tiles.shape[-1], c))
    out = tiles @ inverse.T
    return np.clip(out, *reach, out=out)
