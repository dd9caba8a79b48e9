"""Events as S3 really sends them (issue 18): legacy bucket names, folder markers and event times of any JSON type,
each through the runtimes that meet it. The hostile corpus (tests/test_hostile.py) carries them through every
envelope too."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import ValidationError

from service.config import Settings
from service.ingest.events import ObjectRecord, SkippedRecord, parse_body
from service.ingest.ids import photo_id
from service.ingest.items import Item
from service.ingest.outcomes import Disposition, Outcome, PutOutcome
from service.ingest.settle import Ingest
from service.ingest.trust import Trust
from service.metrics import Metrics
from tests import test_backfill as backfill
from tests import test_backfill_via_queue as via_queue
from tests.conftest import BUCKET, Stack, capture_logs, event_body, run_until
from tests.hostile import Obj, eventbridge, records_document

PREFIX = "photos-raw/"
LEGACY = "DOC-EXAMPLE-BUCKET1"  # AWS's own EventBridge sample (tests/events/eventbridge-object-created.json)


class Table:
    """A store that records every item it is asked to put."""

    def __init__(self) -> None:
        self.puts: list[Item] = []

    async def put(self, item: Item) -> PutOutcome:
        self.puts.append(item)
        return PutOutcome.INSERTED


# ------------------------------------------------------------------------------------------ bucket names


def test_the_aws_sample_bucket_is_written_by_the_worker_with_its_allowlist(stack: Stack) -> None:
    """`DOC-EXAMPLE-BUCKET1` (upper case: a legacy us-east-1 name) was quarantined as invalid_bucket. Now the
    verbatim sample is written, with the photoId SOURCES.md gives, by a worker whose allowlist names it."""
    stack.send(event_body("eventbridge-object-created"))
    settings = stack.settings(raw_prefix="example-", allowed_buckets=LEGACY, dead_letter_queue_url=stack.dlq_url)
    asyncio.run(run_until(settings, lambda: stack.depth() == 0))
    item = stack.items()["ac54574c6a46295fe686"]
    assert (item["s3Bucket"], item["s3Key"]) == (LEGACY, "example-key")
    assert stack.depth(stack.dlq_url) == 0


@pytest.mark.parametrize("bucket", [LEGACY, "Beet_Raw", "b" * 255, "-beet.", "b" * 64])
def test_every_name_s3_ever_allowed_passes_in_every_envelope(bucket: str) -> None:
    """Upper case, `_`, 64 to 255 characters, a leading `-`: legacy names that still send events."""
    for body in (
        records_document([Obj("photos-raw/x.jpg", bucket=bucket)]),
        eventbridge(Obj("photos-raw/x.jpg", bucket)),
    ):
        [record] = parse_body(body, PREFIX, Trust(frozenset({bucket})))
        assert isinstance(record, ObjectRecord)
        assert record.bucket == bucket


def test_allowed_buckets_takes_the_same_rule_as_the_events() -> None:
    """ALLOWED_BUCKETS accepts a legacy name (it refused `DOC-EXAMPLE-BUCKET1`) and still refuses a `/`."""
    settings = Settings(queue_url="q", allowed_buckets=f"{LEGACY}, Beet_Raw")  # type: ignore[call-arg, arg-type]
    assert settings.allowed_buckets == {LEGACY, "Beet_Raw"}
    with pytest.raises(ValidationError, match="is not a valid S3 bucket name"):
        Settings(queue_url="q", allowed_buckets="beetroot-raw/photos-raw")  # type: ignore[call-arg, arg-type]


# ------------------------------------------------------------------------------------------ folder markers


def test_a_folder_marker_is_skipped_in_every_envelope() -> None:
    """`photos-raw/2024/`, the console's "Create folder", became a Photos item. It is skipped as folder_marker."""
    for body in (event_body("s3-folder-marker-put"), eventbridge(Obj("photos-raw/2024/", size=0))):
        [entry] = parse_body(body, PREFIX)
        assert entry == SkippedRecord("folder_marker", entry.bucket, "photos-raw/2024/", entry.event_name)


