"""One backfill job, once its settings are loaded: the objects (a listing or an S3 Inventory report), the run
(direct puts, or notifications through the queue), the progress line, and the summary with the resume key."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, TextIO

import structlog

from service import process, telemetry
from service.aws.clients import make_session, open_dynamodb, open_s3, open_sqs
from service.aws.table import PhotoStore
from service.config import TableSettings
from service.ops.backfill.inventory import InventoryError, inventory_objects, read_manifest, resume_point
from service.ops.backfill.objects import Listed, listing
from service.ops.backfill.options import Options
from service.ops.backfill.progress import report_progress, summary
from service.ops.backfill.receipt import queue_summary
from service.ops.backfill.run import Backfill
from service.ops.backfill.send import Sender

if TYPE_CHECKING:
    import aioboto3
    from types_aiobotocore_s3 import S3Client

log = structlog.get_logger("service.ops.backfill.job")


async def backfill_command(
    settings: TableSettings, options: Options, stop: asyncio.Event, terminal: TextIO | None
) -> int:
    """The whole command once settings are loaded: progress on `terminal` if there is one, summary on stdout."""
    session = make_session()
    async with AsyncExitStack() as stack:
        if telemetry.start():
            stack.callback(telemetry.stop)
        try:
            objects = await _objects(await open_s3(stack, session, 2), options)
        except InventoryError as exc:
            print(f"photo-ingest: backfill: {exc}", file=sys.stderr)
            return process.EXIT_USAGE
        backfill = await _run(stack, session, objects, settings, options)
        log.info("backfill.started", **_described(options, settings))
        async with asyncio.TaskGroup() as group:
            progress = group.create_task(report_progress(backfill, terminal))
            try:
                tally = await backfill.run(stop)
            finally:
                progress.cancel()
    interrupted = stop.is_set() and not backfill.aborted
    if terminal:
        terminal.write("\n")
    log.info("backfill.finished", **backfill.figures(), interrupted=interrupted, aborted=backfill.aborted)
    report = queue_summary if options.queue_url else summary
    print(report(backfill, options, interrupted), flush=True)
    return process.EXIT_FAILED if tally.failed or backfill.aborted or interrupted else process.EXIT_OK


def _described(options: Options, settings: TableSettings) -> dict[str, Any]:
    where = {"bucket": options.bucket, "prefix": options.prefix, "inventory": options.inventory}
    where |= {"startAfter": options.start_after, "endBefore": options.end_before}
    how: dict[str, Any] = {"dryRun": options.dry_run, "concurrency": options.concurrency}
    if options.queue_url:
        how |= {"queueUrl": options.queue_url, "rate": options.rate_per_s, "maxBacklog": options.max_backlog}
        return where | how
    return where | how | {"table": settings.photos_table}


async def _objects(s3: S3Client, options: Options) -> AsyncGenerator[Listed]:
    """The listing, or the report's objects; an unusable report raises InventoryError before anything runs."""
    if not options.inventory:
        return listing(s3, options)
    manifest = await read_manifest(s3, options.inventory, options.bucket)
    resume_point(manifest, options.start_after)  # a --start-after that names no data file of it
    return inventory_objects(s3, manifest, options)


async def _run(
    stack: AsyncExitStack,
    session: aioboto3.Session,
    objects: AsyncGenerator[Listed],
    settings: TableSettings,
    options: Options,
) -> Backfill | Sender:
    """A run through the queue if there is one, else a direct run; its clients close with `stack`."""
    if options.queue_url:
        sqs = await open_sqs(stack, session, options.concurrency + 2, 0)
        return Sender(sqs, objects, options, sqs.meta.region_name)
    dynamodb = await open_dynamodb(stack, session, options.concurrency + 4)
    return Backfill(objects, PhotoStore(dynamodb, settings.photos_table), options)
