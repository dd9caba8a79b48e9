"""The worker: pollers receive while there is room, each message is handled in its own task, and every
message ends in exactly one disposition, decided from its records' outcomes by `decide`.

    pollers (1 up to POLLERS, as demand needs: pollers.py) ── receive (≤10, 20 s wait) ── only while the
       │    Limiter and the ByteBudget have room, paused by IntakeGate on outages
       └─▶ one task per message: parse ─▶ one conditional put per record, each in a slot of the same Limiter
              (AIMD: it adapts to DynamoDB's throttles) ─▶ outcomes
              └─▶ decide ─▶ delete (batched) │ release with backoff │ quarantine
    keeper ── extends the visibility of messages still in flight, by each one's deadline, within a bounded total
"""

from __future__ import annotations

import asyncio
import sys
import time
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import structlog

from service import telemetry
from service.aws.clients import make_session, open_sqs
from service.aws.errors import ErrorKind, classify, error_code, pauses_intake
from service.aws.queue import Message, Queue
from service.compose import open_ingest
from service.config import Settings
from service.ingest.limiter import Limiter
from service.ingest.outcomes import Disposition
from service.ingest.settle import Ingest
from service.metrics import Metrics, MetricsEmitter
from service.worker.budget import ByteBudget
from service.worker.disposal import Disposal
from service.worker.heartbeat import Heartbeat
from service.worker.inflight import InFlight
from service.worker.pacing import IntakeGate
from service.worker.pollers import PollerCount

if TYPE_CHECKING:
    import aioboto3

log = structlog.get_logger("service.worker.worker")

INTAKE_BACKOFF_CAP_S = 30.0
INITIAL_LIMIT_RECEIVES = 4  # the limit starts at 4 receives' worth of slots, then doubles each round


