"""`photo-ingest backfill`: write the Photos item of every object already in the bucket, with the worker's rules.

    lister ── ListObjectsV2 pages (keys are literal) ──▶ bounded queue ──▶ N put tasks ──▶ Tally, ResumePoint
      every object: ObjectRecord(uploadedAt = LastModified) ─▶ build_item ─▶ the same conditional put

Re-running is safe: the put is conditional, so an object already in the table is a duplicate, never a
second item. The summary names the last key up to which everything is settled; `--start-after` takes it.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import time
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, aclosing
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import aioboto3
import structlog

from service import cli
from service.clients import open_dynamodb, open_s3
from service.config import TableSettings
from service.errors import ErrorKind, classify, error_code
from service.events import ObjectRecord
from service.logs import configure_logging
from service.store import PhotoStore, PutOutcome, build_item

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_s3.type_defs import ObjectTypeDef

log = structlog.get_logger("service.backfill")

EVENT_NAME = "Backfill"  # the item's eventName: says where the item came from
PROGRESS_LOG_INTERVAL_S = 10.0
PROGRESS_TTY_INTERVAL_S = 0.2
_FATAL = frozenset({ErrorKind.MISSING, ErrorKind.FORBIDDEN})  # every other object would fail the same way


@dataclass(frozen=True, slots=True)
class Options:
    bucket: str
    prefix: str
    raw_prefix: str
    start_after: str | None = None
    dry_run: bool = False
    concurrency: int = 16


@dataclass(slots=True)
class Tally:
    listed: int = 0
    inserted: int = 0
    duplicate: int = 0
    skipped: int = 0
    conflict: int = 0
    failed: int = 0
    would_write: int = 0  # --dry-run: under the prefix, so it would be written (or found to be a duplicate)

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def done(self) -> int:
        return self.inserted + self.duplicate + self.skipped + self.conflict + self.failed + self.would_write


class ResumePoint:
    """The last key K such that K and every key listed before it are settled, so `--start-after K` skips only
    settled work. Puts finish out of order; settled keys past a gap wait in `_ahead` until the gap closes. A
    failed key is a gap that never closes: the resume point stays before it, so a resumed run retries it."""

    def __init__(self, start_after: str | None) -> None:
        self.key = start_after
        self._next = 0
        self._ahead: dict[int, str] = {}
        self._gap: int | None = None

    def settled(self, index: int, key: str) -> None:
        if self._gap is not None and index > self._gap:
            return  # past a failure: never the resume point, so not worth keeping
        self._ahead[index] = key
        while self._next in self._ahead:
            self.key = self._ahead.pop(self._next)
            self._next += 1

    def failed(self, index: int) -> None:
        self._gap = index if self._gap is None else min(self._gap, index)
        self._ahead = {i: key for i, key in self._ahead.items() if i < self._gap}


class Backfill:
    def __init__(self, s3: S3Client, store: PhotoStore, options: Options) -> None:
        self._s3 = s3
        self._store = store
        self._options = options
        self._stop = asyncio.Event()
        self.tally = Tally()
        self.resume = ResumePoint(options.start_after)
        self.aborted: str | None = None  # why the run stopped early on its own
        self.started = time.monotonic()

    async def run(self, stop: asyncio.Event) -> Tally:
        """List and put until the listing ends or `stop` is set; puts already started finish first."""
        self._stop = stop
        queue: asyncio.Queue[tuple[int, ObjectTypeDef] | None] = asyncio.Queue(self._options.concurrency * 2)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._list(queue))
            for _ in range(self._options.concurrency):
                group.create_task(self._work(queue))
        return self.tally

    async def _list(self, queue: asyncio.Queue[tuple[int, ObjectTypeDef] | None]) -> None:
        try:
            async with aclosing(self._objects()) as objects:
                async for obj in objects:
                    if self._stop.is_set():
                        break
                    await queue.put((self.tally.listed, obj))  # waits while the put tasks are busy
                    self.tally.listed += 1
        except Exception as exc:  # noqa: BLE001 - classified; the summary still says how far it got
            self._abort("listing_failed", exc)
        for _ in range(self._options.concurrency):
            await queue.put(None)  # one end marker per put task

    async def _objects(self) -> AsyncGenerator[ObjectTypeDef]:
        """Every object in listing (key) order. Keys are literal: only notification keys are form-encoded."""
        where: dict[str, Any] = {"Bucket": self._options.bucket, "Prefix": self._options.prefix}
        if self._options.start_after:
            where["StartAfter"] = self._options.start_after
        pages = self._s3.get_paginator("list_objects_v2").paginate(**where)
        async for page in pages:
            for obj in page.get("Contents", []):
                yield obj

    async def _work(self, queue: asyncio.Queue[tuple[int, ObjectTypeDef] | None]) -> None:
        while (entry := await queue.get()) is not None:
            if self._stop.is_set():
                continue  # never started, so never settled: the resume point stays before it
            index, obj = entry
            outcome = await self._settle(obj)
            self.tally.add(outcome)
            if outcome == "failed":
                self.resume.failed(index)
            else:
                self.resume.settled(index, obj["Key"])

    async def _settle(self, obj: ObjectTypeDef) -> str:
        """The same rules as the worker: the prefix, the photoId, the attributes and the conditional put."""
        key = obj["Key"]
        if not key.startswith(self._options.raw_prefix):
            return "skipped"
        if self._options.dry_run:
            return "would_write"
        record = ObjectRecord(
            bucket=self._options.bucket,
            key=key,
            event_name=EVENT_NAME,
            event_time=obj["LastModified"].isoformat(),  # so uploadedAt is LastModified
            size=obj.get("Size"),
            etag=obj.get("ETag", "").strip('"') or None,  # S3 events carry the ETag without its quotes
        )
        item = build_item(record, datetime.now(UTC))
        fields = {"photoId": item["photoId"]["S"], "key": key}
        try:
            outcome = await self._store.put(item)
        except Exception as exc:  # noqa: BLE001 - classified and counted; one object never ends the run
            kind = classify(exc)
            log.error("backfill.put_failed", **fields, kind=kind, code=error_code(exc), error=str(exc))
            if kind in _FATAL:
                self._abort(f"put_{kind}", exc)
            return "failed"
        if outcome is PutOutcome.CONFLICT:
            log.error("photo.conflict", **fields, reason="photoId held by another object; not overwritten")
        else:
            log.debug(f"photo.{outcome.value}", **fields, source="backfill")
        return outcome.value

    def _abort(self, reason: str, exc: Exception) -> None:
        if self.aborted is None:
            self.aborted = f"{reason}: {error_code(exc)}: {exc}"
            log.error("backfill.aborted", reason=reason, kind=classify(exc), code=error_code(exc), error=str(exc))
        self._stop.set()

    def figures(self) -> dict[str, Any]:
        elapsed_s = time.monotonic() - self.started
        counts = asdict(self.tally)
        counts["wouldWrite"] = counts.pop("would_write")
        return counts | {
            "elapsedSeconds": round(elapsed_s, 2),
            "objectsPerSecond": round(self.tally.done / elapsed_s, 1) if elapsed_s else 0.0,
            "lastKeyDone": self.resume.key,
        }


async def report_progress(backfill: Backfill, terminal: TextIO | None) -> None:
    """Redraw one line on a terminal; without one, a `backfill.progress` log line every few seconds."""
    while True:
        await asyncio.sleep(PROGRESS_TTY_INTERVAL_S if terminal else PROGRESS_LOG_INTERVAL_S)
        figures = backfill.figures()
        if terminal:
            shown = ("listed", "inserted", "duplicate", "skipped", "conflict", "failed", "objectsPerSecond")
            line = "  ".join(f"{name} {figures[name]:,}" for name in shown)
            terminal.write(f"\r\033[K{line}")  # back to the line's start, clear it, redraw
            terminal.flush()
        else:
            log.info("backfill.progress", **figures)


def summary(backfill: Backfill, options: Options, interrupted: bool) -> str:
    """The human summary: what happened to the listed objects, and where to resume."""
    figures, key = backfill.figures(), backfill.resume.key
    state = "aborted" if backfill.aborted else "interrupted" if interrupted else "finished"
    rows: list[tuple[str, object]] = [("reason", backfill.aborted)] if backfill.aborted else []
    rows.append(("listed", figures["listed"]))
    if options.dry_run:
        rows.append(("would write", f"{figures['wouldWrite']}  (dry run: nothing written, so duplicates unknown)"))
    else:
        rows += [("inserted", figures["inserted"]), ("duplicates", figures["duplicate"])]
    rows.append(("skipped", f"{figures['skipped']}  (outside RAW_PREFIX)"))
    if not options.dry_run:
        rows += [("conflicts", figures["conflict"]), ("failed", figures["failed"])]
        resume = f"{shlex.quote(key)}  (resume: --start-after {shlex.quote(key)})" if key else "none"
        rows.append(("last key done", resume))
    head = f"backfill of s3://{options.bucket}/{options.prefix} {state} after {figures['elapsedSeconds']} s"
    head += f" ({figures['objectsPerSecond']} objects/s)"
    return "\n".join([head, *(f"  {label:<14}{value}" for label, value in rows)])


async def backfill_command(
    settings: TableSettings, options: Options, stop: asyncio.Event, terminal: TextIO | None
) -> int:
    """The whole command once settings are loaded: progress on `terminal` if there is one, summary on stdout."""
    session = aioboto3.Session()
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
        return cli.EXIT_FAILED if tally.failed or backfill.aborted or interrupted else cli.EXIT_OK


def _cmd_backfill(args: argparse.Namespace) -> int:
    settings = cli.load_settings(TableSettings)
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
        cli.install_stop_handlers(stop)
        return await backfill_command(settings, options, stop, sys.stderr if sys.stderr.isatty() else None)

    return asyncio.run(main())


def _concurrency(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError("must be 1 to 256")
    return value


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `backfill`; it needs PHOTOS_TABLE and RAW_PREFIX, s3:ListBucket and dynamodb:PutItem."""
    parser = commands.add_parser("backfill", help="write the item of every object already in the bucket")
    parser.add_argument("--bucket", required=True, help="the bucket to list")
    parser.add_argument("--prefix", help="list only keys under it (default: RAW_PREFIX)")
    parser.add_argument("--start-after", metavar="KEY", help="resume after this key (from a previous summary)")
    parser.add_argument("--dry-run", action="store_true", help="count what would be written; write nothing")
    parser.add_argument("--concurrency", type=_concurrency, default=16, help="puts in flight (default 16)")
    parser.set_defaults(handler=_cmd_backfill)
