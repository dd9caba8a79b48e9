"""The Photos table: one conditional put per photo, answered as an outcome, never as an exception
for a duplicate. Every other error is re-raised for `service.aws.errors` to classify."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service.ingest.items import Item
from service.ingest.outcomes import PutOutcome

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


class PhotoStore:
    """Writes Photos items through one long-lived low-level DynamoDB client."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    async def put(self, item: Item) -> PutOutcome:
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


def _same_object(old: object, new: Item) -> PutOutcome:
    """A failed condition is a duplicate only if the stored item names the same bucket and key."""
    if not isinstance(old, dict):
        return PutOutcome.CONFLICT  # the endpoint returned no old item: the match cannot be confirmed
    same = old.get("s3Bucket") == new["s3Bucket"] and old.get("s3Key") == new["s3Key"]
    return PutOutcome.DUPLICATE if same else PutOutcome.CONFLICT
