"""The write pace: a rate in front of the puts that learns the writes a second the table gives this process,
so that a fleet drains at the table's limit with few throttles (docs/throughput.md, "The write pace").

    no throttle:        off: a put starts as soon as it has a slot (the concurrency limit, limiter.py)
    turning on:         at max(INITIAL_RATE, CUT x the successes of the last second), doubling every
                        SLOW_START_DOUBLING_S while it binds, until the next cut
    a cut:              rate = CUT x what got through since the last cut (or in the last second), never below
                        half the rate in one cut nor below MIN_RATE; at most once per ROUND_S, and only while at
                        least MIN_THROTTLES and MIN_THROTTLED_SHARE of the last second's attempts were throttled
    between cuts:       + GROWTH of the rate a second (at least MIN_GROWTH puts a second), while it binds
    QUIET_S without:    off again

A limit on concurrency alone keeps probing upwards, and a table answers each probe with throttles; a rate set
from what really got through at a throttle, raised slowly afterwards, touches the limit about once a cycle.
A trickle of throttles that is not about this process's rate (a fault, one hot key) stays under the share and
cuts nothing. The rate grows only while it binds (a turn waited in the last BINDING_S) and stays within
HEADROOM of what gets through, so an idle process learns no rate it never tried.

Turns are served first come, first served, by one pacer task a tick at a time: turns due in the same tick go
together (so `WRITE_MODE=batch` still fills its calls), a cut slows the queue without reordering it, and a turn
that would come after its caller's deadline, or that has to wait once the pace is closed, is refused with
`PaceTimeout`.
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
INITIAL_RATE = 50.0  # puts a second, the least a pace starts at
SLOW_START_DOUBLING_S = 0.25
CUT = 0.85
MAX_CUT = 0.5  # one cut at most halves the rate: a short count may be a lull in demand, not the table
MIN_THROTTLED_SHARE = 0.02  # of the last second's attempts, and at least MIN_THROTTLES of them: below that,
MIN_THROTTLES = 3  # a throttle is not about this process's rate
GROWTH = 0.05  # of the rate, a second ...
MIN_GROWTH = 5.0  # ... and at least this many puts a second, a second
MIN_RATE = 10.0  # puts a second
WINDOW_S = 1.0  # answers are counted over the last second ...
MIN_WINDOW_S = 0.1  # ... or since the last cut, if that is longer ago than this
ROUND_S = 0.25  # at most one cut in this long: the table's answer to a cut takes a moment to show
HEADROOM = 2.0  # the rate grows only while below HEADROOM x what gets through (+ INITIAL_RATE)
BURST_S = 0.1  # turns saved up while idle, in seconds of the rate
TICK_S = 0.01  # the pacer serves the turns due every tick at once
BINDING_S = 1.0
QUIET_S = 60.0
LOG_EVERY_S = 10.0


class PaceTimeout(Exception):  # a throttle the process keeps to itself: classified as throttled
    """No turn for this put before its deadline, or the pace closed (shutdown)."""


class WritePace:
    """Paces put attempts once the table has throttled them; hears every answer. One per process."""

    def __init__(self, initial_rate: float = OFF, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = initial_rate
        self.epoch = 0
        self.slow_start = True
        self._clock = clock
        now = clock()
        self._tokens, self._filled_at = 0.0, now
        self._turns: deque[asyncio.Future[int]] = deque()
        self._pacer: asyncio.Task[None] | None = None
        self._closed = False
        self._waited_at = -math.inf  # when a turn last had to wait
        self._successes: deque[float] = deque()
        self._throttles: deque[float] = deque()
        self._cut_at = -math.inf if initial_rate == OFF else now
        self._logged = (self.rate, -math.inf)

    @property
    def waiting(self) -> int:
        return len(self._turns)

    @property
    def binding(self) -> bool:
        """A turn had to wait within the last BINDING_S: the rate, not the concurrency, limits the puts."""
        return self.rate != OFF and self._clock() - self._waited_at < BINDING_S

    async def turn(self, deadline: float | None = None) -> int:
        """Wait for this attempt's turn; the epoch it starts in, for `throttled`. `PaceTimeout` if it would
        come after `deadline` (monotonic seconds), or if it has to wait once the pace is closed."""
        if self.rate == OFF:
            return self.epoch
        now = self._clock()
        if not self._turns and self.grant(now):
            return self.epoch
        if self._closed:
            raise PaceTimeout("the write pace is closed: the process is stopping")
        if deadline is not None and now + (len(self._turns) + 1 - self._tokens) / self.rate > deadline:
            raise PaceTimeout(f"no turn within the deadline: {len(self._turns)} waiting at {self.rate:.0f}/s")
        turn: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._turns.append(turn)
        self._waited_at = now
        if self._pacer is None or self._pacer.done():
            self._pacer = asyncio.create_task(self._serve())
        return await turn  # a cancelled waiter's future is cancelled too, and skipped

    def grant(self, now: float) -> bool:
        """Take a turn now if one is saved up (the pacer and a turn that finds no queue use this)."""
        self._tokens = min(max(1.0, self.rate * BURST_S), self._tokens + (now - self._filled_at) * self.rate)
        self._filled_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    async def _serve(self) -> None:
        while self._turns:
            now = self._clock()
            while self._turns and (self.rate == OFF or self.grant(now)):
                turn = self._turns.popleft()
                if turn.done():  # cancelled: its token goes to the next
                    self._tokens += 1
                else:
                    turn.set_result(self.epoch)
            if self._turns:
                await asyncio.sleep(max(TICK_S, (1 - self._tokens) / self.rate))

    def close(self) -> None:
        """At shutdown: refuse every turn that has to wait, now or later, so a paced record fails and its
        message is released instead of waiting out the queue."""
        self._closed = True
        while self._turns:
            turn = self._turns.popleft()
            if not turn.done():
                turn.set_exception(PaceTimeout("the write pace is closed: the process is stopping"))

    def succeeded(self) -> None:
        now = self._clock()
        self._count(self._successes, now)
        if self.rate == OFF:
            return
        if now - self._cut_at > QUIET_S:
            self._set(OFF, now)
            return
        binding = now - self._waited_at < BINDING_S  # a rate that does not bind proves nothing, and neither
        if binding and self.rate < HEADROOM * len(self._successes) / WINDOW_S + INITIAL_RATE:  # does one far ahead
            if self.slow_start:  # + rate x ln 2 / doubling time, a second
                self.rate += math.log(2) / SLOW_START_DOUBLING_S
            else:  # + max(GROWTH x rate, MIN_GROWTH), a second
                self.rate += max(GROWTH, MIN_GROWTH / self.rate)
            self._report(now)

    def throttled(self, epoch: int) -> None:
        """Cut the rate to what got through, once per round (`epoch` is the round the throttled attempt started
        in) and only while throttles are a real share of the attempts."""
        now = self._clock()
        if epoch != self.epoch:  # answered by a cut already
            return
        self._count(self._throttles, now)
        if now - self._cut_at < ROUND_S or not self._saturated(now):
            return
        self.epoch += 1
        if self.rate == OFF:
            self.slow_start = True
            rate = max(INITIAL_RATE, CUT * self.measured(now))
            self._tokens, self._filled_at = 0.0, now
        else:  # leaving the slow start, the rate may be up to twice what got through a doubling ago
            ceiling = self.rate * MAX_CUT if self.slow_start else self.rate
            self.slow_start = False
            rate = max(self.rate * MAX_CUT, min(ceiling, CUT * self.measured(now, since=self._cut_at)))
        self._cut_at = now
        self._throttles.clear()
        self._set(max(MIN_RATE, rate), now)
        self._tokens = min(self._tokens, max(1.0, self.rate * BURST_S))

    def _saturated(self, now: float) -> bool:
        """Within the last second, of the attempts made since the last cut: at least MIN_THROTTLES throttles, and
        at least MIN_THROTTLED_SHARE of the attempts. Throttles from before the cut were answered by it."""
        self._count(self._successes, now, add=False)
        self._count(self._throttles, now, add=False)
        throttles = len(self._throttles)
        successes = sum(1 for at in self._successes if at > self._cut_at)
        return throttles >= MIN_THROTTLES and throttles >= MIN_THROTTLED_SHARE * (throttles + successes)

    def measured(self, now: float, since: float = -math.inf) -> float:
        """Successes a second over the last WINDOW_S, or since `since` (the last cut: what the table gave once
        its burst was spent) if that is between MIN_WINDOW_S and WINDOW_S ago."""
        self._count(self._successes, now, add=False)
        window_s = now - since if MIN_WINDOW_S <= now - since < WINDOW_S else WINDOW_S
        start = now - window_s
        return sum(1 for at in self._successes if at >= start) / window_s

    @staticmethod
    def _count(times: deque[float], now: float, *, add: bool = True) -> None:
        if add:
            times.append(now)
        while times and times[0] < now - WINDOW_S:
            times.popleft()

    def _set(self, rate: float, now: float) -> None:
        self.rate = rate
        if rate == OFF:
            self.slow_start = True
            for turn in self._turns:  # the queue goes at once
                if not turn.done():
                    turn.set_result(self.epoch)
            self._turns.clear()
        self._report(now)

    def _report(self, now: float) -> None:
        """Log the rate when it moved by a tenth (or the pace went on or off), at most once per LOG_EVERY_S."""
        logged, at = self._logged
        moved = (self.rate == OFF) != (logged == OFF) or abs(self.rate - logged) > logged / 10
        if moved and (now - at >= LOG_EVERY_S or OFF in (self.rate, logged)):
            rate = None if self.rate == OFF else round(self.rate, 1)
            log.info("pace.changed", rate=rate, previous=None if logged == OFF else round(logged, 1))
            self._logged = (self.rate, now)
