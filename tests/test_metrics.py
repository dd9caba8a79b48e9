"""EMF metric lines: valid against CloudWatch's embedded metric format specification, and right after a real run."""

from __future__ import annotations

import io
import json
import math
import time
from typing import Any

import pytest

from service.ingest.ids import photo_id
from service.metrics import Metrics, MetricsEmitter, Samples, emf_problems, percentile
from tests import bodies
from tests.conftest import BUCKET, Stack, run_until

# CloudWatch's StandardUnit values (the PutMetricData `MetricDatum.Unit` enumeration), which EMF accepts.
CLOUDWATCH_UNITS = {
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
}
COUNTERS = (
    *("RecordsInserted", "RecordsDuplicate", "RecordsSkipped", "RecordsConflict", "RecordsInvalid", "RecordsFailed"),
    "RecordsObjectMissing",
    *("MessagesReceived", "MessagesDeleted", "MessagesReleased", "MessagesQuarantined", "MessagesUntrusted"),
    "MessagesDeleteFailed",
    *("ThrottledKeyRange", "ThrottledTableCapacity", "ThrottledAccountLimit", "ThrottledOther"),
)
GAUGES = {"InFlightRecords": 0, "InFlightLimit": 128}


def assert_valid_emf(line: str, namespace: str, dimensions: dict[str, str]) -> dict[str, Any]:
    """Checks one line against the EMF specification and returns the document."""
    document = json.loads(line)
    metadata = document["_aws"]
    assert isinstance(metadata["Timestamp"], int)
    assert abs(metadata["Timestamp"] - time.time() * 1000) < 600_000
    declared: set[str] = set()
    for directive in metadata["CloudWatchMetrics"]:
        assert directive["Namespace"] == namespace
        for dimension_set in directive["Dimensions"]:
            assert len(dimension_set) <= 30
            for name in dimension_set:
                assert isinstance(document[name], str)
                assert document[name] == dimensions[name]
        assert 1 <= len(directive["Metrics"]) <= 100
        for definition in directive["Metrics"]:
            name = definition["Name"]
            assert definition.get("Unit", "None") in CLOUDWATCH_UNITS
            value = document[name]  # every declared metric is a top-level member ...
            values = assert_distribution(value) if isinstance(value, dict) else [value]
            for number in values:
                assert isinstance(number, int | float)
                assert not isinstance(number, bool)
                assert math.isfinite(number)
            declared.add(name)
    # ... and every top-level member is metadata, a dimension or a declared metric.
    assert set(document) == {"_aws", *dimensions, *declared}
    return dict(document)


def assert_distribution(value: dict[str, list[float]]) -> list[float]:
    """EMF's Values and Counts: equal lengths, 1 to 100 each, counts positive. Returns every number in it."""
    assert set(value) == {"Values", "Counts"}
    assert 1 <= len(value["Values"]) == len(value["Counts"]) <= 100
    assert all(count > 0 for count in value["Counts"])
    return [*value["Values"], *value["Counts"]]


def notification(key: str) -> str:
    """The direct S3 notification of one object in the test bucket, from AWS's sample."""
    return bodies.direct(bodies.Photo(BUCKET, key))


def seed_item(stack: Stack, key: str, stored_key: str) -> None:
    item = {"photoId": photo_id(BUCKET, key), "s3Bucket": BUCKET, "s3Key": stored_key, "uploadedAt": "2024-01-01"}
    stack.dynamodb.put_item(TableName=stack.table, Item={name: {"S": value} for name, value in item.items()})


