"""An S3 Inventory report's manifest.json: read, bounded, and checked to describe the bucket being backfilled.

    manifest.json (at most MANIFEST_BYTES_MAX) ─▶ CSV? Key and LastModifiedDate in its fileSchema? sourceBucket is
      --bucket? each data file with its key, size and MD5checksum?  (else InventoryError: one line, exit 2)

Parquet and ORC reports are refused: reading them needs a columnar reader, a large dependency for one command.
The data files' sizes and checksums are checked against the manifest before any row is read (`checksums`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from service.aws.errors import AWS_ERRORS, error_code
from service.ingest.fields import PoisonMessageError
from service.ingest.trust import valid_key
from service.text import cut

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

REQUIRED_COLUMNS = ("Key", "LastModifiedDate")  # the key, and uploadedAt
MANIFEST_BYTES_MAX = 16 << 20  # about 80,000 data files; S3 writes a few per million objects
MD5_HEX = re.compile(r"[0-9a-fA-F]{32}")
SHOWN_CHARS = 200  # a value from the manifest in an error message


class InventoryError(ValueError):
    """The report cannot be used as given; the message says why (exit 2). It holds outside text: print it
    through `service.text.printable`."""


@dataclass(frozen=True, slots=True)
class DataFile:
    key: str
    size: int  # bytes, compressed
    md5: str  # hex, lower case


@dataclass(frozen=True, slots=True)
class Manifest:
    bucket: str  # where the manifest and its data files are
    source_bucket: str
    columns: tuple[str, ...]
    files: tuple[DataFile, ...]

    def index(self, key: str) -> int | None:
        return next((n for n, file in enumerate(self.files) if file.key == key), None)


def parse_manifest(text: str, bucket: str) -> Manifest:
    """A CSV report's manifest.json; any other format or a schema without the key or the date is refused."""
    try:
        doc = json.loads(text)
        fmt, schema, source = str(doc["fileFormat"]), str(doc["fileSchema"]), str(doc["sourceBucket"])
        files = tuple(_data_file(entry) for entry in doc["files"])
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InventoryError(f"not an S3 Inventory manifest.json: {type(exc).__name__}: {cut(str(exc), 200)}") from None
    if fmt.upper() != "CSV":
        raise InventoryError(f"{cut(fmt, 40)} inventory reports are not supported: configure the inventory as CSV")
    columns = tuple(name.strip() for name in schema.split(","))
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise InventoryError(f"the report's fileSchema lacks {', '.join(missing)}: add it to the inventory's fields")
    return Manifest(bucket, source, columns, files)


def _data_file(entry: Any) -> DataFile:
    """One entry of `files`: a key S3 could hold, a size in bytes, an MD5 in hex."""
    key, size, md5 = entry["key"], entry["size"], entry["MD5checksum"]
    if not isinstance(key, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"files[].key must be a string and files[].size a byte count: {cut(repr(entry), 200)}")
    if not isinstance(md5, str) or not MD5_HEX.fullmatch(md5):
        raise ValueError(f"files[].MD5checksum of {cut(key, SHOWN_CHARS)} is not 32 hex digits")
    try:
        valid_key(key)
    except PoisonMessageError as exc:
        raise ValueError(f"files[].key is no S3 key: {exc}") from None
    return DataFile(key, size, md5.lower())


async def read_manifest(s3: S3Client, uri: str, bucket: str) -> Manifest:
    """The manifest at `s3://BUCKET/KEY/manifest.json`, checked to describe `bucket`."""
    where, _, key = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not where or not key:
        raise InventoryError(f"{cut(uri, SHOWN_CHARS)} is not s3://BUCKET/KEY of a manifest.json")
    try:
        response = await s3.get_object(Bucket=where, Key=key)
        body = response["Body"]
        async with body:
            if (size := response["ContentLength"]) > MANIFEST_BYTES_MAX:
                raise InventoryError(f"{cut(uri, SHOWN_CHARS)} is {size:,} bytes, over {MANIFEST_BYTES_MAX:,}")
            data = await body.read()
    except AWS_ERRORS as exc:
        raise InventoryError(f"cannot read {cut(uri, SHOWN_CHARS)}: {error_code(exc)}: {cut(str(exc), 300)}") from None
    try:
        manifest = parse_manifest(data.decode(), where)
    except UnicodeDecodeError:
        raise InventoryError(f"{cut(uri, SHOWN_CHARS)} is not UTF-8 text: no manifest.json") from None
    if manifest.source_bucket != bucket:
        raise InventoryError(f"the report lists s3://{cut(manifest.source_bucket, 255)}, not s3://{bucket}")
    return manifest


def resume_point(manifest: Manifest, token: str | None) -> tuple[int, int]:
    """(index of the first data file to read, rows of it already done) for `--start-after FILE:ROW`."""
    if token is None:
        return 0, 0
    name, _, rows = token.rpartition(":")
    index = manifest.index(name)
    if index is None or not (rows.isascii() and rows.isdigit()):
        raise InventoryError(f"--start-after {cut(token, SHOWN_CHARS)} is not FILE:ROW of a data file in this report")
    return index, int(rows)
