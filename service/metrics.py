"""Counters and timings, flushed every interval as one CloudWatch Embedded Metric Format (EMF) line.

EMF lines are plain JSON on stdout: the awslogs driver ships them, and CloudWatch Logs turns them into metrics
with no agent and no PutMetricData permission. The same numbers go into a `metrics.summary` log line.

One line per interval, per the EMF specification:

    {"_aws": {"Timestamp": <ms since epoch>,
              "CloudWatchMetrics": [{"Namespace": ..., "Dimensions": [[<dimension names>]],
                                     "Metrics": [{"Name": ..., "Unit": ...}, ...]}]},
     "<dimension name>": "<value>", ..., "<metric name>": <number>, ...}

Counters are always present (0 when nothing happened, so alarms see data). A timing with no sample in the
interval (no put, no message) is left out of both the declaration and the line: a latency of 0 would be a lie.
`QueueLag` and `EventAge` are distributions: `{"Values": [...], "Counts": [...]}` (at most 100 each, EMF's
limit), so that CloudWatch gives any percentile of them across a fleet (`p50`, `p99` as the statistic).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TextIO

import structlog

from service.samples import Distribution, Samples, distribution, percentile, summary

log = structlog.get_logger("service.metrics")

RECORD_OUTCOMES = ("inserted", "duplicate", "skipped", "conflict", "invalid", "failed")
RECORD_NOTES = ("object_missing",)  # counted in RecordsSkipped too: the reason, broken out
# `untrusted` is counted in MessagesQuarantined too: a sender outside ALLOWED_BUCKETS or ALLOWED_TOPIC_ARNS
MESSAGE_EVENTS = ("received", "deleted", "released", "quarantined", "untrusted", "delete_failed")
THROTTLE_SCOPES = ("key_range", "table_capacity", "account_limit", "other")  # service.aws.errors.ThrottleScope
Figure = float | Distribution
DISTRIBUTIONS = ("QueueLag", "EventAge")  # figures that are EMF distributions; OTLP histograms


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


METRIC_UNITS: dict[str, str] = (
    {f"Records{_camel(outcome)}": "Count" for outcome in (*RECORD_OUTCOMES, *RECORD_NOTES)}
    | {f"Messages{_camel(event)}": "Count" for event in MESSAGE_EVENTS}
    | {f"Throttled{_camel(scope)}": "Count" for scope in THROTTLE_SCOPES}
    | {
        "PutLatencyP50": "Milliseconds",
        "PutLatencyP99": "Milliseconds",
        "MessageAgeP50": "Seconds",
        "MessageAgeMax": "Seconds",
        "QueueLag": "Seconds",
        "EventAge": "Seconds",
        "InFlightRecords": "Count",
        "InFlightLimit": "Count",
        "InFlightBytes": "Bytes",
        "Pollers": "Count",
    }
)
_NAMESPACE = re.compile(r"[A-Za-z0-9._#:/-]{1,255}")  # what CloudWatch accepts as a namespace
_MAX_DIMENSIONS = 30


class Metrics:
    """In-memory counters for one process. Cheap enough for the hot path: a dict increment per event."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.records: Counter[str] = Counter()
        self.messages: Counter[str] = Counter()
        self.throttles: Counter[str] = Counter()  # throttled puts, by scope
        self.put_latency_ms = Samples()
        self.message_age_s = Samples()
        self.queue_lag_s = Samples()  # SentTimestamp to the item's write
        self.event_age_s = Samples()  # the event's own time to the item's write (S3's own notifications only)

    def sample(self, series: Samples, value: float) -> None:
        series.add(value)

    def snapshot(self, gauges: Mapping[str, float]) -> dict[str, Figure]:
        """Every figure of the interval, by metric name, and the gauges read now; resets the interval."""
        counted = (*RECORD_OUTCOMES, *RECORD_NOTES)
        figures: dict[str, Figure] = {f"Records{_camel(o)}": self.records[o] for o in counted}
        figures |= {f"Messages{_camel(e)}": self.messages[e] for e in MESSAGE_EVENTS}
        figures |= {f"Throttled{_camel(s)}": self.throttles[s] for s in THROTTLE_SCOPES}
        if self.put_latency_ms:
            figures["PutLatencyP50"] = round(percentile(self.put_latency_ms, 0.50), 3)
            figures["PutLatencyP99"] = round(percentile(self.put_latency_ms, 0.99), 3)
        if self.message_age_s:
            figures["MessageAgeP50"] = round(percentile(self.message_age_s, 0.50), 3)
            figures["MessageAgeMax"] = round(self.message_age_s.peak, 3)
        for name, series in zip(DISTRIBUTIONS, (self.queue_lag_s, self.event_age_s), strict=True):
            if series:
                figures[name] = distribution(series)
        figures |= gauges
        self._reset()
        return figures


