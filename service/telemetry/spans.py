"""The spans, named and attributed by OpenTelemetry's messaging and database semantic conventions.

receive <queue>        CLIENT     one ReceiveMessage; messaging.batch.message_count
process <queue>        CONSUMER   one message; linked to its AWSTraceHeader's context, never its child;
                                  messaging.message.id, the receive count, the disposition and its reason
  photo.write          CLIENT     one record's conditional write: db.system=dynamodb, its outcome; the
                                  waits for a pace turn are its events, the wait for a slot the message's
invoke                 CONSUMER   one Lambda invocation (faas.*): its records' process spans are children
send <queue>           PRODUCER   one batch that `backfill --via-queue` sends; its context rides along
backfill.object        INTERNAL   one object that backfill writes directly
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.propagators.aws import AwsXRayPropagator
from opentelemetry.trace import Link, SpanKind, Tracer

XRAY_HEADER = "X-Amzn-Trace-Id"
SYSTEM = {"messaging.system": "aws_sqs"}
# note(...)'s keywords, as attribute names
NAMES = {
    "messages": "messaging.batch.message_count",
    "disposition": "photo_ingest.disposition",
    "reason": "photo_ingest.reason",
    "outcome": "photo_ingest.outcome",
}


# The span events that time a wait for our own limits, by what was waited for (greppable, named in the docs)
WAITED = {"slot": "slot.waited", "pace": "pace.waited"}


class Noted:
    """A started span, as the facade's callers see it: `note` sets attributes by their short names."""

    __slots__ = ("span",)

    def __init__(self, span: trace.Span) -> None:
        self.span = span

    def note(self, **attributes: str | int | None) -> None:
        for name, value in attributes.items():
            if value is not None:
                self.span.set_attribute(NAMES.get(name, f"photo_ingest.{name}"), value)


class Spans:
    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._xray = AwsXRayPropagator()

    @contextmanager
    def _span(
        self, name: str, kind: SpanKind, attributes: Mapping[str, Any], links: Sequence[Link] = ()
    ) -> Iterator[Noted]:
        with self._tracer.start_as_current_span(name, kind=kind, attributes=attributes, links=links) as span:
            yield Noted(span)

    def receive(self, queue: str) -> AbstractContextManager[Noted]:
        attributes = SYSTEM | {"messaging.operation.type": "receive", "messaging.destination.name": queue}
        return self._span(f"receive {queue}", SpanKind.CLIENT, attributes)

    def process(
        self, queue: str, message_id: str, receive_count: int, trace_header: str | None
    ) -> AbstractContextManager[Noted]:
        attributes = SYSTEM | {
            "messaging.operation.type": "process",
            "messaging.destination.name": queue,
            "messaging.message.id": message_id,
            "messaging.aws_sqs.receive_count": receive_count,
        }
        return self._span(f"process {queue}", SpanKind.CONSUMER, attributes, self._links(trace_header))

    def invocation(self, request_id: str, cold: bool) -> AbstractContextManager[Noted]:
        attributes = {"faas.trigger": "pubsub", "faas.invocation_id": request_id, "faas.coldstart": cold}
        return self._span("invoke", SpanKind.CONSUMER, attributes)

    def write(self) -> AbstractContextManager[Noted]:
        return self._span("photo.write", SpanKind.CLIENT, {"db.system": "dynamodb"})

    def send(self, queue: str, messages: int) -> AbstractContextManager[Noted]:
        attributes = SYSTEM | {
            "messaging.operation.type": "send",
            "messaging.destination.name": queue,
            "messaging.batch.message_count": messages,
        }
        return self._span(f"send {queue}", SpanKind.PRODUCER, attributes)

    def backfill_object(self, key: str) -> AbstractContextManager[Noted]:
        return self._span("backfill.object", SpanKind.INTERNAL, {"photo_ingest.key": key[:1024]})

    @contextmanager
    def waited(self, what: str) -> Iterator[None]:
        span = trace.get_current_span()
        if not span.is_recording():  # not sampled: nothing to time
            yield
            return
        started = time.perf_counter()
        try:
            yield
        finally:
            span.add_event(WAITED[what], {"wait_ms": round((time.perf_counter() - started) * 1000, 3)})

    def trace_header(self) -> str | None:
        carrier: dict[str, str] = {}
        self._xray.inject(carrier)
        return carrier.get(XRAY_HEADER)

    @staticmethod
    def ids() -> tuple[str, str] | None:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return f"{context.trace_id:032x}", f"{context.span_id:016x}"

    def _links(self, trace_header: str | None) -> list[Link]:
        """The producer's context from an X-Ray trace header, as a link; none if there is no valid one."""
        if not trace_header:
            return []
        context = trace.get_current_span(self._xray.extract({XRAY_HEADER: trace_header})).get_span_context()
        return [Link(context, {"messaging.link.source": "AWSTraceHeader"})] if context.is_valid else []
