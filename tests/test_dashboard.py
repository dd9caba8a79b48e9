"""The dashboard as code: config/dashboard.json (for `aws cloudwatch put-dashboard`) and the template's
AWS::CloudWatch::Dashboard are the same widgets, a well-formed dashboard body, built from metrics that exist: the
worker's own (METRIC_UNITS), the queues', the ECS service's, and the template's alarms."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

from bench.dashboard_alarms import alarms
from bench.dashboard_data import aggregate, metric_lines, placeholders, read_emf
from service.config import Settings
from service.metrics import MESSAGE_EVENTS, METRIC_UNITS, RECORD_OUTCOMES

ROOT = Path(__file__).parent.parent
DASHBOARD = ROOT / "config" / "dashboard.json"
TEMPLATE = ROOT / "config" / "cloudformation.yaml"
# What the template's !Sub variables stand for in the standalone file: its documented placeholders.
ALARMS = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm"
PLACEHOLDERS = {
    "AWS::Region": "eu-west-1",
    "AWS::StackName": "photo-ingest",  # the template sets METRICS_DIMENSIONS to {"Service": <stack name>}
    "Queue.QueueName": "photos-ingest",
    "DeadLetterQueue.QueueName": "photos-ingest-dlq",
    "Cluster": "photo-ingest",
    "Service.Name": "photo-ingest",
    "DeadLetterQueueNotEmptyAlarm.Arn": f"{ALARMS}:photo-ingest-dead-letter-queue-not-empty",
    "OldestMessageAgeAlarm.Arn": f"{ALARMS}:photo-ingest-oldest-message-age",
    "UntrustedMessagesAlarm.Arn": f"{ALARMS}:photo-ingest-untrusted-messages",
    "InvalidItemsAlarm.Arn": f"{ALARMS}:photo-ingest-invalid-items",
    "ConflictsAlarm.Arn": f"{ALARMS}:photo-ingest-conflicts",
    "NoRunningWorkersAlarm.Arn": f"{ALARMS}:photo-ingest-no-running-workers",
    "QueueLagAlarm.Arn": f"{ALARMS}:photo-ingest-queue-lag",
}
STATISTICS = re.compile(r"SampleCount|Average|Sum|Minimum|Maximum|p\d{1,2}(\.\d+)?")
GRID_WIDTH = 24


def standalone() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def template() -> dict[str, Any]:
    decoded, problems = decode(str(TEMPLATE))
    assert not problems, problems
    assert decoded is not None
    return dict(decoded)


def template_body() -> str:
    """The DashboardBody's !Sub text, before CloudFormation substitutes anything."""
    body = template()["Resources"]["Dashboard"]["Properties"]["DashboardBody"]
    return str(body["Fn::Sub"])


def metric_widgets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [w["properties"] for w in dashboard["widgets"] if w["type"] == "metric"]


def metrics(dashboard: dict[str, Any]) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
    """(namespace, name, dimensions, options) of every metric line of every metric widget."""
    found = []
    for widget in metric_widgets(dashboard):
        for line in widget["metrics"]:
            options = line[-1] if isinstance(line[-1], dict) else {}
            namespace, name, *pairs = line[:-1] if options else line
            found.append((namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True)), options))
    return found


def test_the_template_dashboard_is_the_standalone_one() -> None:
    """The template's DashboardBody, with each !Sub variable replaced by the standalone file's placeholder,
    is config/dashboard.json exactly: same widgets, titles, metrics, layout and alarms."""
    body = template_body()
    variables = set(re.findall(r"\$\{([^}]+)\}", body))
    assert variables == set(PLACEHOLDERS)

    substituted = re.sub(r"\$\{([^}]+)\}", lambda match: PLACEHOLDERS[match[1]], body)

    assert json.loads(substituted) == standalone()


def test_every_worker_metric_on_the_dashboard_is_one_the_worker_emits_and_all_are_there() -> None:
    """Each PhotoIngest metric named is in METRIC_UNITS, with the worker's default dimensions, and every metric
    the worker emits (every record outcome, every message event, the timings) has a line."""
    named = {
        (name, tuple(sorted(dims.items())))
        for namespace, name, dims, _ in metrics(standalone())
        if namespace == "PhotoIngest"
    }
    default_dimensions = tuple(sorted(Settings.model_fields["metrics_dimensions"].default_factory().items()))  # type: ignore[misc]
    assert {dims for _, dims in named} == {default_dimensions}
    names = {name for name, _ in named}
    assert names <= set(METRIC_UNITS)  # nothing the worker does not emit
    assert names == set(METRIC_UNITS)  # and nothing it emits left off
    assert {f"Records{outcome.capitalize()}" for outcome in RECORD_OUTCOMES} <= names
    assert {"MessagesReceived", "MessagesDeleted", "MessagesQuarantined"} <= names
    assert len(MESSAGE_EVENTS) == len({name for name in names if name.startswith("Messages")})


