"""How fast work comes in: the in-flight limit (backpressure) and the pause after environment failures."""

from __future__ import annotations

import asyncio
import random
import time


def backoff_delay(attempt: int, base_s: float, cap_s: float) -> float:
    """Capped exponential delay with "equal jitter": never 0, so a retry is never hot.

    attempt 1 -> [base/2, base], attempt 2 -> [base, 2*base], ... capped at [cap/2, cap].
    """
    ceiling = min(cap_s, base_s * 2.0 ** min(max(attempt, 1) - 1, 32))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


async def wait_any(*events: asyncio.Event, timeout_s: float | None = None) -> None:
    """Return when any event is set, or after `timeout_s`."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


class Capacity:
    """The one limiter: how many records may be in flight.

    Pollers `reserve` before they receive, so nothing is received without room for it. A message that turns
    out to hold several records `take`s the extra slots without waiting (S3 sends one record per message, so
    the overdraft is rare and at most one batch); the pollers then wait until the overdraft is paid back.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = limit
        self._changed = asyncio.Event()

    @property
    def in_use(self) -> int:
        return self.limit - self._free

    def take(self, slots: int) -> None:
        self._free -= slots

    def release(self, slots: int) -> None:
        if slots:
            self._free += slots
            self._changed.set()

    async def reserve(self, want: int, stop: asyncio.Event, poll_s: float = 5.0) -> int:
        """Up to `want` slots, waiting up to `poll_s` for at least one; 0 if none came or `stop` is set,
        so the poll loop gets a turn to beat its heartbeat while it waits."""
        if self._free <= 0 and not stop.is_set():
            self._changed.clear()
            await wait_any(self._changed, stop, timeout_s=poll_s)
        if stop.is_set() or self._free <= 0:
            return 0
        slots = min(want, self._free)
        self._free -= slots
        return slots


class IntakeGate:
    """Pauses receiving while the environment (queue, table, credentials, network) is failing.

    Each failing source (`receive`, `put`) counts its consecutive failures; the pause grows exponentially
    with the worst of them, up to a cap, and ends at the first success. While a source is failing, one
    poller alone receives, a single message at a time: a probe, which does not burn the whole backlog's
    receive counts during an outage.
    """

    def __init__(self, base_s: float, cap_s: float) -> None:
        self._base_s = base_s
        self._cap_s = cap_s
        self._failures: dict[str, int] = {}
        self._closed_until = 0.0
        self._reopened = asyncio.Event()

    @property
    def degraded(self) -> bool:
        return bool(self._failures)

    def remaining_s(self) -> float:
        """How long the current pause still lasts (0 when the gate is open)."""
        return max(0.0, self._closed_until - time.monotonic())

    def failures(self, source: str) -> int:
        """How many pauses in a row `source` has caused."""
        return self._failures.get(source, 0)

    def failed(self, source: str) -> float:
        """Close the gate; the pause grows once per pause, not once per failure, so a burst of failures from
        one batch counts as one. Returns the time until the gate opens again."""
        now = time.monotonic()
        if self._closed_until > now and source in self._failures:
            return self._closed_until - now
        count = self._failures[source] = self._failures.get(source, 0) + 1
        delay = backoff_delay(count, self._base_s, self._cap_s)
        self._closed_until = max(self._closed_until, now + delay)
        return delay

    def succeeded(self, source: str) -> None:
        if self._failures.pop(source, None) is not None and not self._failures:
            self._closed_until = 0.0
            self._reopened.set()  # the pause ends at the first success, also for pollers already waiting

    async def wait_recovered(self, stop: asyncio.Event, poll_s: float = 5.0) -> None:
        """Wait (up to `poll_s`, so the caller can beat its heartbeat) until no source is failing."""
        if self.degraded and not stop.is_set():
            self._reopened.clear()
            await wait_any(self._reopened, stop, timeout_s=poll_s)

    async def wait_open(self, stop: asyncio.Event) -> None:
        """Return when the pause is over, a success reopened the gate, or `stop` is set; a failure while
        waiting extends the pause, so the deadline is read again after every wake-up."""
        while (remaining := self._closed_until - time.monotonic()) > 0 and not stop.is_set():
            self._reopened.clear()
            await wait_any(self._reopened, stop, timeout_s=remaining)
