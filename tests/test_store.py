"""The conditional write, in both modes and on both emulators: inserted, confirmed duplicate, or conflict; never an
overwrite. WRITE_MODE=batch runs on ministack only (moto's PartiQL INSERT cannot serve it)."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import aioboto3
import pytest
from botocore.exceptions import ClientError

from service.aws.clients import open_dynamodb
from service.aws.errors import ErrorKind, classify
from service.aws.partiql import statement, statement_error
from service.aws.table import PhotoStore
from service.ingest.events import ObjectRecord
from service.ingest.ids import photo_id
from service.ingest.items import Item, build_item
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


async def put(stack: Stack, record: ObjectRecord, write_mode: str = "put") -> PutOutcome:
    async with AsyncExitStack() as exits:
        client = await open_dynamodb(exits, aioboto3.Session(), 4)
        return await PhotoStore(client, stack.table, write_mode).put(build_item(record, NOW))  # type: ignore[arg-type]


async def put_at_once(stack: Stack, items: list[Item]) -> tuple[list[object], Counter[str]]:
    """Batch-mode puts of `items`, all started in one event-loop turn: each one's outcome (or exception), and
    the DynamoDB calls they took."""
    async with AsyncExitStack() as exits:
        client = await open_dynamodb(exits, aioboto3.Session(), 8)
        calls: Counter[str] = Counter()
        client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.update([model.name]))
        store = PhotoStore(client, stack.table, "batch")
        outcomes = await asyncio.gather(*(store.put(item) for item in items), return_exceptions=True)
        return list(outcomes), calls


def photo(n: int, key: str = "") -> Item:
    record = ObjectRecord(bucket="beetroot-raw", key=key or f"photos-raw/{n:03d}.jpg", event_name="x", event_time=None)
    return build_item(record, NOW)


WRITE_MODES = pytest.mark.parametrize("write_mode", ["put", "batch"])


@WRITE_MODES
async def test_first_put_inserts_and_second_is_a_confirmed_duplicate(emulator: Stack, write_mode: str) -> None:
    """The second put of the same object fails its condition, and the old item proves it is the same object."""
    mode = emulator.write_mode(write_mode)
    assert await put(emulator, RECORD, mode) is PutOutcome.INSERTED
    assert await put(emulator, RECORD, mode) is PutOutcome.DUPLICATE
    assert len(emulator.items()) == 1


@WRITE_MODES
async def test_an_item_naming_another_object_is_a_conflict_and_is_not_overwritten(
    emulator: Stack, write_mode: str
) -> None:
    """A photoId already held by a different bucket/key is reported as a conflict; the stored item is untouched."""
    mode = emulator.write_mode(write_mode)
    pid = photo_id(RECORD.bucket, RECORD.key)
    emulator.dynamodb.put_item(
        TableName=emulator.table,
        Item={"photoId": {"S": pid}, "s3Bucket": {"S": "other"}, "s3Key": {"S": "elsewhere"}},
    )
    assert await put(emulator, RECORD, mode) is PutOutcome.CONFLICT
    assert emulator.items()[pid] == {"photoId": pid, "s3Bucket": "other", "s3Key": "elsewhere"}


@WRITE_MODES
async def test_other_errors_are_raised_for_the_worker_to_classify(emulator: Stack, write_mode: str) -> None:
    """A missing table is not an outcome: a ClientError with the API's own code propagates, in either mode."""
    mode = emulator.write_mode(write_mode)
    emulator.dynamodb.delete_table(TableName=emulator.table)
    with pytest.raises(ClientError) as caught:
        await put(emulator, RECORD, mode)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert classify(caught.value) is ErrorKind.MISSING


async def test_puts_made_together_share_one_batch_call(emulator: Stack) -> None:
    """Thirty puts started in one turn take two BatchExecuteStatement calls (25 + 5), and each is inserted."""
    emulator.write_mode("batch")
    items = [photo(n) for n in range(30)]
    outcomes, calls = await put_at_once(emulator, items)
    assert outcomes == [PutOutcome.INSERTED] * 30
    assert calls == {"BatchExecuteStatement": 2}
    assert set(emulator.items()) == {item["photoId"]["S"] for item in items}


async def test_the_same_photo_twice_in_one_turn_is_written_once_and_confirmed(emulator: Stack) -> None:
    """Two puts of one photo never share a call; one inserts, the other is confirmed a duplicate by a read."""
    emulator.write_mode("batch")
    outcomes, calls = await put_at_once(emulator, [photo(1), photo(2), photo(1)])
    assert Counter(outcomes) == {PutOutcome.INSERTED: 2, PutOutcome.DUPLICATE: 1}
    assert calls == {"BatchExecuteStatement": 2, "GetItem": 1}
    assert len(emulator.items()) == 2


async def test_a_refused_statement_fails_its_own_record_only(emulator: Stack) -> None:
    """A statement DynamoDB refuses (an empty key) raises ValidationException, rejected; its batch-mates insert."""
    emulator.write_mode("batch")
    bad = photo(9) | {"photoId": {"S": ""}}
    outcomes, _ = await put_at_once(emulator, [photo(1), bad, photo(2)])
    assert outcomes[0] is outcomes[2] is PutOutcome.INSERTED
    assert isinstance(outcomes[1], ClientError)
    assert outcomes[1].response["Error"]["Code"] == "ValidationException"
    assert classify(outcomes[1]) is ErrorKind.REJECTED
    assert len(emulator.items()) == 2


@pytest.mark.parametrize(
    ("statement_code", "kind"),
    [
        ("ThrottlingError", ErrorKind.THROTTLED),
        ("ProvisionedThroughputExceeded", ErrorKind.THROTTLED),
        ("RequestLimitExceeded", ErrorKind.THROTTLED),
        ("InternalServerError", ErrorKind.UNAVAILABLE),
        ("ResourceNotFound", ErrorKind.MISSING),
        ("AccessDenied", ErrorKind.FORBIDDEN),
        ("ValidationError", ErrorKind.REJECTED),
        ("TransactionConflict", ErrorKind.REJECTED),
        ("SomethingNew", ErrorKind.REJECTED),
    ],
)
def test_a_refused_statement_is_classified_like_the_same_refused_put(statement_code: str, kind: ErrorKind) -> None:
    """Each documented statement error code becomes the ClientError a PutItem would raise for the same reason."""
    error = statement_error({"Code": statement_code, "Message": "no"})
    assert classify(error) is kind
    assert error.response["Error"]["StatementCode"] == statement_code


def test_values_travel_as_parameters_in_the_order_of_their_names() -> None:
    """`INSERT INTO "Photos" VALUE {'photoId': ?, ...}`: names in the text, values only as typed parameters."""
    item = photo(1, key="photos-raw/it's {a} ?.jpg")
    request = statement("Photos", item)
    assert request["Statement"] == 'INSERT INTO "Photos" VALUE {' + ", ".join(f"'{n}': ?" for n in item) + "}"
    assert request["Parameters"] == list(item.values())
    assert "it's" not in request["Statement"]
    assert request["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
