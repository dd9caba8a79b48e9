"""The data behind bench/dashboard_render.py, pure: EMF lines to datapoints, CloudWatch's statistics per
period, a dashboard widget's metric lines, and what the template's ${...} variables stand for in the standalone
dashboard. The template's alarms: bench/dashboard_alarms.py."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]  # namespace, metric name, sorted dimensions
Points = dict[SeriesKey, list[tuple[float, float]]]  # (seconds since epoch, value)


def read_emf(lines: Iterable[str]) -> Points:
    """Every metric value of every EMF document, by namespace, name and dimensions."""
    points: Points = defaultdict(list)
    for line in lines:
        document = json.loads(line) if line.strip().startswith("{") else {}
        if "_aws" not in document:
            continue
        at_s = document["_aws"]["Timestamp"] / 1000
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dimensions = tuple(sorted((name, str(document[name])) for name in dimension_set))
                for metric in directive["Metrics"]:
                    if metric["Name"] in document:
                        key = (directive["Namespace"], metric["Name"], dimensions)
                        points[key].extend((at_s, value) for value in values(document[metric["Name"]]))
    return points


def values(member: Any) -> list[float]:
    """A metric's values: one number, or a distribution's Values, each as often as its count says."""
    if not isinstance(member, dict):
        return [float(member)]
    pairs = zip(member["Values"], member["Counts"], strict=True)
    return [float(value) for value, count in pairs for _ in range(max(1, round(count)))]


def statistic(values: list[float], stat: str) -> float:
    """CloudWatch's statistic of the datapoints in one period."""
    if stat.startswith("p"):
        ordered = sorted(values)
        return ordered[max(0, math.ceil(float(stat[1:]) / 100 * len(ordered)) - 1)]
    summary = {"Sum": sum, "Maximum": max, "Minimum": min, "SampleCount": len}
    return float(summary[stat](values)) if stat in summary else sum(values) / len(values)


def aggregate(
    points: list[tuple[float, float]], stat: str, period_s: float, start_s: float
) -> list[tuple[float, float]]:
    """(period start, seconds after start_s; the statistic of its datapoints), for each period with data."""
    buckets: dict[int, list[float]] = defaultdict(list)
    for at_s, value in points:
        buckets[math.floor((at_s - start_s) / period_s)].append(value)
    return [(index * period_s, statistic(values, stat)) for index, values in sorted(buckets.items())]


@dataclass(frozen=True)
class MetricLine:
    key: SeriesKey
    stat: str
    label: str
    axis: str = "left"  # the line's option `"yAxis": "right"` draws it against the widget's right axis


def metric_lines(widget: dict[str, Any]) -> list[MetricLine]:
    """A metric widget's lines: [namespace, name, dimension, value, ..., {options}]."""
    found = []
    for line in widget["metrics"]:
        options = line[-1] if isinstance(line[-1], dict) else {}
        namespace, name, *pairs = line[:-1] if options else line
        dimensions = tuple(sorted(zip(pairs[::2], pairs[1::2], strict=True)))
        found.append(
            MetricLine(
                (namespace, name, dimensions),
                options.get("stat", widget["stat"]),
                options.get("label", name),
                options.get("yAxis", "left"),
            )
        )
    return found


def placeholders(template_body: Any, standalone: Any) -> dict[str, str]:
    """What each ${...} of the template's DashboardBody stands for in the standalone file, found by walking the
    two documents side by side."""
    if isinstance(template_body, dict):
        pairs = [(template_body[k], standalone[k]) for k in template_body]
    elif isinstance(template_body, list):
        pairs = list(zip(template_body, standalone, strict=True))
    else:
        match = re.fullmatch(r"\$\{([^}]+)\}", str(template_body))
        return {match[1]: str(standalone)} if match else {}
    return {name: value for body, value in pairs for name, value in placeholders(body, value).items()}
