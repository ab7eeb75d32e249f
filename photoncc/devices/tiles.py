"""Tiles: a bank's matrix cut into the blocks the hardware holds at once.

A chip has B banks of C rings: one tile is a B x C block of the (M, J) matrix T of a group
(B output rows, C input channels). The matrix is padded with zero rings to whole tiles:

    T (G, M, J)  ->  tiles (G, R, Q, B, C),  R = ceil(M / B),  Q = ceil(J / C),
    tiles[g, r, q] = T[g, r*B:(r+1)*B, q*C:(q+1)*C]   (zeros past the edge)

This (G, R, Q, B, C) layout is the program's (program-format.md).
"""
from __future__ import annotations

import numpy as np


def tile(t: np.ndarray, banks: int, rings: int) -> np.ndarray:
    """(G, M, J) -> (G, R, Q, B, C), zero-padded: written straight into the tiles, in four parts
    (whole tiles; the last row of tiles; the last column; their corner), with no padded copy."""
    groups, m, j = t.shape
    r, q = -(-m // banks), -(-j // rings)
    out = np.zeros((groups, r, q, banks, rings), t.dtype)
    blocks = out.transpose(0, 1, 3, 2, 4)  # (G, R, B, Q, C): matrix row r*B + b, column q*C + c
    for r0, r1, rows in ((0, m // banks, banks), (m // banks, r, m % banks)):
        for q0, q1, cols in ((0, j // rings, rings), (j // rings, q, j % rings)):
            if r1 > r0 and q1 > q0:
                part = t[:, r0 * banks:r0 * banks + (r1 - r0) * rows, q0 * rings:q0 * rings + (q1 - q0) * cols]
                blocks[:, r0:r1, :rows, q0:q1, :cols] = part.reshape(groups, r1 - r0, rows, q1 - q0, cols)
    return out


def untile(tiles: np.ndarray, m: int, j: int) -> np.ndarray:
    """(G, R, Q, B, C) -> (G, M, J), dropping the padding."""
    groups, r, q, banks, rings = tiles.shape
    return tiles.transpose(0, 1, 3, 2, 4).reshape(groups, r * banks, q * rings)[:, :m, :j]
