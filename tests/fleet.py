"""Helpers for the backfills that the fleet carries out (`--via-queue`): awkward keys, a Sender on the test's
moto server, and two real workers that drain the queue into the table until a condition holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aioboto3

from service.aws.clients import open_s3, open_sqs
from service.config import Settings
from service.ops.backfill.objects import listing
from service.ops.backfill.options import Options
from service.ops.backfill.send import Sender
from service.worker.worker import run_worker
from tests.conftest import BUCKET, Stack, eventually

# Keys as S3 stores them. Each must come back exactly from the notification's form-encoded key. A newline is
# left out only because moto cannot store it (its router refuses the request); S3 can.
AWKWARD_KEYS = [
    "photos-raw/with space.jpg",
    "photos-raw/two  spaces + plus.jpg",
    "photos-raw/plus+sign.jpg",
    "photos-raw/50%25off.jpg",
    "photos-raw/100% real.jpg",
    "photos-raw/%2F looks encoded.jpg",
    "photos-raw/ünïcødé 写真.jpg",
    "photos-raw/camera 📷.jpg",
    "photos-raw/ctrl\x01\x1f.jpg",
    "photos-raw/tab\there.jpg",
    "photos-raw/cr\rhere.jpg",
    "photos-raw/del\x7f nel\x85.jpg",
    "photos-raw/q?x=1&y=2#frag.jpg",
    "photos-raw/~tilde*star(1)!'.jpg",
    "photos-raw/eq=;:@$,.jpg",
    "photos-raw/deep/a/b/c.jpg",
]


def photo_keys(count: int) -> list[str]:
    """`count` keys under photos-raw/, the awkward ones first, in listing order (code-point order)."""
    return sorted([*AWKWARD_KEYS, *(f"photos-raw/{n:04d}.jpg" for n in range(count - len(AWKWARD_KEYS)))][:count])


def upload(stack: Stack, keys: list[str]) -> None:
    for key in keys:
        stack.s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())


def queue_options(stack: Stack, **overrides: Any) -> Options:
    values: dict[str, Any] = {
        "bucket": BUCKET,
        "prefix": "photos-raw/",
        "raw_prefix": "photos-raw/",
        "concurrency": 4,
        "queue_url": stack.queue_url,
    }
    return Options(**(values | overrides))


@asynccontextmanager
async def open_sender(options: Options) -> AsyncIterator[tuple[Sender, Any]]:
    """A Sender over a listing of the bucket, and its SQS client (to watch the calls it makes)."""
    async with AsyncExitStack() as exits:
        session = aioboto3.Session()
        s3 = await open_s3(exits, session, 2)
        sqs = await open_sqs(exits, session, options.concurrency + 2, 0)
        yield Sender(sqs, listing(s3, options), options, sqs.meta.region_name), sqs


def create_table(stack: Stack, table: str) -> None:
    stack.dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "photoId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "photoId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def items(stack: Stack, table: str) -> dict[str, dict[str, Any]]:
    """A whole table, by photoId, in plain Python values."""
    pages = stack.dynamodb.get_paginator("scan").paginate(TableName=table)
    return {
        item["photoId"]["S"]: {name: next(iter(value.values())) for name, value in item.items()}
        for page in pages
        for item in page["Items"]
    }


def table_count(stack: Stack, table: str | None = None) -> int:
    return int(stack.dynamodb.scan(TableName=table or stack.table, Select="COUNT")["Count"])


async def drain_with_two_workers(stack: Stack, settings: Settings, items: int, timeout_s: float = 60.0) -> None:
    """Two real workers until the table holds `items` items and the queue is empty; then stopped as by SIGTERM."""

    def drained() -> bool:
        return table_count(stack, settings.photos_table) >= items and stack.depth(settings.queue_url) == 0

    await run_workers(settings, drained, timeout_s)
    assert stack.depth(settings.queue_url) == 0


async def run_workers(settings: Settings, condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    stop = asyncio.Event()
    workers = [asyncio.create_task(run_worker(settings, stop)) for _ in range(2)]
    try:
        await eventually(lambda: any(w.done() for w in workers) or condition(), timeout_s)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*workers), settings.shutdown_timeout_seconds + 10)
