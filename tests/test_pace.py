"""The write pace: turns spaced by the rate, a slow start that grows only while it binds, a cut to what got
through (once per round), growth after it, a floor; and a model of a fleet on a table with a fixed capacity
that holds the issue's targets (goodput >= 0.9 C, throttled <= 5%). Pure: a fake clock, no AWS, no sleeps but
the pace's own."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random

import pytest

from service.ingest import pace
from service.ingest.limiter import Limiter
from service.ingest.pace import WritePace


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def succeed(write_pace: WritePace, clock: Clock, count: int, over_s: float) -> None:
    for _ in range(count):
        clock.now_s += over_s / count
        write_pace.succeeded()


async def test_the_pace_is_off_until_a_throttle_and_off_again_after_a_quiet_spell() -> None:
    clock = Clock()
    write_pace = WritePace(clock=clock)
    assert (await write_pace.turn(), write_pace.due()) == (0, -math.inf)
    succeed(write_pace, clock, 200, over_s=2 * pace.WINDOW_S)  # 100 a second
    write_pace.throttled(0)
    assert write_pace.rate == pytest.approx(pace.CUT * 100, rel=0.02)
    assert write_pace.slow_start is False
    clock.now_s += pace.QUIET_S + 1
    write_pace.succeeded()
    assert write_pace.rate == pace.OFF


def test_a_throttle_in_the_first_second_starts_slow() -> None:
    clock = Clock()
    write_pace = WritePace(clock=clock)
    clock.now_s += 0.01
    write_pace.throttled(0)
    assert (write_pace.rate, write_pace.slow_start) == (pace.INITIAL_RATE, True)


def test_turns_are_spaced_by_the_rate_after_a_small_burst() -> None:
    clock = Clock()
    write_pace = WritePace(initial_rate=50, clock=clock)
    turns = [write_pace.take()[0] for _ in range(10)]
    gaps = {round(b - a, 6) for a, b in itertools.pairwise(turns)}
    assert gaps == {0.02}
    assert sum(at <= clock.now_s for at in turns) == 1 + int(pace.BURST_S * 50)  # the burst goes at once
    assert write_pace.due() == pytest.approx(turns[-1] + 0.02)


async def test_a_turn_waits_for_its_time_and_a_cut_books_it_again() -> None:
    """Real time: two turns at 20 a second; the second waits about 50 ms. A cut while a turn waits books it
    again at the new rate, in the new round."""
    write_pace = WritePace(initial_rate=20)
    write_pace._cut_at -= pace.ROUND_S
    first = await write_pace.turn()
    write_pace._next = write_pace._clock() + 0.05  # the next turn is 50 ms away
    waiting = asyncio.ensure_future(write_pace.turn())
    await asyncio.sleep(0)
    assert not waiting.done()
    write_pace._started_at -= 2 * pace.WINDOW_S  # past the blind start
    write_pace.throttled(first)
    assert await asyncio.wait_for(waiting, 5) == first + 1


def test_the_slow_start_grows_only_while_the_rate_binds() -> None:
    clock = Clock()
    write_pace = WritePace(initial_rate=50, clock=clock)
    succeed(write_pace, clock, 20, over_s=0.5)  # no turn ever waited: the rate proves nothing
    assert write_pace.rate == 50
    for _ in range(10):
        write_pace.take()  # the later turns wait: the rate binds
    succeed(write_pace, clock, 20, over_s=0.2)
    assert write_pace.rate == pytest.approx(50 + 20 * math.log(2) / pace.SLOW_START_DOUBLING_S)


def test_a_throttle_in_a_slow_start_that_has_not_seen_a_second_halves_it() -> None:
    clock = Clock()
    write_pace = WritePace(initial_rate=80, clock=clock)
    epoch = write_pace.take()[1]
    clock.now_s += pace.ROUND_S
    write_pace.throttled(epoch)
    assert (write_pace.rate, write_pace.slow_start) == (40, True)


def past_the_blind_start(rate: float) -> tuple[WritePace, Clock]:
    """A pace that took its first turn WINDOW_S ago, with no answer since."""
    clock = Clock()
    write_pace = WritePace(initial_rate=rate, clock=clock)
    write_pace._cut_at = clock.now_s  # as if it had been cut to `rate` just now
    write_pace.take()
    clock.now_s += pace.WINDOW_S + 0.01
    return write_pace, clock


def test_a_throttle_cuts_to_what_got_through_once_per_round_and_at_most_by_half() -> None:
    """At 400 a second, with 100 a second getting through: the first throttle leaves the slow start and halves
    the rate (a cut never goes further in one round); another throttle of the same round, or of the next within
    ROUND_S, changes nothing; the next round's cuts to CUT x what got through since the last cut."""
    write_pace, clock = past_the_blind_start(400)
    succeed(write_pace, clock, 100, over_s=pace.WINDOW_S)
    epoch = write_pace.epoch
    write_pace.throttled(epoch)
    assert (write_pace.rate, write_pace.slow_start) == (200, False)
    write_pace.throttled(epoch)
    clock.now_s += pace.ROUND_S / 2
    write_pace.throttled(write_pace.epoch)
    assert write_pace.rate == 200
    succeed(write_pace, clock, 75, over_s=0.5)
    write_pace.throttled(write_pace.epoch)
    assert write_pace.rate == pytest.approx(pace.CUT * 75 / (pace.ROUND_S / 2 + 0.5), rel=0.02)  # since the cut


