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
import structlog
from structlog.testing import capture_logs as _capture_logs

from service.aws.clients import open_dynamodb, open_sqs
from service.aws.queue import Queue
from service.aws.table import PhotoStore
from service.config import Settings
from service.ingest.ids import photo_id
from service.ingest.outcomes import Disposition, Outcome, PutOutcome, decide
from service.metrics import Metrics
from service.worker.worker import Worker
from tests.conftest import BUCKET, Stack, event_body, eventually, run_until
from tests.emulators import MINISTACK_LITERAL_KEYS
from tests.test_events import CREATED, SKIPPED


def capture_logs() -> Any:
    """Log events as dicts, with the per-message context (messageId, receiveCount) merged in."""
    return _capture_logs(processors=[structlog.contextvars.merge_contextvars])


JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16 + b"\xff\xd9"


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
    await run_until(emulator.settings(), lambda: len(emulator.items()) == 3 and emulator.depth() == 0)
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
    emulator.send(*bodies)
    with capture_logs() as logs:
        await run_until(emulator.settings(write_mode=mode, pollers=1), lambda: emulator.depth() == 0)
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
    emulator.send(*(event_body(name) for name, *_ in [*CREATED, *SKIPPED]))
    with capture_logs() as logs:
        await run_until(emulator.settings(write_mode=mode), lambda: emulator.depth() == 0)
    items = emulator.items()
    assert set(items) == {expected_id for _, _, expected_id in CREATED}
    assert all(items[expected_id]["s3Key"] == key for _, key, expected_id in CREATED if key)
    events = [entry["event"] for entry in logs]
    assert events.count("message.deleted") == len(CREATED) + len(SKIPPED)
    assert "photo.failed" not in events
    assert "photo.conflict" not in events


@pytest.mark.parametrize("write_mode", ["put", "batch"])
async def test_a_mixed_receive_batch_is_settled_message_by_message(emulator: Stack, write_mode: str) -> None:
    """The recorded receive batch (S3, test event, SNS, EventBridge): two photos, all four messages deleted."""
    mode = emulator.write_mode(write_mode)
    response = json.loads(event_body("sqs-receive-message-response"))
    emulator.send(*(message["Body"] for message in response["Messages"]))
    await run_until(emulator.settings(write_mode=mode), lambda: emulator.depth() == 0)
    assert set(emulator.items()) == {"47f1d3ed99273a6e196e", "037a739adede150f5f2b"}


async def test_skips_are_acknowledged_without_writing(emulator: Stack) -> None:
    """Out-of-prefix keys, deletes, test events and foreign SNS payloads are deleted from the queue, with reasons."""
    names = ["s3-direct-put", "s3-object-removed-delete", "s3-testevent", "sns-wrapped-non-s3-message"]
    emulator.send(*(event_body(name) for name in names))
    with capture_logs() as logs:
        await run_until(emulator.settings(), lambda: emulator.depth() == 0)
    assert emulator.items() == {}
    reasons = {entry["reason"] for entry in logs if entry["event"] == "record.skipped"}
    assert reasons == {"outside_prefix", "not_object_created", "test_event", "not_an_s3_event"}


async def test_poison_without_a_dead_letter_queue_stays_on_the_queue(emulator: Stack) -> None:
    """A body that is not JSON is never deleted: it waits for the redrive policy, with one error line per receive."""
    emulator.send("not json", event_body("s3-direct-put-photos-raw"))
    with capture_logs() as logs:
        await run_until(emulator.settings(), lambda: len(emulator.items()) == 1 and emulator.depth() == 1)
    quarantined = [entry for entry in logs if entry["event"] == "message.quarantined"]
    assert quarantined
    assert quarantined[0]["reason"] == "body_not_json"
    assert quarantined[0]["receiveCount"] == 1
    assert "redrive" in quarantined[0]["destination"]
    assert emulator.depth() == 1