def emf_problems(namespace: str, dimensions: Mapping[str, str]) -> list[str]:
    """What CloudWatch would reject in these settings; empty when they are valid."""
    problems = []
    if not _NAMESPACE.fullmatch(namespace):
        problems.append(f"METRICS_NAMESPACE {namespace!r} must be 1-255 of [A-Za-z0-9._#:/-]")
    if len(dimensions) > _MAX_DIMENSIONS:
        problems.append(f"METRICS_DIMENSIONS has {len(dimensions)} dimensions; CloudWatch allows {_MAX_DIMENSIONS}")
    for name, value in dimensions.items():
        if name in METRIC_UNITS or name == "_aws" or name.startswith(":"):
            problems.append(f"METRICS_DIMENSIONS name {name!r} is reserved")
        for text, limit in ((name, 250), (value, 1024)):
            if not text.strip() or not text.isascii() or len(text) > limit:
                problems.append(f"METRICS_DIMENSIONS {text!r} must be 1-{limit} ASCII characters, not all blank")
    return problems


def emf_line(figures: Mapping[str, Figure], namespace: str, dimensions: Mapping[str, str]) -> str:
    """One EMF document on one line: every metric is declared in `Metrics` and present at the top level."""
    document: dict[str, object] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [sorted(dimensions)],
                    "Metrics": [{"Name": name, "Unit": METRIC_UNITS[name]} for name in figures],
                }
            ],
        },
        **dimensions,
        **figures,
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False)


class MetricsEmitter:
    """Writes one EMF line and one summary log line per flush. Settings CloudWatch would reject turn the EMF
    line off (logged once), never the worker. With `otlp` (METRICS_EXPORTER=otlp or both), the same figures go
    there too; `emf=False` leaves the EMF line out."""

    def __init__(
        self,
        metrics: Metrics,
        namespace: str,
        dimensions: Mapping[str, str],
        gauges: Callable[[], Mapping[str, float]],
        out: TextIO | None = None,
        *,
        emf: bool = True,
        otlp: Callable[[Mapping[str, Figure]], None] | None = None,
    ) -> None:
        self._metrics = metrics
        self._namespace = namespace
        self._dimensions = dict(dimensions)
        self._gauges = gauges  # e.g. InFlightRecords and InFlightLimit, each declared in METRIC_UNITS
        self._out = out
        self._problems = emf_problems(namespace, self._dimensions)
        self._reported = False
        self._emf = emf
        self._otlp = otlp

    def flush(self) -> dict[str, Figure]:
        figures = self._metrics.snapshot(self._gauges())
        if self._otlp is not None:
            self._otlp(figures)
        if self._emf and not self._problems:
            out = self._out or sys.stdout
            out.write(emf_line(figures, self._namespace, self._dimensions) + "\n")
            out.flush()
        elif self._emf and not self._reported:
            log.error("metrics.emf_disabled", problems=self._problems)
            self._reported = True
        log.info("metrics.summary", **summary(figures))
        return figures
