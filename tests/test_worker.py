"""The worker end to end against moto: real uploads, real notifications, the real table and queue."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aioboto3
import pytest

from service.aws.clients import open_dynamodb, open_sqs
from service.aws.queue import Queue
from service.aws.table import PhotoStore
from service.config import Settings
from service.ingest.ids import photo_id
from service.ingest.outcomes import Disposition, Outcome, PutOutcome, decide
from service.ingest.settle import Ingest, Store
from service.metrics import Metrics
from service.worker.worker import Worker
from tests import bodies
from tests.conftest import BUCKET, Stack, capture_logs, deleted, event_body, eventually, run_until
from tests.emulators import MINISTACK_LITERAL_KEYS
from tests.fault_proxy import FaultProxy
from tests.test_events import CREATED, SKIPPED

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16 + b"\xff\xd9"


def logged(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] == name]


def back_on_the_queue(stack: Stack, wait_s: float = 45.0) -> set[str]:
    """The ids of the messages a receive gets within `wait_s`: proof they are still there, where a count races.
    `wait_s` is longer than the queue's visibility timeout (30 s): a long poll that the stopping worker cut short
    may have taken a message just before (docs/reliability.md, "Shutdown"), and it is back only after that."""
    deadline = time.monotonic() + wait_s
    while (remaining_s := deadline - time.monotonic()) > 0:
        response = stack.sqs.receive_message(
            QueueUrl=stack.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=max(1, min(20, int(remaining_s)))
        )
        if response.get("Messages"):
            return {message["MessageId"] for message in response["Messages"]}
    return set()


@pytest.mark.parametrize(
    ("outcomes", "disposition"),
    [
        ([Outcome.INSERTED], Disposition.DELETE),
        ([Outcome.DUPLICATE, Outcome.SKIPPED], Disposition.DELETE),
        ([], Disposition.DELETE),
        ([Outcome.INSERTED, Outcome.FAILED], Disposition.RELEASE),
        ([Outcome.CONFLICT, Outcome.INSERTED], Disposition.QUARANTINE),
        ([Outcome.CONFLICT, Outcome.FAILED], Disposition.RELEASE),
    ],
)
def test_a_message_is_deleted_only_when_every_record_is_settled(
    outcomes: list[Outcome], disposition: Disposition
) -> None:
    """Failed records keep the message (retried first); conflicts quarantine it; everything settled deletes it."""
    assert decide(outcomes) is disposition


async def test_uploads_become_exactly_one_item_each(emulator: Stack) -> None:
    """Real uploads with awkward keys, notified by S3 to SQS, become one correct item per photo; the queue empties."""
    if emulator.emulator == "ministack":
        pytest.skip(MINISTACK_LITERAL_KEYS)
    emulator.notify_queue_on_upload()
    keys = ["photos-raw/plain.jpg", "photos-raw/2024 Trip/Café C++ @ 東京: day=1.jpg", "photos-raw/100% real+x.jpg"]
    for key in keys:
        emulator.s3.put_object(Bucket=BUCKET, Key=key, Body=JPEG)

    def three_photos_acknowledged() -> bool:
        return len({entry["messageId"] for entry in logged(logs, "photo.inserted")} & deleted(logs)) == 3

    with capture_logs() as logs:
        await run_until(emulator.settings(), three_photos_acknowledged)
    assert emulator.depth() == 0
    items = emulator.items()
    for key in keys:
        item = items[photo_id(BUCKET, key)]
        assert (item["s3Bucket"], item["s3Key"]) == (BUCKET, key)
        assert item["uploadedAt"].endswith("+00:00")
        assert item["eventName"] == "ObjectCreated:Put"
        assert item["size"] == str(len(JPEG))


@pytest.mark.parametrize("write_mode", ["put", "batch"])
async def test_the_same_photo_delivered_many_ways_is_written_once(emulator: Stack, write_mode: str) -> None:
    """Direct, SNS-wrapped and SNS-raw deliveries of one object, in one receive batch, give one item and no error."""
    mode = emulator.write_mode(write_mode)
    bodies = [event_body("s3-direct-put-photos-raw"), event_body("sns-wrapped-s3-put")]
    bodies += [event_body("sns-raw-delivery-s3-put")] * 3
    sent = emulator.send(*bodies)
    with capture_logs() as logs:
        await run_until(emulator.settings(write_mode=mode, pollers=1), lambda: deleted(logs) == sent)
    assert list(emulator.items()) == ["47f1d3ed99273a6e196e"]
    events = [entry["event"] for entry in logs]
    assert events.count("photo.inserted") == 1
    assert events.count("photo.duplicate") == 4
    assert events.count("message.deleted") == 5


@pytest.mark.parametrize("write_mode", ["put", "batch"])
async def test_the_golden_corpus_end_to_end(emulator: Stack, write_mode: str) -> None:
    """Every body of the AWS-sourced corpus, through the worker at once: one item per created object, with the
    documented photoId and decoded key; everything else written nowhere; every message deleted, none failed."""
    mode = emulator.write_mode(write_mode)
    sent = emulator.send(*(event_body(name) for name, *_ in [*CREATED, *SKIPPED]))
    with capture_logs() as logs:
        await run_until(emulator.settings(write_mode=mode), lambda: deleted(logs) == sent)
    items = emulator.items()
    assert set(items) == {expected_id for _, _, expected_id in CREATED}
    assert all(items[expected_id]["s3Key"] == key for _, key, expected_id in CREATED if key)
    events = [entry["event"] for entry in logs]
    assert "photo.failed" not in events
    assert "photo.conflict" not in events


@pytest.mark.parametrize("write_mode", ["put", "batch"])
async def test_a_mixed_receive_batch_is_settled_message_by_message(emulator: Stack, write_mode: str) -> None:
    """The recorded receive batch (S3, test event, SNS, EventBridge): two photos, all four messages deleted."""
    mode = emulator.write_mode(write_mode)
    response = json.loads(event_body("sqs-receive-message-response"))
    sent = emulator.send(*(message["Body"] for message in response["Messages"]))
    with capture_logs() as logs:
        await run_until(emulator.settings(write_mode=mode), lambda: deleted(logs) == sent)
    assert emulator.depth() == 0
    assert set(emulator.items()) == {"47f1d3ed99273a6e196e", "037a739adede150f5f2b"}


async def test_skips_are_acknowledged_without_writing(emulator: Stack) -> None:
    """Out-of-prefix keys, deletes, test events and foreign SNS payloads are deleted from the queue, with reasons."""
    names = ["s3-direct-put", "s3-object-removed-delete", "s3-testevent", "sns-wrapped-non-s3-message"]
    sent = emulator.send(*(event_body(name) for name in names))
    with capture_logs() as logs:
        await run_until(emulator.settings(), lambda: deleted(logs) == sent)
    assert emulator.depth() == 0
    assert emulator.items() == {}
    reasons = {entry["reason"] for entry in logs if entry["event"] == "record.skipped"}
    assert reasons == {"outside_prefix", "not_object_created", "test_event", "not_an_s3_event"}


async def test_poison_without_a_dead_letter_queue_stays_on_the_queue(emulator: Stack) -> None:
    """A body that is not JSON is never deleted: it waits for the redrive policy, with one error line per receive."""
    poison = emulator.send("not json")
    photo = emulator.send(event_body("s3-direct-put-photos-raw"))
    with capture_logs() as logs:
        await run_until(emulator.settings(), lambda: deleted(logs) == photo and logged(logs, "message.quarantined"))
    assert len(emulator.items()) == 1
    quarantined = logged(logs, "message.quarantined")
    assert quarantined[0]["reason"] == "body_not_json"
    assert quarantined[0]["receiveCount"] == 1
    assert "redrive" in quarantined[0]["destination"]
    assert not poison & deleted(logs)
    assert back_on_the_queue(emulator) == poison


async def test_poison_with_a_dead_letter_queue_is_moved_there_with_its_reason(emulator: Stack) -> None:
    """With DEAD_LETTER_QUEUE_URL, poison is sent there at once, body intact, reason attached; then deleted."""
    emulator.send('{"Records": "broken"}')
    with capture_logs() as logs:
        await run_until(
            emulator.settings(dead_letter_queue_url=emulator.dlq_url), lambda: logged(logs, "message.quarantined")
        )
    assert emulator.depth() == 0
    (moved,) = emulator.sqs.receive_message(QueueUrl=emulator.dlq_url, MessageAttributeNames=["All"])["Messages"]
    assert moved["Body"] == '{"Records": "broken"}'
    attributes = {name: value["StringValue"] for name, value in moved["MessageAttributes"].items()}
    assert attributes["photo-ingest.reason"] == "records_not_list"
    assert attributes["photo-ingest.receive-count"] == "1"
    assert attributes["photo-ingest.source-message-id"]
    assert attributes["photo-ingest.quarantined-at"]


@pytest.mark.parametrize("write_mode", ["put", "batch"])
async def test_a_conflicting_item_is_left_alone_and_its_message_quarantined(emulator: Stack, write_mode: str) -> None:
    """A photoId already held by another object is never overwritten; the message goes to the dead-letter queue."""
    mode = emulator.write_mode(write_mode)
    pid = "47f1d3ed99273a6e196e"
    foreign = {"photoId": {"S": pid}, "s3Bucket": {"S": "another-bucket"}, "s3Key": {"S": "photos-raw/other.jpg"}}
    emulator.dynamodb.put_item(TableName=emulator.table, Item=foreign)
    emulator.send(event_body("s3-direct-put-photos-raw"))
    with capture_logs() as logs:
        await run_until(
            emulator.settings(write_mode=mode, dead_letter_queue_url=emulator.dlq_url),
            lambda: logged(logs, "message.quarantined"),
        )
    assert emulator.items()[pid] == {"photoId": pid, "s3Bucket": "another-bucket", "s3Key": "photos-raw/other.jpg"}
    assert emulator.depth() == 0
    assert emulator.depth(emulator.dlq_url) == 1
    assert any(entry["event"] == "photo.conflict" and entry["log_level"] == "error" for entry in logs)


@pytest.mark.parametrize("write_mode", ["put", "batch"])
async def test_a_failing_table_keeps_the_message_and_backs_off(emulator: Stack, write_mode: str) -> None:
    """With the table gone, nothing is deleted: the message is released with a backoff, not retried hot."""
    mode = emulator.write_mode(write_mode)
    emulator.dynamodb.delete_table(TableName=emulator.table)
    sent = emulator.send(event_body("s3-direct-put-photos-raw"))
    with capture_logs() as logs:
        await run_until(emulator.settings(write_mode=mode), lambda: logged(logs, "message.released"))
    released = logged(logs, "message.released")[0]
    assert released["retryInSeconds"] >= 1
    failed = logged(logs, "photo.failed")[0]
    assert (failed["kind"], failed["code"]) == ("missing", "ResourceNotFoundException")
    assert not deleted(logs)
    assert back_on_the_queue(emulator, wait_s=20) == sent


class SlowStore(PhotoStore):
    """The real store, with a pause before each put: a slow DynamoDB, for the visibility and shutdown tests."""

    def __init__(self, store: PhotoStore, delay_s: float) -> None:
        self.__dict__.update(store.__dict__)
        self.delay_s = delay_s
        self.calls = 0

    async def put(self, item: dict[str, dict[str, str]]) -> PutOutcome:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        return await super().put(item)


class StoreWorker:
    """The real worker over a test's own store, its core wired as `service.compose.open_ingest` wires it."""

    def __init__(self, settings: Settings, queue: Queue, store: Store) -> None:
        metrics = Metrics()
        self.worker = Worker(settings, queue, metrics)
        limiter = self.worker.limiter
        self.ingest = Ingest(store, settings.raw_prefix, metrics, self.worker, limiter=limiter, trust=settings.trust())

    async def run(self, stop: asyncio.Event) -> None:
        await self.worker.run(stop, self.ingest)


