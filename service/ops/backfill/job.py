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
from service.aws.clients import make_session, open_s3, open_sqs
from service.compose import open_ingest
from service.config import IngestSettings, TableSettings
from service.ingest.fields import PoisonMessageError
from service.ingest.limiter import Limiter
from service.ingest.trust import ANY_SENDER
from service.metrics import Metrics
from service.ops.backfill.inventory import report_objects
from service.ops.backfill.manifest import InventoryError
from service.ops.backfill.objects import Listed, listing
from service.ops.backfill.options import Options
from service.ops.backfill.progress import report_progress, summary
from service.ops.backfill.receipt import queue_summary
from service.ops.backfill.run import Backfill
from service.ops.backfill.send import Sender
from service.text import cut, printable

if TYPE_CHECKING:
    import aioboto3
    from types_aiobotocore_s3 import S3Client

log = structlog.get_logger("service.ops.backfill.job")


async def backfill_command(
    settings: TableSettings, options: Options, stop: asyncio.Event, terminal: TextIO | None
) -> int:
    """The whole command once settings are loaded: progress on `terminal` if there is one, summary on stdout."""
    # a direct run writes what the workers would: from valid names, and from ALLOWED_BUCKETS if it is set
    trust = settings.trust() if isinstance(settings, IngestSettings) else ANY_SENDER
    session = make_session()
    async with AsyncExitStack() as stack:
        if telemetry.start():
            stack.callback(telemetry.stop)
        try:
            trust.bucket(options.bucket)  # the worker's rule: it would quarantine every event of another
            objects = await _objects(await open_s3(stack, session, 2), options)
        except (InventoryError, PoisonMessageError) as exc:
            print(f"photo-ingest: backfill: {printable(cut(str(exc), 1000))}", file=sys.stderr)
            return process.EXIT_USAGE
        backfill = await _run(stack, session, objects, settings, options)
        log.info("backfill.started", **_described(options, settings))
        await _carry_out(backfill, stop, terminal)
    interrupted = stop.is_set() and not backfill.aborted
    if terminal:
        terminal.write("\n")
    log.info("backfill.finished", **backfill.figures(), interrupted=interrupted, aborted=backfill.aborted)
    report = queue_summary if options.queue_url else summary
    print(report(backfill, options, interrupted), flush=True)
    return process.EXIT_FAILED if backfill.tally.failed or backfill.aborted or interrupted else process.EXIT_OK


async def _carry_out(backfill: Backfill | Sender, stop: asyncio.Event, terminal: TextIO | None) -> None:
    """Run it with its progress line. Whatever it raises (a bug: no object, row or AWS answer should) ends the
    run as aborted, so the summary still names the resume point."""
    async with asyncio.TaskGroup() as group:
        progress = group.create_task(report_progress(backfill, terminal))
        try:
            await backfill.run(stop)
        except Exception as exc:  # logged with its traceback; the summary says how far it got
            log.exception("backfill.crashed")
            backfill.aborted = backfill.aborted or f"internal_error: {_first(exc)}"
            stop.set()
        finally:
            progress.cancel()


def _first(exc: BaseException) -> str:
    """The first error inside task groups, as `Type: message`."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


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
    return await report_objects(s3, options) if options.inventory else listing(s3, options)


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
    if not isinstance(settings, IngestSettings):
        raise TypeError("a direct backfill writes items: it needs the IngestSettings")
    # VERIFY_OBJECTS asks S3 whether a notified object exists: S3 has just listed these, so it is not asked again.
    settings = settings.model_copy(update={"verify_objects": False})
    slots = Limiter(options.concurrency, floor=options.concurrency)  # its put tasks bound it already
    ingest = await open_ingest(stack, settings, Metrics(), slots, session=session)
    return Backfill(objects, ingest, options)
