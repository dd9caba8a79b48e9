"""An S3 Inventory report as the objects to backfill: how AWS advises reading a bucket of hundreds of millions of
objects, which a listing would take days over.

    manifest.json (manifest.py) ─▶ each data file's size and MD5 checked (checksums.py)   (else exit 2)
      files[i] ─▶ GetObject IfMatch its ETag ─▶ rows, inflated in bounded memory (rows.py) ─▶ CSV
        ─▶ Listed(token "FILE:ROW")

- The data files are read from the manifest's own bucket (the report's destination), in the manifest's order.
  Each is a unit of resume: the token `FILE:ROW` names a data file and how many of its rows are done, and
  `--start-after FILE:ROW` skips the files before FILE and the first ROW rows of it.
- Keys in CSV reports are URL-encoded (a space is `+`), so they are decoded with `unquote_plus`, exactly once.
- A report of all versions lists old versions and delete markers too: only current objects are visited.
- No row stops the run. A row over ROW_BYTES_MAX, or one that is not CSV of the report's schema, is a `Listed`
  with its `problem` (`row_too_long`, `row_unreadable`; a key that is not percent-encoded UTF-8 is `invalid_key`),
  logged with its file and row and counted as skipped. As in the worker's events, a LastModifiedDate that is not
  a readable time is no time (the item's uploadedAt is then when it is written), and an odd Size is no size.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

import structlog

from service.ingest.fields import SIZE_MAX
from service.ops.backfill.checksums import CHUNK_BYTES, checked_etags
from service.ops.backfill.manifest import InventoryError, Manifest, read_manifest, resume_point
from service.ops.backfill.objects import Listed
from service.ops.backfill.options import Options
from service.ops.backfill.rows import ROW_BYTES_MAX, TooLong, inflated, rows
from service.text import cut

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = structlog.get_logger("service.ops.backfill.inventory")


async def report_objects(s3: S3Client, options: Options) -> AsyncGenerator[Listed]:
    """The objects of the report `options.inventory`: its manifest is read and its data files are checked now,
    so an unusable report raises InventoryError before anything is sent or written."""
    assert options.inventory is not None, "a report's objects need its manifest"
    manifest = await read_manifest(s3, options.inventory, options.bucket)
    first, _ = resume_point(manifest, options.start_after)
    return inventory_objects(s3, manifest, await checked_etags(s3, manifest, first), options)


async def inventory_objects(
    s3: S3Client, manifest: Manifest, etags: dict[str, str], options: Options
) -> AsyncGenerator[Listed]:
    """Every current object under `options.prefix`, and every row that cannot be read, file by file, row by
    row, after `options.start_after`. `etags` holds the checked ETag of each data file to read."""
    first, done = resume_point(manifest, options.start_after)
    for file in manifest.files[first:]:
        row = 0
        async with aclosing(_rows(s3, manifest.bucket, file.key, etags[file.key])) as lines:
            async for line in lines:
                if isinstance(line, bytes) and not line.strip():
                    continue  # a blank line is no row
                row += 1
                if row <= done:
                    continue
                listed = _listed(manifest.columns, line, file.key, row)
                if listed is not None and (listed.problem or listed.key.startswith(options.prefix)):
                    yield listed
        done = 0


async def _rows(s3: S3Client, bucket: str, key: str, etag: str) -> AsyncGenerator[bytes | TooLong]:
    body = (await s3.get_object(Bucket=bucket, Key=key, IfMatch=etag))["Body"]
    async with body, aclosing(rows(inflated(body.iter_chunks(CHUNK_BYTES)))) as lines:
        try:
            async for line in lines:
                yield line
        except zlib.error as exc:
            raise InventoryError(f"the data file {cut(key, 200)} is not gzip: {exc}") from None


def _listed(columns: tuple[str, ...], line: bytes | TooLong, file: str, row: int) -> Listed | None:
    """One CSV row as the object it lists; None for an old version or a delete marker."""
    if isinstance(line, TooLong):
        return _problem(file, row, "row_too_long", f"{line.size:,} bytes; at most {ROW_BYTES_MAX:,}")
    try:
        fields = dict(zip(columns, next(csv.reader([line.decode().rstrip("\r")])), strict=False))
        encoded = fields["Key"]
    except (UnicodeDecodeError, csv.Error, KeyError) as exc:
        return _problem(file, row, "row_unreadable", f"not a CSV row of the report's fileSchema: {exc!r}")
    if fields.get("IsLatest", "true").lower() == "false" or fields.get("IsDeleteMarker", "").lower() == "true":
        return None
    try:
        key = unquote_plus(encoded, errors="strict")
    except UnicodeDecodeError:
        return _problem(file, row, "invalid_key", "the key is not percent-encoded UTF-8")
    etag = fields.get("ETag", "").strip('"') or None
    size, version_id = _size(fields.get("Size", "")), fields.get("VersionId") or None
    return Listed(key, _moment(fields.get("LastModifiedDate", "")), size, etag, version_id, f"{file}:{row}")


def _problem(file: str, row: int, reason: str, detail: str) -> Listed:
    log.warning("backfill.row_skipped", file=cut(file, 200), row=row, reason=reason, detail=cut(detail, 300))
    return Listed("", None, token=f"{file}:{row}", problem=reason)


def _moment(text: str) -> datetime | None:
    """LastModifiedDate in UTC; None (no event time) when it is not a time, or is outside years 1-9999 in UTC."""
    try:
        moment = datetime.fromisoformat(text)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        return None


def _size(text: str) -> int | None:
    """The object's size, informational as in the worker's events: anything but a byte count is no size."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 20 and int(text) <= SIZE_MAX else None
