"""The hostile corpus (tests/hostile.py) against the trust boundary: every forged or malformed body, in every
envelope, ends in its documented disposition, with no unexpected error, every log line one JSON object of at most
16 KiB, and every dead letter's attributes within SQS's limits.

First through the core alone (fast, every case), then through the real worker process against moto: the end
state is what the table holds, what the queue still holds, and what the dead-letter queue holds and why.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from structlog.testing import capture_logs

from service import logs as log_setup
from service.aws.queue import ATTRIBUTE_CHARS_MAX
from service.ingest.items import Item
from service.ingest.outcomes import Disposition, PutOutcome
from service.ingest.settle import Ingest
from service.ingest.trust import Trust
from service.metrics import Metrics
from tests import hostile
from tests.conftest import BUCKET, Stack
from tests.workers import poll_until, worker_env, worker_pool

PREFIX = "photos-raw/"
ITEM_BYTES_MAX = 400 * 1024
LINE_BYTES_MAX = 16 * 1024  # docs/security.md: no log line longer, with its newline, whatever the input
SQS_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,256}")
SQS_ATTRIBUTE_VALUE = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
TRUSTING = Trust(frozenset({BUCKET}), frozenset({hostile.TOPIC}))


class MemoryTable:
    """A Photos table in memory that, like DynamoDB, refuses an item over 400 KB for its content."""

    def __init__(self) -> None:
        self.items: dict[str, Item] = {}

    async def put(self, item: Item) -> PutOutcome:
        if len(json.dumps(item)) > ITEM_BYTES_MAX:
            error = {"Code": "ValidationException", "Message": "Item size has exceeded the maximum allowed size"}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, "PutItem")
        return (
            PutOutcome.INSERTED if self.items.setdefault(item["photoId"]["S"], item) is item else PutOutcome.DUPLICATE
        )


def keys_of(items: Any) -> set[tuple[str, str]]:
    return {(item["s3Bucket"]["S"], item["s3Key"]["S"]) for item in items}


@pytest.mark.parametrize("trusting", [True, False], ids=["allowlists", "no-allowlists"])
async def test_every_case_settles_in_the_core_as_documented(trusting: bool) -> None:
    """Through `Ingest` alone: each case is quarantined with its reason, or deleted having written exactly its
    items, and nothing raises or logs an unexpected error."""
    for case in hostile.corpus(trusting=trusting):
        table = MemoryTable()
        ingest = Ingest(table, PREFIX, Metrics(), trust=TRUSTING if trusting else Trust())
        with capture_logs() as logs:
            settlement = await ingest.settle_body(case.body)
        where = f"{case.envelope}/{case.name}"
        if case.reason:
            assert (settlement.disposition, settlement.reason) == (Disposition.QUARANTINE, case.reason), where
            assert keys_of(table.items.values()) <= set(case.items), where
        else:
            assert settlement.disposition is Disposition.DELETE, (where, settlement)
            assert keys_of(table.items.values()) == set(case.items), where
        assert not [entry for entry in logs if entry["event"] in {"message.parse_failed", "photo.failed"}], where
        for entry in logs:
            assert_rendered_within_bounds(entry, where)


def assert_rendered_within_bounds(entry: dict[str, Any], where: str) -> None:
    """The event through the whole JSON chain and the whole console chain: at most 16 KiB with its newline; one
    strict JSON object; on the console, nothing but printable characters and a traceback's line breaks."""
    for use_json in (True, False):
        event: Any = {name: value for name, value in entry.items() if name != "log_level"}
        for processor in log_setup.processors(use_json=use_json):
            event = processor(None, entry["log_level"], event)
        assert len(event.encode()) + 1 <= LINE_BYTES_MAX, (where, len(event.encode()))
        if use_json:
            assert isinstance(strict_json(event), dict), where
        else:
            assert all(line.isprintable() for line in event.split("\n")), where


def test_the_corpus_covers_every_reason_in_every_envelope() -> None:
    """The corpus is what the issue lists: every trust reason, each through every envelope it can travel in."""
    cases = hostile.corpus(trusting=True)
    reasons = {(case.envelope, case.reason) for case in cases}
    for envelope in hostile.ENVELOPES:
        for reason in ("untrusted_bucket", "invalid_bucket", "invalid_key", "ambiguous_json", "invalid_item", None):
            assert (envelope, reason) in reasons, (envelope, reason)
        names = {case.name for case in cases if case.envelope == envelope}
        assert {"folder_marker", "legacy_bucket_aws_sample", "event_time_number", "event_name_900_KB"} <= names
    assert {envelope for envelope, reason in reasons if reason == "too_many_records"} == {"direct", "sns", "sns_raw"}
    assert ("sns", "untrusted_topic") in reasons
    assert max(len(case.body.encode()) for case in cases) > hostile.BODY_BYTES_MAX - 200  # a full 1 MiB body


