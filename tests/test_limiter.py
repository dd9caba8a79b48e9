"""The one limiter: slots for receives and for puts, a message's records within the limit, AIMD on throttles,
and throttled puts retried in process until their deadline. Pure asyncio: a fake clock, no AWS."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError
from structlog.testing import capture_logs

from service.ingest.events import ObjectRecord, SkippedRecord
from service.ingest.items import Item
from service.ingest.limiter import DECREASE, LOG_EVERY_S, Limiter
from service.ingest.outcomes import Disposition, Outcome, PutOutcome
from service.ingest.pace import WritePace
from service.ingest.settle import Ingest
from service.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def throttle(reason: str | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
    if reason:
        response["ThrottlingReasons"] = [{"reason": reason, "resource": "arn:aws:dynamodb:r:1:table/Photos"}]
    return ClientError(response, "PutItem")  # type: ignore[arg-type]


class CountingStore:
    """Counts the puts running at once; the first `throttles` puts of each photo are throttled."""

    def __init__(self, throttles: int = 0, reason: str | None = None) -> None:
        self.running = self.peak = self.calls = 0
        self.throttles = throttles
        self.reason = reason
        self.attempts: dict[str, int] = {}

    async def put(self, item: Item) -> PutOutcome:
        self.calls += 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            for _ in range(3):
                await asyncio.sleep(0)  # the put is in flight for a few turns of the loop
            photo_id = item["photoId"]["S"]
            self.attempts[photo_id] = self.attempts.get(photo_id, 0) + 1
            if self.attempts[photo_id] <= self.throttles:
                raise throttle(self.reason)
            return PutOutcome.INSERTED
        finally:
            self.running -= 1


def records(count: int, label: str = "r") -> list[ObjectRecord]:
    return [ObjectRecord("beetroot-raw", f"photos-raw/{label}/{n}.jpg", "ObjectCreated:Put") for n in range(count)]


async def test_records_wait_in_turn_when_the_slots_are_taken() -> None:
    """acquire takes a free slot at once; with none free, the waiters get released slots first come, first served."""
    limiter = Limiter(2)
    await limiter.acquire()
    await limiter.acquire()
    order: list[str] = []

    async def wait(name: str) -> None:
        await limiter.acquire()
        order.append(name)

    first, second = asyncio.create_task(wait("first")), asyncio.create_task(wait("second"))
    await asyncio.sleep(0)
    assert order == []
    limiter.release()
    await first
    assert order == ["first"]
    assert not second.done()
    limiter.release()
    await second
    assert (order, limiter.in_use) == (["first", "second"], 2)


async def test_pollers_reserve_only_what_is_free_and_after_the_records_waiting() -> None:
    """reserve takes up to `want` free slots; while a record waits for a slot, a released slot goes to the
    record, and the poller gets none: a received message's records go before new receives."""
    limiter, stop = Limiter(12), asyncio.Event()
    assert await limiter.reserve(10, stop) == 10
    assert await limiter.reserve(10, stop) == 2
    record = asyncio.create_task(limiter.acquire())
    poller = asyncio.create_task(limiter.reserve(10, stop))
    await asyncio.sleep(0)
    limiter.release(1)
    await record
    assert not poller.done()
    limiter.release(3)
    assert await poller == 3
    assert limiter.in_use == 12


async def test_a_poller_waiting_for_room_returns_at_stop() -> None:
    limiter, stop = Limiter(1), asyncio.Event()
    await limiter.reserve(1, stop)
    waiting = asyncio.create_task(limiter.reserve(1, stop))
    await asyncio.sleep(0)
    stop.set()
    assert await asyncio.wait_for(waiting, 1) == 0


async def test_a_cancelled_wait_leaks_no_slot() -> None:
    """A record cancelled while it waits takes no slot; one cancelled just as its slot came passes it on."""
    limiter = Limiter(1)
    await limiter.acquire()
    waiting = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    granted = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    limiter.release()  # the slot goes to `granted` ...
    granted.cancel()  # ... which is cancelled before it runs again
    await asyncio.gather(granted, return_exceptions=True)
    assert limiter.in_use == 0
    await asyncio.wait_for(limiter.acquire(), 1)


