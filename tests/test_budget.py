"""The byte budget and the poller count: what lets a poller receive, and how many pollers run. Pure asyncio,
decided by events (no AWS, no clock)."""

from __future__ import annotations

import asyncio

from service.worker.budget import DECAY, MIN_ESTIMATE_BYTES, RECEIVE_COPIES, ByteBudget
from service.worker.pollers import PollerCount

MIB = 1_048_576


async def test_a_spent_budget_holds_receives_until_bodies_are_released() -> None:
    """Past the budget a poller waits; a released body lets it receive again."""
    budget, stop = ByteBudget(4 * MIB), asyncio.Event()  # room for four bodies held
    reserved = await budget.reserve(10, stop)
    assert reserved == 10 * MIN_ESTIMATE_BYTES * RECEIVE_COPIES
    budget.received(reserved, [MIB] * 4)  # four 1 MiB bodies: the budget is spent
    assert budget.used == 4 * MIB
    assert not budget.has_room
    waiting = asyncio.create_task(budget.reserve(1, stop, poll_s=60))
    await asyncio.sleep(0)
    assert not waiting.done()
    for _ in range(4):
        budget.release(MIB)
    assert await waiting == MIB * RECEIVE_COPIES  # one body of the size just seen, while it is received
    assert budget.used == MIB * RECEIVE_COPIES


async def test_a_poller_waiting_for_bytes_returns_at_stop() -> None:
    budget, stop = ByteBudget(MIB), asyncio.Event()
    budget.received(await budget.reserve(1, stop) or 0, [MIB])
    waiting = asyncio.create_task(budget.reserve(1, stop, poll_s=60))
    await asyncio.sleep(0)
    stop.set()
    assert await waiting is None


async def test_one_receive_always_goes_when_nothing_is_held() -> None:
    """A budget smaller than one receive's estimate still lets a receive through, so a large body progresses."""
    budget, stop = ByteBudget(MIN_ESTIMATE_BYTES), asyncio.Event()
    assert await budget.reserve(10, stop) == 10 * MIN_ESTIMATE_BYTES * RECEIVE_COPIES


async def test_the_estimate_learns_large_bodies_and_forgets_them_slowly() -> None:
    """After a receive of 1 MiB bodies, receives reserve 1 MiB a message; normal bodies then decay it back."""
    budget, stop = ByteBudget(64 * MIB), asyncio.Event()
    budget.received(await budget.reserve(10, stop) or 0, [MIB, 2_000])
    assert budget.estimate == MIB
    budget.release(MIB + 2_000)
    reserved = await budget.reserve(10, stop)
    assert reserved == 10 * MIB * RECEIVE_COPIES
    budget.received(reserved or 0, [2_000] * 10)
    assert budget.estimate == MIB * DECAY
    for _ in range(100):
        budget.received(0, [2_000])
    assert budget.estimate == MIN_ESTIMATE_BYTES


def test_full_receives_with_room_add_pollers_up_to_the_ceiling() -> None:
    count = PollerCount(ceiling=3)
    first = count.start()
    assert count.grows(received=10, full=10, room=True)
    assert not count.grows(received=9, full=10, room=True)  # a partial receive: demand is met
    assert not count.grows(received=10, full=10, room=False)  # no room: another poller would only wait
    count.start()
    count.start()
    assert not count.grows(received=10, full=10, room=True)  # the ceiling, POLLERS
    assert first == 0


def test_empty_receives_retire_every_poller_but_the_first() -> None:
    """An idle worker keeps one long poll: the first poller never retires (it also probes in an outage)."""
    count = PollerCount(ceiling=16)
    indexes = [count.start() for _ in range(4)]
    assert [PollerCount.retires(index, received=0) for index in indexes] == [False, True, True, True]
    assert not PollerCount.retires(3, received=1)
