"""`photo-ingest backfill --via-queue`: each object is announced as S3 would announce it, and the fleet of workers
writes the items, at a capped rate and under a capped backlog, resumably."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from service.config import BackfillQueueSettings
from service.ingest.events import ObjectRecord, parse_body
from service.ingest.items import build_item
from service.ops.backfill import outbox, pacing, send
from service.ops.backfill.command import backfill_command
from service.ops.backfill.notification import notification_body
from service.ops.backfill.objects import Listed
from tests.conftest import BUCKET, EVENTS, REGION, Stack, eventually
from tests.fleet import (
    create_table,
    drain_with_two_workers,
    items,
    open_sender,
    photo_keys,
    queue_options,
    run_workers,
    table_count,
    upload,
)

LIVE_TABLE = "PhotosLive"


def listed_now(stack: Stack) -> dict[str, dict[str, Any]]:
    pages = stack.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {obj["Key"]: obj for page in pages for obj in page.get("Contents", [])}


def keys_on_queue(stack: Stack) -> Counter[str]:
    """Every message on the queue, received once (nothing else is reading it), by the key it announces."""
    seen: Counter[str] = Counter()
    while messages := stack.sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            [record] = parse_body(message["Body"], "photos-raw/")
            assert isinstance(record, ObjectRecord)
            seen[record.key] += 1
    return seen


async def command(stack: Stack, capsys: pytest.CaptureFixture[str], **overrides: Any) -> tuple[int, str]:
    """The command's own path (clients, run, summary), without the process-wide logging set-up."""
    settings = BackfillQueueSettings(queue_url=stack.queue_url)  # type: ignore[call-arg]
    code = await backfill_command(settings, queue_options(stack, **overrides), asyncio.Event(), terminal=None)
    return code, capsys.readouterr().out


def counted(out: str, label: str) -> int:
    match = re.search(rf"^  {label}\s+(\d+)", out, re.MULTILINE)
    assert match, out
    return int(match.group(1))


# ---------------------------------------------------------------------------------------------- the body


@given(
    st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=250),
    st.datetimes(min_value=datetime(2006, 3, 14), timezones=st.just(UTC)),
)
def test_the_worker_reads_back_exactly_the_key_and_the_upload_time(name: str, moment: datetime) -> None:
    """For any key (spaces, `+`, `%`, control characters, any Unicode) the worker's single `unquote_plus` gives
    back the key, and `uploadedAt` is LastModified (to the millisecond, S3's precision)."""
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    obj = Listed(f"photos-raw/{name}", moment, 1234, "9b2cf535f27731c974343645a3985328")

    [record] = parse_body(notification_body(obj, BUCKET, REGION), "photos-raw/")

    assert record == ObjectRecord(BUCKET, obj.key, "ObjectCreated:Put", record.event_time, 1234, obj.etag)
    assert build_item(record, datetime.now(UTC))["uploadedAt"]["S"] == moment.isoformat()


