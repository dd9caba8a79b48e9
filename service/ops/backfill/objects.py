"""The objects a backfill visits, in order: `Listed`, and the listing of a bucket that yields them.

A listing and an S3 Inventory report (`service.ops.backfill.inventory`) give the same `Listed` objects: the
literal key, `LastModified`, the size, the ETag without its quotes (as S3 events carry it), and the resume token
that `--start-after` takes to start after the object.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from service.ops.backfill.options import Options

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client


@dataclass(frozen=True, slots=True)
class Listed:
    key: str  # literal: never URL-encoded
    last_modified: datetime
    size: int | None = None
    etag: str | None = None  # without its quotes
    version_id: str | None = None
    token: str = ""  # `--start-after` this to resume after the object: the key, or an inventory's FILE:ROW


async def listing(s3: S3Client, options: Options) -> AsyncGenerator[Listed]:
    """ListObjectsV2 in key order, from `--start-after` up to (not including) `--end-before`. Keys are literal:
    botocore asks for `EncodingType=url` (so control characters survive XML) and decodes them itself."""
    where: dict[str, Any] = {"Bucket": options.bucket, "Prefix": options.prefix}
    if options.start_after:
        where["StartAfter"] = options.start_after
    async for page in s3.get_paginator("list_objects_v2").paginate(**where):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if options.end_before is not None and key >= options.end_before:  # code-point order is S3's order
                return
            etag = obj.get("ETag", "").strip('"') or None
            yield Listed(key, obj["LastModified"], obj.get("Size"), etag, token=key)
