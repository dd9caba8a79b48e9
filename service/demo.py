"""`photo-ingest demo` and `photo-ingest local`: the whole pipeline on an embedded AWS stack, no account needed.

demo   provision the stack, play the SCENARIO, run the real worker (`cli.run_worker`, as `run` does) until the
       queue is drained, say what happened to each step, and check it: exit 1 and say why if anything is off
local  the same stack and worker, long-running, for your own uploads; Ctrl-C stops everything
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn
from urllib.parse import quote_plus

import structlog

from service import cli, embedded  # a cycle by design: cli registers these commands, and they run its worker
from service.config import Settings
from service.embedded import BUCKET, RAW_PREFIX, Stack
from service.ids import photo_id
from service.logs import configure_logging
from service.queue import QUARANTINE_ATTRIBUTE_PREFIX

DRAIN_TIMEOUT_S = 30.0
DRAIN_POLL_INTERVAL_S = 0.2
MALFORMED_BODY = "this is not JSON {"
REASON_ATTRIBUTE = f"{QUARANTINE_ATTRIBUTE_PREFIX}reason"
OUTCOMES = ("inserted", "duplicate", "conflict", "failed", "skipped", "quarantined")
OUTCOME_EVENTS = {f"photo.{name}" for name in OUTCOMES[:4]} | {"record.skipped", "message.quarantined"}
_QUIET_FIELDS = {"event", "key", "bucket", "messageId", "receiveCount", "eventName"}


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the demo does to the stack, and the worker's event it expects (None: nothing reaches it)."""

    action: str  # put, copy (from `source`), event (an S3 notification sent by hand), send (a raw body)
    subject: str  # the key, or the body sent
    expect: str | None
    note: str = ""
    source: str = ""


SCENARIO = (
    Step("put", f"{RAW_PREFIX}beach.jpg", "photo.inserted"),
    Step("put", f"{RAW_PREFIX}mountain.jpg", "photo.inserted"),
    Step("put", f"{RAW_PREFIX}city.jpg", "photo.inserted"),
    Step("put", f"{RAW_PREFIX}beach.jpg", "photo.duplicate", "the same key again"),
    Step("put", f"{RAW_PREFIX}2024 Trip/Café C++ 東京.jpg", "photo.inserted", "spaces, + and non-ASCII"),
    Step("copy", f"{RAW_PREFIX}album/city (copy).jpg", "photo.inserted", source=f"{RAW_PREFIX}city.jpg"),
    Step("put", "other/readme.txt", None, "outside the prefix, so S3's notification filter sends no event"),
    Step("event", "other/readme.txt", "record.skipped", "by hand, as a notification with no filter would"),
    Step("send", MALFORMED_BODY, "message.quarantined", "a malformed message, by hand"),
)


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add this module's subcommands; each sets `handler` to a function (args) -> exit code."""
    demo = commands.add_parser("demo", help="run the whole pipeline once on an embedded AWS stack (moto)")
    demo.set_defaults(handler=_cmd_demo)
    local = commands.add_parser("local", help="run the worker on an embedded AWS stack (moto) until Ctrl-C")
    local.add_argument("--port", type=int, default=5000, help="the endpoint's port on 127.0.0.1 (default: 5000)")
    local.set_defaults(handler=_cmd_local)


def _cmd_demo(args: argparse.Namespace) -> int:
    if not embedded.moto_available():
        return _moto_missing("demo")
    with embedded.moto_server() as endpoint:
        return asyncio.run(_demo(endpoint))


def _moto_missing(command: str) -> int:
    print(f"photo-ingest {command} needs moto, from the extra `local`: {embedded.INSTALL_HINT}", file=sys.stderr)
    return cli.EXIT_USAGE


