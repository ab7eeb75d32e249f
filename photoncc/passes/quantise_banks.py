"""quantise_banks: turn every bank's ring weights into the integer codes the hardware is set with.

For a profile with ``precision.weight_bits``, each bank's weights become codes (``devices.
ring_codes``: rows rescaled to use the whole code range, thermal crosstalk pre-compensated, codes
rounded, and an electronic per-row offset ``<layer>.offset`` that cancels every input-independent
error of the weights the device realises). The DAC (``input_bits``) and ADC (``output_bits``)
settings are recorded on the instruction; ``adc_ranges`` then gives each photodetector its ADC
range and the simulator applies them.

Requires: tile_banks. Ensures: quantised banks hold integer codes (attrs weight_bits...);
unquantised profiles leave the graph unchanged. The interpreter reads the codes as code x step,
without the crosstalk they compensate (it does not know the profile) and with offsets that cancel
the errors of the weights the device realises: with crosstalk its values are not the device's.
The simulator models the device, and ``adc_ranges`` measures on the graph before the banks.
Idempotent.
"""
from __future__ import annotations

from ..devices.ring_codes import quantise_bank
from ..ir import Graph, fresh_name, prune, type_of
from ..program import bank_input_list, bank_inputs
from ..progress import stage


def quantise_banks(g: Graph, ctx) -> Graph:
    """The graph with its banks quantised for the profile; progress after each bank."""
    precision = ctx.profile["precision"]
    if not any(v is not None for v in precision.values()):
        return g
    consts, types, nodes = dict(g.consts), dict(g.types), []
    todo, done = sum(n.op == "Bank" and "weight_bits" not in n.attrs for n in g.nodes), 0
    progress = stage(ctx.progress, "quantising weights")
    for n in g.nodes:
        if n.op != "Bank" or "weight_bits" in n.attrs:
            nodes.append(n)
            continue
        attrs = {**n.attrs, **precision}
        named = bank_inputs(n.inputs)
        if precision["weight_bits"]:
            dtype = consts[named["gain"]].dtype
            codes, gain, offset = quantise_bank(consts[named["tiles"]], consts[named["gain"]], consts[named["alpha"]],
                                                attrs, ctx.profile, ctx.chip)
            named["offset"] = fresh_name(types, f"{n.name}.offset")
            for key, value in (("tiles", codes), ("gain", gain.astype(dtype)), ("offset", offset.astype(dtype))):
                consts[named[key]] = value
                types[named[key]] = type_of(value)
        nodes.append(n.replace(inputs=bank_input_list(named), attrs=attrs))
        done += 1
        if progress is not None:
            progress(done, todo)
    return prune(g.replace(nodes=tuple(nodes), consts=consts, types=types))
