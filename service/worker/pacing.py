"""How fast work comes in after environment failures: the intake pause. The in-flight limit (backpressure) is
the core's `service.ingest.limiter.Limiter`, shared by the pollers and the puts."""

from __future__ import annotations

import asyncio
import time

from service.ingest.limiter import backoff_delay, wait_any


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
