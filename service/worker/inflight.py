"""The messages in flight: the slots each holds under the in-flight limit, and how long SQS hides it.

`keep_visible` extends the visibility of messages still being worked on, so a slow table never lets SQS hand
the same message to another poller; `release_all` makes whatever is left visible again at shutdown.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import structlog

from service.aws.queue import Message, Queue
from service.worker.pacing import Capacity

log = structlog.get_logger("service.worker.inflight")

DEFAULT_VISIBILITY_S = 30  # SQS's default, used only until the queue's own value is known
RELEASE_TIMEOUT_S = 5.0


@dataclass(slots=True)
class Flight:
    slots: int
    visible_until: float


class InFlight:
    def __init__(self, queue: Queue, capacity: Capacity, visibility_s: int | None, extension_max_s: int) -> None:
        self._queue = queue
        self._capacity = capacity
        self._extension_max_s = extension_max_s
        self._flights: dict[Message, Flight] = {}
        self.visibility_s = visibility_s

    def __len__(self) -> int:
        return len(self._flights)

    def add(self, message: Message) -> None:
        """A received message holds the one slot its poller reserved for it."""
        self._flights[message] = Flight(1, message.received_at + (self.visibility_s or DEFAULT_VISIBILITY_S))

    def hold(self, message: Message, records: int) -> None:
        """A message with several records holds a slot per record (the extra ones may overdraw)."""
        flight = self._flights[message]
        if records > flight.slots:
            self._capacity.take(records - flight.slots)
            flight.slots = records

    def done(self, message: Message) -> None:
        self._capacity.release(self._flights.pop(message).slots)

    async def keep_visible(self) -> None:
        """Extend messages whose visibility is half spent, while they have been held less than the maximum."""
        while True:
            visibility_s = self.visibility_s or DEFAULT_VISIBILITY_S
            await asyncio.sleep(max(0.5, min(visibility_s / 4, 10.0)))
            now = time.monotonic()
            due = [
                (message, flight)
                for message, flight in self._flights.items()
                if flight.visible_until - now < visibility_s / 2
                and now - message.received_at + visibility_s <= self._extension_max_s
            ]
            results = await asyncio.gather(
                *(self._queue.change_visibility(message, visibility_s) for message, _ in due), return_exceptions=True
            )
            for (message, flight), extended in zip(due, results, strict=True):
                if extended is True:
                    flight.visible_until = now + visibility_s
                elif message in self._flights:  # refused for a message just deleted is no news
                    log.warning("message.extend_failed", messageId=message.message_id, error=str(extended))

    async def release_all(self) -> None:
        """Make every message whose work was cut short visible again at once, for another replica."""
        if not self._flights:
            return
        messages = list(self._flights)
        for message in messages:
            self.done(message)
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT_S):
                await asyncio.gather(*(self._queue.change_visibility(m, 0) for m in messages), return_exceptions=True)
        except TimeoutError:
            log.warning("worker.release_timed_out", note="they reappear when their visibility timeout ends")
        log.warning("worker.released_unfinished", messages=len(messages))
