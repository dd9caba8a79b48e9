"""The function's entry point, `service.aws_lambda.handler`, and the one runtime every warm invocation reuses.

aioboto3 clients belong to the event loop that opened them, and `asyncio.run` closes its loop when it returns.
So the loop is one `asyncio.Runner` and the clients one `AsyncExitStack`, kept at module scope for the life of
the execution environment. Both are made by the first invocation, not at import: a bad setting then fails that
invocation with a line naming the variable, and the import stays cheap.

    handler(event, context) ─▶ runtime(): settings, logging, Runner (first call only)
        └─▶ Runner.run: bind awsRequestId ─▶ open clients (first call only) ─▶ Batch.settle within the deadline
              ─▶ {"batchItemFailures": [...]} ─▶ one EMF line
"""

from __future__ import annotations

import asyncio
import functools
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from service import telemetry
from service.aws.clients import make_session, open_sqs
from service.aws_lambda.batch import Batch, DeadLetter, Reply
from service.aws_lambda.event import InvalidEventError, parse_event
from service.aws_lambda.settings import LambdaSettings
from service.compose import open_ingest
from service.ingest.limiter import Limiter
from service.logs import configure_logging
from service.metrics import Metrics, MetricsEmitter
from service.process import ConfigurationError, load_settings

if TYPE_CHECKING:
    import aioboto3

log = structlog.get_logger("service.aws_lambda")

Response = dict[str, list[dict[str, str]]]
SQS_POOL = 10  # dead-letter sends: at most one per message of a 10-message batch at once


class LambdaContext(Protocol):
    """What the handler reads of the context object Lambda passes."""

    aws_request_id: str

    def get_remaining_time_in_millis(self) -> int: ...


class EnvironmentFailureError(RuntimeError):
    """Every message failed because AWS did (a missing table, no permission, throttling, an outage). Failing the
    invocation makes the event source mapping retry the batch and back off its concurrency, as the worker
    pauses its intake."""


class LambdaRuntime:
    """One loop, one set of clients and one metrics emitter for every invocation of one execution environment."""

    def __init__(self, settings: LambdaSettings, *, session: aioboto3.Session | None = None) -> None:
        self.settings = settings
        self._session = session  # None: the SDK's own chain (`make_session`); tests and the simulator pass one
        self._runner = asyncio.Runner()
        self._exits = AsyncExitStack()
        self._metrics = Metrics()
        telemetry.start(otlp_metrics=settings.metrics_exporter in ("otlp", "both"))
        emf, otlp = telemetry.metrics_outputs(settings.metrics_exporter, settings.metrics_dimensions, self._gauges)
        self._emitter = MetricsEmitter(
            self._metrics, settings.metrics_namespace, settings.metrics_dimensions, self._gauges, emf=emf, otlp=otlp
        )
        self._limiter: Limiter | None = None
        self._batch: Batch | None = None
        self.clients: tuple[Any, ...] = ()

    def _gauges(self) -> dict[str, float]:
        in_use = self._limiter.in_use if self._limiter else 0
        return {"InFlightRecords": in_use}

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._runner.get_loop()

    def invoke(self, event: object, context: LambdaContext) -> Response:
        try:
            return self._runner.run(self._traced(event, context))
        finally:
            telemetry.flush()  # Lambda freezes the environment once the handler returns

    def close(self) -> None:
        """Close the clients, then the loop, then the exporters."""
        self._runner.run(self._exits.aclose())
        self._runner.close()
        telemetry.stop()

    async def _traced(self, event: object, context: LambdaContext) -> Response:
        """The invocation's span, in the runner's own context (the one every invocation's tasks copy)."""
        with telemetry.invocation(context.aws_request_id, cold=self._batch is None):
            return await self._invoke(event, context)

    async def _invoke(self, event: object, context: LambdaContext) -> Response:
        structlog.contextvars.clear_contextvars()  # the runner's context outlives each invocation
        structlog.contextvars.bind_contextvars(awsRequestId=context.aws_request_id)
        try:
            sqs_event = parse_event(event)
        except InvalidEventError as exc:
            log.error("invocation.invalid_event", error=str(exc))
            raise
        messages = sqs_event.messages
        cold = self._batch is None
        batch = self._batch or await self._open()
        budget_ms = context.get_remaining_time_in_millis() - self.settings.lambda_deadline_margin_ms
        replies = await batch.settle(messages, budget_ms / 1000, sqs_event.queue or "")
        failures = [message.message_id for message in messages if not replies[message.message_id].acknowledged]
        log.info(
            "invocation.finished",
            queue=sqs_event.queue,
            messages=len(messages),
            failures=len(failures),
            coldStart=cold,
            remainingMs=context.get_remaining_time_in_millis(),
        )
        if self.settings.metrics_on:
            self._emitter.flush()
        _raise_if_the_environment_failed(list(replies.values()))
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}

    async def _open(self) -> Batch:
        settings = self.settings
        session = self._session or make_session()
        slots = settings.max_in_flight_records  # a fixed bound: one invocation is too short for AIMD to learn
        self._limiter = Limiter(slots, floor=slots)
        ingest = await open_ingest(self._exits, settings, self._metrics, self._limiter, session=session)
        dead_letter = None
        if settings.dead_letter_queue_url:
            sqs = await open_sqs(self._exits, session, SQS_POOL, wait_s=0)
            dead_letter = DeadLetter(sqs, settings.dead_letter_queue_url)
        self.clients = (ingest,) if dead_letter is None else (ingest, dead_letter.client)
        self._batch = Batch(ingest, self._metrics, dead_letter)
        log.info("lambda.started", **settings.public_view())
        return self._batch


def _raise_if_the_environment_failed(replies: list[Reply]) -> None:
    kinds = {reply.environment for reply in replies}
    if replies and None not in kinds:
        log.error("invocation.failed", kinds=sorted(str(kind) for kind in kinds))
        raise EnvironmentFailureError(f"every message failed because AWS did ({', '.join(sorted(map(str, kinds)))})")


@functools.cache
def runtime() -> LambdaRuntime:
    """The execution environment's runtime, made by the first invocation from the environment's settings.

    A bad setting fails the invocation with one logged line that names the variable (the worker's exit 2)."""
    try:
        settings = load_settings(LambdaSettings)
    except ConfigurationError as exc:
        configure_logging("INFO", "json")  # the settings' own logging choices may be what is invalid
        log.error("lambda.configuration_invalid", error=str(exc))
        raise ConfigurationError(str(exc)) from None
    configure_logging(settings.log_level, settings.log_format)
    return LambdaRuntime(settings)


def handler(event: object, context: LambdaContext) -> Response:
    """Settle an SQS event source mapping's batch; answer the messages to leave on the queue."""
    return runtime().invoke(event, context)


def close() -> None:
    """Close the clients and the loop, if open; a later invocation opens new ones."""
    if runtime.cache_info().currsize:
        runtime().close()
        runtime.cache_clear()
