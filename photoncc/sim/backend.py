"""Where the simulator's per-read physics runs: the CPU's cores (NumPy) or an NVIDIA GPU (CuPy).

The tile reads of the per-read noise model (every read's RIN, product, detector noise and ADC:
billions per batch of an ImageNet network) are written once, against an array module ``xp``
(``sim.rings``); a ``Backend`` says which module runs them, how the reads' chunks are shared out
and how a chunk's Gaussians are drawn. Everything else (loading, the direct forms, the electronic
ops) runs on the CPU either way, so only the expensive part crosses to the GPU.

* ``cpu``: NumPy; the chunks are shared over the cores (``cpu.threaded_map``), each drawing from a
  random stream of its own (``noise.gaussian``).
* ``cuda``: CuPy, the optional extra ``photoncc[gpu]``; chunks one after another on the GPU, each
  drawing from a CuPy generator seeded from the chunk's seed. GPU runs do not reproduce CPU runs
  bit for bit (other random streams, other summation orders) but agree statistically; a GPU run is
  reproducible on the same GPU and CuPy version.

Either way a chunk's seed comes from the simulator's generator in chunk order, so the outputs of a
run depend on the seed and the batch size, never on how many cores or threads share the chunks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import cpu
from ..errors import UserError
from .noise import gaussian

DEVICES = ("cpu", "cuda")
GPU_EXTRA = 'pip install "photoncc[gpu]"'


@dataclass(frozen=True)
class Backend:
    name: str
    xp: object  # the array module: numpy or cupy
    map: Callable  # map(fn, items) -> [fn(item) ...]: how the chunks of a bank's reads are shared out
    to_device: Callable  # a host (NumPy) array -> the module's array
    to_host: Callable  # the module's array -> a NumPy array

    def generator(self, seed: int):
        """A random stream of this backend's module, seeded with ``seed``."""
        return self.xp.random.default_rng(seed)

    def gaussian(self, rng, shape, sigma: float):
        """N(0, sigma^2) float32 samples on this backend from its stream ``rng``: on the CPU by
        ``noise.gaussian`` (this thread alone), elsewhere by the module's own normal sampler."""
        if self.xp is np:
            return gaussian(rng, shape, sigma, shared=False)
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(sigma)


CPU = Backend("cpu", np, cpu.threaded_map, lambda a: a, lambda a: a)


def backend(device: str) -> Backend:
    """The backend of ``--device``: ``cpu``, or ``cuda`` (CuPy and a visible NVIDIA GPU, else a
    UserError saying what is missing)."""
    if device == "cpu":
        return CPU
    if device != "cuda":
        raise UserError(f"--device {device!r}: expected one of {', '.join(DEVICES)}")
    try:
        import cupy
    except ImportError:
        raise UserError(f"--device cuda needs CuPy: {GPU_EXTRA}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver, or CuPy built for another CUDA
        raise UserError(f"--device cuda: CuPy finds no usable NVIDIA GPU ({type(e).__name__}: {e})") from None
    if not count:
        raise UserError("--device cuda: CuPy finds no NVIDIA GPU")
    return Backend("cuda", cupy, lambda fn, items: [fn(item) for item in items], cupy.asarray, cupy.asnumpy)
