"""What a case is (its files, notes and ``Plan``s of command lines) and the pieces every border's
builder uses: the seeded generators, a weighted pick, the ``simulate`` command, byte damage."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BORDERS = ("model", "profile", "data", "program", "chip", "sweep")


@dataclass
class Plan:
    """One command of a case: its argv, the outputs it may write, and the NaN check of its outputs."""
    argv: list
    allowed: tuple = ()
    reports: tuple = ()
    nan: tuple | None = None      # (outputs .npz, model, inputs .npz, {input: dtype})
    follow: bool = False          # run only when the previous command exited 0
    table: Path | None = None     # a sweep's CSV: on exit 0, no row may hold an internal error


@dataclass
class Case:
    """One case being built: its folder (``in/`` the mutated files, ``out/`` what the commands
    write), what was done to the seed material (``notes``, in words) and its commands."""
    border: str
    seed: int
    folder: Path
    notes: list = field(default_factory=list)
    plans: list = field(default_factory=list)
    expect_refusal: str | None = None   # why exit 0 would be wrong (the oracle's ``accepted`` rule)


def pick(rng: random.Random, weighted: dict):
    """A key of ``weighted`` (key -> weight)."""
    keys = list(weighted)
    return rng.choices(keys, weights=[weighted[k] for k in keys])[0]


def case_rngs(border: str, seed: int) -> tuple[random.Random, np.random.Generator]:
    """The case's Python and NumPy generators, from the border and the seed alone."""
    rng = random.Random(f"photoncc-fuzz:{border}:{seed}")
    return rng, np.random.default_rng(rng.getrandbits(64))


def simulate_plan(program: Path, inputs: Path, out: Path, model: Path, specs: dict, rng: random.Random,
                  follow: bool = False) -> Plan:
    """``simulate PROGRAM --inputs DATA -o OUT`` with random options, and its NaN check."""
    argv = ["simulate", str(program), "--inputs", str(inputs), "-o", str(out)]
    if rng.random() < 0.3:
        argv += ["--noise-model", "statistical"]
    if rng.random() < 0.2:
        argv += ["--noiseless"]
    if rng.random() < 0.3:
        argv += ["--batch-size", str(rng.choice([1, 3, 7, 64, 1000]))]
    if rng.random() < 0.2:
        argv += ["--seed", str(rng.choice([1, 2**31, 2**63 - 1]))]
    dtypes = {name: dtype for name, (shape, dtype) in specs.items()}
    return Plan(argv, allowed=(out,), nan=(out, model, inputs, dtypes), follow=follow)


def flip_bytes(blob: bytes, rng: random.Random) -> tuple[bytes, str]:
    """Flip 1-8 random bits, truncate at a random point, insert 1-16 random bytes or zero up to 64."""
    data = bytearray(blob)
    choice = rng.choice(["flip", "flip", "truncate", "insert", "zero"])
    if not data:
        return blob, "empty"
    if choice == "flip":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif choice == "truncate":
        data = data[:rng.randrange(len(data))]
    elif choice == "insert":
        at = rng.randrange(len(data))
        data[at:at] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 16)))
    else:
        at = rng.randrange(len(data))
        data[at:at + rng.randint(1, 64)] = bytes(min(64, len(data) - at))
    return bytes(data), f"bytes: {choice}"
