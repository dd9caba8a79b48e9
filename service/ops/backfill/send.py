"""One backfill through the queue (`--via-queue`): it announces each object as S3 would, and the workers write.

    objects ─▶ feeder: outside RAW_PREFIX? skipped ─▶ batches of 10 ─▶ --max-backlog gate ─▶ bounded queue
      ─▶ N senders ─▶ Outbox: --rate, SendMessageBatch of S3's own notification bodies ─▶ Tally, ResumePoint

The workers then do the puts, with their own conditional writes, trust checks and metrics, at the fleet's pace.
An object counts as sent only once SQS took it. One that could not be sent is counted as failed, and the resume
point stays before it, so a resumed run sends it again; a queue that cannot be sent to at all aborts the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog

from service import telemetry
from service.aws.errors import ErrorKind, classify, error_code
from service.aws.queue import SQS_BATCH_MAX
from service.ops.backfill.notification import notification_body
from service.ops.backfill.objects import Listed, skip_reason
from service.ops.backfill.options import Options
from service.ops.backfill.outbox import Delivery, Entry, Outbox
from service.ops.backfill.pacing import BacklogGate, TokenBucket
from service.ops.backfill.progress import ResumePoint, Tally
from service.text import cut

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

log = structlog.get_logger("service.ops.backfill.send")


class Sender:
    def __init__(self, sqs: SQSClient, objects: AsyncGenerator[Listed], options: Options, region: str) -> None:
        assert options.queue_url is not None, "a backfill through the queue needs its URL"
        rate = TokenBucket(options.rate_per_s, SQS_BATCH_MAX) if options.rate_per_s else None
        body = partial(notification_body, bucket=options.bucket, region=region)
        self._outbox = Outbox(sqs, options.queue_url, rate, body)
        self._gate = None if options.max_backlog is None else BacklogGate(sqs, options.queue_url, options.max_backlog)
        self._objects = objects
        self._options = options
        self._queue_name = telemetry.queue_name(options.queue_url)
        self._stop = asyncio.Event()
        self.tally = Tally()
        self.resume = ResumePoint(options.start_after)
        self.aborted: str | None = None  # why the run stopped early on its own
        self.started = time.monotonic()

    async def run(self, stop: asyncio.Event) -> Tally:
        """Send until the objects end or `stop` is set; batches already being sent finish first."""
        self._stop = stop
        batches: asyncio.Queue[list[Entry] | None] = asyncio.Queue(self._options.concurrency)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._feed(batches))
            for _ in range(self._options.concurrency):
                group.create_task(self._work(batches))
        return self.tally

    async def _feed(self, batches: asyncio.Queue[list[Entry] | None]) -> None:
        batch: list[Entry] = []
        try:
            async with aclosing(self._objects) as objects:
                async for obj in objects:
                    if self._stop.is_set():
                        break
                    index = self.tally.listed
                    self.tally.listed += 1
                    if reason := skip_reason(obj, self._options.raw_prefix):
                        self._settle(index, obj, "skipped", reason)  # the worker would not write it: no message
                        continue
                    batch.append((index, obj))
                    if len(batch) == SQS_BATCH_MAX:
                        await self._hand_over(batch, batches)
                        batch = []
            await self._hand_over(batch, batches)
        except Exception as exc:  # noqa: BLE001 - classified; the summary still says how far it got
            self._abort("listing_failed", classify(exc), f"{error_code(exc)}: {exc}")
        for _ in range(self._options.concurrency):
            await batches.put(None)  # one end marker per sender

    async def _hand_over(self, batch: list[Entry], batches: asyncio.Queue[list[Entry] | None]) -> None:
        if not batch or self._stop.is_set():
            return
        if self._options.dry_run:
            for index, obj in batch:
                self._settle(index, obj, "would_write")
            return
        if self._gate:
            try:
                await self._gate.admit(len(batch), self._stop)
            except Exception as exc:  # noqa: BLE001 - classified: without the queue's depth, the run cannot pace
                self._abort("backlog_read_failed", classify(exc), f"{error_code(exc)}: {exc}")
        if not self._stop.is_set():
            await batches.put(batch)  # waits while every sender is busy

    async def _work(self, batches: asyncio.Queue[list[Entry] | None]) -> None:
        while (batch := await batches.get()) is not None:
            # After a stop, a batch not yet sent is never settled: the resume point stays before it.
            delivery = None if self._stop.is_set() else await self._send(batch)
            if self._gate:
                self._gate.sent(len(batch))
            if delivery is None:
                continue
            for index, obj in delivery.sent:
                self._settle(index, obj, "sent")
            for index, obj in delivery.failed:
                self._settle(index, obj, "failed")
            if delivery.error:
                self._abort("send_failed", *delivery.error)

    async def _send(self, batch: list[Entry]) -> Delivery | None:
        """One batch, in its own span; each message carries the span's context as its AWSTraceHeader."""
        with telemetry.send(self._queue_name, len(batch)):
            return await self._outbox.send(batch, self._stop)

    def _settle(self, index: int, obj: Listed, outcome: str, reason: str | None = None) -> None:
        self.tally.add(outcome, reason)
        if outcome == "failed":
            self.resume.failed(index)
        else:
            self.resume.settled(index, obj.token)

    def _abort(self, reason: str, kind: ErrorKind | None, error: str) -> None:
        if self.aborted is None:
            self.aborted = f"{reason}: {error}"
            log.error("backfill.aborted", reason=reason, kind=kind, error=cut(error, 1000))
        self._stop.set()

    def figures(self) -> dict[str, Any]:
        elapsed_s = time.monotonic() - self.started
        return {
            "listed": self.tally.listed,
            "sent": self.tally.sent,
            "skipped": self.tally.skipped,
            "skippedBy": dict(self.tally.skipped_by),
            "failed": self.tally.failed,
            "wouldWrite": self.tally.would_write,
            "backlogPauses": self._gate.pauses if self._gate else 0,
            "elapsedSeconds": round(elapsed_s, 2),
            "objectsPerSecond": round(self.tally.done / elapsed_s, 1) if elapsed_s else 0.0,
            "lastKeyDone": self.resume.key,
        }