async def test_poison_with_a_dead_letter_queue_is_moved_there_with_its_reason(emulator: Stack) -> None:
    """With DEAD_LETTER_QUEUE_URL, poison is sent there at once, body intact, reason attached; then deleted."""
    emulator.send('{"Records": "broken"}')
    await run_until(
        emulator.settings(dead_letter_queue_url=emulator.dlq_url),
        lambda: emulator.depth() == 0 and emulator.depth(emulator.dlq_url),
    )
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
            lambda: emulator.depth(emulator.dlq_url) == 1,
        )
    assert emulator.items()[pid] == {"photoId": pid, "s3Bucket": "another-bucket", "s3Key": "photos-raw/other.jpg"}
    assert emulator.depth() == 0
    assert any(entry["event"] == "photo.conflict" and entry["log_level"] == "error" for entry in logs)


@pytest.mark.parametrize("write_mode", ["put", "batch"])
async def test_a_failing_table_keeps_the_message_and_backs_off(emulator: Stack, write_mode: str) -> None:
    """With the table gone, nothing is deleted: the message is released with a backoff, not retried hot."""
    mode = emulator.write_mode(write_mode)
    emulator.dynamodb.delete_table(TableName=emulator.table)
    emulator.send(event_body("s3-direct-put-photos-raw"))
    with capture_logs() as logs:
        await run_until(emulator.settings(write_mode=mode), lambda: any(e["event"] == "message.released" for e in logs))
    released = next(entry for entry in logs if entry["event"] == "message.released")
    assert released["retryInSeconds"] >= 1
    failed = next(entry for entry in logs if entry["event"] == "photo.failed")
    assert (failed["kind"], failed["code"]) == ("missing", "ResourceNotFoundException")
    assert emulator.depth() == 1


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


@asynccontextmanager
async def slow_worker(settings: Settings, delay_s: float) -> AsyncIterator[tuple[Worker, SlowStore]]:
    async with AsyncExitStack() as exits:
        session = aioboto3.Session()
        sqs = await open_sqs(exits, session, 10, settings.receive_wait_seconds)
        store = SlowStore(PhotoStore(await open_dynamodb(exits, session, 10), settings.photos_table), delay_s)
        yield Worker(settings, Queue(sqs, settings.queue_url), store, Metrics()), store


async def run_worker_task(worker: Worker, stop: asyncio.Event, until: Callable[[], bool], timeout_s: float) -> None:
    task = asyncio.create_task(worker.run(stop))
    try:
        await eventually(lambda: task.done() or until(), timeout_s)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def test_slow_puts_have_their_visibility_extended_and_are_processed_once(stack: Stack) -> None:
    """A put slower than the visibility timeout never lets the message be delivered twice concurrently."""
    stack.send(event_body("s3-direct-put-photos-raw"))
    settings = stack.settings(visibility_timeout_seconds=2, pollers=2)
    async with slow_worker(settings, delay_s=4.5) as (worker, store):
        with capture_logs() as logs:
            await run_worker_task(worker, asyncio.Event(), lambda: stack.depth() == 0, timeout_s=30)
    assert store.calls == 1
    assert len(stack.items()) == 1
    assert not any(entry["event"] == "message.extend_failed" for entry in logs)


async def test_sigterm_releases_unfinished_messages_at_once(stack: Stack) -> None:
    """Work still running at the shutdown deadline is cut short and its message made visible again immediately."""
    stack.send(event_body("s3-direct-put-photos-raw"))
    settings = stack.settings(visibility_timeout_seconds=300, shutdown_timeout_seconds=0.5)
    stop = asyncio.Event()
    async with slow_worker(settings, delay_s=60) as (worker, store):
        task = asyncio.create_task(worker.run(stop))
        await eventually(lambda: store.calls == 1, 10)
        stop.set()
        await asyncio.wait_for(task, 10)
    visible = stack.sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert visible["Attributes"]["ApproximateNumberOfMessages"] == "1"
    assert stack.items() == {}


async def test_an_idle_worker_stops_within_a_second(stack: Stack) -> None:
    """A stop request cancels the in-flight 20 s long poll; the worker returns at once."""
    stop = asyncio.Event()
    stack.settings().health_file.unlink(missing_ok=True)
    task = asyncio.create_task(run_until_stopped(stack.settings(receive_wait_seconds=20), stop))
    await eventually(stack.settings().health_file.exists, 10)
    started = time.monotonic()
    stop.set()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 1.5


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
