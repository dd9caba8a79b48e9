"""bench.freshness's arithmetic on made-up times, and its two measuring points (the sender's send times, the
endpoint's first writes) by their end states. Nothing here is timed: speed is what `python -m bench.freshness`
measures, not these tests.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from bench import freshness_stats as stats
from bench.freshness_sender import connections_for, send_steady
from bench.runner import Control

REPO = Path(__file__).resolve().parent.parent


def test_percentile_is_the_nearest_rank_an_observed_value() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert stats.percentile(values, 50) == 50.0
    assert stats.percentile(values, 99) == 99.0
    assert stats.percentile(values, 100) == 100.0
    assert stats.percentile(values, 0) == 1.0
    assert stats.percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input
    assert stats.percentile([7.0], 99) == 7.0


def test_percentile_refuses_no_values_and_a_fraction_out_of_range() -> None:
    with pytest.raises(ValueError, match="no values"):
        stats.percentile([], 50)
    with pytest.raises(ValueError, match=r"not in 0\.\.100"):
        stats.percentile([1.0], 101)


def test_lags_leave_out_the_warm_up_and_count_messages_without_a_write() -> None:
    sent = {"a": 10.0, "b": 12.0, "c": 12.5, "d": 13.0}
    written = {"a": 10.1, "b": 12.05, "c": 12.75, "x": 1.0}  # d never written; x not one of ours
    lag_s, missing = stats.lags(sent, written, since=12.0)
    assert sorted(round(v, 3) for v in lag_s) == [0.05, 0.25]
    assert missing == 1


def test_summarize_gives_ms_and_round_trips() -> None:
    lag_s = [0.020] * 98 + [0.090, 0.500]  # p99 is the 99th of 100 values
    row = stats.summarize(lag_s, rtt_ms=20.0)
    assert row == {"n": 100, "p50_ms": 20.0, "p99_ms": 90.0, "max_ms": 500.0, "p99_rtts": 4.5}
    assert stats.summarize(lag_s, rtt_ms=0.0)["p99_rtts"] is None
    assert stats.summarize([], rtt_ms=5.0)["n"] == 0


def test_the_goal_is_judged_at_half_load_only() -> None:
    assert stats.verdict({"load": 0.5, "p99_rtts": 5.0}) == "PASS"
    assert stats.verdict({"load": 0.5, "p99_rtts": 5.01}) == "FAIL"
    assert stats.verdict({"load": 0.9, "p99_rtts": 50.0}) == "-"
    assert stats.verdict({"load": 0.5, "p99_rtts": None}) == "-"


def test_the_table_has_a_row_per_load_with_its_verdict() -> None:
    rows = [
        {"contender": "photo-ingest x1", "rtt_ms": 20.0, "capacity_msg_s": 800.0, "load": 0.5, "offered_msg_s": 400.0}
        | stats.summarize([0.03] * 100, 20.0),
        {"contender": "node sqs-consumer x1", "rtt_ms": 20.0, "capacity_msg_s": 900.0, "load": 0.9}
        | stats.summarize([0.2] * 100, 20.0),
    ]
    lines = stats.table(rows).splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| photo-ingest x1 | 20.0 | 800.0 | 50% | 400.0 | 100 | 30.0 | 30.0 | 30.0 | 1.50 |")
    assert lines[2].endswith("| PASS |")
    assert lines[3].endswith("| 10.0 | - |")


def test_the_sender_pool_covers_rate_times_round_trip() -> None:
    assert connections_for(500.0, 0.020) >= 10
    assert connections_for(1.0, 0.0) == 4


@pytest.fixture
def control() -> Iterator[Control]:
    argv = [sys.executable, "-m", "bench.endpoint", "--queue", "q", "--table", "Photos", "--latency-ms", "2"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    yield Control(json.loads(proc.stdout.readline())["port"])
    proc.terminate()
    proc.wait(10)
    proc.stdout.close()


def test_the_sender_sends_every_body_once_and_keeps_each_send_time(control: Control) -> None:
    queue_url = f"{control.url}/000000000000/q"
    bodies = [f"body-{i}" for i in range(30)]
    sent = asyncio.run(send_steady(control.port, queue_url, bodies, rate=1_000.0, rtt_s=0.002))
    assert sorted(sent.at) == list(range(30))
    assert all(sent.started <= t <= sent.finished for t in sent.at.values())
    assert control.call("stats")["queues"]["q"]["visible"] == 30


def test_the_endpoint_records_each_items_first_write_only(control: Control) -> None:
    ddb = boto3.Session("bench", "bench", region_name="us-east-1").client("dynamodb", endpoint_url=control.url)
    ddb.put_item(TableName="Photos", Item={"photoId": {"S": "p1"}})
    first = control.call("writes")["written_at"]
    ddb.put_item(TableName="Photos", Item={"photoId": {"S": "p1"}, "s3Key": {"S": "k"}})  # an overwrite
    ddb.put_item(TableName="Photos", Item={"photoId": {"S": "p2"}})
    later = control.call("writes")["written_at"]
    assert set(later) == {"p1", "p2"}
    assert later["p1"] == first["p1"]
    assert later["p2"] >= later["p1"]
