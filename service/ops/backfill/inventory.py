"""An S3 Inventory report as the objects to backfill: how AWS advises reading a bucket of hundreds of millions of
objects, which a listing would take days over.

    manifest.json ─▶ CSV? Key and LastModifiedDate in its fileSchema? sourceBucket is --bucket?  (else exit 2)
      files[i] ─▶ GetObject ─▶ gunzip, streamed ─▶ CSV rows ─▶ Listed(token "FILE:ROW")

- The data files are read from the manifest's own bucket (the report's destination), in the manifest's order.
  Each is a unit of resume: the token `FILE:ROW` names a data file and how many of its rows are done, and
  `--start-after FILE:ROW` skips the files before FILE and the first ROW rows of it.
- Keys in CSV reports are URL-encoded (a space is `+`), so they are decoded with `unquote_plus`, exactly once.
- A report of all versions lists old versions and delete markers too: only current objects are visited.
- Parquet and ORC reports are refused: reading them needs a columnar reader, a large dependency for one command.
"""

from __future__ import annotations

import csv
import json
import zlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from service.aws.errors import AWS_ERRORS, error_code
from service.ops.backfill.objects import Listed
from service.ops.backfill.options import Options

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

REQUIRED_COLUMNS = ("Key", "LastModifiedDate")  # the key, and uploadedAt
CHUNK_BYTES = 1 << 20
GZIP_WBITS = 16 + zlib.MAX_WBITS


class InventoryError(ValueError):
    """The report cannot be used as given; the message says why (exit 2)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    bucket: str  # where the manifest and its data files are
    source_bucket: str
    columns: tuple[str, ...]
    files: tuple[str, ...]


def parse_manifest(text: str, bucket: str) -> Manifest:
    """A CSV report's manifest.json; any other format or a schema without the key or the date is refused."""
    try:
        doc = json.loads(text)
        fmt, schema, source = str(doc["fileFormat"]), str(doc["fileSchema"]), str(doc["sourceBucket"])
        files = tuple(str(entry["key"]) for entry in doc["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InventoryError(f"not an S3 Inventory manifest.json: {type(exc).__name__}: {exc}") from None
    if fmt.upper() != "CSV":
        raise InventoryError(f"{fmt} inventory reports are not supported: configure the inventory with CSV output")
    columns = tuple(name.strip() for name in schema.split(","))
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise InventoryError(f"the report's fileSchema lacks {', '.join(missing)}: add it to the inventory's fields")
    return Manifest(bucket, source, columns, files)


async def read_manifest(s3: S3Client, uri: str, bucket: str) -> Manifest:
    """The manifest at `s3://BUCKET/KEY/manifest.json`, checked to describe `bucket`."""
    where, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not where or not key:
        raise InventoryError(f"{uri!r} is not s3://BUCKET/KEY of a manifest.json")
    try:
        body = (await s3.get_object(Bucket=where, Key=key))["Body"]
        async with body:
            text = (await body.read()).decode()
    except AWS_ERRORS as exc:
        raise InventoryError(f"cannot read {uri}: {error_code(exc)}: {exc}") from None
    manifest = parse_manifest(text, where)
    if manifest.source_bucket != bucket:
        raise InventoryError(f"the report lists s3://{manifest.source_bucket}, not s3://{bucket}")
    return manifest


def resume_point(manifest: Manifest, token: str | None) -> tuple[int, int]:
    """(index of the first data file to read, rows of it already done) for `--start-after FILE:ROW`."""
    if token is None:
        return 0, 0
    name, _, rows = token.rpartition(":")
    if name not in manifest.files or not rows.isdigit():
        raise InventoryError(f"--start-after {token!r} is not FILE:ROW of a data file in this report")
    return manifest.files.index(name), int(rows)


async def inventory_objects(s3: S3Client, manifest: Manifest, options: Options) -> AsyncGenerator[Listed]:
    """Every current object under `options.prefix`, file by file, row by row, after `options.start_after`."""
    first, done = resume_point(manifest, options.start_after)
    for name in manifest.files[first:]:
        row = 0
        async for line in _lines(s3, manifest.bucket, name):
            row += 1
            if row <= done:
                continue
            listed = _listed(manifest.columns, line, f"{name}:{row}")
            if listed is not None and listed.key.startswith(options.prefix):
                yield listed
        done = 0


async def _lines(s3: S3Client, bucket: str, key: str) -> AsyncGenerator[str]:
    """The lines of a gzip-compressed data file, decompressed as it streams (gzip members may be concatenated)."""
    body = (await s3.get_object(Bucket=bucket, Key=key))["Body"]
    inflate, rest = zlib.decompressobj(GZIP_WBITS), b""
    async with body:
        async for chunk in body.iter_chunks(CHUNK_BYTES):
            data = inflate.decompress(chunk)
            while inflate.eof and inflate.unused_data:  # the next gzip member
                tail, inflate = inflate.unused_data, zlib.decompressobj(GZIP_WBITS)
                data += inflate.decompress(tail)
            *lines, rest = (rest + data).split(b"\n")
            for line in lines:
                if line.strip():
                    yield line.decode()
    if rest.strip():
        yield rest.decode()


def _listed(columns: tuple[str, ...], line: str, token: str) -> Listed | None:
    """One CSV row as the object it lists; None for an old version or a delete marker."""
    fields = dict(zip(columns, next(csv.reader([line.rstrip("\r")])), strict=False))
    if fields.get("IsLatest", "true").lower() == "false" or fields.get("IsDeleteMarker", "").lower() == "true":
        return None
    try:
        key = unquote_plus(fields["Key"], errors="strict")
        modified = datetime.fromisoformat(fields["LastModifiedDate"])
        size = int(fields["Size"]) if fields.get("Size") else None
    except (KeyError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise InventoryError(f"row {token} is not a row of this report's schema: {exc}") from None
    etag = fields.get("ETag", "").strip('"') or None
    return Listed(key, modified, size, etag, fields.get("VersionId") or None, token)
