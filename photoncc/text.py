"""The text the command line shows: verify's report, inspect's table and the lists of layers, as
lines (the CLI prints them; nothing here prints).

A list of layers names at most WARN_LAYERS of them, worst first, numbers in names ordered by value
(features.2 before features.10), and counts the rest on one line, so that a network of 150 layers
gets a few lines, not 150.
"""
from __future__ import annotations

import re

import numpy as np


def percent(fraction: float) -> str:
    """A share as a percentage with 3 significant digits: a small nonzero share never shows as 0.00%."""
    return f"{100 * fraction:.3g}%"


WARN_LAYERS = 5  # layers named per list of layers; the rest are counted on one line


def natural(name: str) -> tuple:
    """Sort key that orders the numbers inside names by value: features.2 before features.10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name))


def worst_layers(fractions: dict, what: str, short: str) -> list[str]:
    """Lines for the layers with a nonzero share (``fractions``: layer -> share) of their ``what``,
    worst first (ties in natural order), at most WARN_LAYERS of them, and one more line counting
    the others (with ``short`` things) with the range of their shares."""
    hit = sorted(((fraction, layer) for layer, fraction in fractions.items() if fraction > 0),
                 key=lambda item: (-item[0], natural(item[1])))
    lines = [f"layer {layer!r}: {percent(fraction)} of its {what}" for fraction, layer in hit[:WARN_LAYERS]]
    rest = hit[WARN_LAYERS:]
    if rest:
        shares = percent(rest[0][0]) if len(rest) == 1 else f"{percent(rest[-1][0])} to {percent(rest[0][0])}"
        lines.append(f"{len(rest)} more layer(s) with {short}: {shares} each")
    return lines


def layer_summary(layers: list) -> str:
    """Each layer's SQNR, or for more than WARN_LAYERS layers the worst of them and a count."""
    def sqnr(layer):
        return "exact" if layer["exact"] else f"SQNR {layer['sqnr_db']} dB" if layer["sqnr_db"] is not None \
            else "no signal"
    if len(layers) <= WARN_LAYERS:
        return ", ".join(f"{layer['name']} {sqnr(layer)}" for layer in layers)
    measured = sorted((layer for layer in layers if layer["sqnr_db"] is not None),
                      key=lambda layer: (layer["sqnr_db"], natural(layer["name"])))
    worst = ", ".join(f"{layer['name']} {sqnr(layer)}" for layer in measured[:WARN_LAYERS])
    exact = sum(layer["exact"] for layer in layers)
    return (f"{len(layers)} layers" + (f", worst: {worst}" if worst else "") + (f", {exact} exact" if exact else "")
            + " (--json lists every layer)")


def verify_lines(report: dict) -> list[str]:
    """The text report of ``verify`` (docs/verify-report.md), one line each."""
    from .verify import nonfinite_note
    lines = []
    t = report["thresholds"]
    lines.append(f"verify {report['program']} against {report['model']}")
    per_read = report.get("per_read_layers")
    model = f"{report['noise_model']} noise model" + (f", {len(per_read)} layer(s) per read" if per_read else "")
    trials = f", {report['trials']} seeded trials ({model})" if report["tier"] == "noisy" else ""
    lines.append(f"  tier {report['tier']}, profile {report['profile']}, {report['inputs']['samples']} samples{trials}, "
               f"reference: {report['reference']}")
    judged = "relative error <= {:g}".format(t["rtol"]) + (" (non-classifier outputs)" if report["tier"] != "exact" else "")
    bound = f" (lower {t['confidence']:.0%} confidence bound)" if report["tier"] == "noisy" else ""
    lines.append(f"  thresholds: {judged}, top-1 agreement >= {t['top1']:g}{bound}")
    for o in report["outputs"]:
        parts = []
        if o.get("error"):
            parts.append(o["error"])
        if o["relative_error"] is not None:
            parts.append(f"max abs error {o['max_abs_error']:.3g}, relative {o['relative_error']:.3g}")
        if o["top1_agreement"] is not None:
            parts.append(f"top-1 agreement {o['top1_agreement']:.2%}")
        if o.get("nonfinite_mismatch"):
            parts.append(nonfinite_note(o))
        if o.get("top1_lower_bound") is not None:
            parts.append(f"lower bound {o['top1_lower_bound']:.2%}")
        lines.append(f"  {'ok  ' if o['passed'] else 'FAIL'} {o['name']}: {', '.join(parts)}")
    if report["known_answer_test"] != "passed":
        lines.append(f"  FAIL known-answer test: {report['known_answer_test']} (the program was changed after compilation)")
    if report["accuracy"]:
        a = report["accuracy"]
        per_trial = ""
        if len(a["device_per_trial"]) > 1:
            per_trial = " (trials: " + ", ".join(f"{v:.2%}" for v in a["device_per_trial"]) + ")"
        lines.append(f"  accuracy on labels ({a['output']}): model {a['model']:.2%}, device {a['device']:.2%}{per_trial}")
    if report["layers"]:
        lines.append("  per layer (first samples): " + layer_summary(report["layers"]))
    for line in worst_layers(report["clipped_fraction"], "inputs outside the calibrated range", "clipped inputs"):
        lines.append(f"  clipped: {line}")
    for line in worst_layers(report["adc_saturated_fraction"] or {}, "ADC reads outside their calibrated ranges",
                              "saturated ADC reads"):
        lines.append(f"  saturated: {line}")
    lines.extend(saturation_lines(report))
    if (report["clipped_fraction"] or report["adc_saturated_fraction"]) and not (report.get("saturation") or {}).get("samples"):
        lines.append("  note: the device saturates outside the ranges the program was calibrated for; verify on "
                   "representative data (--inputs) or compile with calibration data that covers these inputs")
    lines.append(verdict_line(report))
    return lines