async def test_a_worker_run_emits_valid_emf_lines_whose_counts_match_the_run(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three new photos, a duplicate, a conflict, a key outside the prefix and a poison body give these counts,
    summed over every EMF line the worker printed (several intervals and the final flush at stop)."""
    seed_item(stack, "photos-raw/dup.jpg", "photos-raw/dup.jpg")
    seed_item(stack, "photos-raw/conflict.jpg", "photos-raw/another-object.jpg")
    new = [f"photos-raw/new-{n}.jpg" for n in range(3)]
    stack.send(*map(notification, [*new, "photos-raw/dup.jpg", "photos-raw/conflict.jpg", "thumbnails/x.jpg"]))
    stack.send("not json")
    dimensions = {"Service": "photo-ingest", "Stage": "test"}
    settings = stack.settings(
        metrics_enabled=True,
        metrics_interval_seconds=0.2,
        metrics_dimensions=dimensions,
        dead_letter_queue_url=stack.dlq_url,
    )

    printed: list[str] = []

    def drained_after_an_interval_line() -> bool:
        printed.extend(capsys.readouterr().out.splitlines())
        flushed = any(line.startswith('{"_aws"') for line in printed)
        return flushed and stack.depth() == 0 and stack.depth(stack.dlq_url) == 2

    await run_until(settings, drained_after_an_interval_line)

    printed.extend(capsys.readouterr().out.splitlines())
    lines = [line for line in printed if line.startswith('{"_aws"')]
    documents = [assert_valid_emf(line, "PhotoIngest", dimensions) for line in lines]
    assert len(documents) >= 2
    totals = {name: sum(document[name] for document in documents) for name in COUNTERS}
    assert totals == {
        "RecordsInserted": 3,
        "RecordsDuplicate": 1,
        "RecordsSkipped": 1,
        "RecordsConflict": 1,
        "RecordsInvalid": 0,
        "RecordsFailed": 0,
        "RecordsObjectMissing": 0,
        "MessagesReceived": 7,
        "MessagesDeleted": 5,
        "MessagesReleased": 0,
        "MessagesQuarantined": 2,
        "MessagesUntrusted": 0,
        "MessagesDeleteFailed": 0,
        "ThrottledKeyRange": 0,
        "ThrottledTableCapacity": 0,
        "ThrottledAccountLimit": 0,
        "ThrottledOther": 0,
    }
    timed = [document for document in documents if "PutLatencyP50" in document]
    assert timed
    assert all(0 < d["PutLatencyP50"] <= d["PutLatencyP99"] < 10_000 for d in timed)
    lags = [value for d in documents if "QueueLag" in d for value in d["QueueLag"]["Values"]]
    assert len(lags) >= 1
    assert all(0 <= lag < 60 for lag in lags)
    assert not any("EventAge" in d for d in documents)  # its events are from 2024: a replay, not S3's own
    assert "EndToEndLagMax" not in {name for d in documents for name in d}
    assert max(d.get("MessageAgeMax", 0) for d in documents) < 60
    assert documents[-1]["InFlightRecords"] == 0
    limits = [document["InFlightLimit"] for document in documents]  # from one round of receives (4 x 10) up
    assert limits == sorted(limits)  # and never down: no throttle
    assert 40 <= limits[0] <= limits[-1] <= 1024


def test_an_idle_interval_reports_zero_counts_and_no_timings() -> None:
    """With nothing received, counters are 0 (alarms see data) and timings are absent, not a false 0 ms."""
    out = io.StringIO()
    figures = MetricsEmitter(Metrics(), "PhotoIngest", {"Service": "pi"}, lambda: GAUGES, out=out).flush()
    document = assert_valid_emf(out.getvalue(), "PhotoIngest", {"Service": "pi"})
    assert set(figures) == {*COUNTERS, *GAUGES}
    assert all(document[name] == 0 for name in COUNTERS)
    assert (document["InFlightRecords"], document["InFlightLimit"]) == (0, 128)


def test_each_flush_starts_a_new_interval() -> None:
    """A flush reports what happened since the previous flush only."""
    metrics = Metrics()
    emitter = MetricsEmitter(metrics, "PhotoIngest", {}, lambda: {"InFlightRecords": 3}, out=io.StringIO())
    metrics.records["inserted"] += 2
    metrics.sample(metrics.put_latency_ms, 12.5)
    first = emitter.flush()
    second = emitter.flush()
    assert (first["RecordsInserted"], first["PutLatencyP99"], first["InFlightRecords"]) == (2, 12.5, 3)
    assert second["RecordsInserted"] == 0
    assert "PutLatencyP99" not in second


def test_percentiles_use_the_nearest_rank() -> None:
    """p50 of 1..100 is 50 and p99 is 99: the smallest value with that share of samples at or below it."""
    values = [float(n) for n in range(100, 0, -1)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (50.0, 99.0, 100.0)
    assert percentile([], 0.5) == 0.0


def test_a_busy_interval_is_sampled_uniformly_and_keeps_its_exact_maximum() -> None:
    """Past the sample cap, memory stays bounded, late values still get in, and the maximum is exact."""
    samples = Samples(cap=100)
    for n in range(10_000):
        samples.add(float(n))
    samples.add(math.nan)
    assert len(samples) == 100
    assert samples.seen == 10_000
    assert samples.peak == 9_999.0
    assert max(samples) > 5_000  # a cap that kept the first values only would hold 0..99
    assert 2_000 < percentile(samples, 0.5) < 8_000


def test_settings_that_cloudwatch_would_reject_turn_the_emf_line_off_not_the_worker() -> None:
    """A bad namespace or dimension is reported; the emitter then writes no EMF line but keeps counting."""
    assert emf_problems("PhotoIngest", {"Service": "photo-ingest"}) == []
    assert emf_problems("Photo Ingest", {}) != []
    assert emf_problems("PhotoIngest", {"RecordsInserted": "x"}) != []  # would collide with a metric
    assert emf_problems("PhotoIngest", {"Service": " "}) != []
    assert emf_problems("PhotoIngest", {"Service": "ñ"}) != []
    out = io.StringIO()
    figures = MetricsEmitter(Metrics(), "Photo Ingest", {}, lambda: GAUGES, out=out).flush()
    assert out.getvalue() == ""
    assert figures["RecordsInserted"] == 0