async def _demo(endpoint: str) -> int:
    started = time.monotonic()
    async with embedded.open_stack(endpoint) as stack:
        _print_stack(stack)
        print("\n1. Uploads")
        matches = [await _perform(stack, step) for step in SCENARIO]
        print("\n2. The worker (the code of `photo-ingest run`), until the queue is drained")
        journal = _watch_worker_logs()
        await _run_worker_until_drained(stack, len(expected_items()))
        settled = [(step, journal.take(match, step.expect)) for step, match in zip(SCENARIO, matches, strict=True)]
        _print_outcomes(settled, journal)
        observed = await _observe(stack)
    found = problems(settled, observed)
    if found:
        print("\nFAILED: " + "\n        ".join(found))
        return cli.EXIT_FAILED
    print(f"\nOK in {time.monotonic() - started:.1f} s: one item per photo, the duplicate recognised, the key outside")
    print("the prefix skipped, the malformed message quarantined. The worker and the stack are stopped.")
    return cli.EXIT_OK


def _print_stack(stack: Stack) -> None:
    print(f"photo-ingest demo: S3 -> SQS -> DynamoDB on an embedded AWS stack (moto at {stack.endpoint})")
    print(f"   bucket s3://{BUCKET}: ObjectCreated:* under {RAW_PREFIX} is notified to the queue")
    print(f"   queue {embedded.QUEUE}, dead letters to {embedded.DEAD_LETTER_QUEUE} after ", end="")
    print(f"{embedded.MAX_RECEIVE_COUNT} receives; table {embedded.TABLE} (photoId hash key, on demand)")


async def _perform(stack: Stack, step: Step) -> str:
    """Do one step; return what the worker's events will name: the key, or the id of the message sent."""
    names = step.subject
    if step.action == "put":
        await stack.s3.put_object(Bucket=BUCKET, Key=step.subject, Body=_content(step.subject))
    elif step.action == "copy":
        await stack.s3.copy_object(Bucket=BUCKET, Key=step.subject, CopySource={"Bucket": BUCKET, "Key": step.source})
    elif step.action == "event":
        await _send(stack, _notification(step.subject))
    else:
        names = await _send(stack, step.subject)
    note = f"CopyObject of {step.source}" if step.source else step.note
    print(f"   {step.action:<5} {step.subject}" + (f"  ({note})" if note else ""))
    return names


async def _send(stack: Stack, body: str) -> str:
    return (await stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body))["MessageId"]


def _content(key: str) -> bytes:
    return tiny_jpeg(key) if key.endswith(".jpg") else b"not a photo\n"


def _notification(key: str) -> str:
    """The body S3 sends for one created object, its key form-encoded as in every `Records` event."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": embedded.REGION,
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"}, "object": {"key": quote_plus(key)}},
    }
    return json.dumps({"Records": [record]})


def tiny_jpeg(comment: str) -> bytes:
    """A valid 1x1 grey baseline JPEG whose comment segment makes each photo's bytes distinct."""
    one_code = bytes([1] + [0] * 15) + b"\x00"  # a Huffman table with one code, of length 1, for symbol 0

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    return b"".join(
        [
            b"\xff\xd8",  # start of image
            segment(0xFE, comment.encode()),
            segment(0xDB, b"\x00" + b"\x01" * 64),  # quantisation table 0: all ones
            segment(0xC0, bytes([8, 0, 1, 0, 1, 1, 1, 0x11, 0])),  # baseline, 1x1, one component
            segment(0xC4, b"\x00" + one_code),  # DC table 0
            segment(0xC4, b"\x10" + one_code),  # AC table 0
            segment(0xDA, bytes([1, 1, 0, 0, 63, 0])),  # start of scan
            b"\x3f",  # DC difference 0, then end of block, padded with ones
            b"\xff\xd9",  # end of image
        ]
    )


