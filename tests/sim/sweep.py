"""Many seeds at once, in a pool of processes, and what a failing seed prints: the one command that replays it,
its scenario and fault plan, and the events that concern the invariants it broke."""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from tests.sim.defects import planted
from tests.sim.run import Result, run_seed

CI_SEEDS = range(500)  # `make test`: these, each with 100 messages and 3 planned faults
CI_MESSAGES = 100
CI_FAULTS = 3


@dataclass(frozen=True, slots=True)
class Job:
    messages: int = CI_MESSAGES
    faults: int = CI_FAULTS
    plant: str | None = None

    def __call__(self, seed: int) -> Result:
        with planted(self.plant):
            return run_seed(seed, messages=self.messages, faults=self.faults)

    def replay(self, seed: int) -> str:
        plant = f" --plant {self.plant}" if self.plant else ""
        return f"python -m tests.sim --seed {seed} --messages {self.messages} --faults {self.faults}{plant}"


def sweep(seeds: Iterable[int], job: Job, jobs: int = 0) -> list[Result]:
    """Every seed's result, in seed order; `jobs` processes (0: one per core, at most 2: the machine is shared)."""
    seeds = list(seeds)
    jobs = jobs or min(2, os.cpu_count() or 1)
    if jobs == 1:
        return [job(seed) for seed in seeds]
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(job, seeds, chunksize=max(1, len(seeds) // (jobs * 8))))


def first_failure(seeds: Iterable[int], job: Job) -> Result | None:
    """The first seed that breaks an invariant, in this process (a planted defect is a patch of this process)."""
    return next((result for seed in seeds if (result := job(seed)).violations), None)


def report(result: Result, job: Job) -> str:
    options = result.options
    lines = [
        f"seed {result.seed} broke {len(result.violations)} invariant(s); replay: {job.replay(result.seed)}",
        f"  scenario: {options.runtime} x{options.processes}, write {options.write_mode}, verify "
        f"{options.verify_objects}, in-flight {options.max_in_flight}, fault rate {options.fault_rate:.3f}",
        *(f"  fault: {line}" for line in result.plan),
        *(f"  {line}" for line in result.trace),
    ]
    return "\n".join(lines)
