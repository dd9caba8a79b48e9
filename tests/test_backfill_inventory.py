"""`photo-ingest backfill --inventory s3://.../manifest.json`: an S3 Inventory report instead of a listing, through
the queue or directly. The reports are made here as S3 writes them: a manifest.json, and gzip-compressed CSV data
files whose rows are in no particular order and whose keys are URL-encoded (a space is `+`)."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import random
import re
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import quote_plus

import aioboto3
import pytest

from service.aws.clients import open_s3
from service.config import BackfillQueueSettings, IngestSettings
from service.ingest.ids import photo_id
from service.ops.backfill.command import backfill_command
from service.ops.backfill.inventory import inventory_objects, read_manifest
from service.ops.backfill.options import Options
from tests.conftest import BUCKET, Stack
from tests.fleet import drain_with_two_workers, photo_keys, queue_options, upload

DESTINATION = "beetroot-inventory"
REPORT = f"inventory/{BUCKET}/daily/2026-12-05T01-00Z"
MANIFEST = f"s3://{DESTINATION}/{REPORT}/manifest.json"
SCHEMA = "Bucket, Key, Size, LastModifiedDate, ETag"


def rows_of_bucket(stack: Stack) -> list[dict[str, str]]:
    """A row per object, with the values S3 Inventory writes: the key URL-encoded, the date in ISO 8601 UTC."""
    pages = stack.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return [
        {
            "literal": obj["Key"],  # not a column: what the test expects back
            "Bucket": BUCKET,
            "Key": quote_plus(obj["Key"], safe=""),
            "Size": str(obj["Size"]),
            "LastModifiedDate": obj["LastModified"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "ETag": obj["ETag"].strip('"'),
        }
        for page in pages
        for obj in page["Contents"]
    ]


def gzipped_csv(rows: list[dict[str, str]], columns: list[str], members: int = 1) -> bytes:
    """The rows as CSV (every field quoted, as S3 writes them), gzip-compressed in `members` concatenated
    members (a valid gzip file, which a reader of one member would cut short)."""
    size = -(-len(rows) // members)
    parts = [rows[start : start + size] for start in range(0, len(rows), size)]
    compressed = b""
    for part in parts:
        text = io.StringIO()
        csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(
            [[r.get(c, "") for c in columns] for r in part]
        )
        compressed += gzip.compress(text.getvalue().encode())
    return compressed


def make_report(stack: Stack, rows: list[dict[str, str]], files: int = 3, **manifest: Any) -> list[list[str]]:
    """The report in the destination bucket, its rows shuffled over `files` data files; returns each file's
    decoded keys in row order."""
    rows = random.Random(7).sample(rows, len(rows))
    stack.s3.create_bucket(Bucket=DESTINATION)
    schema = manifest.get("fileSchema", SCHEMA)
    columns = [name.strip() for name in schema.split(",")]
    names, keys = [], []
    for index in range(files):
        part = rows[index::files]
        name = f"inventory/{BUCKET}/daily/data/part-{index}.csv.gz"
        stack.s3.put_object(Bucket=DESTINATION, Key=name, Body=gzipped_csv(part, columns, members=index + 1))
        names.append(name)
        keys.append([row["literal"] for row in part])
    document = {
        "sourceBucket": BUCKET,
        "destinationBucket": f"arn:aws:s3:::{DESTINATION}",
        "version": "2016-11-30",
        "creationTimestamp": "1796432400000",
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": [{"key": name, "size": 1, "MD5checksum": "0" * 32} for name in names],
    } | manifest
    stack.s3.put_object(Bucket=DESTINATION, Key=f"{REPORT}/manifest.json", Body=json.dumps(document).encode())
    return keys


def counted(out: str, label: str) -> int:
    match = re.search(rf"^  {label}\s+(\d+)", out, re.MULTILINE)
    assert match, out
    return int(match.group(1))


async def test_the_fleet_backfills_from_an_inventory_report(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """Awkward keys, their rows shuffled over three data files (one of them in several gzip members), an object
    outside the prefix: every photo is sent once, the two workers write exactly the items a live event would,
    with uploadedAt from the report's LastModifiedDate, and the resume token names the last file and row."""
    keys = photo_keys(150)
    upload(stack, [*keys, "thumbnails/not-a-photo.jpg"])
    files = make_report(stack, rows_of_bucket(stack))
    settings = BackfillQueueSettings(queue_url=stack.queue_url)  # type: ignore[call-arg]

    code = await backfill_command(settings, queue_options(stack, inventory=MANIFEST), asyncio.Event(), None)
    out = capsys.readouterr().out
    assert code == 0, out
    await drain_with_two_workers(stack, stack.settings(), len(keys))

    assert (counted(out, "listed"), counted(out, "sent")) == (len(keys), len(keys))
    last_file = f"inventory/{BUCKET}/daily/data/part-2.csv.gz"
    assert f"--start-after {last_file}:{len(files[2])}" in out
    listed = {obj["Key"]: obj for obj in stack.s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert {item["s3Key"] for item in stack.items().values()} == set(keys)
    for item in stack.items().values():
        obj = listed[item["s3Key"]]
        assert item == item | {
            "photoId": photo_id(BUCKET, obj["Key"]),
            "uploadedAt": obj["LastModified"].isoformat(),
            "size": str(obj["Size"]),
            "eTag": obj["ETag"].strip('"'),
            "eventName": "ObjectCreated:Put",
        }


async def test_a_resumed_report_starts_after_the_file_and_row_it_names(stack: Stack) -> None:
    """--start-after FILE:ROW skips the data files before FILE and the first ROW rows of it."""
    upload(stack, photo_keys(60))
    files = make_report(stack, rows_of_bucket(stack))
    token = f"inventory/{BUCKET}/daily/data/part-1.csv.gz:5"

    async with AsyncExitStack() as exits:
        s3 = await open_s3(exits, aioboto3.Session(), 2)
        manifest = await read_manifest(s3, MANIFEST, BUCKET)
        options = Options(BUCKET, "photos-raw/", "photos-raw/", start_after=token, inventory=MANIFEST)
        read = [(obj.key, obj.token) async for obj in inventory_objects(s3, manifest, options)]

    assert [key for key, _ in read] == files[1][5:] + files[2]
    assert read[0][1] == f"inventory/{BUCKET}/daily/data/part-1.csv.gz:6"


async def test_a_direct_backfill_reads_current_objects_from_a_report_of_all_versions(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --via-queue the report feeds the direct backfill. A report of all versions also lists old
    versions and delete markers: only the current objects are written, with their version ids."""
    keys = photo_keys(30)
    upload(stack, keys)
    current = [row | {"VersionId": f"v2-{n}", "IsLatest": "true"} for n, row in enumerate(rows_of_bucket(stack))]
    old = [row | {"VersionId": "v1", "IsLatest": "false"} for row in current[:10]]
    deleted = [row | {"Key": quote_plus("photos-raw/gone.jpg"), "IsDeleteMarker": "true"} for row in current[:1]]
    schema = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag"
    make_report(stack, [*current, *old, *deleted], fileSchema=schema)
    settings = IngestSettings(photos_table=stack.table)  # type: ignore[call-arg]
    options = Options(BUCKET, "photos-raw/", "photos-raw/", inventory=MANIFEST, concurrency=4)

    code = await backfill_command(settings, options, asyncio.Event(), None)
    out = capsys.readouterr().out

    assert code == 0, out
    assert (counted(out, "listed"), counted(out, "inserted")) == (len(keys), len(keys))
    items = stack.items()
    assert {item["s3Key"] for item in items.values()} == set(keys)
    assert {item["versionId"] for item in items.values()} == {row["VersionId"] for row in current}
    assert {item["eventName"] for item in items.values()} == {"Backfill"}


@pytest.mark.parametrize(
    ("manifest", "start_after", "says"),
    [
        ({"fileFormat": "Parquet"}, None, "Parquet inventory reports are not supported"),
        ({"fileFormat": "ORC"}, None, "ORC inventory reports are not supported"),
        ({"fileSchema": "Bucket, Key, Size, ETag"}, None, "fileSchema lacks LastModifiedDate"),
        ({"sourceBucket": "another-bucket"}, None, "lists s3://another-bucket, not s3://beetroot-raw"),
        ({}, "photos-raw/a.jpg", "is not FILE:ROW of a data file in this report"),
    ],
)
async def test_an_unusable_report_exits_2_before_sending_anything(
    stack: Stack, capsys: pytest.CaptureFixture[str], manifest: dict[str, str], start_after: str | None, says: str
) -> None:
    """Parquet and ORC reports, a report without dates, of another bucket, or a resume token that names no
    data file of it: exit 2 with one line that says why, and nothing sent."""
    upload(stack, photo_keys(5))
    make_report(stack, rows_of_bucket(stack), **manifest)
    settings = BackfillQueueSettings(queue_url=stack.queue_url)  # type: ignore[call-arg]
    options = queue_options(stack, inventory=MANIFEST, start_after=start_after)

    code = await backfill_command(settings, options, asyncio.Event(), None)

    assert code == 2
    assert says in capsys.readouterr().err
    assert stack.depth() == 0
