"""The data files of an S3 Inventory report, checked against its manifest before any row of them is read.

    each data file to read ─▶ HeadObject: is its size the manifest's `size`?
      ─▶ its ETag is its MD5 (S3 stored it in one part, without KMS): compared with `MD5checksum` at no cost
      ─▶ otherwise GetObject, hashed as it streams (IfMatch the ETag): compared with `MD5checksum`
    a mismatch ─▶ InventoryError: one line, exit 2, before anything is sent or written

The rows are then read with `IfMatch` the same ETag, so a file replaced after its check is refused by S3
(PreconditionFailed: the run aborts) rather than read unchecked.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import structlog

from service.aws.errors import AWS_ERRORS, error_code
from service.ops.backfill.manifest import DataFile, InventoryError, Manifest
from service.text import cut

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = structlog.get_logger("service.ops.backfill.checksums")

CHUNK_BYTES = 1 << 20
SHOWN_CHARS = 200


async def checked_etags(s3: S3Client, manifest: Manifest, first: int) -> dict[str, str]:
    """The ETag of each data file from `files[first]` on, once its size and MD5 are the manifest's."""
    etags, hashed = {}, 0
    for file in manifest.files[first:]:
        try:
            etags[file.key], read = await _checked(s3, manifest.bucket, file)
        except AWS_ERRORS as exc:
            where = f"s3://{manifest.bucket}/{cut(file.key, SHOWN_CHARS)}"
            raise InventoryError(
                f"cannot read the data file {where}: {error_code(exc)}: {cut(str(exc), 300)}"
            ) from None
        hashed += read
    log.info("backfill.report_checked", files=len(etags), hashedBytes=hashed)
    return etags


async def _checked(s3: S3Client, bucket: str, file: DataFile) -> tuple[str, int]:
    """(the file's ETag, bytes read to hash it); raises InventoryError unless it is what the manifest says."""
    head = await s3.head_object(Bucket=bucket, Key=file.key)
    etag, size = head["ETag"], head["ContentLength"]
    if size != file.size:
        raise _mismatch(file, f"is {size:,} bytes, and the manifest says {file.size:,}")
    if etag.strip('"').lower() == file.md5:
        return etag, 0
    md5 = hashlib.md5(usedforsecurity=False)  # the manifest's checksum: integrity, not security
    body = (await s3.get_object(Bucket=bucket, Key=file.key, IfMatch=etag))["Body"]
    async with body:
        async for chunk in body.iter_chunks(CHUNK_BYTES):
            md5.update(chunk)
    if md5.hexdigest() != file.md5:
        raise _mismatch(file, f"has MD5 {md5.hexdigest()}, and the manifest says {file.md5}")
    return etag, size


def _mismatch(file: DataFile, how: str) -> InventoryError:
    return InventoryError(f"the data file {cut(file.key, SHOWN_CHARS)} {how}: the report is damaged or was changed")
