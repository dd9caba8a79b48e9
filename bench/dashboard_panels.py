"""The panels of bench/dashboard_render.py, one function per widget type, each drawing into its matplotlib axes:
a metric widget's lines (a right axis for lines with `"yAxis": "right"`, "no data in this run" when none has a
datapoint), the text widget, and the alarm widget with each alarm's state on the run's datapoints."""

from __future__ import annotations

from typing import Any

from bench.dashboard_alarms import Alarm
from bench.dashboard_data import MetricLine, Points, aggregate, metric_lines


def clock(seconds: float, _: object = None) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def draw_metric(ax: Any, widget: dict[str, Any], points: Points, start_s: float, period_s: float) -> bool:
    """One metric widget: its lines (stacked if the widget is; those with `"yAxis": "right"` against a right
    axis), its horizontal annotations, its axis labels. False when not one of its lines has a datapoint: the
    panel then says "no data in this run"."""
    series = [
        (line, aggregate(points.get(line.key, []), line.stat, period_s, start_s)) for line in metric_lines(widget)
    ]
    right = ax.twinx() if any(line.axis == "right" for line, _ in series) else None
    plot(ax, right, series, stacked=bool(widget.get("stacked")))
    on_left = [values for line, values in series if line.axis != "right"]
    annotate(ax, widget, max((y for values in on_left for _, y in values), default=0.0))
    for axis, side in ((ax, "left"), (right, "right")):
        if axis is not None:
            peak = max((y for line, values in series if line.axis == side for _, y in values), default=0.0)
            axis.set_ylabel(widget.get("yAxis", {}).get(side, {}).get("label", ""), fontsize=8)
            axis.set_ylim(0, None if peak > 0 else 1)  # nothing above 0: a plain 0-1 scale, not matplotlib's 0-0.05
            axis.tick_params(labelsize=7)
    ax.set_title(widget["title"], loc="left", fontsize=10, fontweight="bold")
    ax.xaxis.set_major_formatter(clock)
    ax.grid(alpha=0.3)
    legend(ax, right)
    has_data = any(values for _, values in series)
    if not has_data:
        ax.text(0.5, 0.5, "no data in this run", transform=ax.transAxes, ha="center", va="center", color="0.4")
    return has_data


def plot(ax: Any, right: Any, series: list[tuple[MetricLine, list[tuple[float, float]]]], stacked: bool) -> None:
    """The lines, each in its own colour across both axes; a stacked widget's lines as one stack."""
    if stacked:
        xs = sorted({x for _, values in series for x, _ in values})
        stacks = [[dict(values).get(x, 0.0) for x in xs] for _, values in series]
        ax.stackplot(xs, *stacks, labels=[label_of(line, values) for line, values in series], alpha=0.85)
        return
    for index, (line, values) in enumerate(series):
        axis = right if right is not None and line.axis == "right" else ax
        xs, ys = [x for x, _ in values], [y for _, y in values]
        axis.plot(xs, ys, label=label_of(line, values), color=f"C{index}", marker=".", lw=1.4)


def legend(ax: Any, right: Any) -> None:
    """One legend for both axes, drawn on the top one so that no line hides it."""
    handles, labels = ax.get_legend_handles_labels()
    if right is None:
        ax.legend(handles, labels, fontsize=7, loc="best", framealpha=0.8)
        return
    right_handles, right_labels = right.get_legend_handles_labels()
    right.legend(handles + right_handles, labels + right_labels, fontsize=7, loc="upper right", framealpha=0.8)


def annotate(ax: Any, widget: dict[str, Any], top: float) -> None:
    """The widget's horizontal annotations: a dashed line, or only a legend entry when far above the data."""
    for annotation in widget.get("annotations", {}).get("horizontal", []):
        label = f"{annotation['label']}: {annotation['value']:g}"
        if annotation["value"] <= max(top, 1.0) * 1.5:
            ax.axhline(annotation["value"], color="tab:red", ls="--", lw=1, label=label)
        else:
            ax.plot([], [], color="tab:red", ls="--", label=f"{label} (off scale)")


def label_of(line: MetricLine, values: list[tuple[float, float]]) -> str:
    return line.label if values else f"{line.label} (no data)"


def draw_text(ax: Any, widget: dict[str, Any], period_s: float) -> None:
    ax.axis("off")
    title, _, body = widget["markdown"].lstrip("# ").partition("\n")
    note = f"Drawn from a recorded run: datapoints bucketed per {period_s:g} s (CloudWatch's dashboard: 60 s)."
    ax.text(0, 0.95, title, fontsize=14, fontweight="bold", va="top")
    ax.text(0, 0.45, f"{body}\n{note}", fontsize=8.5, va="top", wrap=True)


def draw_alarms(ax: Any, widget: dict[str, Any], found: list[Alarm], points: Points, start_s: float) -> None:
    """Each alarm's name, rule and state on the recorded datapoints."""
    ax.axis("off")
    ax.set_title(widget["title"], loc="left", fontsize=10, fontweight="bold")
    by_arn = {alarm.arn: alarm for alarm in found}
    step = min(0.45, 0.95 / len(widget["alarms"]))
    for row, arn in enumerate(widget["alarms"]):
        alarm = by_arn[arn]
        state, first = alarm.state(points, start_s)
        top = 0.95 - row * step
        color = "tab:red" if state == "ALARM" else "tab:green"
        ax.text(
            0,
            top,
            f" {state} ",
            fontsize=10,
            color="white",
            fontweight="bold",
            va="top",
            bbox={"fc": color, "ec": color},
        )
        ax.text(0.22, top, arn.rpartition(":")[2], fontsize=9, fontweight="bold", va="top")
        since = f"breached at {clock(first)}" if first is not None else "never breached in this run"
        since = since if points.get(alarm.key) else "no data in this run (missing data: not breaching)"
        ax.text(0.22, top - 0.1, f"{alarm.describe()}\n{since}", fontsize=7.5, va="top")