@pytest.mark.parametrize("trusting", [True, False], ids=["allowlists", "no-allowlists"])
def test_every_case_ends_as_documented_through_the_real_worker(stack: Stack, tmp_path: Path, trusting: bool) -> None:
    """`photo-ingest run` (a process, JSON logs) drains the whole corpus: the table holds exactly the honest
    items, with their exact keys; every other message is on the dead-letter queue with its reason; the queue is
    empty; no `message.unexpected_error`; every stdout line is one valid JSON object."""
    cases = hostile.corpus(trusting=trusting)
    sent = {
        stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=case.body)["MessageId"]: case for case in cases
    }
    quarantined = sum(1 for case in cases if case.reason)
    settings = hostile.ALLOWED if trusting else {}
    with worker_pool(tmp_path) as pool:
        worker = pool.start("hostile", worker_env(stack, stack.endpoint, tmp_path / "health", **settings))
        poll_until(
            # at least: moto now and then delivers a message twice, and then it is quarantined twice; the
            # dead letters are compared by their source message id below
            lambda: stack.depth() == 0 and stack.depth(stack.dlq_url) >= quarantined,
            timeout_s=90,
            what=lambda: (
                f"an empty queue ({stack.depth()}) and {quarantined} dead letters ({stack.depth(stack.dlq_url)})"
            ),
        )
        assert worker.terminate()[0] == 0
        lines = worker.log_path.read_text().splitlines()

    assert max(len(line.encode()) + 1 for line in lines) <= LINE_BYTES_MAX
    assert dead_letter_reasons(stack, sent) == {mid: case.reason for mid, case in sent.items() if case.reason}
    items = stack.items()
    expected = {pair for case in cases for pair in case.items}
    assert {(item["s3Bucket"], item["s3Key"]) for item in items.values()} == expected
    assert_checks(cases, items)
    events = [strict_json(line) for line in lines]
    assert all(isinstance(event, dict) for event in events)
    assert not [event for event in events if event["event"] in {"message.unexpected_error", "message.parse_failed"}]
    assert not [event for event in events if event["event"] == "message.released"]  # nothing was retried
    logged = {event["messageId"]: event["reason"] for event in events if event["event"] == "message.quarantined"}
    assert logged == {mid: case.reason for mid, case in sent.items() if case.reason}


def dead_letter_reasons(stack: Stack, sent: dict[str, hostile.Case]) -> dict[str, str | None]:
    """source message id -> quarantine reason, for every message on the dead-letter queue. A body that filled a
    whole message travelled without the attributes: it is found by its body."""
    by_body = {case.body: message_id for message_id, case in sent.items()}
    found: dict[str, str | None] = {}
    while messages := stack.sqs.receive_message(
        QueueUrl=stack.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=300
    ).get("Messages", []):
        for message in messages:
            attributes = {name: value["StringValue"] for name, value in message.get("MessageAttributes", {}).items()}
            assert_within_sqs_limits(attributes)
            source = attributes.get("photo-ingest.source-message-id") or by_body[message["Body"]]
            found[source] = attributes.get("photo-ingest.reason", sent[source].reason)
    return found


def assert_within_sqs_limits(attributes: dict[str, str]) -> None:
    """What SQS accepts in a message attribute, and the bound of docs/security.md on its value."""
    assert len(attributes) <= 10
    for name, value in attributes.items():
        assert SQS_ATTRIBUTE_NAME.fullmatch(name), name
        assert SQS_ATTRIBUTE_VALUE.fullmatch(value), name
        assert len(value) <= ATTRIBUTE_CHARS_MAX + len("…[cut 1048576 chars]"), name


def assert_checks(cases: list[hostile.Case], items: dict[str, dict[str, Any]]) -> None:
    by_key = {item["s3Key"]: item for item in items.values()}
    for case in cases:
        for _, key in case.items:
            item = by_key[key]
            if "no_size" in case.checks:
                assert "size" not in item, case.name
            if "no_event_time" in case.checks:
                assert item["uploadedAt"] == item["ingestedAt"], case.name
                datetime.fromisoformat(item["uploadedAt"])


def strict_json(line: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} in a log line")

    return json.loads(line, parse_constant=refuse)
