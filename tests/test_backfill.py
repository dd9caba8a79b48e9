"""`photo-ingest backfill`: every object already in the bucket gets its item, with the worker's rules."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aioboto3
import pytest
from botocore.exceptions import ClientError
from structlog.testing import capture_logs

from service.aws.clients import open_dynamodb, open_s3
from service.aws.table import PhotoStore
from service.config import TableSettings
from service.ingest.ids import photo_id
from service.ingest.outcomes import PutOutcome
from service.ops.backfill import progress as backfill_progress
from service.ops.backfill.command import backfill_command
from service.ops.backfill.objects import listing
from service.ops.backfill.options import Options
from service.ops.backfill.progress import ResumePoint, report_progress, summary
from service.ops.backfill.run import Backfill
from tests.conftest import BUCKET, Stack, eventually

# Keys as S3 stores them (literal): listings never form-encode them, so none of these may be decoded.
AWKWARD_KEYS = [
    "photos-raw/with space.jpg",
    "photos-raw/plus+sign.jpg",
    "photos-raw/50%25off.jpg",
    "photos-raw/ünïcødé 写真.jpg",
    "photos-raw/deep/a/b/c.jpg",
]


def upload(stack: Stack, count: int, *, extra: list[str] | None = None) -> list[str]:
    """`count` photos under photos-raw/ (the awkward keys first), plus `extra` keys; returns the photo keys sorted."""
    keys = [*AWKWARD_KEYS, *(f"photos-raw/{n:04d}.jpg" for n in range(count - len(AWKWARD_KEYS)))][:count]
    for key in [*keys, *(extra or [])]:
        stack.s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    return sorted(keys)  # the listing's order: UTF-8 byte order, which is code-point order


def seed(stack: Stack, keys: list[str]) -> None:
    """Items the worker wrote earlier, for some of the objects."""
    for key in keys:
        item = {"photoId": photo_id(BUCKET, key), "s3Bucket": BUCKET, "s3Key": key, "eventName": "ObjectCreated:Put"}
        stack.dynamodb.put_item(TableName=stack.table, Item={name: {"S": value} for name, value in item.items()})


def options(**overrides: Any) -> Options:
    values: dict[str, Any] = {"bucket": BUCKET, "prefix": "photos-raw/", "raw_prefix": "photos-raw/", "concurrency": 8}
    return Options(**(values | overrides))


async def run(stack: Stack, capsys: pytest.CaptureFixture[str], **overrides: Any) -> tuple[int, str]:
    """The command's own path (clients, run, summary), without the process-wide logging set-up."""
    settings = TableSettings(photos_table=overrides.pop("table", stack.table))  # type: ignore[call-arg]
    code = await backfill_command(settings, options(**overrides), asyncio.Event(), terminal=None)
    return code, capsys.readouterr().out


def counted(out: str, label: str) -> int:
    match = re.search(rf"^  {label}\s+(\d+)", out, re.MULTILINE)
    assert match, out
    return int(match.group(1))


@asynccontextmanager
async def open_backfill(
    stack: Stack, store_class: type[PhotoStore] = PhotoStore, **overrides: Any
) -> AsyncIterator[Backfill]:
    async with AsyncExitStack() as exits:
        session = aioboto3.Session()
        s3 = await open_s3(exits, session, 2)
        store = store_class(await open_dynamodb(exits, session, 12), stack.table)
        chosen = options(**overrides)
        yield Backfill(listing(s3, chosen), store, chosen)