async def test_a_folder_marker_handed_to_the_core_directly_is_never_put() -> None:
    """A runtime that makes its own records (backfill) gets the rule from `Ingest.settle` as well."""
    table = Table()
    ingest = Ingest(table, PREFIX, Metrics())
    marker = ObjectRecord(BUCKET, "photos-raw/2024/", "Backfill", size=0)
    photo = ObjectRecord(BUCKET, "photos-raw/2024/a.jpg", "Backfill")
    with capture_logs() as logs:
        settlement = await ingest.settle([marker, photo])
    assert [record.outcome for record in settlement.records] == [Outcome.SKIPPED, Outcome.INSERTED]
    assert settlement.disposition is Disposition.DELETE
    assert [item["s3Key"]["S"] for item in table.puts] == ["photos-raw/2024/a.jpg"]
    assert [entry["reason"] for entry in logs if entry["event"] == "record.skipped"] == ["folder_marker"]


def test_the_worker_skips_the_folder_marker_s3_announces(stack: Stack) -> None:
    """Through moto's own S3 notifications: "Create folder" then an upload into it. The message of the marker is
    deleted with nothing written; the photo is written."""
    stack.notify_queue_on_upload()
    stack.s3.put_object(Bucket=BUCKET, Key="photos-raw/2024/", Body=b"")
    stack.s3.put_object(Bucket=BUCKET, Key="photos-raw/2024/a.jpg", Body=b"jpeg")
    with capture_logs() as logs:
        asyncio.run(run_until(stack.settings(), lambda: stack.depth() == 0))
    assert [item["s3Key"] for item in stack.items().values()] == ["photos-raw/2024/a.jpg"]
    skipped = [(entry["reason"], entry["key"]) for entry in logs if entry["event"] == "record.skipped"]
    assert sorted(skipped, key=str) == [("folder_marker", "photos-raw/2024/"), ("test_event", None)]  # moto's test


@pytest.mark.parametrize("dry_run", [False, True], ids=["writes", "dry-run"])
async def test_backfill_skips_folder_markers(stack: Stack, capsys: pytest.CaptureFixture[str], dry_run: bool) -> None:
    """A listing holds the markers the console made: they are counted as skipped, never written (nor, in a dry
    run, counted as would-write)."""
    keys = backfill.upload(stack, 3, extra=["photos-raw/2024/", "photos-raw/"])
    code, out = await backfill.run(stack, capsys, dry_run=dry_run)
    assert code == 0
    assert backfill.counted(out, "skipped") == 2
    assert "(folder_marker 2)" in out
    if dry_run:
        assert backfill.counted(out, "would write") == 3
    else:
        assert backfill.counted(out, "inserted") == 3
        assert {item["s3Key"] for item in stack.items().values()} == set(keys)


async def test_backfill_through_the_queue_sends_no_folder_marker(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--via-queue` does not announce a marker the workers would skip."""
    backfill.upload(stack, 2, extra=["photos-raw/2024/"])
    code, out = await via_queue.command(stack, capsys)
    assert code == 0
    assert (via_queue.counted(out, "sent"), via_queue.counted(out, "skipped")) == (2, 1)
    assert "(folder_marker 1)" in out
    assert "photos-raw/2024/" not in via_queue.keys_on_queue(stack)


# ------------------------------------------------------------------------------------------ event times


@pytest.mark.parametrize("event_time", [1730462400, 1.5, True, {"at": "now"}, ["2024-05-02T10:15:30Z"]])
def test_an_event_time_of_any_json_type_is_no_event_time(event_time: Any) -> None:
    """A numeric eventTime quarantined the whole message as broken_structure; the docs said an unreadable event
    time is no event time. Now any type but a string is: the record is kept, without a time."""
    direct = json.loads(event_body("s3-direct-put-photos-raw"))
    direct["Records"][0]["eventTime"] = event_time
    event = json.loads(event_body("eventbridge-object-created-photos-raw"))
    event["time"] = event_time
    for body in (direct, event):
        [record] = parse_body(json.dumps(body), PREFIX)
        assert isinstance(record, ObjectRecord)
        assert record.event_time is None
        assert photo_id(record.bucket, record.key) in {"47f1d3ed99273a6e196e", "037a739adede150f5f2b"}
