"""Freshness: QueueLag (SentTimestamp to the item's write) and EventAge (the event's time to the write), both as
EMF distributions. A replay of old objects through the queue (`backfill --via-queue`) moves QueueLag only by its
own time on the queue; EventAge leaves it out. Pure code: an in-memory store, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from service.ingest.events import ObjectRecord
from service.ingest.items import Item
from service.ingest.outcomes import PutOutcome
from service.ingest.settle import Ingest
from service.metrics import Metrics
from service.samples import EMF_VALUES_MAX, Samples, distribution, summary


class Table:
    async def put(self, item: Item) -> PutOutcome:
        return PutOutcome.INSERTED


def record(key: str, event_time: datetime | None) -> ObjectRecord:
    when = event_time.isoformat().replace("+00:00", "Z") if event_time else None
    return ObjectRecord("beetroot-raw", f"photos-raw/{key}.jpg", "ObjectCreated:Put", event_time=when)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def test_a_fresh_notification_moves_queue_lag_and_event_age() -> None:
    """S3's own notification, sent a second after its event and 3 s on the queue: both are sampled."""
    metrics, now = Metrics(), datetime.now(UTC)
    ingest = Ingest(Table(), "photos-raw/", metrics)
    await ingest.settle([record("fresh", now - timedelta(seconds=4))], sent_at_ms=ms(now - timedelta(seconds=3)))
    assert 3 <= metrics.queue_lag_s.peak < 60
    assert 4 <= metrics.event_age_s.peak < 60


async def test_a_via_queue_backfill_of_old_objects_does_not_move_queue_lag_or_event_age() -> None:
    """Objects from 2024, sent to the queue now (what `backfill --via-queue` does): QueueLag is the message's
    own time on the queue, seconds not years, and EventAge leaves them out."""
    metrics, now = Metrics(), datetime.now(UTC)
    ingest = Ingest(Table(), "photos-raw/", metrics)
    old = datetime(2024, 3, 1, tzinfo=UTC)
    await ingest.settle([record(f"old-{n}", old) for n in range(3)], sent_at_ms=ms(now))
    assert metrics.queue_lag_s.seen == 3
    assert 0 <= metrics.queue_lag_s.peak < 60
    assert metrics.event_age_s.seen == 0


async def test_without_a_sent_time_or_an_event_time_nothing_is_guessed() -> None:
    """A direct backfill has no queue (no SentTimestamp): no freshness sample. A record without an event time
    has a QueueLag but no EventAge."""
    metrics, now = Metrics(), datetime.now(UTC)
    ingest = Ingest(Table(), "photos-raw/", metrics)
    await ingest.settle([record("direct", now)])
    assert (metrics.queue_lag_s.seen, metrics.event_age_s.seen) == (0, 0)
    await ingest.settle([record("timeless", None)], sent_at_ms=ms(now))
    assert (metrics.queue_lag_s.seen, metrics.event_age_s.seen) == (1, 0)


def test_few_distinct_values_are_reported_exactly() -> None:
    samples = Samples()
    for value in (0.1, 0.1, 0.25, 2.0):
        samples.add(value)
    figure = distribution(samples)
    assert dict(zip(figure["Values"], figure["Counts"], strict=True)) == {0.1: 2, 0.25: 1, 2.0: 1}
    assert summary({"QueueLag": figure}) == {"QueueLagP50": 0.1, "QueueLagP99": 2.0, "QueueLagMax": 2.0}


def test_many_values_fit_emf_and_keep_their_percentiles_maximum_and_count() -> None:
    """10,000 distinct values over a sample of 1,000: at most 100 values, counts that add up to every value
    seen, the exact maximum, and p50 and p99 within a rank group of the truth."""
    samples = Samples(cap=1_000)
    for n in range(1, 10_001):
        samples.add(n / 1000)  # 0.001 .. 10 s
    figure = distribution(samples)
    assert len(figure["Values"]) == len(figure["Counts"]) <= EMF_VALUES_MAX
    assert round(sum(figure["Counts"])) == 10_000
    flat = summary({"QueueLag": figure})
    assert flat["QueueLagMax"] == 10.0
    assert 4.0 <= flat["QueueLagP50"] <= 6.0
    assert 9.5 <= flat["QueueLagP99"] <= 10.0