async def test_a_backfill_inserts_only_the_missing_items_and_a_second_run_inserts_none(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """200 photos, 50 already in the table, and keys outside the prefix: 150 inserted, 50 duplicates, the items
    carry the worker's attributes with uploadedAt from LastModified, and the old items are left untouched."""
    keys = upload(stack, 200, extra=["thumbnails/a.jpg", "photos-rawish/b.jpg"])
    seed(stack, keys[::4])

    code, out = await run(stack, capsys)

    assert code == 0
    assert (counted(out, "listed"), counted(out, "inserted"), counted(out, "duplicates")) == (200, 150, 50)
    assert (counted(out, "skipped"), counted(out, "conflicts"), counted(out, "failed")) == (0, 0, 0)
    assert f"--start-after {shlex.quote(keys[-1])}" in out
    items = stack.items()
    assert {item["s3Key"] for item in items.values()} == set(keys)
    listing = {obj["Key"]: obj for obj in stack.s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    for key in keys[1::4]:  # the new ones
        item = items[photo_id(BUCKET, key)]
        assert item == item | {
            "s3Bucket": BUCKET,
            "s3Key": key,
            "uploadedAt": listing[key]["LastModified"].isoformat(),
            "size": str(len(key.encode())),
            "eTag": listing[key]["ETag"].strip('"'),
            "eventName": "Backfill",
        }
        assert item["ingestedAt"] >= item["uploadedAt"]
    assert all(items[photo_id(BUCKET, key)]["eventName"] == "ObjectCreated:Put" for key in keys[::4])

    code, out = await run(stack, capsys)

    assert code == 0
    assert (counted(out, "inserted"), counted(out, "duplicates")) == (0, 200)
    assert len(stack.items()) == 200


async def test_keys_outside_raw_prefix_are_skipped(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """With a wider --prefix, keys outside RAW_PREFIX are listed and counted as skipped, never written."""
    upload(stack, 10, extra=["thumbnails/a.jpg", "photos-rawish/b.jpg"])

    code, out = await run(stack, capsys, prefix="")

    assert code == 0
    assert (counted(out, "listed"), counted(out, "inserted"), counted(out, "skipped")) == (12, 10, 2)
    assert len(stack.items()) == 10


async def test_start_after_resumes_after_that_key(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """--start-after KEY processes only the keys after KEY in listing order."""
    keys = upload(stack, 30)

    code, out = await run(stack, capsys, start_after=keys[9])

    assert code == 0
    assert (counted(out, "listed"), counted(out, "inserted")) == (20, 20)
    assert {item["s3Key"] for item in stack.items().values()} == set(keys[10:])


async def test_a_dry_run_counts_and_writes_nothing(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run lists and counts what it would write, says duplicates are unknown, and writes nothing."""
    keys = upload(stack, 20)
    seed(stack, keys[:5])

    code, out = await run(stack, capsys, dry_run=True)

    assert code == 0
    assert (counted(out, "would write"), counted(out, "skipped")) == (20, 0)
    assert not re.search(r"^  inserted", out, re.MULTILINE)
    assert "duplicates unknown" in out
    assert len(stack.items()) == 5


async def test_an_interrupted_run_resumes_from_its_last_key_done(stack: Stack) -> None:
    """Stopped mid-run with puts finishing out of order, the resume key has every key up to it written; a
    run with --start-after it completes the table."""
    keys = upload(stack, 120)
    stop = asyncio.Event()
    async with open_backfill(stack, concurrency=6) as backfill:
        run_task = asyncio.create_task(backfill.run(stop))
        await eventually(lambda: backfill.tally.inserted >= 40)
        stop.set()
        await run_task
    resume_key = backfill.resume.key
    assert resume_key is not None
    assert "interrupted" in summary(backfill, options(), interrupted=True)
    written = {item["s3Key"] for item in stack.items().values()}
    assert {key for key in keys if key <= resume_key} <= written
    assert len(written) < len(keys)

    async with open_backfill(stack, start_after=resume_key) as resumed:
        await resumed.run(asyncio.Event())

    assert {item["s3Key"] for item in stack.items().values()} == set(keys)
    assert resumed.tally.inserted == len(keys) - len(written)


class FailingStore(PhotoStore):
    """The real store, except that one key's put is throttled beyond the SDK's retries."""

    async def put(self, item: dict[str, dict[str, str]]) -> PutOutcome:
        if item["s3Key"]["S"] == "photos-raw/0010.jpg":
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
            raise ClientError(error, "PutItem")  # type: ignore[arg-type]
        return await super().put(item)


async def test_a_failed_object_is_counted_and_the_run_goes_on(stack: Stack) -> None:
    """One object's failure is counted and the run finishes the others; the resume key stops before it, so a
    resumed run retries it."""
    keys = upload(stack, 40)

    async with open_backfill(stack, FailingStore, concurrency=4) as backfill:
        tally = await backfill.run(asyncio.Event())

    assert (tally.failed, tally.inserted, backfill.aborted) == (1, 39, None)
    assert backfill.resume.key == keys[keys.index("photos-raw/0010.jpg") - 1]


async def test_a_missing_table_aborts_the_run_instead_of_failing_every_object(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """A table that does not exist would fail every object: the run stops at once, says why, and exits 1."""
    upload(stack, 30)

    code, out = await run(stack, capsys, table="NoSuchTable")

    assert code == 1
    assert "aborted" in out
    assert "ResourceNotFoundException" in out
    assert counted(out, "failed") <= 8 + 1  # at most the puts already in flight


async def test_progress_is_a_redrawn_line_on_a_terminal_and_a_log_line_otherwise(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a terminal one line is redrawn in place (no new dependency); elsewhere `backfill.progress` events."""
    monkeypatch.setattr(backfill_progress, "PROGRESS_LOG_INTERVAL_S", 0.05)
    terminal = io.StringIO()
    async with open_backfill(stack) as backfill:
        backfill.tally.inserted = 1234
        with capture_logs() as logs:
            tasks = [asyncio.create_task(report_progress(backfill, target)) for target in (terminal, None)]
            await eventually(lambda: terminal.getvalue().count("\r") >= 2 and bool(logs))
            for task in tasks:
                task.cancel()
    assert terminal.getvalue().startswith("\r\033[Klisted 0  inserted 1,234  duplicate 0")
    assert "\n" not in terminal.getvalue()
    assert logs[0]["event"] == "backfill.progress"
    assert logs[0]["inserted"] == 1234


async def test_keys_the_worker_would_refuse_are_skipped_never_written(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key of 3,011 UTF-8 bytes (S3 allows 1,024; moto stores it): the worker would quarantine its event as
    `invalid_key`, with the same rule (`service.ingest.trust.valid_key`) the backfill skips it for that reason."""
    keys = upload(stack, 10)
    long_key = "photos-raw/" + "é" * 1500
    stack.s3.put_object(Bucket=BUCKET, Key=long_key, Body=b"x")

    with capture_logs() as logs:
        code, out = await run(stack, capsys)

    assert code == 0, out
    assert (counted(out, "inserted"), counted(out, "skipped")) == (10, 1)
    assert "(invalid_key 1)" in out
    assert {item["s3Key"] for item in stack.items().values()} == set(keys)
    [skipped] = [entry for entry in logs if entry["event"] == "backfill.object_skipped"]
    assert skipped["reason"] == "invalid_key"
    assert "3011 UTF-8 bytes" in skipped["detail"]


@pytest.mark.parametrize("bucket", ["photos/raw", "\x1b[2Jab", "x" * 300])
async def test_a_bucket_the_worker_would_refuse_exits_2_before_anything_runs(
    stack: Stack, capsys: pytest.CaptureFixture[str], bucket: str
) -> None:
    """The worker quarantines every event of a bucket named against S3's rules (`invalid_bucket`): the backfill
    checks --bucket with the same rule, and stops with one escaped, bounded line and exit 2."""
    settings = TableSettings(photos_table=stack.table)  # type: ignore[call-arg]
    code = await backfill_command(settings, options(bucket=bucket), asyncio.Event(), terminal=None)
    err = capsys.readouterr().err

    assert (code, err.count("\n")) == (2, 1), err
    assert "invalid_bucket" in err
    assert all(char.isprintable() for char in err.rstrip("\n"))
    assert stack.items() == {}


async def test_a_run_that_breaks_still_prints_its_resume_point(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a run raises (here a bug planted in one object's put), the summary still comes, says `aborted`
    and why, names the last key up to which everything is written, and the command exits 1."""
    keys = upload(stack, 20)
    settle = Backfill._settle

    async def broken(self: Backfill, obj: Any) -> str:
        if obj.key == keys[7]:
            raise RuntimeError("planted")
        return await settle(self, obj)

    monkeypatch.setattr(Backfill, "_settle", broken)
    code, out = await run(stack, capsys, concurrency=1)

    assert code == 1
    assert "aborted" in out.splitlines()[-9]
    assert re.search(r"reason +internal_error: RuntimeError: planted", out), out
    assert f"--start-after {shlex.quote(keys[6])}" in out


def test_resume_point_is_the_end_of_the_settled_prefix() -> None:
    """Out-of-order completions move the resume point only across a gap-free prefix; a failure freezes it."""
    point = ResumePoint(start_after="k0")
    point.settled(1, "k2")
    assert point.key == "k0"
    point.settled(0, "k1")
    assert point.key == "k2"
    point.failed(3)
    point.settled(4, "k5")
    point.settled(2, "k3")
    assert point.key == "k3"
    point.settled(5, "k6")
    assert point.key == "k3"


def test_the_command_runs_as_a_new_user_would_run_it(stack: Stack, tmp_path: Path) -> None:
    """`photo-ingest backfill --bucket B` from a shell: configured by the environment, summary on stdout, exit 0."""
    upload(stack, 12)
    env = os.environ | {"PHOTOS_TABLE": stack.table, "RAW_PREFIX": "photos-raw/", "LOG_FORMAT": "json"}
    command = [sys.executable, "-m", "service", "backfill", "--bucket", BUCKET, "--concurrency", "4"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    assert counted(done.stdout, "inserted") == 12
    events = [json.loads(line)["event"] for line in done.stdout.splitlines() if line.startswith("{")]
    assert "backfill.finished" in events
    assert len(stack.items()) == 12