def test_a_throttle_shrinks_the_limit_once_per_round() -> None:
    """Throttles of puts started before the last decrease were answered by it; a throttle of a later put
    shrinks the limit again, down to the floor."""
    limiter = Limiter(100)
    round_one = limiter.epoch
    for _ in range(10):
        limiter.throttled(round_one)
    assert limiter.limit == int(100 * DECREASE)
    limiter.throttled(limiter.epoch)
    assert limiter.limit == int(100 * DECREASE * DECREASE)
    for _ in range(50):
        limiter.throttled(limiter.epoch)
    assert limiter.limit == 1


async def test_successes_grow_the_limit_by_about_one_per_round_up_to_the_ceiling() -> None:
    """Each success adds 1/limit while at least half the slots are in use; a limit not used does not grow."""
    limiter = Limiter(20)
    limiter.throttled(limiter.epoch)
    assert limiter.limit == 14
    limiter.succeeded()
    assert limiter.limit == 14  # nothing in use: growth would prove nothing
    for _ in range(7):
        await limiter.acquire()
    for _ in range(14):
        limiter.succeeded()
    assert limiter.limit == 14  # 14 successes add 1/14 + 1/14.07 + ...: a little under one
    limiter.succeeded()
    assert limiter.limit == 15
    for _ in range(1000):
        limiter.succeeded()
    assert limiter.limit == 15  # 7 in use is under half of 15: more room would not be used
    for _ in range(3):
        await limiter.acquire()
    for _ in range(1000):
        limiter.succeeded()
    assert limiter.limit == 20


def test_a_plain_bounded_limiter_never_moves() -> None:
    limiter = Limiter(8, floor=8)
    limiter.throttled(limiter.epoch)
    assert limiter.limit == 8


def test_limit_changes_are_logged_at_most_once_per_interval() -> None:
    clock = Clock()
    limiter = Limiter(100, clock=clock)
    with capture_logs() as logs:
        limiter.throttled(limiter.epoch)
        limiter.throttled(limiter.epoch)
        clock.now_s += LOG_EVERY_S
        limiter.throttled(limiter.epoch - 1)  # no change, but the last one is still unlogged
    changes = [(e["previous"], e["limit"]) for e in logs if e["event"] == "limit.changed"]
    assert changes == [(100, 70), (70, 49)]


async def test_a_throttled_put_waits_unless_its_deadline_is_near_or_the_limiter_closed() -> None:
    clock = Clock()
    limiter = Limiter(4, clock=clock)
    assert not await limiter.backoff(1, deadline=clock.now_s + 0.01)  # 0.05-0.1 s would pass the deadline
    assert await limiter.backoff(1, deadline=clock.now_s + 60)
    waiting = asyncio.create_task(limiter.backoff(10, deadline=clock.now_s + 60))  # 2.5-5 s
    await asyncio.sleep(0)
    limiter.close()
    assert await asyncio.wait_for(waiting, 1) is False
    assert not await limiter.backoff(1, deadline=clock.now_s + 60)


async def test_a_message_of_many_records_holds_at_most_the_limit() -> None:
    """300 records of one message and ten messages of 50 at once, with 8 slots: never more than 8 puts run,
    every record is stored, and every slot comes back. (A write pace that never binds: this is about slots.)"""
    store, limiter = CountingStore(), Limiter(8)
    ingest = Ingest(store, "photos-raw/", Metrics(), limiter=limiter, pace=WritePace())
    big = await ingest.settle(records(300, "big"))
    many = await asyncio.gather(*(ingest.settle(records(50, f"m{n}")) for n in range(10)))
    assert store.peak == 8
    assert store.calls == 800
    assert {r.outcome for s in [big, *many] for r in s.records} == {Outcome.INSERTED}
    assert limiter.in_use == 0


