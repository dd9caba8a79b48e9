"""Backoff: the intake pause and the retry delays (the in-flight limit: tests/test_limiter.py)."""

from __future__ import annotations

import asyncio

import pytest

from service.ingest.limiter import backoff_delay
from service.worker.pacing import IntakeGate


@pytest.mark.parametrize(("attempt", "low", "high"), [(1, 1, 2), (2, 2, 4), (3, 4, 8), (10, 150, 300), (99, 150, 300)])
def test_backoff_is_exponential_capped_and_never_zero(attempt: int, low: float, high: float) -> None:
    """attempt n waits between half and all of min(cap, base * 2**(n-1)): jittered, capped, never hot."""
    for _ in range(50):
        assert low <= backoff_delay(attempt, base_s=2, cap_s=300) <= high


async def test_the_gate_pauses_after_failures_and_opens_after_success() -> None:
    """Environment failures close the gate for a growing while; the first success opens it again."""
    gate, stop = IntakeGate(base_s=10, cap_s=30), asyncio.Event()
    assert not gate.degraded
    delay = gate.failed("put")
    assert 5 <= delay <= 10
    assert gate.degraded
    waiting = asyncio.create_task(gate.wait_open(stop))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    stop.set()
    await asyncio.wait_for(waiting, 1)
    gate.succeeded("put")
    assert not gate.degraded
    await asyncio.wait_for(gate.wait_open(asyncio.Event()), 0.1)


def test_the_gate_stays_degraded_while_any_source_fails() -> None:
    """A receive success does not hide a put failure."""
    gate = IntakeGate(base_s=1, cap_s=2)
    gate.failed("put")
    gate.failed("receive")
    gate.succeeded("receive")
    assert gate.degraded


async def test_a_success_wakes_pollers_already_paused() -> None:
    """The first success ends the pause for every poller at once, not when each one's sleep runs out."""
    gate, stop = IntakeGate(base_s=20, cap_s=30), asyncio.Event()
    gate.failed("put")
    waiting = asyncio.create_task(gate.wait_open(stop))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    gate.succeeded("put")
    await asyncio.wait_for(waiting, 1)


def test_a_burst_of_failures_counts_as_one_pause() -> None:
    """Ten puts of one batch failing together do not push the pause ten steps up."""
    gate = IntakeGate(base_s=2, cap_s=300)
    first = gate.failed("put")
    for _ in range(9):
        assert gate.failed("put") <= first


def test_the_gate_says_how_long_its_pause_lasts() -> None:
    """`remaining_s` is the time until the next probe (0 when open): released messages wait at least that long."""
    gate = IntakeGate(base_s=10, cap_s=30)
    assert gate.remaining_s() == 0
    delay = gate.failed("put")
    assert 0 < gate.remaining_s() <= delay
    gate.succeeded("put")
    assert gate.remaining_s() == 0