@asynccontextmanager
async def slow_worker(settings: Settings, delay_s: float) -> AsyncIterator[tuple[StoreWorker, SlowStore]]:
    async with AsyncExitStack() as exits:
        session = aioboto3.Session()
        sqs = await open_sqs(exits, session, 10, settings.receive_wait_seconds)
        store = SlowStore(PhotoStore(await open_dynamodb(exits, session, 10), settings.photos_table), delay_s)
        yield StoreWorker(settings, Queue(sqs, settings.queue_url), store), store


async def run_worker_task(
    worker: StoreWorker, stop: asyncio.Event, until: Callable[[], bool], timeout_s: float
) -> None:
    task = asyncio.create_task(worker.run(stop))
    try:
        await eventually(lambda: task.done() or until(), timeout_s)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_slow_puts_have_their_visibility_extended_and_are_processed_once(stack: Stack) -> None:
    """A put slower than the visibility timeout never lets the message be delivered twice concurrently."""
    sent = stack.send(event_body("s3-direct-put-photos-raw"))
    # 6 s: the keeper extends with a quarter of it (1.5 s) to spare, room for a slow SQS call on a loaded machine.
    settings = stack.settings(visibility_timeout_seconds=6, pollers=2)
    async with slow_worker(settings, delay_s=13.5) as (worker, store):
        with capture_logs() as logs:
            await run_worker_task(worker, asyncio.Event(), lambda: deleted(logs) == sent, timeout_s=60)
    assert stack.depth() == 0
    assert store.calls == 1
    assert len(stack.items()) == 1
    assert not any(entry["event"] == "message.extend_failed" for entry in logs)


