"""One seed, start to finish: the scenario, the run on virtual time, the invariants, the result.

seed ─▶ scenario (runtime, processes, write mode, VERIFY_OBJECTS, limits) ─▶ traffic ─▶ fault plan
     ─▶ World ─▶ Simulation.run on a VirtualLoop ─▶ check_end ─▶ Result (violations, history digest)
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass

from service.worker import worker as worker_module
from tests.sim.clock import Stalled, VirtualLoop, virtual_time
from tests.sim.faults import make_plan
from tests.sim.invariants import check_end
from tests.sim.recording import recorded_logs
from tests.sim.runtimes import WORKERS, RegisteringWorker
from tests.sim.simulation import Simulation
from tests.sim.traffic import make_traffic
from tests.sim.world import Options, Violation, World


@dataclass(frozen=True, slots=True)
class Result:
    seed: int
    options: Options
    violations: list[Violation]
    digest: str
    simulated_s: float
    real_s: float
    trace: list[str]
    plan: list[str]
    faults: dict[str, int]  # what was injected, by kind


def scenario(rng: random.Random, messages: int, faults: int) -> Options:
    runtime = "lambda" if rng.random() < 0.25 else "worker"
    return Options(
        runtime=runtime,
        processes=rng.randint(2, 5),
        write_mode=rng.choice(("put", "batch")) if runtime == "worker" else "put",
        verify_objects=runtime == "worker" and rng.random() < 0.3,
        max_in_flight=rng.choice((4, 8, 16, 32)),
        pollers=rng.randint(1, 3),
        fault_rate=rng.uniform(0.01, 0.08),
        messages=messages,
        faults=faults,
    )


def run_seed(seed: int, *, messages: int = 100, faults: int = 3, options: Options | None = None) -> Result:
    started = time.perf_counter()
    rng = random.Random(seed)
    options = options or scenario(rng, messages, faults)
    traffic = make_traffic(rng, options.messages, options.traffic_s)
    plan = make_plan(rng, options.processes, options.traffic_s, options.faults, s3=options.verify_objects)
    world = World(seed, options, traffic, plan)
    planned = plan.describe()
    random.seed(seed)  # the product's jitter
    WORKERS.clear()
    loop = VirtualLoop(world.clock)
    saved_worker = worker_module.Worker
    worker_module.Worker = RegisteringWorker  # type: ignore[misc]
    simulation = Simulation(world)
    try:
        with virtual_time(world.clock), recorded_logs(world):
            try:
                loop.run_until_complete(simulation.run())
            except Stalled as exc:
                world.violate("liveness", "deadlock", str(exc))
            finally:
                digest = world.history.digest()  # before the leftovers are dropped, in no set order
                _cancel_all(loop)
        check_end(world, simulation.processes(), WORKERS)
    finally:
        worker_module.Worker = saved_worker  # type: ignore[misc]
        loop.close()
    trace = []
    for violation in world.violations[:3]:
        trace += [
            f"-- {violation.invariant}: {violation.subject} {violation.detail}",
            *world.history.about(violation.subject),
        ]
    return Result(
        seed,
        options,
        world.violations,
        digest,
        world.clock.now,
        time.perf_counter() - started,
        trace,
        planned,
        _injected(world),
    )


def _injected(world: World) -> dict[str, int]:
    injected = dict(world.faults.counts)
    for window in world.plan.windows:
        injected[window.kind] = injected.get(window.kind, 0) + 1
    injected["duplicate delivery"] = world.main.duplicates
    return injected


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Drop every task still pending (a crashed process's, waiting for an answer that never comes)."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        with contextlib.suppress(Stalled):  # a busy loop that a cancel does not end: already a violation
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
