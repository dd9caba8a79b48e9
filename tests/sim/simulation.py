"""The course of one run: the world is set up, the traffic is sent on its schedule, the runtimes run and are
crashed, stopped and restarted as the fault plan says, and once the faults stop the queue must drain within
`LIVENESS_S` of virtual time. Then every runtime is stopped (SIGTERM) and must stop within `STOP_S`.
"""

from __future__ import annotations

import asyncio

from tests.sim.mapping import EventSourceMapping
from tests.sim.runtimes import SimProcess, WorkerProcess
from tests.sim.traffic import Photo, Sent, photo_id
from tests.sim.world import World

LIVENESS_S = 1800.0  # after the faults stop; the longest backoff (300 s) and intake pause (30 s) fit many times
STOP_S = 120.0  # the shutdown timeout (20 s) and a long poll, with room


class Simulation:
    def __init__(self, world: World) -> None:
        self.world = world
        self.workers: dict[int, list[WorkerProcess]] = {}
        self.mapping = EventSourceMapping(world) if world.options.runtime == "lambda" else None
        self.stopping = asyncio.Event()

    def processes(self) -> list[SimProcess]:
        if self.mapping is not None:
            return list(self.mapping.every)
        return [process for generations in self.workers.values() for process in generations]

    async def run(self) -> None:
        world, loop = self.world, asyncio.get_running_loop()
        self._prepare()
        for sent in world.traffic.messages:
            loop.call_at(sent.at, self._send, sent)
        for at, kind, slot in world.plan.timed:
            loop.call_at(at, self._fault, kind, slot)
        runners = [asyncio.create_task(self._slot(slot)) for slot in range(world.options.processes)]
        await self._until_drained()
        self.stopping.set()
        for process in self._current():
            if isinstance(process, WorkerProcess):
                process.terminate()
        _, unfinished = await asyncio.wait(runners, timeout=STOP_S)
        if unfinished:
            world.violate("shutdown", "stop", f"{len(unfinished)} runtimes still running {STOP_S:.0f} s after SIGTERM")

    def _prepare(self) -> None:
        """Objects in S3 (not the gone ones); for each taken photo, another object's item under its photoId."""
        for photo in self.world.traffic.photos:
            if photo.kind != "gone":
                self.world.objects.objects[(photo.bucket, photo.key)] = 1000
            if photo.kind == "taken":
                other = Photo(photo.bucket, f"{photo.key}.original", "stored")
                item = {"photoId": {"S": photo.id}, "s3Bucket": {"S": other.bucket}, "s3Key": {"S": other.key}}
                self.world.table.seed(item | {"uploadedAt": {"S": "2000-01-01T00:00:00+00:00"}})
                assert photo_id(other.bucket, other.key) != photo.id

    def _send(self, sent: Sent) -> None:
        message = self.world.main.send(sent.body, "s3")
        sent.message_id = message.id
        self.world.sent[message.id] = sent

    def _current(self) -> list[SimProcess]:
        if self.mapping is not None:
            return [e for e in self.mapping.environments.values() if e.alive]
        return [generations[-1] for generations in self.workers.values() if generations[-1].alive]

    def _fault(self, kind: str, slot: int) -> None:
        self.world.faults.counts[kind] = self.world.faults.counts.get(kind, 0) + 1
        if self.mapping is not None:
            environment = self.mapping.current(slot)
            if environment is not None and kind == "kill":
                environment.crash()
            elif environment is not None:
                self.mapping.retiring.add(slot)
            return
        process = self.workers.get(slot, [None])[-1]
        if process is not None and process.alive and not self.stopping.is_set():
            process.crash() if kind == "kill" else process.terminate()

    async def _slot(self, slot: int) -> None:
        """One replica: a worker restarted after each crash or stop, or one poller of the mapping."""
        if self.mapping is not None:
            await self.mapping.poll(slot, self.stopping)
            return
        generations = self.workers.setdefault(slot, [])
        while not self.stopping.is_set():
            process = WorkerProcess(self.world, slot, len(generations))
            generations.append(process)
            process.start()
            assert process.task is not None
            await asyncio.wait({process.task})
            if not process.task.cancelled() and process.task.exception() is not None:
                self.world.violate("worker died", process.name, repr(process.task.exception()))
            process.finished = not process.task.cancelled()
            await asyncio.sleep(self.world.rng.uniform(1, 10))

    async def _until_drained(self) -> None:
        world = self.world
        last_send = max(sent.at for sent in world.traffic.messages)
        deadline = world.calm_at + LIVENESS_S
        while world.clock.now < deadline:
            await asyncio.sleep(1.0)
            if world.clock.now > last_send and not world.main.live:
                return
        world.violate(
            "liveness", "queue", f"{len(world.main.live)} messages left {LIVENESS_S:.0f} s after the faults stopped"
        )
