"""`photo-ingest backfill --inventory s3://.../manifest.json`: an S3 Inventory report instead of a listing, through
the queue or directly. The reports are made here as S3 writes them: a manifest.json, and gzip-compressed CSV data
files whose rows are in no particular order and whose keys are URL-encoded (a space is `+`)."""

from __future__ import annotations

import asyncio
import csv
import gzip
import hashlib
import io
import json
import random
import re
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import aioboto3
import pytest
from structlog.testing import capture_logs

from service.aws.clients import open_s3
from service.config import BackfillQueueSettings, TableSettings
from service.ingest.ids import photo_id
from service.ops.backfill import manifest
from service.ops.backfill.command import backfill_command
from service.ops.backfill.inventory import report_objects
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
    columns = [name.strip() for name in manifest.get("fileSchema", SCHEMA).split(",")]
    parts = [rows[index::files] for index in range(files)]
    put_report(stack, [gzipped_csv(part, columns, members=index + 1) for index, part in enumerate(parts)], **manifest)
    return [[row["literal"] for row in part] for part in parts]


def put_report(stack: Stack, data: list[bytes], *, last: dict[str, Any] | None = None, **manifest: Any) -> list[str]:
    """A manifest.json and its data files `part-N.csv.gz` holding `data`, each listed with its true size and MD5
    (the last file with what `last` says instead); returns the data files' keys."""
    stack.s3.create_bucket(Bucket=DESTINATION)
    names = [f"inventory/{BUCKET}/daily/data/part-{index}.csv.gz" for index in range(len(data))]
    for name, body in zip(names, data, strict=True):
        stack.s3.put_object(Bucket=DESTINATION, Key=name, Body=body)
    listed = [
        {"key": name, "size": len(body), "MD5checksum": hashlib.md5(body, usedforsecurity=False).hexdigest()}
        for name, body in zip(names, data, strict=True)
    ]
    listed[-1] |= last or {}
    document = {
        "sourceBucket": BUCKET,
        "destinationBucket": f"arn:aws:s3:::{DESTINATION}",
        "version": "2016-11-30",
        "creationTimestamp": "1796432400000",
        "fileFormat": "CSV",
        "fileSchema": SCHEMA,
        "files": listed,
    } | manifest
    stack.s3.put_object(Bucket=DESTINATION, Key=f"{REPORT}/manifest.json", Body=json.dumps(document).encode())
    return names


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
        options = Options(BUCKET, "photos-raw/", "photos-raw/", start_after=token, inventory=MANIFEST)
        read = [(obj.key, obj.token) async for obj in await report_objects(s3, options)]

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
    settings = TableSettings(photos_table=stack.table)  # type: ignore[call-arg]
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


# ---------------------------------------------------------------------------------------------- hostile reports


def csv_rows(*rows: list[str]) -> bytes:
    text = io.StringIO()
    csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return text.getvalue().encode()


def row(key: str, modified: str = "2026-12-04T10:15:30.000Z", size: str = "12") -> list[str]:
    """A row of SCHEMA for `key`, URL-encoded as S3 Inventory writes it."""
    return [BUCKET, quote_plus(key, safe=""), size, modified, "0" * 32]


def bodies_sent(stack: Stack) -> list[str]:
    """The bodies of the messages on the queue, each received once (nothing else reads it)."""
    bodies = []
    while messages := stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get("Messages"):
        bodies += [message["Body"] for message in messages]
    return bodies


def keys_sent(stack: Stack) -> list[str]:
    """The keys of the messages on the queue, sorted."""
    return sorted(unquote_plus(json.loads(body)["Records"][0]["s3"]["object"]["key"]) for body in bodies_sent(stack))


async def via_queue(stack: Stack, **overrides: Any) -> int:
    settings = BackfillQueueSettings(queue_url=stack.queue_url)  # type: ignore[call-arg]
    return await backfill_command(
        settings, queue_options(stack, inventory=MANIFEST, **overrides), asyncio.Event(), None
    )


