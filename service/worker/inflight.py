"""The messages in flight, and how long SQS hides each one.

`keep_visible` extends a message once half its visibility timeout is spent, by each message's own deadline
(it sleeps until the earliest one is due, or until the first message arrives), so the heartbeat holds from the
first receive on a queue with a timeout of 1 s up, for at most VISIBILITY_EXTENSION_MAX_SECONDS. `deadline`
says until when a message's records may keep retrying throttled puts; `release_all` makes whatever is left
visible again at shutdown.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import structlog

from service.aws.queue import Message, Queue
from service.ingest.limiter import wait_any

log = structlog.get_logger("service.worker.inflight")

DEFAULT_VISIBILITY_S = 30  # SQS's default, used only until the queue's own value is known
RELEASE_TIMEOUT_S = 5.0
EXTEND_RETRY_S = 1.0  # after a refused extension, at most this long (and a quarter of the timeout) to the next try


@dataclass(slots=True)
class Flight:
    due_at: float  # when to extend (half the timeout spent); infinite once the extension maximum is reached


class InFlight:
    def __init__(self, queue: Queue, visibility_s: int | None, extension_max_s: int) -> None:
        self._queue = queue
        self._extension_max_s = extension_max_s
        self._flights: dict[Message, Flight] = {}
        self._arrived = asyncio.Event()
        self.visibility_s = visibility_s

    def __len__(self) -> int:
        return len(self._flights)

    @property
    def _visibility(self) -> int:
        return self.visibility_s or DEFAULT_VISIBILITY_S

    def add(self, message: Message) -> None:
        self._flights[message] = Flight(message.received_at + self._visibility / 2)
        if len(self._flights) == 1:  # the keeper was idle; later arrivals are never due before the earliest
            self._arrived.set()

    def done(self, message: Message) -> None:
        self._flights.pop(message, None)

    def deadline(self, message: Message) -> float:
        """The monotonic time until which the message surely stays hidden, less half a timeout to settle it."""
        return message.received_at + max(self._visibility, self._extension_max_s) - self._visibility / 2

    async def keep_visible(self) -> None:
        while True:
            self._arrived.clear()
            due_at = min((flight.due_at for flight in self._flights.values()), default=math.inf)
            wait_s = None if due_at == math.inf else max(0.0, due_at - time.monotonic())
            await wait_any(self._arrived, timeout_s=wait_s)
            await self._extend_due()

    async def _extend_due(self) -> None:
        """Extend every message whose visibility is half spent."""
        now, visibility_s = time.monotonic(), self._visibility
        due = self._due(now, visibility_s)
        results = await asyncio.gather(
            *(self._queue.change_visibility(message, visibility_s) for message in due), return_exceptions=True
        )
        for message, extended in zip(due, results, strict=True):
            if (flight := self._flights.get(message)) is None:
                continue  # refused for a message just deleted is no news
            if extended is True:
                flight.due_at = now + visibility_s / 2
            else:
                flight.due_at = time.monotonic() + min(EXTEND_RETRY_S, visibility_s / 4)
                log.warning("message.extend_failed", messageId=message.message_id, error=str(extended))

    def _due(self, now: float, visibility_s: int) -> list[Message]:
        """The messages due for an extension, and those due within a quarter of the timeout: they go in the same
        calls, so that a slow round of calls does not make the next round late. One held as long as allowed is
        never due again."""
        due = []
        for message, flight in self._flights.items():
            if flight.due_at > now + visibility_s / 4:
                continue
            if now - message.received_at + visibility_s > self._extension_max_s:
                flight.due_at = math.inf  # SQS may hand it out again once its timeout ends
            else:
                due.append(message)
        return due

    async def release_all(self) -> None:
        """Make every message whose work was cut short visible again at once, for another replica."""
        if not self._flights:
            return
        messages = list(self._flights)
        self._flights.clear()
        try:
            async with asyncio.timeout(RELEASE_TIMEOUT_S):
                await asyncio.gather(*(self._queue.change_visibility(m, 0) for m in messages), return_exceptions=True)
        except TimeoutError:
            log.warning("worker.release_timed_out", note="they reappear when their visibility timeout ends")
        log.warning("worker.released_unfinished", messages=len(messages))
