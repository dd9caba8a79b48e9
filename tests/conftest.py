"""Fixtures: one moto server per test session (a real HTTP endpoint on 127.0.0.1), reset before each test.

The worker reaches it exactly as it reaches AWS, through `AWS_ENDPOINT_URL`. Tests set up and inspect state
with plain boto3; the product's own calls are never mocked. The end-to-end tests of the core take `emulator`
instead of `stack`: the same world, once on moto and once on ministack (tests/emulators.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import structlog
import structlog.contextvars
import structlog.testing
from hypothesis import HealthCheck, settings
from moto.moto_server.threaded_moto_server import ThreadedMotoServer

from service.config import Settings
from service.local.endpoint import serialize_sqs_deletes
from tests.emulators import MOTO_CANNOT_BATCH, ministack_server, reset_ministack

# The property tests assert on what each example does, never on how long it took: on a loaded 2-core machine
# Hypothesis's default 200 ms deadline and its "too slow" check fail runs that found nothing wrong.
settings.register_profile("loaded-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("loaded-machine")

EVENTS = Path(__file__).parent / "events"
REGION = "us-east-1"
BUCKET = "beetroot-raw"


def event_body(name: str) -> str:
    """The SQS body in `tests/events/<name>.json`, as it travels (compact JSON unless it is pretty already)."""
    return (EVENTS / f"{name}.json").read_text()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    serialize_sqs_deletes()  # as `photo-ingest local` does: moto's concurrent deletes otherwise lose messages' deletion
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = dict(os.environ)
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "QUEUE_URL", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS"):
        os.environ.pop(name, None)
    yield endpoint
    os.environ.clear()
    os.environ.update(saved)
    server.stop()


@dataclass
class Stack:
    """What production has: a bucket, a queue with a dead-letter queue and redrive, and the Photos table."""

    endpoint: str
    sqs: Any
    dynamodb: Any
    s3: Any
    queue_url: str
    dlq_url: str
    table: str = "Photos"
    emulator: str = "moto"

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "queue_url": self.queue_url,
            "photos_table": self.table,
            "receive_wait_seconds": 1,
            "visibility_timeout_seconds": 30,
            "retry_backoff_base_seconds": 1,
            "retry_backoff_max_seconds": 2,
            "shutdown_timeout_seconds": 5,
            "metrics_enabled": False,
            "health_file": Path(f"/tmp/photo-ingest-test-{os.getpid()}.health"),
        }
        return Settings(**(values | overrides))  # type: ignore[arg-type]

    def write_mode(self, mode: str) -> str:
        """`mode`, after skipping the test where this emulator cannot serve it."""
        if mode == "batch" and self.emulator == "moto":
            pytest.skip(MOTO_CANNOT_BATCH)
        return mode

    def send(self, *bodies: str) -> set[str]:
        """Send the bodies in batches of 10; the ids of the messages sent."""
        ids: set[str] = set()
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies[start : start + 10])]
            response = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            assert not response.get("Failed"), response
            ids |= {entry["MessageId"] for entry in response["Successful"]}
        return ids

    def items(self) -> dict[str, dict[str, Any]]:
        """The whole table, by photoId, in plain Python values."""
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table)
        return {
            item["photoId"]["S"]: {name: next(iter(value.values())) for name, value in item.items()}
            for page in pages
            for item in page["Items"]
        }

    def depth(self, url: str | None = None) -> int:
        """Messages on a queue, visible or not, in an end state: when nothing receives from it any more.

        moto counts the visible messages, then the hidden ones, reading the clock afresh for each message, so
        a message whose visibility ends in between is in neither count; the messages received in one batch
        become visible one after another, so two reads in a row can both miss one. With nothing receiving,
        messages only ever become visible: when a second read finds as many visible messages as the first,
        none became visible during the first, and its total is exact. While workers are busy, count events
        instead (`deleted`, or the calls at a `FaultProxy`)."""
        while True:
            visible, hidden = self._counts(url)
            if self._counts(url)[0] == visible:
                return visible + hidden

    def _counts(self, url: str | None) -> tuple[int, int]:
        """(visible, hidden) messages, as one GetQueueAttributes call gives them."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def create_table(self) -> None:
        self.dynamodb.create_table(
            TableName=self.table,
            KeySchema=[{"AttributeName": "photoId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "photoId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

    def notify_queue_on_upload(self, prefix: str = "photos-raw/") -> None:
        """S3 -> SQS notifications for every ObjectCreated event (moto delivers them like S3 does)."""
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.s3.put_bucket_notification_configuration(
            Bucket=BUCKET,
            NotificationConfiguration={
                "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}],
            },
        )


def reset_moto(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own loopback server
        assert response.status == 200


def build_stack(endpoint: str, emulator: str = "moto") -> Stack:
    """The bucket, the queue with its dead-letter queue, and the table, on an emulator just reset."""
    clients = {
        name: boto3.client(name, region_name=REGION, endpoint_url=endpoint) for name in ("sqs", "s3", "dynamodb")
    }
    sqs = clients["sqs"]
    dlq_url = sqs.create_queue(QueueName="photos-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName="photos",
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}),
        },
    )["QueueUrl"]
    clients["s3"].create_bucket(Bucket=BUCKET)
    built = Stack(endpoint, sqs, clients["dynamodb"], clients["s3"], queue_url, dlq_url, emulator=emulator)
    built.create_table()
    return built


@pytest.fixture
def stack(moto_endpoint: str) -> Stack:
    reset_moto(moto_endpoint)
    return build_stack(moto_endpoint)


@pytest.fixture(scope="session")
def ministack_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with ministack_server(tmp_path_factory.mktemp("ministack") / "ministack.log") as endpoint:
        yield endpoint


@pytest.fixture(params=["moto", "ministack"])
def emulator(request: pytest.FixtureRequest, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """`stack`, on each emulator in turn; the worker (and any child process) is pointed at that one."""
    if request.param == "moto":
        reset_moto(moto_endpoint)
        return build_stack(moto_endpoint)
    endpoint: str = request.getfixturevalue("ministack_endpoint")
    reset_ministack(endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return build_stack(endpoint, "ministack")


@pytest.fixture(autouse=True)
def logging_left_unconfigured() -> Iterator[None]:
    """After each test, structlog as the tests have it: every level, nothing cached. A command that configures
    logging in process (`configure_logging`: LOG_LEVEL INFO, loggers cached on first use) would otherwise hide
    the DEBUG lines later tests count (`message.deleted`); such a test replaces `configure_logging` too."""
    yield
    structlog.reset_defaults()


def capture_logs() -> Any:
    """The in-process worker's log events as dicts, with the per-message context (messageId, receiveCount), at
    every level: `log_level` says which."""
    return structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars])


def deleted(events: Iterable[dict[str, Any]]) -> set[str]:
    """The ids of the messages the worker logged as deleted: an event, exact while the queue's counts are not.
    `message.deleted` is a DEBUG line: a worker process logs it with LOG_LEVEL=DEBUG (`tests.workers.worker_env`)."""
    return {str(event["messageId"]) for event in events if event.get("event") == "message.deleted"}


async def eventually(condition: Callable[[], bool], timeout_s: float = 30.0, interval_s: float = 0.1) -> None:
    """Wait until `condition()` (run in a thread: it may call boto3) is true, or fail after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not await asyncio.to_thread(condition):  # noqa: ASYNC110 - the state lives in another server
            await asyncio.sleep(interval_s)


async def run_until(settings: Settings, condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Run the real worker until `condition()` holds, then stop it as SIGTERM would, and wait for it."""
    from service.worker.worker import run_worker

    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))
    try:
        await eventually(lambda: worker.done() or condition(), timeout_s)
    finally:
        stop.set()
        await asyncio.wait_for(worker, settings.shutdown_timeout_seconds + 10)