def test_the_body_has_the_shape_of_s3s_own() -> None:
    """Against the AWS docs' example: the same fields in the same places, eventTime in S3's format, the eTag
    without quotes, a space as `+` and a `+` as `%2B`, and `/` left as it is."""
    [docs] = json.loads((EVENTS / "s3-direct-put.json").read_text())["Records"]
    obj = Listed("photos-raw/a b+c/d.jpg", datetime(2026, 12, 5, 8, 0, 0, 123456, tzinfo=UTC), 5, "abc")

    [ours] = json.loads(notification_body(obj, BUCKET, "eu-west-1"))["Records"]

    for path in ("", "s3", "s3.bucket", "s3.object"):
        mine, theirs = ours, docs
        for part in filter(None, path.split(".")):
            mine, theirs = mine[part], theirs[part]
        assert set(mine) <= set(theirs), path
    assert ours["eventVersion"] == "2.1"
    assert (ours["eventSource"], ours["eventName"], ours["awsRegion"]) == ("aws:s3", "ObjectCreated:Put", "eu-west-1")
    assert ours["eventTime"] == "2026-12-05T08:00:00.123Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", docs["eventTime"])
    assert ours["s3"]["bucket"] == {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"}
    assert ours["s3"]["object"] == {"key": "photos-raw/a+b%2Bc/d.jpg", "size": 5, "eTag": "abc"}


# ---------------------------------------------------------------------------------------------- end to end


async def test_the_fleet_writes_exactly_the_items_live_events_write(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """A few hundred awkward keys, uploaded with moto's own S3 notifications going to a second queue that a
    worker drains into a second table; then the same bucket backfilled through the queue and drained by two
    workers. Same photoIds, same attributes; uploadedAt is LastModified, within the second of the live event."""
    keys = photo_keys(240)
    live_url = stack.sqs.create_queue(QueueName="photos-live")["QueueUrl"]
    live_arn = stack.sqs.get_queue_attributes(QueueUrl=live_url, AttributeNames=["QueueArn"])["Attributes"]
    stack.s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": live_arn["QueueArn"], "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    upload(stack, [*keys, "thumbnails/not-a-photo.jpg"])
    create_table(stack, LIVE_TABLE)
    await drain_with_two_workers(stack, stack.settings(queue_url=live_url, photos_table=LIVE_TABLE), len(keys))

    code, out = await command(stack, capsys, prefix="")
    await drain_with_two_workers(stack, stack.settings(), len(keys))

    assert code == 0, out
    assert (counted(out, "listed"), counted(out, "sent"), counted(out, "skipped")) == (len(keys) + 1, len(keys), 1)
    live, ours, listed = items(stack, LIVE_TABLE), stack.items(), listed_now(stack)
    assert set(ours) == set(live)
    assert {item["s3Key"] for item in ours.values()} == set(keys)
    for photo_id, item in ours.items():
        same = ("s3Bucket", "s3Key", "size", "eTag", "eventName")
        assert {name: item[name] for name in same} == {name: live[photo_id][name] for name in same}
        uploaded = datetime.fromisoformat(item["uploadedAt"])
        assert uploaded == listed[item["s3Key"]]["LastModified"]
        assert timedelta(0) <= datetime.fromisoformat(live[photo_id]["uploadedAt"]) - uploaded < timedelta(seconds=2)


async def test_a_dry_run_counts_and_sends_nothing(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run lists and counts what it would send, and sends nothing."""
    upload(stack, photo_keys(25))

    code, out = await command(stack, capsys, dry_run=True)

    assert code == 0
    assert (counted(out, "listed"), counted(out, "would send")) == (25, 25)
    assert stack.depth() == 0


# ---------------------------------------------------------------------------------------------- failures


class Refuse:
    """Has SQS itself refuse chosen keys' entries: their request entry asks for DelaySeconds 901 (the limit is 900),
    which SendMessageBatch answers with HTTP 200 and the entry under `Failed`, as it does any entry it refuses."""

    def __init__(self, keys: list[str], times: int) -> None:
        self.left = dict.fromkeys(keys, times)

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        for entry in params["Entries"]:
            [record] = parse_body(entry["MessageBody"], "")
            assert isinstance(record, ObjectRecord)
            if self.left.get(record.key, 0) > 0:
                self.left[record.key] -= 1
                entry["DelaySeconds"] = 901


async def test_entries_sqs_refuses_are_sent_again_and_counted_once_taken(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SendMessageBatch answers 200 with two entries under `Failed`: they are sent again, and each key reaches
    the queue once and is counted as sent once."""
    monkeypatch.setattr(outbox, "SEND_BACKOFF_S", 0.01)
    keys = photo_keys(30)
    upload(stack, keys)
    async with open_sender(queue_options(stack, concurrency=1)) as (sender, sqs):
        sqs.meta.events.register("before-parameter-build.sqs.SendMessageBatch", Refuse([keys[3], keys[14]], 1))
        with capture_logs() as logs:
            tally = await sender.run(asyncio.Event())

    assert (tally.sent, tally.failed, sender.resume.key) == (30, 0, keys[-1])
    assert keys_on_queue(stack) == Counter(keys)
    refused = [(log["key"], log["attempt"]) for log in logs if log["event"] == "backfill.send_entry_failed"]
    assert sorted(refused) == [(keys[3], 1), (keys[14], 1)]


async def test_an_entry_refused_every_time_is_failed_and_the_resume_key_stays_before_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry SQS refuses at every attempt is counted as failed, never as sent, and the run goes on; the
    resume key stays before it, so a resumed run sends it again."""
    monkeypatch.setattr(outbox, "SEND_BACKOFF_S", 0.01)
    keys = photo_keys(30)
    upload(stack, keys)
    async with open_sender(queue_options(stack, concurrency=1)) as (sender, sqs):
        sqs.meta.events.register("before-parameter-build.sqs.SendMessageBatch", Refuse([keys[12]], 99))
        with capture_logs() as logs:
            tally = await sender.run(asyncio.Event())

    assert (tally.sent, tally.failed, sender.resume.key) == (29, 1, keys[11])
    assert keys_on_queue(stack) == Counter(keys[:12] + keys[13:])
    [last] = [log for log in logs if log["event"] == "backfill.send_entry_failed" and log["log_level"] == "error"]
    assert (last["key"], last["attempt"], last["code"]) == (keys[12], outbox.SEND_ATTEMPTS, "InvalidParameterValue")


async def test_a_queue_that_does_not_exist_aborts_the_run(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """Every batch would fail the same way: the run stops at the first, says why, counts nothing as sent, exits 1."""
    upload(stack, photo_keys(30))

    code, out = await command(stack, capsys, queue_url=f"{stack.queue_url}-missing")

    assert code == 1
    assert re.search(r"reason +send_failed: .*(NonExistentQueue|QueueDoesNotExist)", out), out
    assert (counted(out, "sent"), counted(out, "listed") > 0) == (0, True)


async def test_an_object_whose_body_cannot_be_made_fails_alone(
    stack: Stack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No object can crash the sender: one whose notification cannot be built (a bug planted here) is counted as
    failed, the rest of its batch and of the run is sent, and the resume key stays before it."""
    keys = photo_keys(30)
    upload(stack, keys)

    def body(obj: Listed, bucket: str, region: str) -> str:
        if obj.key == keys[12]:
            raise OverflowError("date value out of range")
        return notification_body(obj, bucket, region)

    monkeypatch.setattr(send, "notification_body", body)
    code, out = await command(stack, capsys, concurrency=1)

    assert code == 1
    assert (counted(out, "sent"), counted(out, "failed")) == (29, 1)
    assert f"--start-after {shlex.quote(keys[11])}" in out
    assert keys_on_queue(stack) == Counter(keys[:12] + keys[13:])


async def test_keys_the_worker_would_refuse_are_not_sent(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """A key of 3,011 UTF-8 bytes would be quarantined by the worker (`invalid_key`): it is skipped with that
    reason instead of sent to end in the dead-letter queue."""
    keys = photo_keys(20)
    upload(stack, [*keys, "photos-raw/" + "é" * 1500])

    code, out = await command(stack, capsys)

    assert code == 0, out
    assert (counted(out, "sent"), counted(out, "skipped")) == (20, 1)
    assert "(invalid_key 1)" in out
    assert keys_on_queue(stack) == Counter(keys)


async def test_the_summary_prints_outside_text_escaped(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    """The queue's URL and the abort's reason (an AWS error's message, which may quote what it was sent) reach
    the terminal with their control characters escaped."""
    upload(stack, photo_keys(5))

    code, out = await command(stack, capsys, queue_url=f"{stack.queue_url}-\x1b]0;owned\x07\x1b[2J")

    assert code == 1
    summary = out[out.index("backfill of ") :]
    assert "-\\x1b]0;owned\\x07\\x1b[2J aborted" in summary
    assert all(char.isprintable() for line in summary.splitlines() for char in line), summary


# ---------------------------------------------------------------------------------------------- pacing


async def test_rate_caps_the_messages_sent_per_second(stack: Stack) -> None:
    """--rate R: timed at each SendMessageBatch the process makes, N messages take at least 0.9 N/R seconds
    (the token bucket's construction: it starts with one batch), and no 1 s window carries more than 1.1 R plus
    one batch. One call in flight, so a stalled event loop cannot bunch calls that waited side by side."""
    rate, keys = 100.0, photo_keys(300)
    upload(stack, keys)
    calls: list[tuple[float, int]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append((time.monotonic(), len(params["Entries"])))

    async with open_sender(queue_options(stack, rate_per_s=rate, concurrency=1)) as (sender, sqs):
        sqs.meta.events.register("before-parameter-build.sqs.SendMessageBatch", record)
        tally = await sender.run(asyncio.Event())

    assert tally.sent == sum(count for _, count in calls) == len(keys)
    assert calls[-1][0] - calls[0][0] >= len(keys) / rate * 0.9
    for start, _ in calls:
        assert sum(count for at, count in calls if start <= at < start + 1) <= rate * 1.1 + 10


async def test_max_backlog_pauses_sending_until_the_workers_catch_up(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no worker running, sending pauses once the queue holds more than --max-backlog (it sent at most one
    batch more); stopped there, the queue holds exactly what it sent. Resumed with two workers draining, it
    pauses and goes on until every object has its item."""
    monkeypatch.setattr(pacing, "BACKLOG_POLL_S", 0.2)
    keys = photo_keys(150)
    upload(stack, keys)
    stop = asyncio.Event()
    async with open_sender(queue_options(stack, max_backlog=40)) as (paused, _):
        run = asyncio.create_task(paused.run(stop))
        await eventually(lambda: paused.figures()["backlogPauses"] >= 1)
        stop.set()
        await run
    assert 40 <= paused.tally.sent <= 50
    assert stack.depth() == paused.tally.sent

    async with open_sender(queue_options(stack, max_backlog=40, start_after=paused.resume.key)) as (resumed, _):
        sending = asyncio.create_task(resumed.run(asyncio.Event()))
        await run_workers(stack.settings(), lambda: sending.done() and table_count(stack) == len(keys))
        await sending

    assert resumed.tally.sent == len(keys) - paused.tally.sent
    assert resumed.figures()["backlogPauses"] >= 1
    assert {item["s3Key"] for item in stack.items().values()} == set(keys)


# ---------------------------------------------------------------------------------------------- resume and split


class Sent:
    """The keys a process put in its SendMessageBatch requests, counted as each request leaves."""

    def __init__(self) -> None:
        self.keys: Counter[str] = Counter()

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        for entry in params["Entries"]:
            [record] = parse_body(entry["MessageBody"], "")
            assert isinstance(record, ObjectRecord)
            self.keys[record.key] += 1


async def test_after_a_kill_the_resumed_run_resends_only_the_unfinished_batch(stack: Stack) -> None:
    """Killed as the fifth SendMessageBatch returns (sent, not yet recorded), the run's resume key covers four
    batches; the resumed run sends the fifth again and everything after it once. The two workers insert every
    object once, and find the fifth batch's objects again as duplicates."""
    keys, sent = photo_keys(100), Sent()
    upload(stack, keys)
    async with open_sender(queue_options(stack, concurrency=1)) as (killed, sqs):
        run = asyncio.create_task(killed.run(asyncio.Event()))
        answered = 0

        async def kill_at_the_fifth(**_: Any) -> None:
            nonlocal answered
            answered += 1
            if answered == 5:
                run.cancel()
                await asyncio.sleep(0)

        sqs.meta.events.register("before-parameter-build.sqs.SendMessageBatch", sent)
        sqs.meta.events.register("after-call.sqs.SendMessageBatch", kill_at_the_fifth)
        with pytest.raises(asyncio.CancelledError):
            await run
    assert (killed.tally.sent, killed.resume.key) == (40, keys[39])

    async with open_sender(queue_options(stack, start_after=killed.resume.key)) as (resumed, sqs):
        sqs.meta.events.register("before-parameter-build.sqs.SendMessageBatch", sent)
        await resumed.run(asyncio.Event())
    with capture_logs() as logs:
        await drain_with_two_workers(stack, stack.settings(), len(keys))

    assert resumed.tally.sent == 60
    assert sent.keys == Counter(keys) + Counter(keys[40:50])
    assert sorted(log["key"] for log in logs if log["event"] == "photo.inserted") == keys
    # SQS delivers at least once (moto, too, can hand one message to two concurrent receives): more duplicates
    # than the ten sent twice would be deliveries, not sends.
    assert set(keys[40:50]) <= {log["key"] for log in logs if log["event"] == "photo.duplicate"}


async def test_a_stopped_run_resumes_without_sending_anything_twice(stack: Stack) -> None:
    """Stopped (SIGTERM) mid-run, the batches being sent finish and are recorded: the resumed run sends the
    rest, and no key reaches the queue twice."""
    keys = photo_keys(120)
    upload(stack, keys)
    stop = asyncio.Event()
    async with open_sender(queue_options(stack, rate_per_s=200)) as (stopped, _):
        run = asyncio.create_task(stopped.run(stop))
        await eventually(lambda: stopped.tally.sent >= 30, interval_s=0.01)
        stop.set()
        await run
    async with open_sender(queue_options(stack, start_after=stopped.resume.key)) as (resumed, _):
        await resumed.run(asyncio.Event())

    assert 30 <= stopped.tally.sent < len(keys)
    assert keys_on_queue(stack) == Counter(keys)


async def test_four_listers_split_the_bucket_by_key_range(stack: Stack) -> None:
    """The docs' 4-way split: --end-before B1; --start-after B1 --end-before B2; ...; --start-after B3. Run at
    once, they send every key exactly once between them."""
    keys = sorted(f"photos-raw/{n:03x}/IMG {n}.jpg" for n in range(0, 4096, 37))
    upload(stack, keys)
    bounds = [None, "photos-raw/4", "photos-raw/8", "photos-raw/c", None]
    async with asyncio.TaskGroup() as group:
        for start, end in itertools.pairwise(bounds):
            group.create_task(send_range(stack, start, end))

    assert keys_on_queue(stack) == Counter(keys)


async def send_range(stack: Stack, start_after: str | None, end_before: str | None) -> None:
    async with open_sender(queue_options(stack, start_after=start_after, end_before=end_before)) as (sender, _):
        tally = await sender.run(asyncio.Event())
    assert tally.sent > 0


# ---------------------------------------------------------------------------------------------- the command line


def shell(stack: Stack, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = os.environ | {"RAW_PREFIX": "photos-raw/", "LOG_FORMAT": "json"} | env
    command = [sys.executable, "-m", "service", "backfill", "--bucket", BUCKET, *args]
    return subprocess.run(
        command, env=environment, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_command_sends_as_an_operator_runs_it(stack: Stack, tmp_path: Path) -> None:
    """`QUEUE_URL=... photo-ingest backfill --via-queue --rate 500`: a summary of what was sent, and exit 0."""
    upload(stack, photo_keys(12))

    done = shell(stack, tmp_path, "--via-queue", "--rate", "500", "--max-backlog", "1000", QUEUE_URL=stack.queue_url)

    assert done.returncode == 0, done.stderr + done.stdout
    assert counted(done.stdout, "sent") == 12
    assert f"through {stack.queue_url} finished" in done.stdout
    assert keys_on_queue(stack) == Counter(photo_keys(12))


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--rate", "10"], {}, "--rate and --max-backlog pace --via-queue"),
        (["--via-queue"], {"QUEUE_URL": ""}, "QUEUE_URL"),
        (["--via-queue", "--rate", "0"], {"QUEUE_URL": "q"}, "--rate: must be 0.1 to 100000"),
    ],
)
def test_misuse_exits_2_and_says_why(
    stack: Stack, tmp_path: Path, args: list[str], env: dict[str, str], says: str
) -> None:
    """A pacing flag without --via-queue, --via-queue without QUEUE_URL, a rate of 0: exit 2, one clear line."""
    done = shell(stack, tmp_path, *args, **env)

    assert done.returncode == 2, done.stderr + done.stdout
    assert says in done.stderr