@pytest.mark.parametrize(("visibility_s", "put_s"), [(2, 5.0), (1, 3.0)])
async def test_a_short_queue_visibility_timeout_holds_from_the_first_receive(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, visibility_s: int, put_s: float
) -> None:
    """The queue's own VisibilityTimeout is 2 s (or 1 s; no VISIBILITY_TIMEOUT_SECONDS) and a proxy makes every
    put take 5 s (3 s): the heartbeat extends each message by its own deadline from the first receive, so each
    of 20 messages is received once, put once and deleted, and none reaches the dead-letter queue."""
    stack.sqs.set_queue_attributes(QueueUrl=stack.queue_url, Attributes={"VisibilityTimeout": str(visibility_s)})
    photos = bodies.photos(20, BUCKET, "short visibility")
    stack.send(*map(bodies.direct, photos))
    with FaultProxy(stack.endpoint, delays={"PutItem": put_s}) as proxy, capture_logs() as logs:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        settings = stack.settings(visibility_timeout_seconds=None)
        await run_until(settings, lambda: stack.depth() == 0 and len(stack.items()) == len(photos), timeout_s=60)
    assert proxy.calls("PutItem") == len(photos)
    deleted = [entry for entry in logs if entry["event"] == "message.deleted"]
    assert len(deleted) == len({entry["messageId"] for entry in deleted}) == len(photos)
    assert {entry["receiveCount"] for entry in logs if "receiveCount" in entry} == {1}
    assert not [entry for entry in logs if entry["event"] in {"photo.duplicate", "message.extend_failed"}]
    assert stack.depth(stack.dlq_url) == 0


