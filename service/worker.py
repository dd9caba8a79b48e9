"""The worker: pollers receive while there is room, each message is handled in its own task, and every
message ends in exactly one disposition, decided from its records' outcomes by `decide`.

    pollers ── receive (≤10, 20 s wait) ── only while Capacity has room, paused by IntakeGate on outages
       └─▶ one task per message: parse ─▶ one conditional put per record (concurrently) ─▶ outcomes
              └─▶ decide ─▶ delete (batched) │ release with backoff │ quarantine
    keeper ── extends the visibility of messages still in flight, in batches, within a bounded total
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import structlog

from service.config import Settings
from service.disposal import Disposal
from service.errors import ErrorKind, classify, error_code, pauses_intake
from service.events import ObjectRecord, PoisonMessageError, SkippedRecord, parse_body
from service.health import Heartbeat
from service.inflight import InFlight
from service.metrics import Metrics, MetricsEmitter
from service.outcomes import Disposition, Outcome, decide
from service.pacing import Capacity, IntakeGate
from service.queue import Message, Queue
from service.store import PhotoStore, PutOutcome, build_item

log = structlog.get_logger("service.worker")

INTAKE_BACKOFF_CAP_S = 30.0


class Worker:
    def __init__(self, settings: Settings, queue: Queue, store: PhotoStore, metrics: Metrics) -> None:
        self._settings = settings
        self._queue = queue
        self._store = store
        self._metrics = metrics
        self._capacity = Capacity(settings.max_in_flight_records)
        self._intake = IntakeGate(settings.retry_backoff_base_seconds / 2, INTAKE_BACKOFF_CAP_S)
        self._heartbeat = Heartbeat(settings.health_file)
        self._in_flight = InFlight(
            queue, self._capacity, settings.visibility_timeout_seconds, settings.visibility_extension_max_seconds
        )
        self._disposal = Disposal(settings, queue, metrics, self._intake)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight_records(self) -> int:
        return self._capacity.in_use

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set, then drain within the shutdown timeout and release what is left."""
        log.info("worker.started", **self._settings.public_view())
        emitter = MetricsEmitter(
            self._metrics,
            self._settings.metrics_namespace,
            self._settings.metrics_dimensions,
            lambda: self.in_flight_records,
        )
        async with asyncio.TaskGroup() as work:
            helpers = [work.create_task(self._in_flight.keep_visible())]
            if self._settings.metrics_enabled:
                helpers.append(work.create_task(self._report(emitter)))
            async with asyncio.TaskGroup() as pollers:
                for index in range(self._settings.pollers):
                    pollers.create_task(self._poll(index, stop, work))
            await self._drain()
            for helper in helpers:
                helper.cancel()
        await self._in_flight.release_all()
        if self._settings.metrics_enabled:
            emitter.flush()
        self._heartbeat.beat(force=True)
        log.info("worker.stopped")

    async def _poll(self, index: int, stop: asyncio.Event, work: asyncio.TaskGroup) -> None:
        while not stop.is_set():
            self._heartbeat.beat()
            await self._intake.wait_open(stop)
            probing = self._intake.degraded  # an outage: the first poller probes with one message, others wait
            if probing and index:
                await self._intake.wait_recovered(stop)
                continue
            slots = await self._capacity.reserve(1 if probing else self._settings.receive_batch_size, stop)
            if not slots:
                continue
            try:
                messages = await self._receive(slots, stop)
            except Exception as exc:  # noqa: BLE001 - classified; the poller backs off and keeps running
                self._capacity.release(slots)
                self._receive_failed(exc)
                continue
            self._intake.succeeded("receive")
            self._capacity.release(slots - len(messages))
            started = [self._start(message, work) for message in messages]
            if probing and started:  # the probe's outcome decides whether the outage is over
                stopped = asyncio.ensure_future(stop.wait())
                await asyncio.wait({*started, stopped}, return_when=asyncio.FIRST_COMPLETED)
                stopped.cancel()

    def _start(self, message: Message, work: asyncio.TaskGroup) -> asyncio.Task[None]:
        self._in_flight.add(message)
        task = work.create_task(self._handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _receive(self, slots: int, stop: asyncio.Event) -> list[Message]:
        """One long poll, cancelled at once if `stop` is set."""
        if self._in_flight.visibility_s is None:
            self._in_flight.visibility_s = await self._queue.visibility_timeout()
        receive = asyncio.ensure_future(
            self._queue.receive(slots, self._settings.receive_wait_seconds, self._settings.visibility_timeout_seconds)
        )
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({receive, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not receive.done():  # a receive cut short leaves its messages for another poll
                receive.cancel()
                await asyncio.wait({receive})
        return [] if receive.cancelled() else receive.result()

    def _receive_failed(self, exc: Exception) -> None:
        kind = classify(exc)
        delay = self._intake.failed("receive")
        log.error(
            "queue.receive_failed",
            kind=kind,
            code=error_code(exc),
            error=str(exc),
            retryInSeconds=round(delay, 2),
            pause=self._intake.failures("receive"),
            exc_info=kind is ErrorKind.UNEXPECTED,
        )

    async def _handle(self, message: Message) -> None:
        structlog.contextvars.bind_contextvars(messageId=message.message_id, receiveCount=message.receive_count)
        self._metrics.messages["received"] += 1
        if message.sent_at_ms:
            self._metrics.sample(self._metrics.message_age_s, time.time() - message.sent_at_ms / 1000)
        cancelled = False
        try:
            await self._process(message)
        except Exception:  # a bug, not an AWS failure: keep the message and keep the worker running
            log.exception("message.unexpected_error")
            await self._disposal.apply(message, Disposition.RELEASE, "unexpected_error")
        except asyncio.CancelledError:
            cancelled = True  # left in `_in_flight`, so shutdown releases it
            raise
        finally:
            if not cancelled:
                self._in_flight.done(message)

    async def _process(self, message: Message) -> None:
        try:
            entries = parse_body(message.body, self._settings.raw_prefix)
        except PoisonMessageError as exc:  # logged once, by the quarantine line
            await self._disposal.apply(message, Disposition.QUARANTINE, exc.reason, detail=str(exc))
            return
        self._in_flight.hold(message, len(entries))
        if len(entries) == 1:
            outcomes = [await self._settle(entries[0])]
        else:
            outcomes = await asyncio.gather(*(self._settle(entry) for entry in entries))
        disposition = decide(outcomes)
        reason = "conflict" if disposition is Disposition.QUARANTINE else "record_failed"
        await self._disposal.apply(message, disposition, reason)

    async def _settle(self, entry: ObjectRecord | SkippedRecord) -> Outcome:
        if isinstance(entry, SkippedRecord):
            level = log.warning if entry.reason == "missing_bucket_or_key" else log.info
            level(
                "record.skipped",
                reason=entry.reason,
                bucket=entry.bucket,
                key=entry.key,
                eventName=entry.event_name,
            )
            self._metrics.records["skipped"] += 1
            return Outcome.SKIPPED
        now = datetime.now(UTC)
        item = build_item(entry, now)
        fields = {"photoId": item["photoId"]["S"], "bucket": entry.bucket, "key": entry.key}
        started = time.perf_counter()
        try:
            result = await self._store.put(item)
        except Exception as exc:  # noqa: BLE001 - classified; the message stays on the queue
            return self._put_failed(exc, fields)
        self._metrics.sample(self._metrics.put_latency_ms, (time.perf_counter() - started) * 1000)
        self._heartbeat.record_put(ok=True)
        self._intake.succeeded("put")
        self._metrics.records[result.value] += 1
        if result is PutOutcome.CONFLICT:
            log.error("photo.conflict", **fields, reason="photoId held by another object; not overwritten")
            return Outcome.CONFLICT
        if result is PutOutcome.INSERTED:
            lag_s = now.timestamp() - datetime.fromisoformat(item["uploadedAt"]["S"]).timestamp()
            self._metrics.sample(self._metrics.lag_s, lag_s)
        log.info(f"photo.{result.value}", **fields)
        return Outcome(result.value)

    def _put_failed(self, exc: Exception, fields: dict[str, str]) -> Outcome:
        kind = classify(exc)
        self._heartbeat.record_put(ok=False)
        if pauses_intake(kind):
            self._intake.failed("put")
        self._metrics.records["failed"] += 1
        log.error(
            "photo.failed",
            **fields,
            kind=kind,
            code=error_code(exc),
            error=str(exc),
            exc_info=kind is ErrorKind.UNEXPECTED,
        )
        return Outcome.FAILED

    async def _report(self, emitter: MetricsEmitter) -> None:
        while True:
            await asyncio.sleep(self._settings.metrics_interval_seconds)
            emitter.flush()

    async def _drain(self) -> None:
        """Give in-flight messages the shutdown timeout to finish; cancel the rest."""
        if not self._tasks:
            return
        log.info("worker.draining", inFlightMessages=len(self._tasks))
        _, unfinished = await asyncio.wait(set(self._tasks), timeout=self._settings.shutdown_timeout_seconds)
        for task in unfinished:
            task.cancel()
