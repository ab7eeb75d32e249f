"""Fuzzing the ``photoncc`` command line at its borders: the files a user hands it.

One fuzzer per border, each driving the real command line in-process (``photoncc.cli.main``):

* ``model``   ONNX files: ``compile``, ``check``, ``verify M.onnx`` on mutated ModelProtos
  (``model``, ``initializers``);
* ``profile`` hardware profile YAML files: ``compile -p``, ``check -p``, ``verify -p``,
  ``profiles FILE`` (``profile``, ``profile_text``);
* ``data``    ``.npz`` input files: ``compile --calibration``, ``simulate --inputs``,
  ``verify --inputs`` (``data``, ``npz``);
* ``program`` ``.pcc`` device programs: ``inspect``, ``simulate``, ``verify``, mutated as bytes and
  as programs whose checksums are recomputed (``Program(manifest, tensors).to_bytes()``), so that
  the simulator's own rules run, not only the checksums (``program``, ``manifest``);
* ``chip``    chip files (``photoncc chip``): ``compile --chip``, ``simulate --chip``, ``verify --chip``,
  ``calibrate --device`` on chips whose arrays, meta and members are edited, their checksum
  recomputed or not, or damaged as archives (``chip``, ``chip_file``);
* ``sweep``   ``photoncc sweep`` grids: ``--vary`` keys and values, ``--seeds``, ``--noise-model`` and
  the output paths, on a tiny model in-process (``sweep``).

``run_case(border, seed, workdir)`` builds one case from its seed (deterministic: the same border
and seed give the same files and command lines), runs it and returns an ``Outcome``;
``violations(outcome)`` is the oracle (``oracle``):

* the exit code is 0, 1 (``verify`` only) or 2; never 3, never an exception escaping ``main()``;
* on exit 2, stderr ends with exactly one line ``photoncc: error: ...`` (the unsupported-nodes list
  adds indented ``  node ...`` lines), before it only ``photoncc: warning/no --inputs`` lines, and
  no traceback;
* no file appears unless the command succeeded (``verify``'s ``--json``/``--junit`` also on exit
  1), never a temporary ``.NAME.*.tmp``; no input file changes;
* peak RSS growth <= 2 GiB and <= 60 s per command, under an address-space guard (a huge declared
  shape must be refused before anything is allocated: the guard turns such an allocation into a
  MemoryError, i.e. exit 3);
* ``simulate`` exits 0 without NaN outputs where the inputs are finite and onnxruntime, on the same
  inputs, gives none (``nan``);
* inputs no device can use (non-finite calibration data or chip errors) and external data outside
  the model's folder are not accepted with exit 0;
* a sweep that exits 0 records no internal error in a row (``hidden-error``).

A case whose main command succeeds may add a follow-up command (``simulate`` on the program just
compiled), checked by the same oracle. ``run_isolated`` (``pool``) runs many cases in worker
processes; ``bench/fuzz.py`` runs long campaigns, ``tests/test_fuzz.py`` a fast slice, and
docs/fuzzing.md describes both.

Modules: ``oracle`` (records and rules), ``invoke`` (one command under limits), ``nan``,
``seeds`` (seed models and programs), ``case`` (what a case is), one or two per border,
``run`` (build and run a case), ``pool`` (worker processes), ``report`` (tallies, descriptions).
"""
from .case import BORDERS, Case, Plan
from .oracle import LIMIT_S, Outcome, Step, Violation, normalise, violations
from .pool import crash_outcome, run_isolated, worker
from .profile import profile_documents, run_profile_document
from .report import describe, replay_command, summarise
from .run import BUILDERS, build_case, run_case
from .seeds import seeds_for

__all__ = ["BORDERS", "BUILDERS", "Case", "LIMIT_S", "Outcome", "Plan", "Step", "Violation", "build_case",
           "crash_outcome", "describe", "normalise", "profile_documents", "replay_command", "run_case",
           "run_isolated", "run_profile_document", "seeds_for", "summarise", "violations", "worker"]
