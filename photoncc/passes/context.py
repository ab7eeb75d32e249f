"""What every pass is given beside the graph: the profile, the user's data and options, and the
state one pass hands to a later one (each field says which and why)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..ir import Graph
from ..profile import Profile


@dataclass
class Context:
    profile: Profile
    calibration: dict | None = None  # input name -> samples
    input_range: tuple[float, float] | None = None
    headroom: float | None = None  # None: the profile's calibration.headroom
    percentile: float | None = None  # None: the profile's calibration.percentile
    progress: Callable | None = None  # progress(done, total, stage) of the long passes (photoncc/progress.py)
    # to_banks -> the compile report: per bank input, where its range came from and its clipped share
    range_info: dict = field(default_factory=dict)
    # to_banks -> adc_ranges: the graph before the banks, whose Linear layers compute the model's own
    # values (the ADC calibration runs on them); dropped after it, so that its weights are freed
    layers: Graph | None = None
    # compile --chip: the measured static errors of the chip to program for (photoncc.chip.Chip), or None
    chip: object | None = None
    # compile --refine: with a chip, steps of global refinement of each mesh's phases (devices.refine)
    refine_steps: int = 0
    # to_banks -> the compile report: per Mesh layer, what its lowering found (unreachable MZIs, fidelity)
    mesh_facts: dict = field(default_factory=dict)

    @property
    def range_headroom(self) -> float:
        return self.profile["calibration"]["headroom"] if self.headroom is None else self.headroom

    @property
    def range_percentile(self) -> float:
        return self.profile["calibration"]["percentile"] if self.percentile is None else self.percentile