class CountingStore(PhotoStore):
    """The real store, counting the puts that run at once."""

    def __init__(self, store: PhotoStore) -> None:
        self.__dict__.update(store.__dict__)
        self.running = self.peak = 0

    async def put(self, item: dict[str, dict[str, str]]) -> PutOutcome:
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            return await super().put(item)
        finally:
            self.running -= 1


async def test_messages_with_more_records_than_the_limit_work_within_it(stack: Stack) -> None:
    """Six messages of 25 records each, with MAX_IN_FLIGHT_RECORDS=4 and two pollers: never more than 4 puts
    run at once (no message overdraws the limit), no message waits forever for slots its neighbours hold, and
    every photo is stored once."""
    photos = bodies.photos(150, BUCKET, "many records")
    stack.send(*(bodies.direct_many(photos[start : start + 25]) for start in range(0, 150, 25)))
    settings = stack.settings(max_in_flight_records=4, pollers=2)
    async with AsyncExitStack() as exits:
        session = aioboto3.Session()
        sqs = await open_sqs(exits, session, 10, settings.receive_wait_seconds)
        store = CountingStore(PhotoStore(await open_dynamodb(exits, session, 10), settings.photos_table))
        worker = StoreWorker(settings, Queue(sqs, settings.queue_url), store)
        with capture_logs() as logs:
            await run_worker_task(worker, asyncio.Event(), lambda: stack.depth() == 0, timeout_s=60)
    assert stack.items().keys() == {photo.photo_id for photo in photos}
    assert store.peak == 4
    assert [entry["event"] for entry in logs].count("message.deleted") == 6


