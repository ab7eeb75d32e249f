"""Memory strategies of the instruction loop: an op computed in its input's memory when nothing
else reads that input, and which values own their memory.

A value is *owned* (``fresh``) when it shares memory with no other live value (a new array, or one
computed in place of an owned input that nothing reads afterwards). ``Relu``, ``Add`` and ``Sum``
(``Op.in_place``) then run in that memory: a large fresh allocation and a pass per layer saved.
"""
from __future__ import annotations

import numpy as np

from .. import ops

# the ops that can be computed in their first input's memory, with how many inputs they then take
IN_PLACE = {name: (found.in_place, found.in_place.__code__.co_argcount)
            for name, found in ops.REGISTRY.items() if found.in_place is not None}


def in_place(inst: dict, args: list, index: int, fresh: set, held: set, last_use: dict):
    """The instruction computed in its first input's memory, or None when that is not safe: the
    input must be owned (``fresh``), not wanted afterwards (held: an output or kept; ``last_use``:
    the index of the last instruction reading each value) and, for a binary op, already of the
    result's shape and dtype."""
    op, names = inst["op"], inst["inputs"]
    if op not in IN_PLACE or len(names) != IN_PLACE[op][1]:
        return None
    if len(names) == 2 and names[1] in fresh and last_use[names[1]] == index and names[1] not in held:
        names, args = names[::-1], args[::-1]  # Add and Sum commute: overwrite whichever operand dies
    source = names[0]
    if source not in fresh or source in held or last_use[source] != index:
        return None
    if len(args) == 2:
        a, b = args
        if not isinstance(b, np.ndarray) or np.result_type(a, b) != a.dtype or \
                np.broadcast_shapes(a.shape, b.shape) != a.shape or np.may_share_memory(a, b):
            return None
    return IN_PLACE[op][0](*args)


def track_ownership(inst: dict, args: list, result: tuple, fresh: set, computed_in_place: bool) -> None:
    """Update ``fresh``: an output is owned when it shares memory with no input and no other
    output (a new array), or when it was computed in place (it takes over its input's memory,
    which nothing reads afterwards); an input that an output shares memory with (a view, an
    input returned as is) is no longer owned under its own name."""
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    outputs = [(n, v) for n, v in zip(inst["outputs"], result) if n and isinstance(v, np.ndarray)]
    for name, value in zip(inst["inputs"], args):
        if name in fresh and any(np.may_share_memory(value, v) for _, v in outputs):
            fresh.discard(name)
    for name, value in outputs:
        others = [v for n, v in outputs if n != name] + ([] if computed_in_place else arrays)
        if any(np.may_share_memory(value, a) for a in others):
            fresh.discard(name)
        else:
            fresh.add(name)
