"""The product's runtimes inside the simulation: worker processes (the real `run_worker`) and Lambda execution
environments (the real `LambdaRuntime`) behind a simulated event source mapping.

A process runs in its own context, so every log line and every AWS call is attributed to it. Crashing it
drops its tasks without a drain (its clients never answer again); SIGTERM sets its stop event. A slot's next
process starts fresh, on the same services.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import Counter
from pathlib import Path
from typing import Any

from service.aws_lambda.entry import LambdaRuntime
from service.aws_lambda.settings import LambdaSettings
from service.config import Settings
from service.worker import worker as worker_module
from tests.sim.sdk import Session
from tests.sim.traffic import BUCKETS
from tests.sim.world import World

PROCESS: contextvars.ContextVar[str] = contextvars.ContextVar("sim_process", default="sim")
WORKERS: dict[str, Any] = {}  # process name -> its Worker, registered as it is made (`RegisteringWorker`)
HEALTH_FILE = Path("/nonexistent-sim-dir/health")  # the heartbeat's writes fail at once, as cheaply as can be


class RegisteringWorker(worker_module.Worker):
    """The real Worker; the simulator keeps a reference to read its limiter and metrics after a run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        WORKERS[PROCESS.get()] = self


class SimProcess:
    def __init__(self, world: World, slot: int, generation: int) -> None:
        self.world, self.slot = world, slot
        self.name = f"{'w' if world.options.runtime == 'worker' else 'λ'}{slot}.{generation}"
        self.alive, self.crashed = True, False
        self.finished = False  # its run returned (a worker that stopped on SIGTERM)
        self.delivered: Counter[str] = Counter()
        self.puts_in_flight = self.peak_puts = 0
        self.owed: set[str] = set()
        self.task: asyncio.Task[Any] | None = None

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        context = contextvars.copy_context()
        context.run(PROCESS.set, self.name)
        self.task = asyncio.get_running_loop().create_task(coro, context=context)
        return self.task

    def crash(self) -> None:
        if self.alive:
            self.alive, self.crashed = False, True
            self.world.history.add(self.name, "CRASH")
            if self.task is not None:
                self.task.cancel()


class WorkerProcess(SimProcess):
    def start(self) -> None:
        self.stop = asyncio.Event()
        self.world.history.add(self.name, "start")
        self.spawn(worker_module.run_worker(worker_settings(self.world), self.stop, session=Session(self.world, self)))

    def terminate(self) -> None:
        self.world.history.add(self.name, "SIGTERM")
        self.stop.set()


def worker_settings(world: World) -> Settings:
    options = world.options
    return Settings(
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings' own keyword
        queue_url=world.main.url,
        dead_letter_queue_url=world.dead_letter.url,
        health_file=HEALTH_FILE,
        metrics_enabled=False,  # the emitter would reset the counters the accounting reads
        pollers=options.pollers,
        max_in_flight_records=options.max_in_flight,
        write_mode=options.write_mode,
        verify_objects=options.verify_objects,
        allowed_buckets=frozenset(BUCKETS) if options.verify_objects else None,
    )


def lambda_settings(world: World) -> LambdaSettings:
    return LambdaSettings(
        _env_file=None,  # type: ignore[call-arg]
        dead_letter_queue_url=world.dead_letter.url,
        metrics_enabled=False,
        max_in_flight_records=world.options.max_in_flight,
    )


class LambdaEnvironment(SimProcess):
    def __init__(self, world: World, slot: int, generation: int) -> None:
        super().__init__(world, slot, generation)
        self.runtime = LambdaRuntime(lambda_settings(world), session=Session(world, self))
        world.history.add(self.name, "cold start")