async def test_messages_whose_slots_the_pollers_reserved_always_progress() -> None:
    """With 2 slots, both reserved by a poller for two messages of 5 records: each message hands its slot to
    its first record, the others wait for slots, and both messages finish (no deadlock)."""
    limiter, stop = Limiter(2), asyncio.Event()
    ingest = Ingest(CountingStore(), "photos-raw/", Metrics(), limiter=limiter)
    assert await limiter.reserve(2, stop) == 2

    async def message(label: str) -> Disposition:
        limiter.release()  # what the worker does: the message's slot passes to its first record
        return (await ingest.settle([SkippedRecord("outside_prefix"), *records(5, label)])).disposition

    assert await asyncio.wait_for(asyncio.gather(message("a"), message("b")), 5) == [Disposition.DELETE] * 2
    assert limiter.in_use == 0


async def test_a_throttled_put_is_retried_in_process_and_stored_once() -> None:
    """Throttled twice, the put is retried in its slot: the record is inserted, the limit shrank, and each
    throttle is counted by the scope its reason names."""
    store, limiter, metrics = (
        CountingStore(throttles=2, reason="TableWriteProvisionedThroughputExceeded"),
        Limiter(10),
        Metrics(),
    )
    ingest = Ingest(store, "photos-raw/", metrics, limiter=limiter)
    settlement = await ingest.settle(records(1), deadline=time.monotonic() + 60)
    assert [r.outcome for r in settlement.records] == [Outcome.INSERTED]
    assert settlement.disposition is Disposition.DELETE
    assert store.calls == 3
    assert limiter.limit < 10
    assert metrics.throttles == {"table_capacity": 2}
    assert metrics.records == {"inserted": 1}


async def test_a_key_range_throttle_is_named_in_a_warning() -> None:
    store, metrics = CountingStore(throttles=1, reason="TableWriteKeyRangeThroughputExceeded"), Metrics()
    with capture_logs() as logs:
        await Ingest(store, "photos-raw/", metrics).settle(records(1), deadline=time.monotonic() + 60)
    [warning] = [e for e in logs if e["event"] == "table.key_range_throttled"]
    assert warning["log_level"] == "warning"
    assert warning["resource"] == "arn:aws:dynamodb:r:1:table/Photos"
    assert "hot" in warning["note"]
    assert metrics.throttles == {"key_range": 1}


@pytest.mark.parametrize("deadline", ["none", "near", "closed"])
async def test_a_record_throttled_past_its_budget_fails_and_its_message_is_released(deadline: str) -> None:
    """Without a deadline, with one too near for another wait, or once the limiter closed (shutdown), the
    throttled record fails, so the message is released, never lost."""
    limiter = Limiter(4)
    now = time.monotonic()
    when = {"none": None, "near": now + 0.01, "closed": now + 60}[deadline]
    if deadline == "closed":
        limiter.close()
    store = CountingStore(throttles=99)
    settlement = await Ingest(store, "photos-raw/", Metrics(), limiter=limiter).settle(records(1), deadline=when)
    assert [(r.outcome, r.kind) for r in settlement.records] == [(Outcome.FAILED, "throttled")]
    assert settlement.disposition is Disposition.RELEASE
    assert store.calls == 1
    assert limiter.in_use == 0


async def test_the_limit_does_not_grow_while_the_write_pace_binds() -> None:
    """Slots that wait for the pace's turns are queueing, not round trips: more of them would only queue."""
    clock = Clock()
    limiter, pace = Limiter(100, initial=10, clock=clock), WritePace(initial_rate=10.0, clock=clock)
    for _ in range(10):
        await limiter.acquire()
    assert not pace.binding
    pace._waited_at = clock()  # a turn just had to wait
    assert pace.binding
    limiter.succeeded(grow=not pace.binding)
    assert limiter.limit == 10
    clock.now_s += 2  # no turn waited for a second: the pace no longer binds
    limiter.succeeded(grow=not pace.binding)
    assert limiter.limit == 11
