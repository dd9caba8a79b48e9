"""The worker's metrics through OTLP: each interval's figures that the EMF line carries, read from the same
registry (`service.metrics.METRIC_UNITS`), with the same names (a view per name keeps its case: the SDK would
lowercase it), the same dimensions (as attributes) and the same units, in UCUM as OpenTelemetry writes them
(Count is 1, Milliseconds ms, Seconds s).

A distribution (`QueueLag`, `EventAge`: EMF's `{"Values", "Counts"}`) goes out as an OTLP histogram with
explicit buckets suited to seconds of freshness, each value recorded as often as its count says (rounded, at
least once): a collector or Prometheus then computes the same percentiles CloudWatch does."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial

from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation, _Gauge
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from service.metrics import DISTRIBUTIONS, METRIC_UNITS, Figure

# Seconds from a message's arrival (or its event) to its item: sub-second when fresh, minutes in a backlog.
FRESHNESS_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400)

UCUM = {"Count": "1", "Milliseconds": "ms", "Seconds": "s", "Bytes": "By", "Percent": "%"}


def views() -> list[View]:
    """The SDK lowercases instrument names; a view per metric keeps the EMF name (RecordsInserted)."""
    return [
        View(instrument_name=name, name=name, aggregation=ExplicitBucketHistogramAggregation(FRESHNESS_BUCKETS_S))
        if name in DISTRIBUTIONS
        else View(instrument_name=name, name=name)
        for name in METRIC_UNITS
    ]


def unit(name: str) -> str:
    emf = METRIC_UNITS.get(name, "None")
    return UCUM.get(emf, emf)


class OtlpMetrics:
    """Records each interval's figures; observes the gauges when the reader collects."""

    def __init__(self, meter: Meter, dimensions: Mapping[str, str], gauges: Callable[[], Mapping[str, float]]) -> None:
        self._meter = meter
        self._attributes = dict(dimensions)
        self._gauges = gauges
        self._observed = set(gauges())
        for name in self._observed:
            meter.create_observable_gauge(name, [partial(self._observe, name)], unit=unit(name))
        self._counters: dict[str, Counter] = {}
        self._set: dict[str, _Gauge] = {}
        self._histograms: dict[str, Histogram] = {}

    def _observe(self, name: str, _options: CallbackOptions) -> Iterable[Observation]:
        value = self._gauges().get(name)
        return [] if value is None else [Observation(value, self._attributes)]

    def record(self, figures: Mapping[str, Figure]) -> None:
        for name, value in figures.items():
            if name in self._observed:
                continue  # observed when collected
            if isinstance(value, dict):
                self._distribution(name, value)
                continue
            if METRIC_UNITS.get(name) == "Count":
                if name not in self._counters:
                    self._counters[name] = self._meter.create_counter(name, unit=unit(name))
                self._counters[name].add(value, self._attributes)
            else:
                if name not in self._set:
                    self._set[name] = self._meter.create_gauge(name, unit=unit(name))
                self._set[name].set(value, self._attributes)

    def _distribution(self, name: str, figure: Mapping[str, list[float]]) -> None:
        if name not in self._histograms:
            self._histograms[name] = self._meter.create_histogram(name, unit=unit(name))
        histogram = self._histograms[name]
        for value, count in zip(figure["Values"], figure["Counts"], strict=True):
            for _ in range(max(1, round(count))):
                histogram.record(value, self._attributes)
