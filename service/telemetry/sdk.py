"""The OpenTelemetry SDK, set up from the standard OTEL_* variables only (the `otel` extra).

The exporters read their endpoint, headers, timeout and protocol details from the environment themselves;
the sampler comes from OTEL_TRACES_SAMPLER/_ARG and the resource from OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES (service.name is photo-ingest unless they name it). The providers are this process's
own, not OpenTelemetry's global ones, so starting and stopping never fights another library's set-up.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from service.metrics import Figure
from service.telemetry.meters import OtlpMetrics, views
from service.telemetry.spans import Spans

NAME = "photo-ingest"


def resource() -> Resource:
    detected = Resource.create()
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: NAME}))
    return detected


class Exporting:
    """The providers while something is exported; the facade's calls, answered."""

    def __init__(self, *, traces: bool, metrics: bool) -> None:
        self._tracer_provider: TracerProvider | None = None
        self._meter_provider: MeterProvider | None = None
        self.spans: Spans | None = None
        if traces:
            self._tracer_provider = TracerProvider(resource=resource())
            self._tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            self.spans = Spans(self._tracer_provider.get_tracer(NAME))
        if metrics:
            reader = PeriodicExportingMetricReader(OTLPMetricExporter())
            self._meter_provider = MeterProvider(resource=resource(), metric_readers=[reader], views=views())

    def flush(self) -> None:
        for provider in (self._tracer_provider, self._meter_provider):
            if provider is not None:
                provider.force_flush()

    def stop(self) -> None:
        for provider in (self._tracer_provider, self._meter_provider):
            if provider is not None:
                provider.shutdown()

    def metrics_sink(
        self, dimensions: Mapping[str, str], gauges: Callable[[], Mapping[str, float]]
    ) -> Callable[[Mapping[str, Figure]], None] | None:
        if self._meter_provider is None:
            return None
        return OtlpMetrics(self._meter_provider.get_meter(NAME), dimensions, gauges).record
