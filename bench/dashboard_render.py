"""`python -m bench.dashboard_render`: draw config/dashboard.json's panels from EMF lines, into a PNG.

    python -m bench.dashboard_render                           docs/dashboard-sample.emf.jsonl -> docs/dashboard.png
    python -m bench.dashboard_render --emf - --out d.png < x   any JSON lines from stdin; those with `_aws` count

Each metric widget of the dashboard becomes one panel at the same place on the 24-column grid. Each of its metric
lines takes the datapoints whose namespace, name and dimensions match, bucketed by `--period` (the EMF interval,
5 s, by default; CloudWatch's dashboard uses 60 s) with the line's statistic: Sum adds the tasks' figures,
Maximum takes the worst task's. A panel none of whose lines has a datapoint (a metric newer than the recording)
says "no data in this run", and the command names it. The alarm widget shows each alarm of
config/cloudformation.yaml with the state its rule gives on the same datapoints.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.dashboard_alarms import Alarm, alarms
from bench.dashboard_data import Points, placeholders, read_emf
from bench.dashboard_panels import draw_alarms, draw_metric, draw_text

REPO = Path(__file__).resolve().parent.parent


def draw(dashboard: dict[str, Any], points: Points, found: list[Alarm], period_s: float, out: Path) -> list[str]:
    """Every widget at its place on the grid, saved to `out`; the titles of the metric panels without data."""
    import matplotlib  # a dev dependency, only for this picture

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(widget["y"] + widget["height"] for widget in dashboard["widgets"])
    figure = plt.figure(figsize=(20, rows * 0.62), layout="constrained")
    grid = figure.add_gridspec(rows, 24)
    start_s = min(at for series in points.values() for at, _ in series)
    span_s = max(at for series in points.values() for at, _ in series) - start_s
    empty = []
    for widget in dashboard["widgets"]:
        ax = figure.add_subplot(
            grid[widget["y"] : widget["y"] + widget["height"], widget["x"] : widget["x"] + widget["width"]]
        )
        properties = widget["properties"]
        if widget["type"] == "metric":
            if not draw_metric(ax, properties, points, start_s, period_s):
                empty.append(properties["title"])
            ax.set_xlim(0, span_s)  # one time axis for every panel, as on a dashboard
        elif widget["type"] == "alarm":
            draw_alarms(ax, properties, found, points, start_s)
        else:
            draw_text(ax, properties, period_s)
    figure.savefig(out, dpi=90)
    plt.close(figure)
    return empty


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
    empty = draw(dashboard, points, alarms(template, placeholders(body, dashboard)), args.period, args.out)
    print(f"{args.out}: {len(dashboard['widgets'])} widgets from {sum(map(len, points.values()))} datapoints")
    for title in empty:
        print(f"no data in this run: {title}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
