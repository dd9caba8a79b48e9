"""The SQS event source mapping in front of the real Lambda handler: `concurrency` pollers, each receiving
batches of up to 10 messages and invoking an execution environment with them.

- The answer's `batchItemFailures` stay on the queue; every other message is deleted, by the mapping.
- A failed invocation (it raised) deletes nothing: its messages come back when their visibility timeout ends,
  and so do those of an invocation that outran the function's timeout, whose environment is then discarded.
- During an SQS outage the mapping receives nothing either.
- A crash discards the environment too; SIGTERM retires it after its invocation. The next batch of that poller
  starts a fresh one (a cold start).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from tests.sim.runtimes import LambdaEnvironment
from tests.sim.sqs import SimMessage
from tests.sim.world import World

BATCH_SIZE = 10
FUNCTION_TIMEOUT_S = 30.0
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:photos"


@dataclass(slots=True)
class Context:
    aws_request_id: str
    deadline: float
    world: World

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - self.world.clock.now) * 1000))


class EventSourceMapping:
    def __init__(self, world: World) -> None:
        self.world = world
        self.environments: dict[int, LambdaEnvironment] = {}
        self.every: list[LambdaEnvironment] = []
        self.retiring: set[int] = set()
        self._generations: dict[int, int] = {}
        self._requests = 0

    def current(self, slot: int) -> LambdaEnvironment | None:
        return self.environments.get(slot)

    async def poll(self, slot: int, stop: asyncio.Event) -> None:
        world = self.world
        while not stop.is_set():
            if (ends := world.faults.outage_ends("sqs", world.clock.now)) is not None:
                await asyncio.sleep(ends - world.clock.now)  # the mapping polls SQS too: it waits the outage out
                continue
            messages = await world.main.receive(BATCH_SIZE, 20, None, f"esm{slot}")
            if messages:
                await self._invoke(slot, messages)

    def _environment(self, slot: int) -> LambdaEnvironment:
        environment = self.environments.get(slot)
        if environment is None or not environment.alive or slot in self.retiring:
            self.retiring.discard(slot)
            generation = self._generations[slot] = self._generations.get(slot, -1) + 1
            environment = self.environments[slot] = LambdaEnvironment(self.world, slot, generation)
            self.every.append(environment)
        return environment

    async def _invoke(self, slot: int, messages: list[SimMessage]) -> None:
        environment = self._environment(slot)
        self._requests += 1
        context = Context(f"req-{self._requests}", self.world.clock.now + FUNCTION_TIMEOUT_S, self.world)
        task = environment.spawn(environment.runtime._invoke(self._event(messages), context))
        done, _ = await asyncio.wait({task}, timeout=FUNCTION_TIMEOUT_S)
        if not done:
            self.world.history.add(environment.name, "invocation timed out")
            environment.crash()
            return
        if task.cancelled() or task.exception() is not None:
            self.world.history.add(
                environment.name, "invocation failed", repr(None if task.cancelled() else task.exception())
            )
            return
        failures = {failure["itemIdentifier"] for failure in task.result()["batchItemFailures"]}
        for message in messages:
            if message.id not in failures:
                self.world.main.delete(message.handle, environment.name)
                environment.delivered["deleted"] += 1

    def _event(self, messages: list[SimMessage]) -> dict[str, Any]:
        clock = self.world.clock
        return {
            "Records": [
                {
                    "messageId": m.id,
                    "receiptHandle": m.handle,
                    "body": m.body,
                    "attributes": {
                        "ApproximateReceiveCount": str(m.receives),
                        "SentTimestamp": str(int((clock.wall() - clock.now + m.sent_at) * 1000)),
                    },
                    "eventSource": "aws:sqs",
                    "eventSourceARN": QUEUE_ARN,
                }
                for m in messages
            ]
        }
