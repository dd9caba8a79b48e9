"""`photo-ingest backfill`: write the Photos item of every object already in the bucket, with the worker's rules.

`backfill_run` lists and puts; `backfill_progress` tallies, shows progress and sums up. Re-running is safe: the
put is conditional, so an object already in the table is a duplicate, never a second item. The summary names
the last key up to which everything is settled; `--start-after` takes it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from contextlib import AsyncExitStack
from typing import Any, TextIO

import structlog

from service import process
from service.aws.clients import make_session, open_dynamodb, open_s3
from service.aws.table import PhotoStore
from service.config import TableSettings
from service.logs import configure_logging
from service.ops.backfill.options import Options
from service.ops.backfill.progress import report_progress, summary
from service.ops.backfill.run import Backfill

log = structlog.get_logger("service.ops.backfill.command")


async def backfill_command(
    settings: TableSettings, options: Options, stop: asyncio.Event, terminal: TextIO | None
) -> int:
    """The whole command once settings are loaded: progress on `terminal` if there is one, summary on stdout."""
    session = make_session()
    async with AsyncExitStack() as stack:
        s3 = await open_s3(stack, session, 2)
        dynamodb = await open_dynamodb(stack, session, options.concurrency + 4)
        backfill = Backfill(s3, PhotoStore(dynamodb, settings.photos_table), options)
        log.info(
            "backfill.started",
            bucket=options.bucket,
            prefix=options.prefix,
            startAfter=options.start_after,
            dryRun=options.dry_run,
            concurrency=options.concurrency,
            table=settings.photos_table,
        )
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
        print(summary(backfill, options, interrupted), flush=True)
        return process.EXIT_FAILED if tally.failed or backfill.aborted or interrupted else process.EXIT_OK


def _cmd_backfill(args: argparse.Namespace) -> int:
    settings = process.load_settings(TableSettings)
    configure_logging(settings.log_level, settings.log_format)
    options = Options(
        bucket=args.bucket,
        prefix=settings.raw_prefix if args.prefix is None else args.prefix,
        raw_prefix=settings.raw_prefix,
        start_after=args.start_after,
        dry_run=args.dry_run,
        concurrency=args.concurrency,
    )
    if not (options.prefix.startswith(options.raw_prefix) or options.raw_prefix.startswith(options.prefix)):
        log.warning("backfill.prefix_outside_raw_prefix", prefix=options.prefix, rawPrefix=options.raw_prefix)

    async def main() -> int:
        stop = asyncio.Event()
        process.install_stop_handlers(stop)
        return await backfill_command(settings, options, stop, sys.stderr if sys.stderr.isatty() else None)

    return asyncio.run(main())


def _concurrency(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError("must be 1 to 256")
    return value


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `backfill`; it needs PHOTOS_TABLE and RAW_PREFIX, s3:ListBucket and dynamodb:PutItem."""
    reads = [*process.variables(TableSettings), *process.AWS_VARIABLES]
    summary = "write the Photos item of every object already in a bucket, with the worker's rules"
    parser = process.add_command(commands, "backfill", summary, reads, _cmd_backfill)
    parser.add_argument("--bucket", required=True, help="the bucket to list")
    parser.add_argument("--prefix", help="list only keys under it (default: RAW_PREFIX)")
    parser.add_argument("--start-after", metavar="KEY", help="resume after this key (from a previous summary)")
    parser.add_argument("--dry-run", action="store_true", help="count what would be written; write nothing")
    parser.add_argument("--concurrency", type=_concurrency, default=16, help="puts in flight (default 16)")
