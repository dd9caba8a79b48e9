"""The Photos table: one conditional put per photo, answered as an outcome, never as an exception
for a duplicate. Every other error is re-raised for `service.errors` to classify."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from service.events import ObjectRecord
from service.ids import photo_id

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


class PutOutcome(enum.Enum):
    INSERTED = "inserted"
    DUPLICATE = "duplicate"  # the item exists and names this very object
    CONFLICT = "conflict"  # the item exists and names another object: an id collision; never overwritten


def build_item(record: ObjectRecord, now: datetime) -> dict[str, dict[str, str]]:
    """The item in DynamoDB's wire form. `photoId`, `s3Bucket`, `s3Key`, `uploadedAt` are the contract."""
    ingested_at = now.isoformat()
    item = {
        "photoId": {"S": photo_id(record.bucket, record.key)},
        "s3Bucket": {"S": record.bucket},
        "s3Key": {"S": record.key},
        "uploadedAt": {"S": _uploaded_at(record.event_time) or ingested_at},
        "ingestedAt": {"S": ingested_at},
        "eventName": {"S": record.event_name},
    }
    if record.size is not None:
        item["size"] = {"N": str(record.size)}
    for name, value in (
        ("eTag", record.etag),
        ("versionId", record.version_id),
        ("sequencer", record.sequencer),
    ):
        if value:  # versionId is "" on unversioned buckets: an empty value carries nothing
            item[name] = {"S": value}
    return item


def _uploaded_at(event_time: str | None) -> str | None:
    """The event's time as ISO 8601 UTC (`...+00:00`); None when absent or unreadable."""
    if not event_time:
        return None
    try:
        parsed = datetime.fromisoformat(event_time)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()


class PhotoStore:
    """Writes Photos items through one long-lived low-level DynamoDB client."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    async def put(self, item: dict[str, dict[str, str]]) -> PutOutcome:
        try:
            await self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(photoId)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException as exc:
            return _same_object(exc.response.get("Item"), item)
        return PutOutcome.INSERTED

    async def describe(self) -> dict[str, Any]:
        response = await self._client.describe_table(TableName=self._table)
        return dict(response["Table"])


def _same_object(old: object, new: dict[str, dict[str, str]]) -> PutOutcome:
    """A failed condition is a duplicate only if the stored item names the same bucket and key."""
    if not isinstance(old, dict):
        return PutOutcome.CONFLICT  # the endpoint returned no old item: the match cannot be confirmed
    same = old.get("s3Bucket") == new["s3Bucket"] and old.get("s3Key") == new["s3Key"]
    return PutOutcome.DUPLICATE if same else PutOutcome.CONFLICT
