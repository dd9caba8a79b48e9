"""`photo-ingest connect-bucket`: send an existing bucket's uploads under RAW_PREFIX to the queue.

It reads the bucket's notification configuration, adds or updates photo-ingest's entry only (`merge`), prints
the difference, and writes it only with `--apply`; then it reads it back and checks that every other entry is
still there. `--replace ID` also removes another entry (the old function's, at cut-over), in the same write.
`--save FILE` keeps the configuration as it was, for a rollback with `aws s3api put-bucket-notification-configuration`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from service import process
from service.aws.clients import make_session, open_s3
from service.config import Settings
from service.ops.connect import merge
from service.text import printable

ENTRY_ID = "photo-ingest"


async def connect(args: argparse.Namespace, prefix: str) -> int:
    ours = merge.entry(args.id, args.queue_arn, prefix)
    async with AsyncExitStack() as stack:
        s3 = await open_s3(stack, make_session(), 2)
        before = merge.as_read(await s3.get_bucket_notification_configuration(Bucket=args.bucket))
        if args.save:
            args.save.write_text(json.dumps(before, indent=2) + "\n")
        try:
            after = merge.merged(before, ours, frozenset(args.replace))
        except KeyError as exc:
            return _refuse(f"--replace: {exc.args[0]} on s3://{args.bucket}")
        if clash := merge.overlapping(after, ours):
            return _refuse(
                f"S3 refuses entries that overlap photo-ingest's: {'; '.join(clash)}; --replace ID swaps one out"
            )
        print(f"s3://{printable(args.bucket)} notifications:")
        for line in merge.describe(before, after):
            print(f"  {printable(line)}")
        if after == before:
            print("nothing to change")
            return process.EXIT_OK
        if not args.apply:
            print("not written: run again with --apply to write it")
            return process.EXIT_OK
        await s3.put_bucket_notification_configuration(Bucket=args.bucket, NotificationConfiguration=after)  # type: ignore[arg-type]
        written = merge.as_read(await s3.get_bucket_notification_configuration(Bucket=args.bucket))
    return _verify(before, after, written, args.replace)


def _verify(
    before: merge.Configuration, after: merge.Configuration, written: merge.Configuration, replaced: list[str]
) -> int:
    """Every entry that was there (but the replaced ones) and ours are in what S3 now holds."""
    ids = {kind: {e.get("Id") for e in written.get(kind, [])} for kind in merge.TARGETS}
    missing = [
        f"{kind} {e.get('Id')}"
        for kind in merge.TARGETS
        for e in after.get(kind, [])
        if e.get("Id") not in ids[kind] and e.get("Id") not in replaced
    ]
    if missing:
        print(f"photo-ingest: connect-bucket: written, but S3 does not list {', '.join(missing)}", file=sys.stderr)
        return process.EXIT_FAILED
    kept = sum(len(before.get(kind, [])) for kind in merge.TARGETS) - len(replaced)
    print(f"written: photo-ingest's entry, and the bucket's other entries as they were ({kept} before this write)")
    return process.EXIT_OK


def _refuse(reason: str) -> int:
    print(f"photo-ingest: connect-bucket: {printable(reason)}; nothing was written", file=sys.stderr)
    return process.EXIT_USAGE


def _cmd_connect(args: argparse.Namespace) -> int:
    default = str(Settings.model_fields["raw_prefix"].default)
    prefix = args.prefix if args.prefix is not None else os.environ.get("RAW_PREFIX", default)
    return asyncio.run(connect(args, prefix))


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `connect-bucket`."""
    reads = ["RAW_PREFIX", *process.AWS_VARIABLES]
    summary = "send an existing bucket's uploads to the queue, keeping its other notifications (--apply writes)"
    parser = process.add_command(commands, "connect-bucket", summary, reads, _cmd_connect)
    parser.add_argument("--bucket", required=True, help="the existing raw-photo bucket")
    parser.add_argument("--queue-arn", required=True, help="the queue's ARN (the stack's QueueArn output)")
    parser.add_argument("--prefix", help="the key prefix to notify (default: RAW_PREFIX, photos-raw/)")
    parser.add_argument("--id", default=ENTRY_ID, help=f"photo-ingest's entry Id (default {ENTRY_ID})")
    parser.add_argument("--replace", action="append", default=[], metavar="ID", help="also remove this entry")
    parser.add_argument("--save", type=Path, metavar="FILE", help="write the configuration as it was to FILE")
    parser.add_argument("--apply", action="store_true", help="write the change (without it: only show it)")
