"""`photo-ingest backfill`: the Photos item of every object already in the bucket, with the worker's rules.

Two ways, one listing (or an S3 Inventory report), one progress line, one resumable summary (`job`):
- direct: `run.Backfill` puts each item itself;
- `--via-queue`: `send.Sender` sends, for each object, the notification S3 would have sent, and the workers
  write the items, at `--rate` and under `--max-backlog`.
Re-running is safe either way: the put is conditional, so an object already in the table is a duplicate.
This module is the command line: the flags, the settings, and the usage errors (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import structlog

from service import process
from service.config import BackfillQueueSettings, IngestSettings
from service.logs import configure_logging
from service.ops.backfill.job import backfill_command
from service.ops.backfill.options import Options

__all__ = ["backfill_command", "register"]
log = structlog.get_logger("service.ops.backfill.command")


def _cmd_backfill(args: argparse.Namespace) -> int:
    if not args.via_queue and (args.rate is not None or args.max_backlog is not None):
        raise process.ConfigurationError("--rate and --max-backlog pace --via-queue; add it, or leave them out")
    if args.inventory and args.end_before is not None:
        raise process.ConfigurationError("--end-before splits a listing; an inventory report is read whole")
    settings = process.load_settings(BackfillQueueSettings if args.via_queue else IngestSettings)
    configure_logging(settings.log_level, settings.log_format)
    options = Options(
        bucket=args.bucket,
        prefix=settings.raw_prefix if args.prefix is None else args.prefix,
        raw_prefix=settings.raw_prefix,
        start_after=args.start_after,
        dry_run=args.dry_run,
        concurrency=args.concurrency,
        end_before=args.end_before,
        inventory=args.inventory,
        queue_url=settings.queue_url if isinstance(settings, BackfillQueueSettings) else None,
        rate_per_s=args.rate,
        max_backlog=args.max_backlog,
    )
    if not (options.prefix.startswith(options.raw_prefix) or options.raw_prefix.startswith(options.prefix)):
        log.warning("backfill.prefix_outside_raw_prefix", prefix=options.prefix, rawPrefix=options.raw_prefix)

    async def main() -> int:
        stop = asyncio.Event()
        process.install_stop_handlers(stop)
        return await backfill_command(settings, options, stop, sys.stderr if sys.stderr.isatty() else None)

    return asyncio.run(main())


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `backfill`. Direct: the IngestSettings (PHOTOS_TABLE, RAW_PREFIX, WRITE_MODE, ALLOWED_BUCKETS...),
    s3:ListBucket, dynamodb:PutItem (or PartiQLInsert). Through the queue:
    QUEUE_URL, RAW_PREFIX, s3:ListBucket (or s3:GetObject on the inventory report) and sqs:SendMessage."""
    reads = [*process.variables(IngestSettings), "QUEUE_URL (with --via-queue)", *process.AWS_VARIABLES]
    summary = "write the Photos item of every object already in a bucket, with the worker's rules"
    parser = process.add_command(commands, "backfill", summary, reads, _cmd_backfill)
    parser.add_argument("--bucket", required=True, help="the bucket to list")
    parser.add_argument("--prefix", help="list only keys under it (default: RAW_PREFIX)")
    parser.add_argument("--start-after", metavar="KEY", help="resume after this key (or FILE:ROW of an inventory)")
    parser.add_argument("--end-before", metavar="KEY", help="stop before this key (listers splitting a bucket)")
    parser.add_argument("--dry-run", action="store_true", help="count what would be written; write nothing")
    parser.add_argument(
        "--concurrency",
        type=process.bounded(int, 1, 256),
        default=16,
        metavar="N",
        help="puts (or sends) in flight (default 16)",
    )
    parser.add_argument(
        "--inventory", metavar="MANIFEST_S3_URI", help="read this S3 Inventory report's manifest.json (CSV) instead"
    )
    parser.add_argument(
        "--via-queue", action="store_true", help="send S3's own notification of each object to QUEUE_URL instead"
    )
    parser.add_argument(
        "--rate",
        type=process.bounded(float, 0.1, 100_000),
        metavar="N",
        help="with --via-queue: at most N messages a second",
    )
    parser.add_argument(
        "--max-backlog",
        type=process.bounded(int, 0, 100_000_000),
        metavar="N",
        help="with --via-queue: pause while the queue holds more than N messages",
    )
