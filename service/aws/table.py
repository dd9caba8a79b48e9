"""The Photos table: one conditional write per photo, answered as an outcome, never as an exception
for a duplicate. Every other error is re-raised for `service.aws.errors` to classify.

WRITE_MODE=put (the default) sends one `PutItem` with `attribute_not_exists(photoId)` per photo;
WRITE_MODE=batch sends PartiQL `INSERT`s in batches (`service.aws.partiql`). Either way a failed condition
counts as a duplicate only once the stored item is seen to name the same object: the item DynamoDB returns
with the refusal, or else a strongly consistent `GetItem`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from service.aws.partiql import BatchInserts
from service.ingest.items import Item
from service.ingest.outcomes import PutOutcome

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


class PhotoStore:
    """Writes Photos items through one long-lived low-level DynamoDB client."""

    def __init__(self, client: DynamoDBClient, table: str, write_mode: Literal["put", "batch"] = "put") -> None:
        self._client = client
        self._table = table
        self._inserts = BatchInserts(client, table) if write_mode == "batch" else None

    async def put(self, item: Item) -> PutOutcome:
        if self._inserts is not None:
            return await self._insert(self._inserts, item)
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

    async def _insert(self, inserts: BatchInserts, item: Item) -> PutOutcome:
        error = await inserts.submit(item)
        if error is None:
            return PutOutcome.INSERTED
        stored = error.get("Item") or await self._stored(item)
        return _same_object(stored, item)

    async def _stored(self, item: Item) -> object:
        """The item now under this photoId (None if there is none), read strongly consistently."""
        key = {"photoId": item["photoId"]}
        response = await self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        return response.get("Item")

    async def describe(self) -> dict[str, Any]:
        response = await self._client.describe_table(TableName=self._table)
        return dict(response["Table"])


def _same_object(old: object, new: Item) -> PutOutcome:
    """A failed condition is a duplicate only if the stored item names the same bucket and key."""
    if not isinstance(old, dict):
        return PutOutcome.CONFLICT  # the endpoint returned no old item: the match cannot be confirmed
    same = old.get("s3Bucket") == new["s3Bucket"] and old.get("s3Key") == new["s3Key"]
    return PutOutcome.DUPLICATE if same else PutOutcome.CONFLICT
