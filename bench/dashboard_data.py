"""The data behind bench/dashboard_render.py, pure: EMF lines to datapoints, CloudWatch's statistics per
period, a dashboard widget's metric lines, and the template's alarms with their state on the same datapoints."""

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
COMPARISONS = {
    "GreaterThanThreshold": float.__gt__,
    "GreaterThanOrEqualToThreshold": float.__ge__,
    "LessThanThreshold": float.__lt__,
    "LessThanOrEqualToThreshold": float.__le__,
}


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
                        points[key].append((at_s, float(document[metric["Name"]])))
    return points


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


def metric_lines(widget: dict[str, Any]) -> list[MetricLine]:
    """A metric widget's lines: [namespace, name, dimension, value, ..., {options}]."""
    found = []
    for line in widget["metrics"]:
        options = line[-1] if isinstance(line[-1], dict) else {}
        namespace, name, *pairs = line[:-1] if options else line
        dimensions = tuple(sorted(zip(pairs[::2], pairs[1::2], strict=True)))
        found.append(
            MetricLine((namespace, name, dimensions), options.get("stat", widget["stat"]), options.get("label", name))
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


@dataclass(frozen=True)
class Alarm:
    arn: str
    key: SeriesKey
    stat: str
    period_s: int
    periods: int
    threshold: float
    comparison: str

    def describe(self) -> str:
        operator = {"GreaterThanThreshold": ">", "GreaterThanOrEqualToThreshold": ">="}.get(self.comparison, "<")
        where = ", ".join(value for _, value in self.key[2])
        return f"{self.key[1]} ({where}) {self.stat} {operator} {self.threshold:g}, {self.periods} x {self.period_s} s"

    def state(self, points: Points, start_s: float) -> tuple[str, float | None]:
        """ALARM when the last `periods` periods of the sample all breach (missing data: not breaching), and the
        end of the first period that breached."""
        values = aggregate(points.get(self.key, []), self.stat, self.period_s, start_s)
        breaching = [(at, COMPARISONS[self.comparison](value, self.threshold)) for at, value in values]
        first = next((at + self.period_s for at, breached in breaching if breached), None)
        last = [breached for _, breached in breaching[-self.periods :]]
        return ("ALARM" if last and all(last) else "OK"), first


def alarms(template: dict[str, Any], names: dict[str, str]) -> list[Alarm]:
    """The template's CloudWatch alarms, with its references resolved to the standalone dashboard's values."""
    parameters = template["Parameters"]

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and "Ref" in value:
            return parameters[value["Ref"]]["Default"]
        if isinstance(value, dict) and "Fn::GetAtt" in value:
            return names[".".join(value["Fn::GetAtt"])]
        return value

    found = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            p = resource["Properties"]
            dimensions = tuple(sorted((d["Name"], resolve(d["Value"])) for d in p["Dimensions"]))
            key = (p["Namespace"], p["MetricName"], dimensions)
            threshold = float(resolve(p["Threshold"]))
            found.append(
                Alarm(
                    names[f"{logical_id}.Arn"],
                    key,
                    p["Statistic"],
                    int(p["Period"]),
                    int(p["EvaluationPeriods"]),
                    threshold,
                    p["ComparisonOperator"],
                )
            )
    return found
