"""The template's CloudWatch alarms as bench/dashboard_render.py shows them, pure: each alarm's rule (metric,
statistic, period, threshold), read from config/cloudformation.yaml, and its state on a run's datapoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.dashboard_data import Points, SeriesKey, aggregate

COMPARISONS = {
    "GreaterThanThreshold": float.__gt__,
    "GreaterThanOrEqualToThreshold": float.__ge__,
    "LessThanThreshold": float.__lt__,
    "LessThanOrEqualToThreshold": float.__le__,
}


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
    """The template's CloudWatch alarms, with its references resolved to the standalone dashboard's values: a
    parameter to its default; a pseudo parameter (`AWS::StackName`, ...), a resource or an attribute to what its
    `${...}` stands for in the dashboard (`names`, from `placeholders`)."""
    parameters = template["Parameters"]

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and ("Ref" in value or "Fn::GetAtt" in value):
            name = value["Ref"] if "Ref" in value else ".".join(value["Fn::GetAtt"])
            if name in parameters:
                return parameters[name]["Default"]
            if name not in names:
                raise ValueError(f"an alarm refers to {name}, which the dashboard body never shows: no value for it")
            return names[name]
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
                    p.get("Statistic") or p["ExtendedStatistic"],  # p99 for QueueLag
                    int(p["Period"]),
                    int(p["EvaluationPeriods"]),
                    threshold,
                    p["ComparisonOperator"],
                )
            )
    return found
