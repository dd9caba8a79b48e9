"""How fast a backfill through the queue may send: a token bucket for `--rate`, a gate for `--max-backlog`.

Both exist so that a backfill of millions of objects does not starve live uploads of workers, nor a new table of
its capacity (a new on-demand table serves about 4,000 writes a second at first). Neither polls: the bucket says
exactly how long to wait, and the gate reads the queue's depth at most every `BACKLOG_POLL_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

import structlog

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

log = structlog.get_logger("service.ops.backfill.pacing")

BACKLOG_POLL_S = 5.0


async def wait_or_stop(stop: asyncio.Event, delay_s: float) -> None:
    """Sleep `delay_s`, or less if `stop` is set meanwhile."""
    if delay_s > 0 and not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay_s)


class TokenBucket:
    """At most `rate_per_s` messages a second on average, and `burst` (one batch) at once. `reserve` takes the
    tokens at once, going into debt if it must, and says how long to wait before using them: callers are served
    in the order they ask, and nobody spins."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._tokens = float(burst)
        self._at = time.monotonic()

    def reserve(self, count: int) -> float:
        """Take `count` tokens; returns the seconds to wait before sending that many messages."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate_per_s) - count
        self._at = now
        return max(0.0, -self._tokens / self._rate_per_s)


class BacklogGate:
    """Holds sending while the queue holds more than `max_backlog` messages. The queue's
    ApproximateNumberOfMessages costs a call, so it is read at most every BACKLOG_POLL_S; in between, what was
    admitted since (and what was still in flight at the reading) is added to it, as if no worker took any, so the
    backlog stays within one batch of the limit, give or take the lag of SQS's approximate count."""

    def __init__(self, sqs: SQSClient, queue_url: str, max_backlog: int) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._max_backlog = max_backlog
        self._reading = 0
        self._read_at = float("-inf")
        self._admitted = 0  # messages admitted since the reading, or in flight at it
        self._in_flight = 0  # admitted, and not yet through SendMessageBatch
        self.pauses = 0

    async def admit(self, count: int, stop: asyncio.Event) -> None:
        """Return once `count` more messages may be sent (or `stop` is set)."""
        paused_at: float | None = None
        while not stop.is_set():
            if time.monotonic() - self._read_at >= BACKLOG_POLL_S:
                await self._read()
            if self._reading + self._admitted <= self._max_backlog:
                break
            if paused_at is None:
                paused_at = time.monotonic()
                self.pauses += 1
                log.info("backfill.backlog_paused", backlog=self._reading + self._admitted, limit=self._max_backlog)
            await wait_or_stop(stop, self._read_at + BACKLOG_POLL_S - time.monotonic())
        if paused_at is not None:
            log.info("backfill.backlog_resumed", pausedSeconds=round(time.monotonic() - paused_at, 1))
        self._admitted += count
        self._in_flight += count

    def sent(self, count: int) -> None:
        """`count` admitted messages are through SendMessageBatch (sent or given up): the next reading has them."""
        self._in_flight -= count

    async def _read(self) -> None:
        response = await self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        self._reading = int(response["Attributes"]["ApproximateNumberOfMessages"])
        self._read_at = time.monotonic()
        self._admitted = self._in_flight
