"""The byte budget: message bodies in flight are bounded by MAX_IN_FLIGHT_BYTES, not only by their count.

    poller ── reserve (its receive's expected bytes) ── waits while the budget is spent
       └─▶ received: the reservation becomes the bodies' real size (`sys.getsizeof`, what the process holds)
              └─▶ each message gives its body's bytes back once its disposition no longer needs the body

A receive cannot know its bodies' size before it returns, so it reserves `slots x estimate x RECEIVE_COPIES`:
the estimate is the largest body of recent receives (at least MIN_ESTIMATE_BYTES), decaying by DECAY a receive,
and a receive in progress holds its bodies about twice (the HTTP response and the parsed JSON).
Bodies that grow from one receive to the next can overshoot the budget once, by at most one receive each
poller makes meanwhile (10 x 1 MiB); from then on each receive reserves for bodies of that size. One receive
always goes when nothing is held, so a body larger than the whole budget is still processed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from service.ingest.limiter import wait_any

MIN_ESTIMATE_BYTES = 64 * 1024
DECAY = 0.9  # per receive: a storm's estimate fades after about 30 receives of normal bodies
RECEIVE_COPIES = 2  # a receive in progress holds its bodies as bytes and as parsed text


class ByteBudget:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.estimate = float(MIN_ESTIMATE_BYTES)
        self._freed = asyncio.Event()

    @property
    def has_room(self) -> bool:
        return self.used + self.estimate <= self.max_bytes

    async def reserve(self, slots: int, stop: asyncio.Event, poll_s: float = 5.0) -> int | None:
        """The bytes reserved for a receive of `slots` messages; None if no room came within `poll_s` (so the
        poll loop can beat its heartbeat) or `stop` is set."""
        want = int(slots * self.estimate * RECEIVE_COPIES)
        if self.used and self.used + want > self.max_bytes and not stop.is_set():
            self._freed.clear()
            await wait_any(self._freed, stop, timeout_s=poll_s)
        if stop.is_set() or (self.used and self.used + want > self.max_bytes):
            return None
        self.used += want
        return want

    def received(self, reserved: int, sizes: Iterable[int]) -> None:
        """The reservation becomes what the receive brought; the estimate learns from it."""
        sizes = list(sizes)
        self.used += sum(sizes) - reserved
        self.estimate = max(MIN_ESTIMATE_BYTES, max(sizes, default=0), self.estimate * DECAY)
        if sum(sizes) < reserved:
            self._freed.set()

    def release(self, size: int) -> None:
        self.used -= size
        self._freed.set()
