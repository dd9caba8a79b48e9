"""The conditional put, against moto's DynamoDB: inserted, confirmed duplicate, or conflict; never an overwrite."""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import UTC, datetime

import aioboto3
import pytest
from botocore.exceptions import ClientError

from service.aws.clients import open_dynamodb
from service.aws.table import PhotoStore
from service.ingest.events import ObjectRecord
from service.ingest.ids import photo_id
from service.ingest.items import build_item
from service.ingest.outcomes import PutOutcome
from tests.conftest import Stack

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RECORD = ObjectRecord(
    bucket="beetroot-raw",
    key="photos-raw/a b.jpg",
    event_name="ObjectCreated:Put",
    event_time="2025-01-21T23:20:25.614Z",
    size=11,
    etag="c8e3",
    version_id="",
    sequencer="0067",
)


def test_the_item_holds_the_contract_attributes() -> None:
    """photoId, s3Bucket, s3Key (decoded) and uploadedAt (event time, UTC ISO 8601) as the Lambda wrote them."""
    item = build_item(RECORD, NOW)
    assert item["photoId"] == {"S": photo_id("beetroot-raw", "photos-raw/a b.jpg")}
    assert item["s3Bucket"] == {"S": "beetroot-raw"}
    assert item["s3Key"] == {"S": "photos-raw/a b.jpg"}
    assert item["uploadedAt"] == {"S": "2025-01-21T23:20:25.614000+00:00"}


def test_additive_attributes_are_written_when_present() -> None:
    """eventName, ingestedAt, size, eTag and sequencer are added; an empty versionId is left out."""
    item = build_item(RECORD, NOW)
    assert item["ingestedAt"] == {"S": NOW.isoformat()}
    assert item["eventName"] == {"S": "ObjectCreated:Put"}
    assert item["size"] == {"N": "11"}
    assert item["eTag"] == {"S": "c8e3"}
    assert item["sequencer"] == {"S": "0067"}
    assert "versionId" not in item


@pytest.mark.parametrize("event_time", [None, "", "yesterday"])
def test_uploaded_at_falls_back_to_the_processing_time(event_time: str | None) -> None:
    """Without a readable event time, uploadedAt is the time of processing, like the Lambda's."""
    record = ObjectRecord(bucket="b", key="photos-raw/k", event_name="ObjectCreated:Put", event_time=event_time)
    assert build_item(record, NOW)["uploadedAt"] == {"S": NOW.isoformat()}


def test_uploaded_at_is_normalised_to_utc() -> None:
    """An offset time is converted to UTC, spelled `+00:00`."""
    record = ObjectRecord(bucket="b", key="photos-raw/k", event_name="x", event_time="2024-05-02T12:00:00+02:00")
    assert build_item(record, NOW)["uploadedAt"] == {"S": "2024-05-02T10:00:00+00:00"}


async def put(stack: Stack, record: ObjectRecord) -> PutOutcome:
    async with AsyncExitStack() as exits:
        client = await open_dynamodb(exits, aioboto3.Session(), 4)
        return await PhotoStore(client, stack.table).put(build_item(record, NOW))


async def test_first_put_inserts_and_second_is_a_confirmed_duplicate(stack: Stack) -> None:
    """The second put of the same object fails its condition, and the old item proves it is the same object."""
    assert await put(stack, RECORD) is PutOutcome.INSERTED
    assert await put(stack, RECORD) is PutOutcome.DUPLICATE
    assert len(stack.items()) == 1


async def test_an_item_naming_another_object_is_a_conflict_and_is_not_overwritten(stack: Stack) -> None:
    """A photoId already held by a different bucket/key is reported as a conflict; the stored item is untouched."""
    pid = photo_id(RECORD.bucket, RECORD.key)
    stack.dynamodb.put_item(
        TableName=stack.table,
        Item={"photoId": {"S": pid}, "s3Bucket": {"S": "other"}, "s3Key": {"S": "elsewhere"}},
    )
    assert await put(stack, RECORD) is PutOutcome.CONFLICT
    assert stack.items()[pid] == {"photoId": pid, "s3Bucket": "other", "s3Key": "elsewhere"}


async def test_other_errors_are_raised_for_the_worker_to_classify(stack: Stack) -> None:
    """A missing table is not an outcome: the ClientError propagates."""
    stack.dynamodb.delete_table(TableName=stack.table)
    with pytest.raises(ClientError) as caught:
        await put(stack, RECORD)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