async def test_sigterm_releases_unfinished_messages_at_once(stack: Stack) -> None:
    """Work still running at the shutdown deadline is cut short and its message made visible again immediately."""
    sent = stack.send(event_body("s3-direct-put-photos-raw"))
    settings = stack.settings(visibility_timeout_seconds=300, shutdown_timeout_seconds=0.5)
    stop = asyncio.Event()
    async with slow_worker(settings, delay_s=60) as (worker, store):
        task = asyncio.create_task(worker.run(stop))
        await eventually(lambda: store.calls == 1, 10)
        stop.set()
        await asyncio.wait_for(task, 10)
    assert back_on_the_queue(stack, wait_s=1) == sent  # visible now, not after its 300 s visibility timeout
    assert stack.items() == {}


async def test_a_stop_cuts_an_idle_workers_long_poll(stack: Stack) -> None:
    """A stop request cancels the in-flight 20 s long poll: the worker returns before that poll could end.

    The first heartbeat (`beatAt`, the worker's own clock) comes just before the first long poll, so a return
    less than 20 s after it means no poll was waited out. How fast the worker returns is measured by
    bench/shutdown_latency.py, not bounded here."""
    settings = stack.settings(receive_wait_seconds=20)
    settings.health_file.unlink(missing_ok=True)
    stop = asyncio.Event()
    task = asyncio.create_task(run_until_stopped(settings, stop))
    await eventually(settings.health_file.exists, 10)
    first_beat_at = json.loads(settings.health_file.read_text())["beatAt"]
    stop.set()
    await asyncio.wait_for(task, settings.receive_wait_seconds + 10)
    assert time.time() - first_beat_at < settings.receive_wait_seconds


async def run_until_stopped(settings: Settings, stop: asyncio.Event) -> None:
    from service.worker.worker import run_worker

    await run_worker(settings, stop)


async def test_delete_batch_failures_are_noticed(emulator: Stack) -> None:
    """DeleteMessageBatch answers 200 with `Failed` entries; those are retried once and reported, not assumed done."""
    emulator.send(event_body("s3-direct-put-photos-raw"))
    async with AsyncExitStack() as exits:
        queue = Queue(await open_sqs(exits, aioboto3.Session(), 4, 1), emulator.queue_url)
        (message,) = await queue.receive(10, 1, None)
        bogus = type(message)(message.message_id, "not-a-receipt-handle", message.body, 1, None)
        with capture_logs() as logs:
            results = await asyncio.gather(queue.delete(message), queue.delete(bogus))
    assert results == [True, False]
    failures = [entry for entry in logs if entry["event"] == "sqs.delete_entry_failed"]
    assert [entry["attempt"] for entry in failures] == [1, 2]
    assert emulator.depth() == 0
