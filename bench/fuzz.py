"""Long fuzz campaigns against the photoncc command line (machinery: tests/fuzz/; docs/fuzzing.md).

Usage (from the repository root, with photoncc installed):

    python bench/fuzz.py                              # 10000 cases per border, all borders
    python bench/fuzz.py --cases 1000 --border data   # one border
    python bench/fuzz.py --seed 50000 --cases 500     # seeds 50000 .. 50499
    python bench/fuzz.py --replay program:123         # rerun one case, keep its files, show it
    python bench/fuzz.py --jobs 2 --json tally.json   # two worker processes; every tally as JSON

Every case runs in a worker process (``fuzz.run_isolated``: ``python -m fuzz ...`` in tests/) that drives
``photoncc.cli.main`` in-process with per-command limits: ``--timeout`` seconds (default 60) and
an address-space guard of 4 GiB over the process's size, so a command that allocates for a huge
declared shape fails with MemoryError (exit 3) instead of exhausting the machine. A worker that
dies (a segfault in a native library) or stops answering is recorded as a crash of the case it
was running and replaced. Per border the script prints the cases, the exit codes, the counts of
each kind of violation (tracebacks/internal errors, partial files, temporary files left, over
2 GB, over the time limit, NaN outputs, unusable inputs accepted) and each distinct violation,
grouped by kind, exception type and origin (or a normalised message), with a replay command.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import fuzz  # noqa: E402  (tests/fuzz/: the one implementation; first on the path, before this script's folder)
from fuzz import BORDERS, describe, replay_command, summarise, violations  # noqa: E402

KIND_LABELS = [("exit-3", "internal errors (exit 3; traceback with --debug)"), ("escaped", "exceptions escaping main()"),
               ("crash", "worker crashes/hangs"), ("harness", "harness errors"), ("bad-exit", "other bad exit codes"),
               ("stderr-format", "bad error output (traceback, not one line)"), ("partial-file", "partial files"),
               ("stray-temp", "temporary files left"), ("input-modified", "input files changed"),
               ("memory", "over 2 GB (or MemoryError)"), ("time", "over the time limit"),
               ("nan-output", "NaN outputs"), ("hidden-error", "internal errors in a sweep's rows"),
               ("accepted", "unusable inputs accepted")]


# ---------------------------------------------------------------------- tallies

def print_tally(border: str, tally: dict, seconds: float) -> None:
    exits = tally["exit"]
    print(f"\n=== border {border}: {tally['cases']} cases in {seconds:.0f} s "
          f"(slowest command {tally['slowest_s']:.2f} s, largest peak RSS growth {tally['peak_mb']:.0f} MB)")
    print("  exit codes: " + ", ".join(f"{k}: {exits.get(k, 0)}" for k in ("0", "1", "2", "3", "escaped")))
    print("  violations: " + ", ".join(f"{label}: {tally['kinds'].get(kind, 0)}" for kind, label in KIND_LABELS))
    distinct = sorted(tally["distinct"].items(), key=lambda kv: -kv[1]["count"])
    print(f"  distinct violations: {len(distinct)}")
    for signature, entry in distinct:
        example = entry["example"]
        print(f"  {entry['count']:6d}x {signature}")
        print(f"           e.g. seed {example.seed}: {entry['detail'][:220]}")
        print(f"           mutation: {'; '.join(map(str, example.mutation))[:220]}")
        print(f"           replay: {replay_command(example)}")
    if tally["warnings"]:
        top = sorted(tally["warnings"].items(), key=lambda kv: -kv[1])[:5]
        print("  Python warnings raised (not violations): " + "; ".join(f"{n}x {w[:90]}" for w, n in top))


def as_json(tally: dict) -> dict:
    return {**tally, "distinct": {sig: {"count": e["count"], "detail": e["detail"], "seed": e["example"].seed,
                                        "mutation": e["example"].mutation, "replay": replay_command(e["example"])}
                                  for sig, e in tally["distinct"].items()}}


def campaign(args) -> int:
    borders = BORDERS if args.border == "all" else (args.border,)
    workdir = args.workdir or tempfile.mkdtemp(prefix="photoncc-fuzz-")
    Path(workdir).mkdir(parents=True, exist_ok=True)
    fuzz.seeds_for(workdir)  # built once here, reused by the workers
    print(f"photoncc fuzz: {args.cases} cases per border from seed {args.seed}, {args.jobs} job(s), "
          f"time limit {args.timeout:g} s per command, workdir {workdir}")
    results, total = {}, 0
    for border in borders:
        start, done = time.monotonic(), [0]

        def progress(outcome, start=start, border=border, done=done):
            done[0] += 1
            if done[0] % 250 == 0:
                print(f"  [{border}] {done[0]}/{args.cases} cases, {time.monotonic() - start:.0f} s",
                      file=sys.stderr, flush=True)
        seeds = range(args.seed, args.seed + args.cases)
        size = -(-len(seeds) // max(args.jobs, 1))
        work = [(border, range(first, min(first + size, seeds.stop))) for first in range(seeds.start, seeds.stop, size)]
        outcomes = fuzz.run_isolated(work, workdir, args.timeout, args.jobs, progress)
        tally = summarise(outcomes)
        print_tally(border, tally, time.monotonic() - start)
        results[border] = as_json(tally)
        total += sum(e["count"] for e in tally["distinct"].values())
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 1 if total else 0


def replay(args) -> int:
    border, _, seed = args.replay.partition(":")
    # a new folder: seed programs left there by another commit would make the case another one
    workdir = args.workdir or tempfile.mkdtemp(prefix="photoncc-fuzz-replay-")
    outcome = fuzz.run_case(border, int(seed), workdir, keep=True, timeout=args.timeout)
    found = violations(outcome)
    print(describe(outcome))
    print(f"  files: {outcome.folder}")
    for step in outcome.steps:
        if step.stdout.strip():
            print(f"  stdout of `{' '.join(step.argv[:2])}`:\n    " + step.stdout.strip()[-1500:].replace("\n", "\n    "))
        if step.debug:
            print("  --debug rerun:\n    " + step.debug.strip()[-4000:].replace("\n", "\n    "))
    print("violations:" if found else "no violations")
    for v in found:
        print(f"  {v}")
    print("rerun a command by hand with: photoncc --debug " + " ".join(outcome.steps[0].argv) if outcome.steps else "")
    return 1 if found else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10000, help="cases per border (default 10000)")
    parser.add_argument("--border", choices=BORDERS + ("all",), default="all")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--timeout", type=float, default=fuzz.LIMIT_S, help="seconds per command (default 60)")
    parser.add_argument("--workdir", help="folder for seeds and cases (default: a new temporary folder)")
    parser.add_argument("--json", help="write every tally to this file as JSON")
    parser.add_argument("--replay", metavar="BORDER:SEED", help="run one case, keep its files, show everything")
    args = parser.parse_args()
    if args.replay:
        return replay(args)
    return campaign(args)


if __name__ == "__main__":
    sys.exit(main())
