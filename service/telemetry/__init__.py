"""Telemetry: OpenTelemetry traces and OTLP metrics (docs/observability.md), as a facade that the runtimes call.

Without the `otel` extra, or with it and no OTLP endpoint in the standard `OTEL_*` variables, or with
`OTEL_SDK_DISABLED=true`, nothing is imported and every call is a no-op that returns a shared object: the
worker, the Lambda handler and backfill run exactly as they would without this module.

    start(otlp_metrics)  once per process: reads OTEL_*; imports the SDK (`service.telemetry.sdk`) only if asked
    receive, process, invocation, write, send, backfill_object    one span each (service/telemetry/spans.py)
    waited(what)         an event on the current span: how long a wait for a slot or a pace turn took
    ids()                the current span's W3C trace and span ids, for the log lines (service/logs.py)
    flush() / stop()     export what is pending (Lambda: each invocation) / at the end of the process
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

import structlog

if TYPE_CHECKING:
    from service.metrics import Figure
    from service.telemetry.sdk import Exporting
    from service.telemetry.spans import Spans

log = structlog.get_logger("service.telemetry")

_exporting: Exporting | None = None
_spans: Spans | None = None  # while traces are exported


class Span(Protocol):
    def note(self, **attributes: str | int | None) -> None: ...


class _Noop:
    """What every call answers while nothing is exported: a span that records nothing."""

    __slots__ = ()

    def note(self, **attributes: str | int | None) -> None:
        pass

    def __enter__(self) -> _Noop:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


NOOP = _Noop()


def wanted(env: Mapping[str, str]) -> tuple[bool, bool]:
    """Whether the OTEL_* variables ask for traces, and for metrics, to be exported."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False, False
    endpoint = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip())
    traces = endpoint or bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip())
    metrics = endpoint or bool(env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "").strip())
    return traces and env.get("OTEL_TRACES_EXPORTER", "otlp").strip() != "none", metrics


def start(*, otlp_metrics: bool = False) -> bool:
    """Export traces (and metrics, if `otlp_metrics`) when the OTEL_* variables say where; True if anything is."""
    global _exporting, _spans  # noqa: PLW0603 - one exporter per process, like OpenTelemetry's global providers
    traces, metrics = wanted(os.environ)
    metrics = metrics and otlp_metrics
    if _exporting is not None or not (traces or metrics):
        return _exporting is not None
    try:
        from service.telemetry.sdk import Exporting  # noqa: PLC0415 - the optional extra, only when configured
    except ImportError:
        log.warning("telemetry.unavailable", note="OTEL_* asks for an export: pip install 'photo-ingest[otel]'")
        return False
    _exporting = Exporting(traces=traces, metrics=metrics)
    _spans = _exporting.spans
    return True


def flush() -> None:
    if _exporting is not None:
        _exporting.flush()


def stop() -> None:
    """Export what is pending and end the exporters; a later `start` begins again."""
    global _exporting, _spans  # noqa: PLW0603 - see start
    if _exporting is not None:
        _exporting.stop()
    _exporting = _spans = None


Sink = Callable[[Mapping[str, "Figure"]], None]


def metrics_outputs(
    exporter: str, dimensions: Mapping[str, str], gauges: Callable[[], Mapping[str, float]]
) -> tuple[bool, Sink | None]:
    """For METRICS_EXPORTER: whether to write EMF, and where each interval's figures go through OTLP (the gauges
    are observed). `otlp` with nothing to export through falls back to EMF, said once: no metric is lost."""
    sink = None
    if exporter in ("otlp", "both") and _exporting is not None:
        sink = _exporting.metrics_sink(dimensions, gauges)
    if exporter == "otlp" and sink is None:
        log.error("metrics.otlp_unavailable", note="needs the otel extra and an OTLP endpoint; writing EMF instead")
        return True, None
    return exporter in ("emf", "both"), sink


def receive(queue: str) -> AbstractContextManager[Span]:
    """A CLIENT span around one ReceiveMessage; note(messages=n) once it answered."""
    return NOOP if _spans is None else _spans.receive(queue)


def process(queue: str, message_id: str, receive_count: int, trace_header: str | None) -> AbstractContextManager[Span]:
    """A CONSUMER span around one message, linked (never parented) to the context in its AWSTraceHeader."""
    return NOOP if _spans is None else _spans.process(queue, message_id, receive_count, trace_header)


def disposed(span: Span, disposition: str, reason: str) -> None:
    """A message's disposition on its process span, and its reason when it was not deleted (kept or quarantined)."""
    span.note(disposition=str(disposition), reason=None if disposition == "delete" else reason)


def invocation(request_id: str, cold: bool) -> AbstractContextManager[Span]:
    """The Lambda invocation's span: each record's process span is its child."""
    return NOOP if _spans is None else _spans.invocation(request_id, cold)


def write() -> AbstractContextManager[Span]:
    """One record's conditional write (the DynamoDB span); note(outcome=...) once settled."""
    return NOOP if _spans is None else _spans.write()


def send(queue: str, messages: int) -> AbstractContextManager[Span]:
    """A PRODUCER span around one batch that backfill sends through the queue."""
    return NOOP if _spans is None else _spans.send(queue, messages)


def backfill_object(key: str) -> AbstractContextManager[Span]:
    """One object that backfill writes directly."""
    return NOOP if _spans is None else _spans.backfill_object(key)


def waited(what: str) -> AbstractContextManager[object]:
    """Times a wait for one of our own limits (`slot`, `pace`), as an event on the current span."""
    return NOOP if _spans is None else _spans.waited(what)


def trace_header() -> str | None:
    """The current span's context as an X-Ray `AWSTraceHeader` value, to send along with a message."""
    return None if _spans is None else _spans.trace_header()


def ids() -> tuple[str, str] | None:
    """The current span's (trace_id, span_id) in W3C hex, or None outside a span."""
    return None if _spans is None else _spans.ids()


def queue_name(url_or_arn: str) -> str:
    """A queue's name, from its URL (…/<account>/<name>) or ARN (arn:aws:sqs:<region>:<account>:<name>)."""
    return url_or_arn.rstrip("/").rpartition("/")[2].rpartition(":")[2]