async def test_a_row_over_the_limit_is_skipped_with_its_file_and_row(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """A data file of a few KiB whose gzip inflates to a row of 8 MiB between two good rows (a report can hold
    one of 150 MiB in 150 KiB): that row is skipped as `row_too_long` and logged with its file and row, the others
    are sent, and the resume token passes it."""
    huge = b'"beetroot-raw","photos-raw/' + b"a" * (8 << 20) + b'.jpg","1","2026-12-04T10:15:30.000Z","00"\n'
    data = gzip.compress(csv_rows(row("photos-raw/before.jpg")) + huge + csv_rows(row("photos-raw/after.jpg")))
    [name] = put_report(stack, [data])

    with capture_logs() as logs:
        code = await via_queue(stack)
    out = capsys.readouterr().out

    assert code == 0, out
    assert (counted(out, "sent"), counted(out, "skipped")) == (2, 1)
    assert "(row_too_long 1)" in out
    assert keys_sent(stack) == ["photos-raw/after.jpg", "photos-raw/before.jpg"]
    [skipped] = [entry for entry in logs if entry["event"] == "backfill.row_skipped"]
    assert (skipped["file"], skipped["row"], skipped["reason"]) == (name, 2, "row_too_long")
    assert f"--start-after {name}:3" in out


async def test_rows_the_worker_would_refuse_are_skipped_with_a_reason(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Direct: a key of 3,011 UTF-8 bytes and one that is not percent-encoded UTF-8 are `invalid_key`, as the
    worker's rules say; a row that is not UTF-8 and one without a Key column are `row_unreadable`. None stops the
    run or is written; a Size that is no byte count is no size, as in the worker's events."""
    long_key = "photos-raw/" + "é" * 1500
    rows = csv_rows(row("photos-raw/good.jpg"), row(long_key), [BUCKET], row("photos-raw/odd.jpg", size="12abc"))
    rows += b'"beetroot-raw","photos-raw/%FF.jpg","1","2026-12-04T10:15:30.000Z",""\n"\xff\xfe"\n'
    put_report(stack, [gzip.compress(rows)])
    settings = TableSettings(photos_table=stack.table)  # type: ignore[call-arg]
    options = Options(BUCKET, "photos-raw/", "photos-raw/", inventory=MANIFEST, concurrency=1)

    code = await backfill_command(settings, options, asyncio.Event(), None)
    out = capsys.readouterr().out

    assert code == 0, out
    assert (counted(out, "inserted"), counted(out, "skipped")) == (2, 4)
    assert "(invalid_key 2, row_unreadable 2)" in out, out.splitlines()[-8:]
    items = {item["s3Key"]: item for item in stack.items().values()}
    assert set(items) == {"photos-raw/good.jpg", "photos-raw/odd.jpg"}
    assert ("size" in items["photos-raw/good.jpg"], "size" in items["photos-raw/odd.jpg"]) == (True, False)


@pytest.mark.parametrize("through_queue", [True, False])
async def test_rows_with_unreadable_times_are_written_with_no_event_time(
    stack: Stack, capsys: pytest.CaptureFixture[str], through_queue: bool
) -> None:
    """A LastModifiedDate in year 1 with an offset (year 0 in UTC: an OverflowError), past year 9999 in UTC, or
    no time at all is no event time: the object is written, its uploadedAt the moment it is written, as the worker
    does for such an event; no row crashes the sender, and the good rows of its batch are sent."""
    times = {
        "photos-raw/good.jpg": "2026-12-04T10:15:30.000Z",
        "photos-raw/year-1.jpg": "0001-01-01T00:00:00+01:00",
        "photos-raw/year-9999.jpg": "9999-12-31T23:59:59-01:00",
        "photos-raw/words.jpg": "yesterday",
        "photos-raw/empty.jpg": "",
    }
    put_report(stack, [gzip.compress(csv_rows(*(row(key, moment) for key, moment in times.items())))])

    if through_queue:
        code = await via_queue(stack)
        await drain_with_two_workers(stack, stack.settings(), len(times))
    else:
        settings = TableSettings(photos_table=stack.table)  # type: ignore[call-arg]
        options = Options(BUCKET, "photos-raw/", "photos-raw/", inventory=MANIFEST)
        code = await backfill_command(settings, options, asyncio.Event(), None)
    out = capsys.readouterr().out

    assert code == 0, out
    items = {item["s3Key"]: item for item in stack.items().values()}
    assert set(items) == set(times)
    assert items.pop("photos-raw/good.jpg")["uploadedAt"] == "2026-12-04T10:15:30+00:00"
    assert all(item["uploadedAt"] == item["ingestedAt"] for item in items.values())


async def test_a_row_dated_year_1_with_an_offset_never_crashes_the_sender(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """`0001-01-01T00:00:00+01:00` is a readable time whose UTC form is in year 0 (it raised OverflowError out of
    the sender: a traceback, no resume key, the good rows of its batch unsent). It is sent with no eventTime."""
    keys = [f"photos-raw/{n:02d}.jpg" for n in range(15)]
    rows = [
        row(key, "0001-01-01T00:00:00+01:00" if n == 3 else "2026-12-04T10:15:30.000Z") for n, key in enumerate(keys)
    ]
    [name] = put_report(stack, [gzip.compress(csv_rows(*rows))])

    code = await via_queue(stack, concurrency=1)
    out = capsys.readouterr().out

    assert code == 0, out
    assert counted(out, "sent") == 15
    assert f"--start-after {name}:15" in out
    records = [json.loads(body)["Records"][0] for body in bodies_sent(stack)]
    assert sorted(unquote_plus(record["s3"]["object"]["key"]) for record in records) == keys
    [timeless] = [record for record in records if "eventTime" not in record]
    assert timeless["s3"]["object"]["key"] == "photos-raw/03.jpg"


# ---------------------------------------------------------------------------------------------- checksums


@pytest.mark.parametrize(
    ("last", "says"),
    [
        ({"size": 7}, "bytes, and the manifest says 7: the report is damaged or was changed"),
        ({"MD5checksum": "0" * 32}, f"and the manifest says {'0' * 32}: the report is damaged or was changed"),
        ({"MD5checksum": "not hex"}, "MD5checksum of inventory/beetroot-raw/daily/data/part-2.csv.gz is not 32 hex"),
        ({"MD5checksum": None}, "MD5checksum of inventory/beetroot-raw/daily/data/part-2.csv.gz is not 32 hex"),
    ],
)
async def test_a_data_file_unlike_its_manifest_exits_2_before_sending_anything(
    stack: Stack, capsys: pytest.CaptureFixture[str], last: dict[str, Any], says: str
) -> None:
    """Every data file's size and MD5 are the manifest's, or the command stops with one line and exit 2 before
    it sends anything, even when only the last file is wrong."""
    data = [gzip.compress(csv_rows(row(f"photos-raw/{n}.jpg"))) for n in range(3)]
    put_report(stack, data, last=last)

    code = await via_queue(stack)
    err = capsys.readouterr().err

    assert (code, err.count("\n")) == (2, 1), err
    assert says in err
    assert stack.depth() == 0


async def test_a_data_file_stored_in_parts_is_hashed_to_check_it(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file uploaded in parts has an ETag that is not its MD5: it is read and hashed, then read for its rows."""
    data = gzip.compress(csv_rows(*(row(f"photos-raw/{n}.jpg") for n in range(5))))
    [name] = put_report(stack, [data])
    upload = stack.s3.create_multipart_upload(Bucket=DESTINATION, Key=name)
    part = stack.s3.upload_part(Bucket=DESTINATION, Key=name, UploadId=upload["UploadId"], PartNumber=1, Body=data)
    parts = {"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]}
    stack.s3.complete_multipart_upload(Bucket=DESTINATION, Key=name, UploadId=upload["UploadId"], MultipartUpload=parts)

    with capture_logs() as logs:
        code = await via_queue(stack)

    assert code == 0, capsys.readouterr()
    assert len(keys_sent(stack)) == 5
    [checked] = [entry for entry in logs if entry["event"] == "backfill.report_checked"]
    assert (checked["files"], checked["hashedBytes"]) == (1, len(data))


# ---------------------------------------------------------------------------------------------- what is printed


@pytest.mark.parametrize(
    ("manifest", "start_after", "shows"),
    [
        ({"fileFormat": "\x1b[2J\x1b]0;owned\x07"}, None, "\\x1b[2J\\x1b]0;owned\\x07 inventory reports"),
        ({"sourceBucket": "evil\x1b[31m"}, None, "lists s3://evil\\x1b[31m, not"),
        ({}, "part\x1b[1m:3", "--start-after part\\x1b[1m:3 is not FILE:ROW"),
        ({"files": [{"key": "gone\x1b[2J.csv.gz", "size": 1, "MD5checksum": "0" * 32}]}, None, "gone\\x1b[2J.csv.gz"),
        ({"fileFormat": "x" * 100_000}, None, "…[cut 99960 chars] inventory reports are not supported"),
    ],
)
async def test_what_an_unusable_report_prints_is_escaped_and_bounded(
    stack: Stack, capsys: pytest.CaptureFixture[str], manifest: dict[str, Any], start_after: str | None, shows: str
) -> None:
    """A manifest's fileFormat, sourceBucket and keys are outside text: the one line that says why the report is
    refused shows their control characters escaped (ESC never reaches the terminal) and is bounded."""
    put_report(stack, [gzip.compress(csv_rows(row("photos-raw/a.jpg")))], **manifest)

    code = await via_queue(stack, start_after=start_after)
    err = capsys.readouterr().err

    assert code == 2
    assert shows in err
    assert all(char.isprintable() for char in err.rstrip("\n"))
    assert len(err) < 1_200


async def test_a_manifest_over_its_bound_or_not_text_exits_2(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest.json is read only up to MANIFEST_BYTES_MAX (16 MiB; lowered here), and must be UTF-8 text."""
    put_report(stack, [gzip.compress(csv_rows(row("photos-raw/a.jpg")))])
    monkeypatch.setattr(manifest, "MANIFEST_BYTES_MAX", 100)
    too_big = await via_queue(stack)
    monkeypatch.undo()
    stack.s3.put_object(Bucket=DESTINATION, Key=f"{REPORT}/manifest.json", Body=b"\xff\xfe{}")
    not_text = await via_queue(stack)
    err = capsys.readouterr().err

    assert (too_big, not_text) == (2, 2)
    assert re.search(rf"{MANIFEST} is [\d,]+ bytes, over 100\n", err), err
    assert f"{MANIFEST} is not UTF-8 text" in err
    assert stack.depth() == 0