def saturation_lines(report: dict) -> list[str]:
    """The samples whose inputs left the compiled ranges, and each output on the samples inside
    them (verify's ``saturation`` and ``outputs[].inside_range``)."""
    found = report.get("saturation") or {}
    if not found.get("samples"):
        return []
    lines = [f"  saturation: {found['samples']} of {found['of']} samples leave the compiled input ranges (worst: "
             f"layer {found['worst_layer']!r}, {found['worst_excess']:.3g} times its widest input range beyond it)"]
    for o in report["outputs"]:
        inside, outside = o.get("inside_range"), o.get("saturating")
        if inside is None:
            if outside is not None:
                lines.append(f"  inside the ranges: no sample of {o['name']}; every one saturates")
            continue
        parts = [f"relative error {inside['relative_error']:.3g}"] if inside.get("relative_error") is not None else []
        if inside.get("top1_agreement") is not None:
            parts.append(f"top-1 agreement {inside['top1_agreement']:.2%}")
        lines.append(f"  inside the ranges ({inside['samples']} samples): {'ok  ' if inside['passed'] else 'FAIL'} "
                     f"{o['name']}: " + (", ".join(parts) or "equal"))
        if outside and outside.get("relative_error") is not None:
            lines.append(f"  saturating ({outside['samples']} samples): {o['name']}: relative error "
                         f"{outside['relative_error']:.3g}" + (f", top-1 agreement {outside['top1_agreement']:.2%}"
                                                                if outside.get("top1_agreement") is not None else ""))
    return lines


def verdict_line(report: dict) -> str:
    """PASS, or FAIL with which of the two it is: the data's coverage (only saturating samples
    differ: recompile with calibration data that covers them) or the program (samples inside the
    compiled ranges differ)."""
    found = report.get("saturation") or {}
    if report["passed"]:
        return "PASS: outputs are equivalent" + (
            f" (including the {found['samples']} samples that leave the compiled ranges)" if found.get("samples") else "")
    cause = report.get("cause")
    if cause == "saturation":
        inside = found["of"] - found["samples"]
        return ("FAIL: outputs differ beyond the thresholds through range saturation, not a wrong program: "
                + (f"the {inside} samples inside the compiled ranges agree, the {found['samples']} that leave them "
                   "do not" if inside else "every sample leaves the compiled ranges, so none checks the program")
                + "; recompile with calibration data that covers these inputs (or more --headroom)")
    if cause == "program":
        return ("FAIL: outputs differ beyond the thresholds on samples inside the compiled ranges: not the data's "
                "coverage; the program (or at the quantised and noisy tiers, the device's precision) does not "
                "reproduce the model")
    return "FAIL: outputs differ beyond the thresholds"


