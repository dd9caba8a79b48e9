"""The worker's metrics through OTLP: each interval's figures that the EMF line carries, read from the same
registry (`service.metrics.METRIC_UNITS`), with the same names (a view per name keeps its case: the SDK would
lowercase it), the same dimensions (as attributes) and the same units, in UCUM as OpenTelemetry writes them
(Count is 1, Milliseconds ms, Seconds s)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import partial

from opentelemetry.metrics import CallbackOptions, Counter, Meter, Observation, _Gauge
from opentelemetry.sdk.metrics.view import View

from service.metrics import METRIC_UNITS

UCUM = {"Count": "1", "Milliseconds": "ms", "Seconds": "s", "Bytes": "By", "Percent": "%"}


def views() -> list[View]:
    """The SDK lowercases instrument names; a view per metric keeps the EMF name (RecordsInserted)."""
    return [View(instrument_name=name, name=name) for name in METRIC_UNITS]


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

    def _observe(self, name: str, _options: CallbackOptions) -> Iterable[Observation]:
        value = self._gauges().get(name)
        return [] if value is None else [Observation(value, self._attributes)]

    def record(self, figures: Mapping[str, float]) -> None:
        for name, value in figures.items():
            if name in self._observed or not isinstance(value, int | float):
                continue  # observed when collected; a figure that is not one number has no OTLP twin yet
            if METRIC_UNITS.get(name) == "Count":
                if name not in self._counters:
                    self._counters[name] = self._meter.create_counter(name, unit=unit(name))
                self._counters[name].add(value, self._attributes)
            else:
                if name not in self._set:
                    self._set[name] = self._meter.create_gauge(name, unit=unit(name))
                self._set[name].set(value, self._attributes)