class Journal:
    """A structlog processor: keeps the worker's outcome events, prints one short line for each outcome and each
    warning, and drops them all (the worker's full log lines are for `run` and `local`)."""

    def __init__(self) -> None:
        self.outcomes: list[dict[str, Any]] = []
        self.untaken: list[dict[str, Any]] = []

    def __call__(self, _logger: object, method_name: str, event: structlog.typing.EventDict) -> NoReturn:
        if event["event"] in OUTCOME_EVENTS:
            self.outcomes.append(dict(event))
            self.untaken.append(self.outcomes[-1])
        if event["event"] in OUTCOME_EVENTS or method_name in ("warning", "error", "exception", "critical"):
            print(f"   {_describe(event)}", flush=True)
        raise structlog.DropEvent

    def take(self, match: str, expect: str | None) -> dict[str, Any] | None:
        """An outcome not taken yet that names `match` (a key or a message id), the expected one if there is one:
        concurrent messages for one key log in any order. None if `expect` is None: nothing should reach the worker."""
        candidates = [event for event in self.untaken if match in (event.get("key"), event.get("messageId"))]
        if expect is None or not candidates:
            return None
        event = next((event for event in candidates if event["event"] == expect), candidates[0])
        self.untaken.remove(event)
        return event


def _describe(event: Mapping[str, Any]) -> str:
    subject = event.get("key") or f"message {str(event.get('messageId', '?'))[:8]}"
    details = " ".join(f"{name}={value}" for name, value in event.items() if name not in _QUIET_FIELDS and value)
    return f"{event['event']:<20} {subject:<40} {details}"


def _watch_worker_logs() -> Journal:
    journal = Journal()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, journal],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    return journal


async def _run_worker_until_drained(stack: Stack, expected_count: int) -> None:
    """The worker, as `run` starts it, stopped as SIGTERM would stop it once the pipeline has drained."""
    overrides = {"receive_wait_seconds": 1, "shutdown_timeout_seconds": 5, "metrics_enabled": False}
    settings = cli.load_settings(Settings, **stack.settings_overrides(), **overrides)
    stop = asyncio.Event()
    cli.install_stop_handlers(stop)
    started = time.monotonic()
    worker = asyncio.create_task(cli.run_worker(settings, stop))
    try:
        with contextlib.suppress(TimeoutError):  # the checks that follow say what is missing
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                while not (worker.done() or stop.is_set() or await _drained(stack, expected_count)):  # noqa: ASYNC110 - the state is in moto
                    await asyncio.sleep(DRAIN_POLL_INTERVAL_S)
    finally:
        stop.set()
        await asyncio.wait_for(worker, settings.shutdown_timeout_seconds + 5)
    print(f"   ... drained in {time.monotonic() - started:.1f} s; the worker has stopped")


async def _drained(stack: Stack, expected_count: int) -> bool:
    return await stack.depth(stack.queue_url) == 0 and len(await stack.items()) >= expected_count


def expected_items() -> set[tuple[str, str]]:
    """(photoId, key): one item for each distinct photo of the scenario."""
    return {(photo_id(BUCKET, step.subject), step.subject) for step in SCENARIO if step.expect == "photo.inserted"}


Settled = list[tuple[Step, dict[str, Any] | None]]


def _print_outcomes(settled: Settled, journal: Journal) -> None:
    print("\n3. What happened to each upload")
    for step, event in settled:
        mark = "✓" if _name(event) == step.expect else "✗"
        print(f"   {mark} {step.action:<5} {step.subject:<44} {_outcome(event)}")
    for event in journal.untaken:
        test_event = event.get("reason") == "test_event"
        subject = "S3's test event (notification set up)" if test_event else _describe(event)
        print(f"   ✓ {'also':<5} {subject:<44} {_outcome(event)}")
    totals = Counter(str(event["event"]).split(".")[1] for event in journal.outcomes)
    print("   totals: " + ", ".join(f"{totals[name]} {name}" for name in OUTCOMES if totals[name]))


def _name(event: dict[str, Any] | None) -> str | None:
    return None if event is None else str(event["event"])


def _outcome(event: dict[str, Any] | None) -> str:
    if event is None:
        return "no event"
    detail = f"photoId {event['photoId']}" if "photoId" in event else f"reason {event.get('reason')}"
    return f"{str(event['event']).split('.')[1]:<12} {detail}"


