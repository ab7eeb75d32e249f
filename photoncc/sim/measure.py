"""The measurement interface of an MZI-mesh device, and the simulated device behind it.

Calibration (``photoncc calibrate``, ``photoncc.calibrate``) reaches a device only through this
interface, which a driver for real hardware can implement:

* ``ports`` (N), ``layout`` (its meshes' layout: ``mzi_mesh.LAYOUTS``), ``phase_bits`` (the
  resolution its phase shifters are set with, None: float);
* ``program(phases, screens, atten)``: set the chip's mesh pair: ``phases`` (2, Z, 2) theta and phi
  of every MZI of the input mesh (0) and the output mesh (1), ``screens`` (2, N) the output phase
  shifters, ``atten`` (N,) the attenuators' phases (amplitude sin(theta_s / 2)), all in radians
  as set (the device rounds them to its resolution);
* ``send(fields)``: send input fields (P, N), each in [-1, 1], through the programmed meshes and
  read every output port with a coherent receiver: its in-phase and quadrature homodyne detectors
  give the complex field (P, N), with the device's read noise;
* ``vectors``, ``reads``: how many input vectors were sent and how many detector reads taken.

``SimulatedDevice`` is the stand-in for a physical device: the simulator's mesh physics
(``devices.mzi_mesh``) loaded with a chip file. Its read noise is the profile's: each quadrature
read adds N(0, detector_sigma x 2) (the receiver's full scale is [-1, 1]) and, with
``output_bits``, is rounded to 2^b levels over [-1, 1]; RIN makes each input field
(1 + N(0, rin_sigma)) times itself. Nothing but the interface is used by calibration: it never
reads the chip's errors.
"""
from __future__ import annotations

import numpy as np

from ..devices.mzi_mesh import attenuation, mesh_matrix, nominal_loss, quantised
from ..program import levels


class SimulatedDevice:
    """A chip file behind the measurement interface (module docstring)."""

    def __init__(self, profile, chip, seed: int = 0):
        self.ports, self.layout = profile["mesh"]["ports"], profile["mesh"]["layout"]
        self.phase_bits = profile["precision"]["phase_bits"]
        self._profile, self._errors = profile, chip.mesh_errors()
        self._rng = np.random.default_rng([seed, 0x6d656173])  # the read noise: its own stream
        self._matrix = self._meshes = None
        self.vectors = self.reads = 0

    def program(self, phases: np.ndarray, screens: np.ndarray, atten: np.ndarray) -> None:
        bits = self.phase_bits
        phases, screens, atten = (quantised(np.asarray(a, np.float64), bits) for a in (phases, screens, atten))
        key = (phases.tobytes(), screens.tobytes())
        if self._meshes is None or self._meshes[0] != key:  # the meshes are rebuilt only when their phases change
            self._meshes = (key, [mesh_matrix(phases[k], screens[k], self._errors[k], kind=self.layout)
                                  for k in range(2)])
        meshes = self._meshes[1]
        loss = nominal_loss(self.ports, self._profile["mesh"]["loss_db"], self.layout) ** 2
        self._matrix = (meshes[1] * attenuation(atten)[None, :]) @ meshes[0] * loss

    def send(self, fields: np.ndarray) -> np.ndarray:
        if self._matrix is None:
            raise RuntimeError("program the device before sending inputs")
        noise = self._profile["noise"]
        e = np.clip(np.asarray(fields, np.float64), -1.0, 1.0)
        if noise["rin_sigma"]:
            e = e * (1.0 + self._rng.standard_normal(e.shape) * noise["rin_sigma"])
        out = e @ self._matrix.T
        det = noise["detector_sigma"] * 2.0
        if det:
            out = out + (self._rng.standard_normal(out.shape) + 1j * self._rng.standard_normal(out.shape)) * det
        bits = self._profile["precision"]["output_bits"]
        if bits:
            step = 2.0 / levels(bits)
            parts = [np.round((np.clip(part, -1.0, 1.0) + 1.0) / step) * step - 1.0 for part in (out.real, out.imag)]
            out = parts[0] + 1j * parts[1]
        self.vectors += e.shape[0]
        self.reads += 2 * out.size
        return out