class Worker:
    """Made in two steps, since the core hears about puts from the worker (`watcher=worker`) and shares its
    limiter: `Worker(...)`, then `open_ingest(..., worker.limiter, watcher=worker)`, then `run(stop, ingest)`."""

    _ingest: Ingest  # set by `run`

    def __init__(self, settings: Settings, queue: Queue, metrics: Metrics) -> None:
        self._settings = settings
        self._queue = queue
        self._metrics = metrics
        # MAX_IN_FLIGHT_RECORDS is the ceiling; the limit starts at a few receives and doubles each round
        initial = INITIAL_LIMIT_RECEIVES * settings.receive_batch_size
        self._limiter = Limiter(settings.max_in_flight_records, initial=initial)
        self._budget = ByteBudget(settings.max_in_flight_bytes)
        self._pollers = PollerCount(settings.pollers)
        self._intake = IntakeGate(settings.retry_backoff_base_seconds / 2, INTAKE_BACKOFF_CAP_S)
        self._heartbeat = Heartbeat(settings.health_file)
        self._in_flight = InFlight(
            queue, settings.visibility_timeout_seconds, settings.visibility_extension_max_seconds
        )
        self._disposal = Disposal(settings, queue, metrics, self._intake)
        self._queue_name = telemetry.queue_name(queue.url)
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: dict[Message, int] = {}  # the bytes of each body still held

    @property
    def limiter(self) -> Limiter:
        """The in-flight limit that the pollers reserve from and the core's puts acquire from."""
        return self._limiter

    def gauges(self) -> dict[str, float]:
        return {
            "InFlightRecords": self._limiter.in_use,
            "InFlightLimit": self._limiter.limit,
            "InFlightBytes": self._budget.used,
            "Pollers": self._pollers.active,
        }

    async def run(self, stop: asyncio.Event, ingest: Ingest) -> None:
        """Poll until `stop` is set, then drain within the shutdown timeout and release what is left."""
        self._ingest = ingest
        log.info("worker.started", **self._settings.public_view())
        settings = self._settings
        emf, otlp = telemetry.metrics_outputs(settings.metrics_exporter, settings.metrics_dimensions, self.gauges)
        emitter = MetricsEmitter(
            self._metrics, settings.metrics_namespace, settings.metrics_dimensions, self.gauges, emf=emf, otlp=otlp
        )
        async with asyncio.TaskGroup() as work:
            helpers = [work.create_task(self._in_flight.keep_visible())]
            if self._settings.metrics_on:
                helpers.append(work.create_task(self._report(emitter)))
            async with asyncio.TaskGroup() as pollers:
                pollers.create_task(self._poll(stop, work, pollers))
            self._ingest.close()  # a throttled or paced record waits no more: it fails, and its message is released
            await self._drain()
            for helper in helpers:
                helper.cancel()
        await self._in_flight.release_all()
        if self._settings.metrics_on:
            emitter.flush()
        self._heartbeat.beat(force=True)
        log.info("worker.stopped")

    async def _poll(self, stop: asyncio.Event, work: asyncio.TaskGroup, pollers: asyncio.TaskGroup) -> None:
        index = self._pollers.start()
        try:
            while not stop.is_set():
                received = await self._poll_once(index, stop, work)
                if received is None:
                    continue
                if PollerCount.retires(index, received):
                    return
                room = self._limiter.in_use < self._limiter.limit and self._budget.has_room
                if self._pollers.grows(received, self._settings.receive_batch_size, room):
                    pollers.create_task(self._poll(stop, work, pollers))
        finally:
            self._pollers.stopped()

    async def _poll_once(self, index: int, stop: asyncio.Event, work: asyncio.TaskGroup) -> int | None:
        """One receive, once there is room; how many messages it brought (None: no receive was made)."""
        self._heartbeat.beat()
        await self._intake.wait_open(stop)
        probing = self._intake.degraded  # an outage: the first poller probes with one message, others wait
        if probing and index:
            await self._intake.wait_recovered(stop)
            return None
        want = 1 if probing else self._settings.receive_batch_size
        if (reserved := await self._budget.reserve(want, stop)) is None:
            return None
        if not (slots := await self._limiter.reserve(want, stop)):
            self._budget.release(reserved)
            return None
        try:
            messages = await self._receive(slots, stop)
        except Exception as exc:  # noqa: BLE001 - classified; the poller backs off and keeps running
            self._limiter.release(slots)
            self._budget.release(reserved)
            self._receive_failed(exc)
            return None
        self._intake.succeeded("receive")
        self._limiter.release(slots - len(messages))  # each message holds one until its first put
        sizes = [sys.getsizeof(message.body) for message in messages]
        self._budget.received(reserved, sizes)
        self._held.update(zip(messages, sizes, strict=True))
        started = [self._start(message, work) for message in messages]
        if probing and started:  # the probe's outcome decides whether the outage is over
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({*started, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
        return len(messages)

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
        with telemetry.receive(self._queue_name) as span:
            receive = asyncio.ensure_future(
                self._queue.receive(
                    slots, self._settings.receive_wait_seconds, self._settings.visibility_timeout_seconds
                )
            )
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({receive, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                if not receive.done():  # a receive cut short leaves its messages for another poll
                    receive.cancel()
                    await asyncio.wait({receive})
            messages = [] if receive.cancelled() else receive.result()
            span.note(messages=len(messages))
        return messages

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
            with telemetry.process(
                self._queue_name, message.message_id, message.receive_count, message.trace_header
            ) as span:
                await self._process(message, span)
        except Exception:  # a bug, not an AWS failure: keep the message and keep the worker running
            log.exception("message.unexpected_error")
            await self._disposal.apply(message, Disposition.RELEASE, "unexpected_error")
        except asyncio.CancelledError:
            cancelled = True  # left in `_in_flight`, so shutdown releases it
            raise
        finally:
            self._drop_body(message)  # at the latest here, also when cancelled: shutdown needs no body
            if not cancelled:
                self._in_flight.done(message)

    async def _process(self, message: Message, span: telemetry.Span) -> None:
        # The message's slot passes to its first record: nothing awaits between this release and that acquire.
        self._limiter.release()
        deadline = self._in_flight.deadline(message)
        settlement = await self._ingest.settle_body(message.body, deadline, message.sent_at_ms)
        telemetry.disposed(span, settlement.disposition, settlement.reason)
        if settlement.disposition is not Disposition.QUARANTINE:  # only the dead-letter queue needs the body
            self._drop_body(message)
        await self._disposal.apply(message, settlement.disposition, settlement.reason, detail=settlement.detail)

    def _drop_body(self, message: Message) -> None:
        """Let go of the body, and give its bytes back to the budget."""
        if (size := self._held.pop(message, None)) is not None:
            message.body = ""
            self._budget.release(size)

    def put_succeeded(self) -> None:
        self._heartbeat.record_put(ok=True)
        self._intake.succeeded("put")

    def put_failed(self, kind: ErrorKind) -> None:
        self._heartbeat.record_put(ok=False)
        if pauses_intake(kind):
            self._intake.failed("put")

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


async def run_worker(settings: Settings, stop: asyncio.Event, *, session: aioboto3.Session | None = None) -> None:
    """The production path, also used by `demo` and `local`: one SQS client and the core of `open_ingest` for the
    process's lifetime, with connection pools sized to the in-flight limit. `session`: simulated AWS clients."""
    session = session or make_session()
    async with AsyncExitStack() as stack:
        sqs_pool = settings.pollers + settings.max_in_flight_records // 5 + 4  # receives + batch calls
        sqs = await open_sqs(stack, session, sqs_pool, settings.receive_wait_seconds)
        queue = Queue(sqs, settings.queue_url, settings.dead_letter_queue_url)
        metrics = Metrics()
        worker = Worker(settings, queue, metrics)
        ingest = await open_ingest(stack, settings, metrics, worker.limiter, session=session, watcher=worker)
        telemetry.start(otlp_metrics=settings.metrics_exporter in ("otlp", "both"))
        stack.callback(telemetry.stop)  # after the last flush: what is pending is exported
        await worker.run(stop, ingest)
