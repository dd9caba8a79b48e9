"""The one limit on records in flight, adapted to what DynamoDB answers: additive increase, multiplicative
decrease (AIMD, the client-side limit that Netflix's concurrency-limits recommends).

    pollers ── reserve (one slot per message they may receive) ──┐
    records ── acquire (one slot per record, in turn) ───────────┴─▶ at most `limit` slots in use
    every put that succeeds: limit + 1/limit (about one slot more per round of puts), up to `ceiling`;
                             from `initial`, limit + 1 (doubling every round) until the first throttle;
                             only while demand fills half the slots and the write pace does not bind
    a throttle:              limit x DECREASE, once per round, down to `floor`

The limit so settles near what Little's law asks of the round trip (slots in use = puts a second x the put's
round trip), with 2x headroom: it grows only while at least half its slots are in use, so a 50 ms round trip
at 1,500 puts a second takes it to about 150 and a 1 ms one leaves it near its start. `ceiling`
(MAX_IN_FLIGHT_RECORDS) is a safety bound only. Overload is signalled by throttles, not by latency: a latency
(gradient, Vegas) controller would read a slow network or a busy event loop as congestion and shrink exactly
where latency needs hiding (docs/throughput.md, "The limiter").

A received message hands its slot to its first record; every further record acquires one and waits its turn,
and records waiting go before new receives, so a message of any size holds at most the limit and always
progresses. A record keeps its slot while it waits to retry a throttled put (`backoff`). A round is the puts
started since the last decrease: a throttle of a put started before it (an older `epoch`) was answered by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import deque
from collections.abc import Callable

import structlog

log = structlog.get_logger("service.ingest.limiter")

DECREASE = 0.7
RETRY_BASE_S = 0.1  # a throttled put's first retry comes after 0.05-0.1 s ...
RETRY_CAP_S = 5.0  # ... and later ones at most 5 s apart
LOG_EVERY_S = 10.0


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


class Limiter:
    """`Limiter(n)` adapts between 1 and n; `Limiter(n, floor=n)` is a plain bounded one. With `initial`, it
    starts there and doubles each round until a throttle (a slow start, so a fleet that starts against a table
    already at its limit does not open with n throttled puts each)."""

    def __init__(
        self,
        ceiling: int,
        floor: int = 1,
        clock: Callable[[], float] = time.monotonic,
        initial: int | None = None,
    ) -> None:
        self.ceiling = ceiling
        self.floor = min(floor, ceiling)
        self.in_use = 0
        self.epoch = 0
        self._limit = float(max(self.floor, min(ceiling, initial or ceiling)))
        self._slow_start = self._limit < ceiling
        self._turns: deque[asyncio.Future[None]] = deque()
        self._room = asyncio.Event()
        self._closed = asyncio.Event()
        self._clock = clock
        self._logged = (ceiling, -math.inf)  # the limit last logged, and when

    @property
    def limit(self) -> int:
        return max(self.floor, int(self._limit))

    async def acquire(self) -> None:
        """One slot for one record, in turn."""
        if self.in_use < self.limit and not self._turns:
            self.in_use += 1
            return
        turn = asyncio.get_running_loop().create_future()
        self._turns.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.cancelled():
                with contextlib.suppress(ValueError):  # unless `release` skipped it already
                    self._turns.remove(turn)
            else:  # the slot came as the wait was cancelled: pass it on
                self.release()
            raise

    def release(self, slots: int = 1) -> None:
        self.in_use -= slots
        while self._turns and self.in_use < self.limit:
            turn = self._turns.popleft()
            if not turn.done():  # a turn cancelled but not yet withdrawn is skipped
                self.in_use += 1
                turn.set_result(None)
        if self.in_use < self.limit and not self._turns:
            self._room.set()

    async def reserve(self, want: int, stop: asyncio.Event, poll_s: float = 5.0) -> int:
        """Up to `want` slots for a receive, once every record waiting has its slot; 0 if none came within
        `poll_s` (so the poll loop gets a turn to beat its heartbeat) or `stop` is set."""
        if (self.in_use >= self.limit or self._turns) and not stop.is_set():
            self._room.clear()
            await wait_any(self._room, stop, timeout_s=poll_s)
        if stop.is_set() or self._turns:
            return 0
        slots = max(0, min(want, self.limit - self.in_use))
        self.in_use += slots
        return slots

    def succeeded(self, *, grow: bool = True) -> None:
        """Additive increase, while at least half the slots are in use (an idle limit proves nothing) and `grow`
        (False while the write pace binds: slots then wait for turns, and more of them would only queue)."""
        if grow and self._limit < self.ceiling and self.in_use * 2 >= self.limit:
            self._limit = min(float(self.ceiling), self._limit + (1 if self._slow_start else 1 / self._limit))
            self.release(0)  # a grown limit lets the next record in
        self._report()

    def throttled(self, epoch: int) -> None:
        """Multiplicative decrease, once per round: `epoch` is the one the throttled put started in."""
        self._slow_start = False
        if epoch == self.epoch:
            self.epoch += 1
            self._limit = max(float(self.floor), self._limit * DECREASE)
        self._report()

    async def backoff(self, attempt: int, deadline: float) -> bool:
        """Wait before retry `attempt` of a throttled put. False at once if the wait would end after `deadline`
        (monotonic seconds), or when the limiter closes: the record then fails and its message is released."""
        delay_s = backoff_delay(attempt, RETRY_BASE_S, RETRY_CAP_S)
        if self._closed.is_set() or self._clock() + delay_s > deadline:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), delay_s)
        return not self._closed.is_set()

    def close(self) -> None:
        """At shutdown: retry no throttled put any more."""
        self._closed.set()

    def _report(self) -> None:
        """Log the limit when it changed, at most once per LOG_EVERY_S."""
        (logged, at), now = self._logged, self._clock()
        if self.limit != logged and now - at >= LOG_EVERY_S:
            log.info("limit.changed", limit=self.limit, previous=logged, ceiling=self.ceiling, inUse=self.in_use)
            self._logged = (self.limit, now)