def inspect_lines(program, path) -> list[str]:
    """What ``inspect`` shows of a program: its source, profile, inputs and outputs, and a table of
    its optical layers."""
    m, r = program.manifest, program.manifest["report"]
    lines = []
    source = m["source"]
    lines.append(f"program {path} (format {m['format']} v{m['version']}, photoncc {m['photoncc']})")
    lines.append(f"  source: {source.get('source') or 'unknown'} (sha256 {str(source.get('sha256'))[:16]}..., "
                 f"opset {source.get('opset')})")  # the checker takes a missing name or digest as null
    p = m["profile"]
    if p["architecture"] == "mzi":
        return lines + mesh_lines(program)
    lines.append(f"  profile: {p['name']}: {p['architecture']}, {p['bank']['banks']} banks x {p['bank']['rings']} "
               f"rings = {r['ring_count']} rings")
    lines.extend(io_lines(m))
    lines.append(f"  {r['optical_layers']} optical layer(s), {r['tiles']} tile(s); electronic: "
               + (", ".join(f"{op} x{c}" for op, c in r["electronic_ops"].items()) or "none"))
    if r.get("macs"):
        lines.append("  " + mac_text(r["macs"]))
    lines.extend(unrolled_lines(r))
    if r.get("activations"):
        kinds: dict = {}
        for a in r["activations"]:
            kinds.setdefault((a["op"], a["placement"]), []).append(a["name"])
        lines.append("  activations: " + "; ".join(
            f"{op} ({placement}): " + (", ".join(names) if len(names) <= 3 else f"{len(names)} layers")
            for (op, placement), names in kinds.items()))
    lines.append(f"  estimate per inference (profile timing/energy, optical core only): "
               f"{r['latency_us']:.4g} us, {r['energy_nj']:.4g} nJ")
    rows = [("layer", "kind", "matrix", "tiles", "rings used", "of rings", "alpha", "shift", "range from",
             "SQNR dB", "placement")]
    for layer in r["layers"]:
        sqnr = layer.get("sqnr_db")
        rows.append((layer["name"], layer["kind"], f"{layer['matrix'][0]}x{layer['matrix'][1]}", str(layer["tiles"]),
                     str(layer["rings_used"]), str(layer["tiles"] * layer["ring_count"]),
                     f"[{layer['alpha'][0]:.3g}, {layer['alpha'][1]:.3g}]", f"{layer['shift']:.3g}",
                     str(layer.get("range_source")), "-" if sqnr is None else f"{sqnr:.1f}", layer["placement"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) if i in (0, 1, 8, 10) else cell.rjust(w)
                                    for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    return lines


def mesh_lines(program) -> list[str]:
    """``inspect`` of a program for MZI meshes: its profile, inputs and outputs, the chip it was
    compiled for, and per Mesh layer its tiles, MZIs set and phase statistics."""
    m, r = program.manifest, program.manifest["report"]
    p = m["profile"]
    lines = [f"  profile: {p['name']}: mzi, {p['mesh']['layout']} meshes of {r['ports']} ports "
             f"({r['mzi_count']} MZIs per mesh pair), phases "
             + (f"{p['precision']['phase_bits']}-bit" if p["precision"]["phase_bits"] else "float")]
    lines.extend(io_lines(m))
    if "chip" in m:
        c = m["chip"]
        lines.append(f"  compiled for chip: {c['kind']} of {c['profile']} (seed {c.get('seed')}, sha256 {c['sha256'][:16]}...)")
    if "chip" in r:
        c = r["chip"]
        refined = f" and {c['refine_steps']} refinement steps" if c.get("refine_steps") else ""
        tiles = (f"tile error {c['tile_error_before']:.4g} before, {c['tile_error_after']:.4g} after; "
                 if "tile_error_after" in c else "")  # not reported by programs compiled before 95a8352
        lines.append(f"  error-aware programming (local correction{refined}): mesh fidelity {c['fidelity_before']:.6g} before, "
                     f"{c['fidelity_after']:.6g} after the local correction; {tiles}{c['unreachable_mzis']} MZI(s) "
                     "cannot be set exactly")
    lines.append(f"  {r['optical_layers']} optical layer(s), {r['tiles']} mesh setting(s), {r['mzis']} MZIs set; "
                 "electronic: " + (", ".join(f"{op} x{c}" for op, c in r["electronic_ops"].items()) or "none"))
    if r.get("macs"):
        lines.append("  " + mac_text(r["macs"]))
    lines.append(f"  estimate per inference (profile timing/energy, optical core only): "
                 f"{r['latency_us']:.4g} us, {r['energy_nj']:.4g} nJ")
    rows = [("layer", "kind", "matrix", "tiles", "MZIs set", "theta mean", "theta std", "bar/cross", "alpha",
             "range from", "SQNR dB", "tile error")]
    for layer in r["layers"]:
        sqnr, ph, chip = layer.get("sqnr_db"), layer["phases"], layer.get("chip")
        rows.append((layer["name"], layer["kind"], f"{layer['matrix'][0]}x{layer['matrix'][1]}", str(layer["tiles"]),
                     str(layer["mzis"]), f"{ph['theta_mean']:.3f}", f"{ph['theta_std']:.3f}",
                     f"{100 * ph['near_bar_or_cross']:.1f}%", f"[{layer['alpha'][0]:.3g}, {layer['alpha'][1]:.3g}]",
                     str(layer.get("range_source")), "-" if sqnr is None else f"{sqnr:.1f}",
                     "-" if chip is None or "tile_error_after" not in chip else f"{chip['tile_error_after']:.4g}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  " + "  ".join(cell.ljust(w) if i in (0, 1, 9) else cell.rjust(w)
                                    for i, (cell, w) in enumerate(zip(row, widths))).rstrip())
    return lines


def unrolled_lines(report: dict) -> list[str]:
    """The recurrent layers the compile unrolled (passes/lower_recurrent), at most WARN_LAYERS."""
    found = report.get("unrolled") or []
    lines = [f"  unrolled: {u['op']} {u['name']!r} over {u['steps']} steps x {u['directions']} direction(s): "
             f"{u['recurrent_products']} recurrent bank(s), each holding its own copy of R" for u in found[:WARN_LAYERS]]
    if len(found) > WARN_LAYERS:
        lines.append(f"  unrolled: {len(found) - WARN_LAYERS} more recurrent layer(s)")
    return lines


def io_lines(manifest: dict) -> list[str]:
    """A program's inputs (type and recorded range), outputs and kept samples."""
    lines = [f"  input {spec['name']}: {type_text(spec)} range [{min(spec['lo'], default=np.nan):.4g}, "
             f"{max(spec['hi'], default=np.nan):.4g}]" for spec in manifest["inputs"]]
    lines += [f"  output {spec['name']}: {type_text(spec)}" for spec in manifest["outputs"]]
    return lines + samples_lines(manifest)


def samples_lines(manifest: dict) -> list[str]:
    """The calibration samples a program keeps for ``verify`` without ``--inputs``."""
    kept = manifest.get("samples")
    if not kept:
        return ["  kept samples: none (compiled without calibration data: verify without --inputs draws uniform ones)"]
    return [f"  kept samples: {kept['count']} of the {kept.get('of', '?')} calibration samples (verify's default inputs)"]


def mac_text(macs: dict) -> str:
    """The optical share of a model's multiply-accumulates (``report.mac_split``), one line:
    ``MACs per sample: 96.6% optical (12,288 of 12,720); electronic: MatMul 432``."""
    share = macs.get("optical_share")
    total = macs["optical"] + macs["electronic"]
    head = "MACs per sample: " + (f"{share:.1%} optical ({macs['optical']:,} of {total:,})" if share is not None
                                  else "none (no matrix product)")
    products = macs.get("electronic_products") or {}
    return head + ("; electronic: " + ", ".join(f"{op} {count:,}" for op, count in products.items())
                   if products else "; none electronic")


def check_lines(model, split: dict, optical_layers: int) -> list[str]:
    """What ``check`` says of a model every node of which is supported (``split``: report.mac_split
    of the graph after fold_affine)."""
    electronic = split["electronic_ops"]
    return [f"{model}: every node is supported: {optical_layers} optical layer(s), "
            f"{sum(electronic.values())} electronic op(s) after folding",
            "  " + mac_text(split),
            "  electronic ops: " + (", ".join(f"{op} x{c}" for op, c in electronic.items()) or "none")]


def type_text(spec: dict) -> str:
    """A tensor spec as ``float32[N,3,224,224]`` (N: the batch)."""
    return f"{spec['dtype']}[{','.join(['N'] + [str(d) for d in spec['shape']])}]"
