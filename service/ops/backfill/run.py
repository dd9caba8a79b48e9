"""One backfill run: write the Photos item of each listed object, with the worker's rules.

    objects (a listing, or an S3 Inventory report) ──▶ bounded queue ──▶ N put tasks ──▶ Tally, ResumePoint
      every object: ObjectRecord(uploadedAt = LastModified) ─▶ the core (`service.ingest`): the same item, the same put

The put is conditional, so an object already in the table is a duplicate, never a second item. One object's
failure is counted and the run goes on; a missing table or a denied put would fail them all, so it aborts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import asdict
from typing import Any

import structlog

from service import telemetry
from service.aws.errors import ErrorKind, classify, error_code
from service.ingest.events import ObjectRecord
from service.ingest.settle import Ingest
from service.ops.backfill.objects import Listed, skip_reason
from service.ops.backfill.options import Options
from service.ops.backfill.progress import ResumePoint, Tally
from service.text import cut

log = structlog.get_logger("service.ops.backfill.run")

EVENT_NAME = "Backfill"  # the item's eventName: says where the item came from
THROTTLE_RETRY_S = 120.0  # a throttled put is retried in process this long: a backfill has no visibility to keep
_FATAL = frozenset({ErrorKind.MISSING, ErrorKind.FORBIDDEN})  # every other object would fail the same way


class Backfill:
    def __init__(self, objects: AsyncGenerator[Listed], ingest: Ingest, options: Options) -> None:
        """`ingest`: the worker's core, from `service.compose.open_ingest`: its rules, its logs, its write mode."""
        self._objects = objects
        self._ingest = ingest
        self._options = options
        self._stop = asyncio.Event()
        self.tally = Tally()
        self.resume = ResumePoint(options.start_after)
        self.aborted: str | None = None  # why the run stopped early on its own
        self.started = time.monotonic()

    async def run(self, stop: asyncio.Event) -> Tally:
        """List and put until the listing ends or `stop` is set; puts already started finish first."""
        self._stop = stop
        queue: asyncio.Queue[tuple[int, Listed] | None] = asyncio.Queue(self._options.concurrency * 2)
        closer = asyncio.create_task(self._close_on_stop())
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._list(queue))
                for _ in range(self._options.concurrency):
                    group.create_task(self._work(queue))
        finally:
            closer.cancel()
        return self.tally

    async def _close_on_stop(self) -> None:
        """A stop (SIGTERM, Ctrl-C, an abort) ends the throttled retries of the puts in flight: each fails, so
        the resume point stays before it and the summary comes at once instead of after THROTTLE_RETRY_S."""
        await self._stop.wait()
        self._ingest.close()

    async def _list(self, queue: asyncio.Queue[tuple[int, Listed] | None]) -> None:
        try:
            async with aclosing(self._objects) as objects:
                async for obj in objects:
                    if self._stop.is_set():
                        break
                    await queue.put((self.tally.listed, obj))  # waits while the put tasks are busy
                    self.tally.listed += 1
        except Exception as exc:  # noqa: BLE001 - classified; the summary still says how far it got
            self._abort("listing_failed", classify(exc), f"{error_code(exc)}: {exc}")
        for _ in range(self._options.concurrency):
            await queue.put(None)  # one end marker per put task

    async def _work(self, queue: asyncio.Queue[tuple[int, Listed] | None]) -> None:
        while (entry := await queue.get()) is not None:
            if self._stop.is_set():
                continue  # never started, so never settled: the resume point stays before it
            index, obj = entry
            reason = skip_reason(obj, self._options.raw_prefix)  # the worker's rules for keys
            outcome = "skipped" if reason else await self._settle(obj)
            self.tally.add(outcome, reason)
            if outcome == "failed":
                self.resume.failed(index)
            else:
                self.resume.settled(index, obj.token)

    async def _settle(self, obj: Listed) -> str:
        """The same rules as the worker: the photoId, the attributes and the conditional put."""
        if self._options.dry_run:
            return "would_write"
        record = ObjectRecord(
            bucket=self._options.bucket,
            key=obj.key,
            event_name=EVENT_NAME,
            event_time=obj.last_modified.isoformat() if obj.last_modified else None,  # uploadedAt is LastModified
            size=obj.size,
            etag=obj.etag,  # without its quotes, as S3 events carry it
            version_id=obj.version_id,
        )
        with telemetry.backfill_object(obj.key):
            settled = (await self._ingest.settle([record], time.monotonic() + THROTTLE_RETRY_S)).records[0]
        if settled.kind in _FATAL:
            self._abort(f"put_{settled.kind}", settled.kind, settled.error)
        return settled.outcome.value

    def _abort(self, reason: str, kind: ErrorKind | None, error: str) -> None:
        if self.aborted is None:
            self.aborted = f"{reason}: {error}"
            log.error("backfill.aborted", reason=reason, kind=kind, error=cut(error, 1000))
        self._stop.set()

    def figures(self) -> dict[str, Any]:
        elapsed_s = time.monotonic() - self.started
        counts = asdict(self.tally)
        counts["wouldWrite"] = counts.pop("would_write")
        del counts["skipped_by"]  # asdict copies a Counter wrongly (its pairs become the counted elements)
        counts["skippedBy"] = dict(self.tally.skipped_by)
        del counts["sent"]  # only a backfill through the queue sends
        return counts | {
            "elapsedSeconds": round(elapsed_s, 2),
            "objectsPerSecond": round(self.tally.done / elapsed_s, 1) if elapsed_s else 0.0,
            "lastKeyDone": self.resume.key,
        }
