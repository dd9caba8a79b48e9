"""The objects a backfill visits, in order: `Listed`, the listing of a bucket that yields them, and the rules that
decide which of them are written (or sent) at all.

A listing and an S3 Inventory report (`service.ops.backfill.inventory`) give the same `Listed` objects: the
literal key, `LastModified`, the size, the ETag without its quotes (as S3 events carry it), and the resume token
that `--start-after` takes to start after the object. A report's row that cannot be read is a `Listed` too, with
its `problem`, so that it is counted and the resume point can pass it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from service.ingest.fields import PoisonMessageError
from service.ingest.trust import valid_key
from service.ops.backfill.options import Options
from service.text import cut

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = structlog.get_logger("service.ops.backfill.objects")


@dataclass(frozen=True, slots=True)
class Listed:
    key: str  # literal: never URL-encoded
    last_modified: datetime | None  # None: no readable time, so the item's uploadedAt is when it is written
    size: int | None = None
    etag: str | None = None  # without its quotes
    version_id: str | None = None
    token: str = ""  # `--start-after` this to resume after the object: the key, or an inventory's FILE:ROW
    problem: str | None = None  # a report's row that cannot be used: why (`row_too_long`...); its key is ""


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


def skip_reason(obj: Listed, raw_prefix: str) -> str | None:
    """Why the worker would not write this object, with the worker's own rules (`service.ingest.trust`), or None
    to write (or send) it: the row's `problem`, `invalid_key` (over 1,024 UTF-8 bytes, or not valid Unicode), or
    `outside_prefix`, checked in the worker's order."""
    if obj.problem:
        return obj.problem
    try:
        valid_key(obj.key)
    except PoisonMessageError as exc:
        log.warning("backfill.object_skipped", reason=exc.reason, key=cut(obj.key, 200), detail=str(exc))
        return exc.reason
    return None if obj.key.startswith(raw_prefix) else "outside_prefix"