def test_the_dashboard_shows_the_queues_the_service_and_the_alarms() -> None:
    """The queue's backlog and oldest message, the dead-letter queue's depth, ECS running tasks and CPU, and an
    alarm widget naming every alarm the template defines."""
    lines = {(namespace, name, tuple(sorted(dims.items()))) for namespace, name, dims, _ in metrics(standalone())}
    queue = (("QueueName", "photos-ingest"),)
    dead_letter_queue = (("QueueName", "photos-ingest-dlq"),)
    service = (("ClusterName", "photo-ingest"), ("ServiceName", "photo-ingest"))
    assert {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", queue),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", dead_letter_queue),
        ("ECS/ContainerInsights", "RunningTaskCount", service),
        ("AWS/ECS", "CPUUtilization", service),
    } <= lines

    [alarms] = [w["properties"]["alarms"] for w in standalone()["widgets"] if w["type"] == "alarm"]
    in_template = {name for name, r in template()["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(re.findall(r"\$\{(\w+)\.Arn\}", template_body())) == in_template
    assert len(alarms) == len(in_template)
    assert all(re.fullmatch(r"arn:aws:cloudwatch:eu-west-1:123456789012:alarm:[\w-]+", arn) for arn in alarms)


def test_the_body_is_a_well_formed_dashboard() -> None:
    """Widgets fit the 24-column grid without overlapping; metric widgets name a region, a period and known
    statistics, and every metric line is namespace, name, then dimension name/value pairs."""
    dashboard = standalone()
    cells: set[tuple[int, int]] = set()
    for widget in dashboard["widgets"]:
        assert widget["type"] in {"metric", "text", "alarm"}
        assert widget["x"] >= 0
        assert widget["x"] + widget["width"] <= GRID_WIDTH
        covered = {
            (x, y)
            for x in range(widget["x"], widget["x"] + widget["width"])
            for y in range(widget["y"], widget["y"] + widget["height"])
        }
        assert not covered & cells, f"{widget['properties'].get('title')} overlaps another widget"
        cells |= covered
    for widget in metric_widgets(dashboard):
        assert widget["title"]
        assert widget["region"] == PLACEHOLDERS["AWS::Region"]
        assert widget["period"] % 60 == 0
        assert STATISTICS.fullmatch(widget["stat"])
    for namespace, name, _, options in metrics(dashboard):
        assert namespace
        assert name
        assert STATISTICS.fullmatch(options["stat"])
        assert options["label"]


# ---------------------------------------------------------------- the picture: bench/dashboard_render.py

SAMPLE = ROOT / "docs" / "dashboard-sample.emf.jsonl"


def emf_line(at_ms: int, figures: dict[str, float], namespace: str = "PhotoIngest") -> str:
    declaration = {"Namespace": namespace, "Dimensions": [["Service"]], "Metrics": [{"Name": n} for n in figures]}
    return json.dumps(
        {"_aws": {"Timestamp": at_ms, "CloudWatchMetrics": [declaration]}, "Service": "photo-ingest"} | figures
    )


def test_the_renderer_combines_tasks_as_cloudwatch_does() -> None:
    """Two tasks' lines in one period: Sum adds their counts, Maximum keeps the worst latency; a timing a line
    leaves out is no datapoint, and log lines without `_aws` are not metrics."""
    lines = [
        emf_line(1_000, {"RecordsInserted": 3, "PutLatencyP99": 10.0}),
        emf_line(2_000, {"RecordsInserted": 4, "PutLatencyP99": 30.0}),
        emf_line(7_000, {"RecordsInserted": 0}),
        json.dumps({"event": "metrics.summary", "RecordsInserted": 99}),
    ]
    points = read_emf(lines)
    inserted = ("PhotoIngest", "RecordsInserted", (("Service", "photo-ingest"),))
    latency = ("PhotoIngest", "PutLatencyP99", (("Service", "photo-ingest"),))

    assert aggregate(points[inserted], "Sum", 5, start_s=0) == [(0, 7.0), (5, 0.0)]
    assert aggregate(points[latency], "Maximum", 5, start_s=0) == [(0, 30.0)]
    assert aggregate(points[latency], "p50", 5, start_s=0) == [(0, 10.0)]


def test_the_pictures_alarms_are_the_templates_rules() -> None:
    """The alarm panel evaluates each alarm of the template, found by the dashboard's alarm ARNs, with the
    template's threshold: the dead-letter queue is in ALARM once it holds a message, not before. A pseudo
    parameter in an alarm's dimensions (the untrusted alarm's `Service`, `AWS::StackName`) stands for what it
    stands for on the dashboard: the worker's metrics there."""
    body = json.loads(template_body())
    found = {alarm.arn: alarm for alarm in alarms(json.loads(json.dumps(template())), placeholders(body, standalone()))}
    [widget] = [w["properties"] for w in standalone()["widgets"] if w["type"] == "alarm"]
    assert set(found) == set(widget["alarms"])
    dead_letters = found[PLACEHOLDERS["DeadLetterQueueNotEmptyAlarm.Arn"]]
    assert dead_letters.key == ("AWS/SQS", "ApproximateNumberOfMessagesVisible", (("QueueName", "photos-ingest-dlq"),))
    empty = {dead_letters.key: [(0.0, 0.0), (30.0, 0.0)]}
    holding = {dead_letters.key: [(0.0, 0.0), (70.0, 3.0)]}

    assert dead_letters.state(empty, start_s=0) == ("OK", None)
    assert dead_letters.state(holding, start_s=0) == ("ALARM", 120)
    untrusted = found[PLACEHOLDERS["UntrustedMessagesAlarm.Arn"]]
    assert untrusted.key in {line.key for widget in metric_widgets(standalone()) for line in metric_lines(widget)}
    assert untrusted.key == ("PhotoIngest", "MessagesUntrusted", (("Service", PLACEHOLDERS["AWS::StackName"]),))


def test_the_queue_lag_alarm_watches_the_p99_the_dashboard_draws() -> None:
    """QueueLagAlarm: QueueLag's p99 (an extended statistic) over 5 one-minute periods against the template's
    default, on the same series as the dashboard's p99 line; a few slow photos in a minute do not move the p99."""
    body = json.loads(template_body())
    found = {alarm.arn: alarm for alarm in alarms(json.loads(json.dumps(template())), placeholders(body, standalone()))}
    lag = found[PLACEHOLDERS["QueueLagAlarm.Arn"]]
    assert lag.key == ("PhotoIngest", "QueueLag", (("Service", PLACEHOLDERS["AWS::StackName"]),))
    assert (lag.stat, lag.period_s, lag.periods) == ("p99", 60, 5)
    drawn = {(line.key, line.stat) for widget in metric_widgets(standalone()) for line in metric_lines(widget)}
    assert (lag.key, "p99") in drawn
    threshold = float(template()["Parameters"]["QueueLagAlarmSeconds"]["Default"])
    assert lag.threshold == threshold

    def minutes(slow: int, value: float) -> dict[Any, list[tuple[float, float]]]:
        """Five minutes of 100 samples each: `slow` of them at `value` seconds, the rest at 0.1 s."""
        return {lag.key: [(m * 60.0 + i * 0.5, value if i < slow else 0.1) for m in range(5) for i in range(100)]}

    assert lag.state(minutes(1, threshold * 10), start_s=0) == ("OK", None)
    assert lag.state(minutes(2, threshold + 1), start_s=0) == ("ALARM", 60)


def recorded_worker_metrics(documents: list[dict[str, Any]]) -> set[str]:
    """The metric names the recorded workers declared: the worker's metrics as of the recording."""
    return {m["Name"] for d in documents if "observedBy" not in d for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def test_the_sample_is_a_real_run_that_fills_every_panel() -> None:
    """docs/dashboard-sample.emf.jsonl has datapoints for every metric line on the dashboard whose metric existed
    when it was recorded: the worker's own lines (only metrics it emits), and the observed queue, service and CPU
    lines, marked as observed. A worker metric newer than the recording has none (its panel says so)."""
    lines = SAMPLE.read_text().splitlines()
    points = read_emf(lines)
    documents = [json.loads(line) for line in lines]
    recorded = recorded_worker_metrics(documents)
    for widget in metric_widgets(standalone()):
        for line in metric_lines(widget):
            newer = line.key[0] == "PhotoIngest" and line.key[1] not in recorded
            assert newer or points.get(line.key), f"{widget['title']}: no datapoint for {line.key}"
    from_worker = [d for d in documents if "observedBy" not in d]
    assert from_worker
    for document in from_worker:
        [directive] = document["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "PhotoIngest"
        assert {m["Name"] for m in directive["Metrics"]} <= set(METRIC_UNITS)
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Namespace"] != "PhotoIngest" for d in documents if "observedBy" in d)
    assert sum(d["MessagesQuarantined"] for d in from_worker) >= 3  # the recorder's three bodies that are not JSON


def test_the_renderer_draws_the_sample_into_a_png(tmp_path: Path) -> None:
    """`python -m bench.dashboard_render` turns the sample into a PNG of the dashboard, and names the panels
    without data: exactly those whose every line is a worker metric newer than the recording."""
    out = tmp_path / "dashboard.png"
    command = [sys.executable, "-m", "bench.dashboard_render", "--emf", str(SAMPLE), "--out", str(out)]

    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert f"{len(standalone()['widgets'])} widgets" in result.stdout
    recorded = recorded_worker_metrics([json.loads(line) for line in SAMPLE.read_text().splitlines()])
    newer = {
        widget["title"]
        for widget in metric_widgets(standalone())
        if all(line.key[0] == "PhotoIngest" and line.key[1] not in recorded for line in metric_lines(widget))
    }
    assert {line.removeprefix("no data in this run: ") for line in result.stdout.splitlines()[1:]} == newer
