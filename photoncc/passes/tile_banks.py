"""tile_banks: cut every bank matrix into tiles the hardware holds at once.

A chip has B banks of C rings (profile ``bank.banks``, ``bank.rings``): one tile is a B x C block
of a group's (M, J) matrix T (B output rows, C input channels), padded with zero rings to whole
tiles (``devices.tiles``: T (G, M, J) -> tiles (G, R, Q, B, C)). Tile (g, r, q) yields the partial
sums of rows r*B.. over channels q*C..; the electronics add the Q partial sums of a row (after the
ADC). Tiles run one after another (time multiplexing).

Requires: to_banks. Ensures: every Bank's T has tile shape (B, C); untile(tile(T)) == T.
Idempotent (a tiled matrix is untiled first).
"""
from __future__ import annotations

from ..devices.tiles import tile, untile
from ..ir import Graph, prune, type_of
from ..program import bank_channels, bank_inputs
from ..progress import stage


def tile_banks(g: Graph, ctx) -> Graph:
    """Every bank's T cut into tiles of the profile's banks x rings; progress after each bank."""
    consts, types = dict(g.consts), dict(g.types)
    todo = [n for n in g.nodes if n.op == "Bank"]
    progress = stage(ctx.progress, "tiling")
    for done, n in enumerate(todo, 1):
        named = bank_inputs(n.inputs)
        m, k = consts[named["gain"]].shape[1], consts[named["lo"]].shape[1]  # (G, M) and (G, K): the true sizes
        consts[named["tiles"]] = tile(untile(consts[named["tiles"]], m, bank_channels(n.attrs, k).count),
                                      ctx.profile.banks, ctx.profile.rings)
        types[named["tiles"]] = type_of(consts[named["tiles"]])
        if progress is not None:
            progress(done, len(todo))
    return prune(g.replace(consts=consts, types=types))
