"""`photo-ingest connect-bucket`, on both emulators: a bucket that already notifies two other targets keeps them
both (PutBucketNotificationConfiguration replaces the whole set), photo-ingest's entry is added or updated and
nothing else, the difference is shown, nothing is written without --apply, an overlapping entry is refused
unless replaced, and the uploads then reach the queue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from service.cli import main
from service.ops.connect import merge
from tests.conftest import BUCKET, Stack

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:photos"


def queue_arn(stack: Stack, url: str) -> str:
    return str(stack.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def configuration(stack: Stack) -> dict[str, Any]:
    return merge.as_read(stack.s3.get_bucket_notification_configuration(Bucket=BUCKET))


def two_other_targets(stack: Stack) -> dict[str, Any]:
    """The bucket as another team left it: thumbnails/ to a queue of theirs, exports/ to another queue."""
    other = [stack.sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("thumbnailer", "exporter")]
    existing = {
        "QueueConfigurations": [
            {
                "Id": "thumbnails",
                "QueueArn": queue_arn(stack, other[0]),
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "thumbnails/"}]}},
            },
            {
                "Id": "exports-removed",
                "QueueArn": queue_arn(stack, other[1]),
                "Events": ["s3:ObjectRemoved:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "exports/"}]}},
            },
        ]
    }
    stack.s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=existing)
    return configuration(stack)


def bodies_on(stack: Stack, url: str) -> list[str]:
    """Every body on the queue (S3's test event included), received until a long poll comes back empty."""
    found: list[str] = []
    while batch := stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages"):
        found += [message["Body"] for message in batch]
    return found


def connect(*extra: str) -> int:
    return main(["connect-bucket", "--bucket", BUCKET, *extra])


def test_connecting_keeps_the_other_targets_and_the_uploads_reach_the_queue(
    emulator: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Shown first and not written; with --apply, written: both other entries as they were, plus photo-ingest's
    for photos-raw/; an upload there then arrives on the queue; a second run changes nothing."""
    stack = emulator
    before = two_other_targets(stack)
    ours = queue_arn(stack, stack.queue_url)

    assert connect("--queue-arn", ours, "--save", str(tmp_path / "before.json")) == 0
    shown = capsys.readouterr().out
    assert "+ QueueConfigurations photo-ingest: s3:ObjectCreated:* -> " + ours + " prefix 'photos-raw/'" in shown
    assert "= QueueConfigurations thumbnails" in shown
    assert "= QueueConfigurations exports-removed" in shown
    assert "--apply" in shown
    assert configuration(stack) == before  # nothing written
    assert json.loads((tmp_path / "before.json").read_text()) == before  # for a rollback

    assert connect("--queue-arn", ours, "--apply") == 0
    assert "written" in capsys.readouterr().out

    after = configuration(stack)["QueueConfigurations"]
    by_id = {entry["Id"]: entry for entry in after}
    assert set(by_id) == {"thumbnails", "exports-removed", "photo-ingest"}
    for kept in before["QueueConfigurations"]:
        assert by_id[kept["Id"]] == kept
    assert by_id["photo-ingest"]["QueueArn"] == ours
    stack.s3.put_object(Bucket=BUCKET, Key="photos-raw/connected.jpg", Body=b"jpeg")
    keys = [
        record["s3"]["object"]["key"]
        for body in bodies_on(stack, stack.queue_url)
        for record in json.loads(body).get("Records", [])
    ]
    assert [unquote_plus(key) for key in keys] == ["photos-raw/connected.jpg"]

    assert connect("--queue-arn", ours, "--apply") == 0
    assert "nothing to change" in capsys.readouterr().out
    assert configuration(stack)["QueueConfigurations"] == after


def test_an_overlapping_entry_is_refused_unless_it_is_replaced(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old function's entry takes ObjectCreated under photos-raw/ too: S3 would refuse both, so the command
    says which one overlaps and writes nothing (exit 2); --replace swaps it for photo-ingest's in one write."""
    old = stack.sqs.create_queue(QueueName="old-function")["QueueUrl"]
    old_entry = {
        "Id": "beetroot-ingest",
        "QueueArn": queue_arn(stack, old),
        "Events": ["s3:ObjectCreated:Put"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "photos-raw/"}]}},
    }
    stack.s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": [old_entry]}
    )
    ours = queue_arn(stack, stack.queue_url)

    assert connect("--queue-arn", ours, "--apply") == 2
    err = capsys.readouterr().err
    assert "beetroot-ingest" in err
    assert "--replace" in err
    assert configuration(stack)["QueueConfigurations"] == [old_entry]

    assert connect("--queue-arn", ours, "--replace", "beetroot-ingest", "--apply") == 0
    assert "- QueueConfigurations beetroot-ingest" in capsys.readouterr().out
    [entry] = configuration(stack)["QueueConfigurations"]
    assert (entry["Id"], entry["QueueArn"]) == ("photo-ingest", ours)

    assert connect("--queue-arn", ours, "--replace", "no-such-entry") == 2
    assert "no-such-entry" in capsys.readouterr().err


def test_the_merge_keeps_every_kind_of_target_and_eventbridge() -> None:
    """Pure: a topic, a function and EventBridge delivery survive; our old entry (by Id or by queue) is updated,
    not duplicated."""
    current = {
        "TopicConfigurations": [{"Id": "t", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Events": ["s3:ObjectRemoved:*"]}],
        "LambdaFunctionConfigurations": [
            {
                "Id": "f",
                "LambdaFunctionArn": "arn:aws:lambda:us-east-1:1:function:f",
                "Events": ["s3:ObjectCreated:*"],
                "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": ".csv"}]}},
            }
        ],
        "QueueConfigurations": [{"Id": "old-name", "QueueArn": QUEUE_ARN, "Events": ["s3:ObjectCreated:*"]}],
        "EventBridgeConfiguration": {},
    }
    ours = merge.entry("photo-ingest", QUEUE_ARN, "photos-raw/")

    after = merge.merged(current, ours)

    assert after["QueueConfigurations"] == [ours]
    assert {k: v for k, v in after.items() if k != "QueueConfigurations"} == {
        k: v for k, v in current.items() if k != "QueueConfigurations"
    }
    assert merge.overlapping(after, ours) == [
        "f (LambdaFunctionConfigurations to arn:aws:lambda:us-east-1:1:function:f)"
    ]
    assert merge.overlapping(after, merge.entry("photo-ingest", QUEUE_ARN, "photos-raw/x/")) != []
    assert "= EventBridge delivery" in merge.describe(current, after)
