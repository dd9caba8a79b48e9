"""`photo-ingest redrive`: the dead-letter queue's messages go back to the source queue, send first, delete after."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aioboto3
import pytest

from service.aws.clients import open_sqs
from service.cli import main
from service.ops.redrive import run as redrive_run
from service.ops.redrive.command import redrive_command
from service.ops.redrive.run import Redrive
from tests import bodies
from tests.conftest import BUCKET, Stack, run_until


@pytest.fixture(autouse=True)
def short_final_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every redrive ends with one empty long poll; 1 s instead of 2 keeps the tests quick."""
    monkeypatch.setattr(redrive_run, "RECEIVE_WAIT_S", 1)


def closed_policy(dlq_arn: str, quarantiner: str) -> str:
    """The stacks' DLQ policy: SendMessage denied to every principal but the role that quarantines."""
    deny = {
        "Sid": "DenyAllButQuarantine",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sqs:SendMessage",
        "Resource": dlq_arn,
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": [quarantiner]}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [deny]})


@pytest.fixture(autouse=True)
def closed_dead_letter_queue(stack: Stack) -> None:
    """Each test's DLQ is closed as the stacks close it (redrive refuses an open one: test_redrive_policy.py)."""
    arn = stack.sqs.get_queue_attributes(QueueUrl=stack.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = closed_policy(arn, "arn:aws:iam::123456789012:role/photo-ingest-TaskRole")
    stack.sqs.set_queue_attributes(QueueUrl=stack.dlq_url, Attributes={"Policy": policy})


def notification(key: str) -> str:
    """The direct S3 notification of one object in the test bucket, from AWS's sample."""
    return bodies.direct(bodies.Photo(BUCKET, key))


def quarantined(stack: Stack, body: str, **extra: Any) -> None:
    """A message on the DLQ as the worker's quarantine leaves it, plus `extra` attributes."""
    text = {"DataType": "String"}
    attributes = {
        "photo-ingest.reason": text | {"StringValue": "record_failed"},
        "photo-ingest.source-message-id": text | {"StringValue": "0f0c0d0e"},
        "photo-ingest.receive-count": {"DataType": "Number", "StringValue": "5"},
        "photo-ingest.quarantined-at": text | {"StringValue": "2026-01-01T00:00:00+00:00"},
    }
    stack.sqs.send_message(QueueUrl=stack.dlq_url, MessageBody=body, MessageAttributes=attributes | extra)


def receive_all(stack: Stack, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while batch := stack.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", []):
        messages += batch
    return messages


def args(**values: Any) -> argparse.Namespace:
    return argparse.Namespace(**({"max": None, "dry_run": False, "force": False, "server_side": False} | values))


async def redrive(stack: Stack, capsys: pytest.CaptureFixture[str], **values: Any) -> tuple[int, str]:
    settings = stack.settings(dead_letter_queue_url=stack.dlq_url)
    code = await redrive_command(settings, args(**values), asyncio.Event())
    return code, capsys.readouterr().out


@asynccontextmanager
async def sqs_client() -> AsyncIterator[Any]:
    async with AsyncExitStack() as exits:
        yield await open_sqs(exits, aioboto3.Session(), 4, 2)


async def test_a_redrive_returns_every_message_to_the_queue_where_the_worker_processes_it(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Messages quarantined while the table was broken go back to the source queue, the DLQ is left empty,
    and the real worker then writes their photos."""
    keys = [f"photos-raw/redriven-{n}.jpg" for n in range(13)]
    for key in keys:
        quarantined(stack, notification(key))

    code, out = await redrive(stack, capsys)

    assert code == 0
    assert f"moved {len(keys)} messages" in out
    assert stack.depth(stack.dlq_url) == 0
    assert stack.depth() == len(keys)
    await run_until(stack.settings(), lambda: stack.depth() == 0 and len(stack.items()) == len(keys))
    assert {item["s3Key"] for item in stack.items().values()} == set(keys)


async def test_bodies_are_kept_and_only_the_quarantine_attributes_are_dropped(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """The body arrives byte for byte; `photo-ingest.*` attributes are dropped, any other attribute is kept."""
    body = notification("photos-raw/ünïcødé +%25.jpg") + "  "
    quarantined(stack, body, origin={"DataType": "String", "StringValue": "sns"})

    await redrive(stack, capsys)

    [message] = receive_all(stack, stack.queue_url)
    assert message["Body"] == body
    assert set(message["MessageAttributes"]) == {"origin"}
    assert message["MessageAttributes"]["origin"]["StringValue"] == "sns"


async def test_max_moves_at_most_that_many(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """--max N moves N messages and leaves the rest on the dead-letter queue."""
    for n in range(5):
        quarantined(stack, notification(f"photos-raw/{n}.jpg"))

    code, out = await redrive(stack, capsys, max=2)

    assert code == 0
    assert "moved 2 messages" in out
    assert stack.depth() == 2
    assert stack.depth(stack.dlq_url) == 3


async def test_a_dry_run_says_how_many_would_move_and_moves_none(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run reads the DLQ's approximate count without receiving a message, and moves nothing."""
    for n in range(4):
        quarantined(stack, notification(f"photos-raw/{n}.jpg"))

    code, out = await redrive(stack, capsys, dry_run=True)

    assert code == 0
    assert "would move about 4 messages" in out
    assert (stack.depth(), stack.depth(stack.dlq_url)) == (0, 4)
    assert len(receive_all(stack, stack.dlq_url)) == 4  # none was received (and so hidden) by the dry run


async def test_messages_that_reach_the_dlq_after_the_start_are_left_for_the_next_run(stack: Stack) -> None:
    """A message that arrives while the redrive runs (a new failure, or one it moved that failed again) is not
    moved: moving it would let a poison message loop between the queues forever."""
    quarantined(stack, notification("photos-raw/old.jpg"))
    async with sqs_client() as sqs:
        mover = Redrive(sqs, stack.dlq_url, stack.queue_url)
        await asyncio.to_thread(quarantined, stack, "not json")  # after the start: the worker re-quarantined it

        moves = await mover.run(asyncio.Event())

    assert (moves.moved, len(moves.left_new)) == (1, 1)
    assert stack.depth(stack.dlq_url) == 1
    [moved] = receive_all(stack, stack.queue_url)
    assert moved["Body"] == notification("photos-raw/old.jpg")


def test_redrive_needs_a_dead_letter_queue_url(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without DEAD_LETTER_QUEUE_URL (or with the queue's own URL) the command stops before any AWS call, with
    exit code 2 and a line naming the variable."""
    monkeypatch.chdir(tmp_path)  # no `.env` from the developer's checkout
    monkeypatch.setenv("QUEUE_URL", stack.queue_url)
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL", raising=False)
    assert main(["redrive"]) == 2
    assert "DEAD_LETTER_QUEUE_URL" in capsys.readouterr().err

    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", stack.queue_url)
    assert main(["redrive", "--dry-run"]) == 2
    assert "DEAD_LETTER_QUEUE_URL" in capsys.readouterr().err
