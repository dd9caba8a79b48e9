"""VERIFY_OBJECTS: ask S3 whether a notified object exists before its item is put.

`VerifiedStore` wraps the table's store: it `HeadObject`s the item's bucket and key first. No such object
(404) answers `PutOutcome.OBJECT_MISSING` and nothing is put, so a forged notification cannot pre-register a
key before its upload; an object that exists gives the item S3's own size and eTag, not the message's. Any
other HeadObject error is raised, for the core to classify like a put's. HeadObject needs `s3:GetObject` on
the keys, and `s3:ListBucket` on the bucket so that a missing key answers 404 rather than 403.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from service.aws.table import PhotoStore
from service.ingest.items import Item
from service.ingest.outcomes import PutOutcome

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


class VerifiedStore:
    def __init__(self, store: PhotoStore, s3: S3Client) -> None:
        self._store = store
        self._s3 = s3

    async def put(self, item: Item) -> PutOutcome:
        try:
            head = await self._s3.head_object(Bucket=item["s3Bucket"]["S"], Key=item["s3Key"]["S"])
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return PutOutcome.OBJECT_MISSING
            raise
        facts = {"size": {"N": str(head["ContentLength"])}, "eTag": {"S": head["ETag"].strip('"')}}
        return await self._store.put(item | facts)
