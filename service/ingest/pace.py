"""The write pace: a rate in front of the puts that learns the writes a second the table gives this process,
so that a fleet drains at the table's limit with few throttles (docs/throughput.md, "The write pace").

    no throttle:       off: puts start as soon as they have a slot (the concurrency limit, limiter.py)
    the first one:     on, at CUT x the successes of the last second; or, before a second of answers has
                       been seen, at INITIAL_RATE, doubling every SLOW_START_DOUBLING_S while it binds
    a throttle:        rate = CUT x what got through since the last cut (or in the last second), at most
                       once per ROUND_S, and never below half the rate in one cut
    between them:      + GROWTH of the rate a second (at least MIN_GROWTH puts a second), while it binds
    QUIET_S without:   off again

A limit on concurrency alone keeps probing upwards, and a table answers each probe with throttles; a rate set
from what really got through at the moment of a throttle, raised slowly afterwards, touches the limit about
once a cycle (bench: 1.7-3.3% of puts throttled, against 14-27% without it). The rate grows only while it
binds (a turn waited in the last BINDING_S) and stays within HEADROOM of what gets through, so an idle process
does not learn a rate it never tried. A round is the turns taken since the last cut: a throttle of an older
one was answered by that cut already, and a turn booked before a cut is booked again at the new rate.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

import structlog

log = structlog.get_logger("service.ingest.pace")

OFF = math.inf
INITIAL_RATE = 50.0  # puts a second, when a throttle comes before the pace knows anything
SLOW_START_DOUBLING_S = 0.25
CUT = 0.9
MAX_CUT = 0.5  # one cut at most halves the rate: a short count may be a lull in demand, not the table
GROWTH = 0.05  # of the rate, a second ...
MIN_GROWTH = 5.0  # ... and at least this many puts a second, a second
MIN_RATE = 10.0  # puts a second: a throttle that is not about capacity (a fault, a hot key) cannot stall a process
WINDOW_S = 1.0  # successes are counted over the last second ...
MIN_WINDOW_S = 0.1  # ... or since the last cut, if that is longer ago than this
ROUND_S = 0.25  # at most one cut in this long: the table's answer to a cut takes a moment to show
HEADROOM = 2.0  # the rate grows only while below HEADROOM x what gets through (+ INITIAL_RATE)
BURST_S = 0.1  # a turn may start this far behind the schedule, so records that come together go together
BINDING_S = 1.0
QUIET_S = 60.0
LOG_EVERY_S = 10.0


class WritePace:
    """Paces put attempts once the table has throttled one; hears every answer. One per process."""

    def __init__(self, initial_rate: float = OFF, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = initial_rate
        self.epoch = 0
        self.slow_start = True
        self._clock = clock
        self._next = -math.inf  # when the next turn is due
        self._waited_at = -math.inf  # when a turn last had to wait
        self._successes: deque[float] = deque()
        self._started_at = clock()
        self._cut_at = -math.inf if initial_rate == OFF else self._started_at
        self._logged = (self.rate, -math.inf)

    def due(self) -> float:
        """When a turn taken now would start (monotonic seconds)."""
        return -math.inf if self.rate == OFF else max(self._next, self._clock() - BURST_S)

    async def turn(self) -> int:
        """Wait for this attempt's turn; the epoch it belongs to, for `throttled`."""
        while True:
            if self.rate == OFF:
                return self.epoch
            at, epoch = self.take()
            wait_s = at - self._clock()
            if wait_s <= 0:
                return epoch
            await asyncio.sleep(wait_s)
            if epoch == self.epoch:  # else a cut came meanwhile: book again, at the new rate
                return epoch

    def take(self) -> tuple[float, int]:
        """Book the next turn: when it is (monotonic seconds) and its epoch."""
        now = self._clock()
        at = max(self._next, now - BURST_S)
        self._next = at + 1.0 / self.rate
        if at > now:
            self._waited_at = now
        return at, self.epoch

    def succeeded(self) -> None:
        now = self._clock()
        successes = self._successes
        successes.append(now)
        while successes[0] < now - WINDOW_S:
            successes.popleft()
        if self.rate == OFF:
            return
        if now - self._cut_at > QUIET_S:
            self._set(OFF, now)
            return
        binding = now - self._waited_at < BINDING_S  # a rate that does not bind proves nothing, and neither
        if binding and self.rate < HEADROOM * len(successes) / WINDOW_S + INITIAL_RATE:  # does one far ahead
            if self.slow_start:  # + rate x ln 2 / doubling time, a second
                self.rate += math.log(2) / SLOW_START_DOUBLING_S
            else:  # + max(GROWTH x rate, MIN_GROWTH), a second
                self.rate += max(GROWTH, MIN_GROWTH / self.rate)
            self._report(now)

    def throttled(self, epoch: int) -> None:
        """Cut the rate to what got through, once per round: `epoch` is the round the throttled attempt was in."""
        now = self._clock()
        if epoch != self.epoch or now - self._cut_at < ROUND_S:
            return
        self.epoch += 1
        seen_s = now - self._started_at
        if self.rate == OFF and seen_s < WINDOW_S:  # too soon to know what the table gives: slow start
            rate = INITIAL_RATE
        elif self.rate == OFF:
            self.slow_start = False
            rate = CUT * self.measured(now)
        elif self.slow_start and seen_s < WINDOW_S:
            rate = self.rate * MAX_CUT
        else:  # leaving the slow start, the rate may be up to twice what got through a doubling ago
            ceiling = self.rate * MAX_CUT if self.slow_start else self.rate
            self.slow_start = False
            rate = max(self.rate * MAX_CUT, min(ceiling, CUT * self.measured(now, since=self._cut_at)))
        self._cut_at = now
        self._next = now + 1.0 / max(MIN_RATE, rate)  # the turns booked before are booked again (turn)
        self._set(max(MIN_RATE, rate), now)

    def measured(self, now: float, since: float = -math.inf) -> float:
        """Successes a second over the last WINDOW_S, or since `since` (the last cut: what the table gave once
        its burst was spent) if that is between MIN_WINDOW_S and WINDOW_S ago."""
        while self._successes and self._successes[0] < now - WINDOW_S:
            self._successes.popleft()
        window_s = now - since if MIN_WINDOW_S <= now - since < WINDOW_S else WINDOW_S
        start = now - window_s
        return sum(1 for at in reversed(self._successes) if at >= start) / window_s

    def _set(self, rate: float, now: float) -> None:
        self.rate = rate
        if rate == OFF:
            self.slow_start = True
        self._report(now)

    def _report(self, now: float) -> None:
        """Log the rate when it moved by a tenth (or the pace went on or off), at most once per LOG_EVERY_S."""
        logged, at = self._logged
        moved = (self.rate == OFF) != (logged == OFF) or abs(self.rate - logged) > logged / 10
        if moved and (now - at >= LOG_EVERY_S or OFF in (self.rate, logged)):
            rate = None if self.rate == OFF else round(self.rate, 1)
            log.info("pace.changed", rate=rate, previous=None if logged == OFF else round(logged, 1))
            self._logged = (self.rate, now)
