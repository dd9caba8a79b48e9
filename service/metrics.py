"""Counters and timings, flushed every interval as one CloudWatch Embedded Metric Format (EMF) line.

EMF lines are plain JSON on stdout: the awslogs driver ships them, and CloudWatch turns them into metrics
with no agent and no PutMetricData permission. The same numbers go into a `metrics.summary` log line.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TextIO

import structlog

log = structlog.get_logger("service.metrics")

RECORD_OUTCOMES = ("inserted", "duplicate", "skipped", "conflict", "failed")
MESSAGE_EVENTS = ("received", "deleted", "released", "quarantined", "delete_failed")
_SAMPLE_CAP = 50_000  # per series per interval; bounds memory at any rate

_UNITS = {
    "Milliseconds": ("PutLatencyP50", "PutLatencyP99"),
    "Seconds": ("MessageAgeP50", "MessageAgeMax", "EndToEndLagMax"),
}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def percentile(samples: list[float], fraction: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Metrics:
    """In-memory counters for one process. Cheap enough for the hot path: a dict increment per event."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.records: Counter[str] = Counter()
        self.messages: Counter[str] = Counter()
        self.put_latency_ms: list[float] = []
        self.message_age_s: list[float] = []
        self.lag_s: list[float] = []

    def sample(self, series: list[float], value: float) -> None:
        if len(series) < _SAMPLE_CAP:
            series.append(value)

    def snapshot(self, in_flight: int) -> dict[str, float]:
        """Every figure of the interval, by metric name; resets the interval."""
        figures: dict[str, float] = {f"Records{_camel(o)}": self.records[o] for o in RECORD_OUTCOMES}
        figures |= {f"Messages{_camel(e)}": self.messages[e] for e in MESSAGE_EVENTS}
        figures |= {
            "PutLatencyP50": percentile(self.put_latency_ms, 0.50),
            "PutLatencyP99": percentile(self.put_latency_ms, 0.99),
            "MessageAgeP50": percentile(self.message_age_s, 0.50),
            "MessageAgeMax": max(self.message_age_s, default=0.0),
            "EndToEndLagMax": max(self.lag_s, default=0.0),
            "InFlightRecords": in_flight,
        }
        self._reset()
        return figures


def emf_line(figures: Mapping[str, float], namespace: str, dimensions: Mapping[str, str]) -> str:
    unit_of = {name: unit for unit, names in _UNITS.items() for name in names}
    document: dict[str, object] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [sorted(dimensions)],
                    "Metrics": [{"Name": n, "Unit": unit_of.get(n, "Count")} for n in figures],
                }
            ],
        },
        **dimensions,
        **figures,
    }
    return json.dumps(document, separators=(",", ":"))


class MetricsEmitter:
    """Writes one EMF line and one summary log line per flush."""

    def __init__(
        self,
        metrics: Metrics,
        namespace: str,
        dimensions: Mapping[str, str],
        in_flight: Callable[[], int],
        out: TextIO | None = None,
    ) -> None:
        self._metrics = metrics
        self._namespace = namespace
        self._dimensions = dict(dimensions)
        self._in_flight = in_flight
        self._out = out

    def flush(self) -> dict[str, float]:
        figures = self._metrics.snapshot(self._in_flight())
        out = self._out or sys.stdout
        out.write(emf_line(figures, self._namespace, self._dimensions) + "\n")
        out.flush()
        log.info("metrics.summary", **figures)
        return figures