def test_after_a_cut_the_rate_grows_by_a_twentieth_a_second_while_it_binds() -> None:
    write_pace, clock = past_the_blind_start(400)
    succeed(write_pace, clock, 150, over_s=pace.WINDOW_S)
    write_pace.throttled(write_pace.epoch)
    rate = write_pace.rate  # 200 (at most halved), out of the slow start
    for _ in range(5):
        write_pace.take()  # binding
    succeed(write_pace, clock, 180, over_s=1.0)
    assert write_pace.rate == pytest.approx(rate + 180 * pace.GROWTH, rel=0.01)


def test_a_throttle_with_nothing_getting_through_stops_at_the_floor() -> None:
    write_pace, _ = past_the_blind_start(15)
    write_pace.throttled(write_pace.epoch)
    assert write_pace.rate == pace.MIN_RATE


class Fleet:
    """A discrete-event model: processes with unlimited demand, each with the worker's concurrency limiter (a
    slow start from 40, one round of receives, up to 128) and a write pace; one table whose capacity is a token
    bucket that starts empty (the bench's table); a round trip; and the core's retry of a throttled put after
    its backoff. Each attempt holds a slot and takes a turn in its process's pace, as ThrottledPuts does."""

    def __init__(self, processes: int, capacity: float = 300.0, rtt_s: float = 0.005, messages: int = 4500) -> None:
        self.capacity, self.rtt_s, self.waiting = capacity, rtt_s, messages
        self.clock = Clock()
        self.rng = random.Random(7)
        self.paces = [WritePace(clock=self.clock) for _ in range(processes)]
        self.limiters = [Limiter(128, clock=self.clock, initial=40) for _ in range(processes)]
        self.events: list[tuple[float, int, str, int, tuple[int, int], int]] = []
        self.sequence = self.attempts = self.throttled = self.done = 0
        self.tokens, self.filled_at = 0.0, self.clock.now_s

    def run(self) -> tuple[float, float]:
        """Goodput as a share of the capacity, and the share of attempts throttled."""
        start = self.clock.now_s
        for process in range(len(self.paces)):
            self.fill(process)
        handlers = {"send": self.send, "table": self.table, "ok": self.ok, "throttled": self.throttle}
        while self.events:
            self.clock.now_s, _, kind, process, epochs, attempt = heapq.heappop(self.events)
            handlers.get(kind, self.attempt)(process, epochs, attempt)
        return self.done / (self.clock.now_s - start) / self.capacity, self.throttled / self.attempts

    def push(self, delay_s: float, kind: str, process: int, epochs: tuple[int, int], attempt: int) -> None:
        self.sequence += 1
        heapq.heappush(self.events, (self.clock.now_s + delay_s, self.sequence, kind, process, epochs, attempt))

    def attempt(self, process: int, _epochs: tuple[int, int], attempt: int) -> None:
        write_pace = self.paces[process]
        at, epoch = write_pace.take() if write_pace.rate != pace.OFF else (self.clock.now_s, write_pace.epoch)
        self.push(max(0.0, at - self.clock.now_s), "send", process, (self.limiters[process].epoch, epoch), attempt)

    def fill(self, process: int) -> None:
        limiter = self.limiters[process]
        while self.waiting > 0 and limiter.in_use < limiter.limit:
            self.waiting -= 1
            limiter.in_use += 1
            self.attempt(process, (0, 0), 1)

    def send(self, process: int, epochs: tuple[int, int], attempt: int) -> None:
        write_pace = self.paces[process]
        if write_pace.rate != pace.OFF and epochs[1] != write_pace.epoch and write_pace.due() > self.clock.now_s:
            self.attempt(process, epochs, attempt)  # booked before a cut: booked again
        else:
            self.push(self.rtt_s / 2, "table", process, epochs, attempt)

    def table(self, process: int, epochs: tuple[int, int], attempt: int) -> None:
        now = self.clock.now_s
        self.tokens, self.filled_at = min(self.capacity, self.tokens + (now - self.filled_at) * self.capacity), now
        self.attempts += 1
        admitted = self.tokens >= 1
        self.tokens -= admitted
        self.throttled += not admitted
        self.push(self.rtt_s / 2, "ok" if admitted else "throttled", process, epochs, attempt)

    def ok(self, process: int, _epochs: tuple[int, int], _attempt: int) -> None:
        self.limiters[process].succeeded()
        self.paces[process].succeeded()
        self.done += 1
        self.limiters[process].in_use -= 1
        self.fill(process)

    def throttle(self, process: int, epochs: tuple[int, int], attempt: int) -> None:
        self.limiters[process].throttled(epochs[0])
        self.paces[process].throttled(epochs[1])
        ceiling = min(5.0, 0.1 * 2 ** (attempt - 1))
        self.push(ceiling / 2 + self.rng.uniform(0, ceiling / 2), "retry", process, epochs, attempt + 1)


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_a_fleet_drains_at_the_tables_limit_with_few_throttles(processes: int) -> None:
    """The issue's fleet, modelled: 1-3 processes, 4,500 messages, a table of 300 writes a second, 5 ms. The
    bench measures the same thing with real processes (docs/performance-fleet.md)."""
    goodput, throttled = Fleet(processes).run()
    assert goodput >= 0.9
    assert throttled <= 0.05
