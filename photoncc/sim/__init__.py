"""The device simulator: a NumPy model of the device that runs a program (program.py).

It depends on the program format, the operators' kernels (``photoncc.ops``), the device physics
(``photoncc.devices.rings``) and NumPy only: never on the compiler's IR, passes or interpreter,
so that ``verify`` compares the model against an independent account of what the device does.

* ``loop``: the instruction loop (``Simulator``);
* ``rings``: the executor of the ring architectures (loading a bank onto rings, reading it);
* ``noise``: Gaussian draws, programming error, the statistical read-noise model;
* ``kat``: the known-answer test every program carries;
* ``memory``: ops computed in place, and which values own their memory;
* ``backend``: where the per-read physics runs (NumPy on the cores, or CuPy on a GPU).
"""
from .backend import DEVICES
from .kat import KAT_LAYERS
from .loop import DEFAULT_BATCH, DEFAULT_NOISE_MODEL, NOISE_MODELS, Simulator
from .noise import gaussian, statistical_covers

__all__ = ["DEFAULT_BATCH", "DEFAULT_NOISE_MODEL", "DEVICES", "KAT_LAYERS", "NOISE_MODELS", "Simulator", "gaussian",
           "statistical_covers"]