@dataclass(frozen=True, slots=True)
class Observed:
    """What the stack holds once the worker has stopped."""

    items: list[dict[str, str]]
    dead_letters: list[tuple[str, dict[str, str]]]
    queue_depth: int


async def _observe(stack: Stack) -> Observed:
    observed = Observed(await stack.items(), await stack.dead_letters(), await stack.depth(stack.queue_url))
    print(f"\n4. Table {embedded.TABLE}: {len(observed.items)} items")
    for item in sorted(observed.items, key=lambda item: item["s3Key"]):
        print(f"   {item['photoId']}  {item['s3Key']:<44} {item.get('eventName', '')}, {item.get('size', '?')} bytes")
    print(f"\n5. Queue {embedded.QUEUE}: {observed.queue_depth} messages. ", end="")
    print(f"Dead-letter queue {embedded.DEAD_LETTER_QUEUE}: {len(observed.dead_letters)}")
    for body, attributes in observed.dead_letters:
        print(f"   {body!r}  {REASON_ATTRIBUTE}={attributes.get(REASON_ATTRIBUTE)}")
    return observed


def problems(settled: Settled, observed: Observed) -> list[str]:
    """What differs from the scenario's expectations, one line each; empty when the pipeline did its job."""
    found = [
        f"{step.action} {step.subject}: expected {step.expect or 'no event'}, got {_name(event) or 'no event'}"
        for step, event in settled
        if _name(event) != step.expect
    ]
    if {(item["photoId"], item["s3Key"]) for item in observed.items} != expected_items():
        found.append(f"the table holds {len(observed.items)} items; expected one per photo: {len(expected_items())}")
    if observed.queue_depth:
        found.append(f"the queue still holds {observed.queue_depth} messages after {DRAIN_TIMEOUT_S:.0f} s")
    if (MALFORMED_BODY, "body_not_json") not in [(b, a.get(REASON_ATTRIBUTE)) for b, a in observed.dead_letters]:
        found.append("the dead-letter queue does not hold the malformed message with reason body_not_json")
    return found


def _cmd_local(args: argparse.Namespace) -> int:
    if not embedded.moto_available():
        return _moto_missing("local")
    if not embedded.port_is_free(args.port):
        raise cli.ConfigurationError(f"--port {args.port}: {embedded.HOST}:{args.port} is in use; choose another")
    with embedded.moto_server(args.port) as endpoint:
        return asyncio.run(_serve_local(endpoint))


async def _serve_local(endpoint: str) -> int:
    stop = asyncio.Event()
    cli.install_stop_handlers(stop)
    async with embedded.open_stack(endpoint) as stack:
        settings = cli.load_settings(Settings, **stack.settings_overrides(), metrics_enabled=False)
        configure_logging(settings.log_level, settings.log_format)
        print(_local_instructions(endpoint), flush=True)
        await cli.run_worker(settings, stop)
    return cli.EXIT_OK


def _local_instructions(endpoint: str) -> str:
    key, table, aws = f"{RAW_PREFIX}my-photo.jpg", embedded.TABLE, f"aws --endpoint-url {endpoint}"
    keys = 'aws_access_key_id="local", aws_secret_access_key="local"'
    return f"""
photo-ingest local: the worker runs on an embedded AWS stack (moto) until Ctrl-C.
   endpoint {endpoint}  (region {embedded.REGION}; any access key works)
   bucket s3://{BUCKET} (uploads under {RAW_PREFIX} are ingested), table {table}, queue {embedded.QUEUE}

Upload a photo, then look at the table, with the AWS CLI:
   export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION={embedded.REGION}
   {aws} s3 cp my-photo.jpg "s3://{BUCKET}/{key}"
   {aws} dynamodb scan --table-name {table}

Or with Python (boto3):
   import boto3
   aws = dict(endpoint_url="{endpoint}", region_name="{embedded.REGION}", {keys})
   boto3.client("s3", **aws).upload_file("my-photo.jpg", "{BUCKET}", "{key}")
   print(boto3.client("dynamodb", **aws).scan(TableName="{table}")["Items"])
"""
