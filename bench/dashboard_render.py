"""`python -m bench.dashboard_render`: draw config/dashboard.json's panels from EMF lines, into a PNG.

    python -m bench.dashboard_render                           docs/dashboard-sample.emf.jsonl -> docs/dashboard.png
    python -m bench.dashboard_render --emf - --out d.png < x   any JSON lines from stdin; those with `_aws` count

Each metric widget of the dashboard becomes one panel at the same place on the 24-column grid. Each of its metric
lines takes the datapoints whose namespace, name and dimensions match, bucketed by `--period` (the EMF interval,
5 s, by default; CloudWatch's dashboard uses 60 s) with the line's statistic: Sum adds the tasks' figures,
Maximum takes the worst task's. The alarm widget shows each alarm of config/cloudformation.yaml with the state its
rule gives on the same datapoints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.dashboard_data import Alarm, MetricLine, Points, aggregate, alarms, metric_lines, placeholders, read_emf

REPO = Path(__file__).resolve().parent.parent


def clock(seconds: float, _: object = None) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def draw_metric(ax: Any, widget: dict[str, Any], points: Points, start_s: float, period_s: float) -> None:
    """One metric widget: its lines (stacked if the widget is), its horizontal annotations, its axis label."""
    series = [
        (line, aggregate(points.get(line.key, []), line.stat, period_s, start_s)) for line in metric_lines(widget)
    ]
    if widget.get("stacked"):
        xs = sorted({x for _, values in series for x, _ in values})
        stacks = [[dict(values).get(x, 0.0) for x in xs] for _, values in series]
        ax.stackplot(xs, *stacks, labels=[label_of(line, values) for line, values in series], alpha=0.85)
    else:
        for line, values in series:
            ax.plot([x for x, _ in values], [y for _, y in values], label=label_of(line, values), marker=".", lw=1.4)
    top = max((y for _, values in series for _, y in values), default=0.0)
    for annotation in widget.get("annotations", {}).get("horizontal", []):
        if annotation["value"] <= max(top, 1.0) * 1.5:
            ax.axhline(
                annotation["value"],
                color="tab:red",
                ls="--",
                lw=1,
                label=f"{annotation['label']}: {annotation['value']:g}",
            )
        else:
            ax.plot(
                [], [], color="tab:red", ls="--", label=f"{annotation['label']}: {annotation['value']:g} (off scale)"
            )
    ax.set_title(widget["title"], loc="left", fontsize=10, fontweight="bold")
    ax.set_ylabel(widget.get("yAxis", {}).get("left", {}).get("label", ""), fontsize=8)
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(clock)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best", framealpha=0.8)


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
    for row, arn in enumerate(widget["alarms"]):
        alarm = by_arn[arn]
        state, first = alarm.state(points, start_s)
        top = 0.9 - row * 0.45
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
        ax.text(0.22, top - 0.12, f"{alarm.describe()}\n{since}", fontsize=7.5, va="top")


def draw(dashboard: dict[str, Any], points: Points, found: list[Alarm], period_s: float, out: Path) -> None:
    import matplotlib  # a dev dependency, only for this picture

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(widget["y"] + widget["height"] for widget in dashboard["widgets"])
    figure = plt.figure(figsize=(20, rows * 0.62), layout="constrained")
    grid = figure.add_gridspec(rows, 24)
    start_s = min(at for series in points.values() for at, _ in series)
    span_s = max(at for series in points.values() for at, _ in series) - start_s
    for widget in dashboard["widgets"]:
        ax = figure.add_subplot(
            grid[widget["y"] : widget["y"] + widget["height"], widget["x"] : widget["x"] + widget["width"]]
        )
        properties = widget["properties"]
        if widget["type"] == "metric":
            draw_metric(ax, properties, points, start_s, period_s)
            ax.set_xlim(0, span_s)  # one time axis for every panel, as on a dashboard
        elif widget["type"] == "alarm":
            draw_alarms(ax, properties, found, points, start_s)
        else:
            draw_text(ax, properties, period_s)
    figure.savefig(out, dpi=90)
    plt.close(figure)


def template_and_body(path: Path) -> tuple[dict[str, Any], Any]:
    """The template (tags resolved to their long form) and its DashboardBody, ${...} still in it."""
    from cfnlint.decode import decode  # a dev dependency; it reads CloudFormation's short tags

    decoded, problems = decode(str(path))
    if problems or decoded is None:
        raise SystemExit(f"{path}: {problems}")
    template = json.loads(json.dumps(decoded))
    return template, json.loads(template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"])


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_render", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--emf", default=str(REPO / "docs" / "dashboard-sample.emf.jsonl"), help="a file, or - for stdin"
    )
    parser.add_argument("--dashboard", type=Path, default=REPO / "config" / "dashboard.json")
    parser.add_argument("--template", type=Path, default=REPO / "config" / "cloudformation.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "dashboard.png")
    parser.add_argument("--period", type=float, default=5.0, help="seconds per datapoint (default 5)")
    args = parser.parse_args()
    lines = sys.stdin if args.emf == "-" else Path(args.emf).read_text().splitlines()
    points = read_emf(lines)
    if not points:
        print("no EMF lines (JSON with an _aws key) in the input", file=sys.stderr)
        return 1
    dashboard = json.loads(args.dashboard.read_text())
    template, body = template_and_body(args.template)
    draw(dashboard, points, alarms(template, placeholders(body, dashboard)), args.period, args.out)
    print(f"{args.out}: {len(dashboard['widgets'])} widgets from {sum(map(len, points.values()))} datapoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
