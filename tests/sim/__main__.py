"""`python -m tests.sim`: run seeds, or replay one. `make simulate SEEDS=N` runs N seeds past the CI set."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

from tests.sim.defects import DEFECTS
from tests.sim.sweep import CI_FAULTS, CI_MESSAGES, Job, report, sweep


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__)
    parser.add_argument("--seed", type=int, help="replay this one seed and print its trace")
    parser.add_argument("--seeds", type=int, default=500, help="how many seeds (default 500)")
    parser.add_argument("--start", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--messages", type=int, default=CI_MESSAGES)
    parser.add_argument("--faults", type=int, default=CI_FAULTS, help="planned faults per seed, besides the noise")
    parser.add_argument("--plant", choices=sorted(DEFECTS), help="plant a known defect (tests/sim/defects.py)")
    parser.add_argument("--jobs", type=int, default=0, help="processes (default: up to 2)")
    args = parser.parse_args(argv)
    job = Job(args.messages, args.faults, args.plant)
    seeds = [args.seed] if args.seed is not None else range(args.start, args.start + args.seeds)
    started = time.perf_counter()
    results = sweep(seeds, job, 1 if args.plant or args.seed is not None else args.jobs)
    elapsed = time.perf_counter() - started
    failed = [result for result in results if result.violations]
    for result in failed:
        print(report(result, job), file=sys.stderr)
    simulated_h = sum(result.simulated_s for result in results) / 3600
    print(
        f"{len(results)} seeds, {len(failed)} failed; {simulated_h:.1f} simulated hours in {elapsed:.1f} s "
        f"({simulated_h / elapsed * 60:.0f} simulated hours per real minute)"
    )
    injected: Counter[str] = Counter()
    for result in results:
        injected.update(result.faults)
    print("injected:", ", ".join(f"{kind} {n}" for kind, n in sorted(injected.items())))
    if args.seed is not None:
        print(f"history digest {results[0].digest}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
