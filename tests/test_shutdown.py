"""`photo-ingest run` as ECS runs it: a process that drains on SIGTERM and exits 0, losing nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from service.ingest.ids import photo_id
from tests.conftest import Stack, capture_logs, deleted, eventually, run_until
from tests.fault_proxy import FaultProxy

BUCKET = "amzn-s3-demo-bucket"
LONG_POLL_S = 20  # RECEIVE_WAIT_SECONDS: a worker that waited its poll out would take this long to stop


def start_worker(stack: Stack, tmp_path: Path, **env: str) -> subprocess.Popen[bytes]:
    variables = dict(os.environ) | {
        "QUEUE_URL": stack.queue_url,
        "PHOTOS_TABLE": stack.table,
        "RECEIVE_WAIT_SECONDS": str(LONG_POLL_S),
        "SHUTDOWN_TIMEOUT_SECONDS": "10",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",  # `deleted` counts `message.deleted` lines, logged at DEBUG
        "METRICS_ENABLED": "false",
        "HEALTH_FILE": str(tmp_path / "health"),
    }
    with (tmp_path / "worker.log").open("w") as log_file:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "service", "run"], env=variables | env, stdout=log_file, stderr=subprocess.STDOUT
        )


def body(key: str) -> str:
    record = {
        "eventName": "ObjectCreated:Put",
        "eventTime": "2025-01-01T00:00:00.000Z",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": key}},
    }
    return json.dumps({"Records": [record]})


def log_events(tmp_path: Path) -> list[dict[str, object]]:
    lines = (tmp_path / "worker.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def seconds_between(events: dict[str, object], first: str, last: str) -> float:
    """From one log event to another, by the worker's own timestamps."""
    elapsed = datetime.fromisoformat(str(events[last])) - datetime.fromisoformat(str(events[first]))
    return elapsed.total_seconds()


async def test_sigterm_while_idle_cuts_the_long_poll_and_exits_0(emulator: Stack, tmp_path: Path) -> None:
    """An idle worker in a 20 s long poll stops on SIGTERM without waiting the poll out, with exit code 0.

    Every long poll starts after `worker.started`, so a worker that logs `worker.stopped` less than 20 s after
    it (its own timestamps: the test's scheduling does not count) cut its polls short. How fast it stops
    (about 0.1 s, and 0.5 s to exit) is measured by bench/shutdown_latency.py, not bounded here."""
    worker = start_worker(emulator, tmp_path)
    try:
        await eventually((tmp_path / "health").exists, 20)  # the first beat: the pollers are about to poll
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=LONG_POLL_S) == 0
    finally:
        worker.kill()
    events = {entry["event"]: entry["timestamp"] for entry in log_events(tmp_path)}
    assert list(events)[-1] == "worker.stopped"
    assert "process.stop_requested" in events
    assert seconds_between(events, "worker.started", "worker.stopped") < LONG_POLL_S


@pytest.mark.parametrize("write_mode", ["put", "batch"])
async def test_sigterm_while_busy_drains_exits_0_and_loses_nothing(
    emulator: Stack, write_mode: str, tmp_path: Path
) -> None:
    """Mid-backlog SIGTERM: in-flight work completes or is released, exit 0; a second worker finishes the rest.

    "The rest" is every message sent: the two workers' `message.deleted` events name them all."""
    mode = emulator.write_mode(write_mode)
    keys = [f"photos-raw/busy/{n:03d}.jpg" for n in range(300)]
    sent = emulator.send(*(body(key) for key in keys))
    # A long poll cut short by SIGTERM leaves its messages hidden for their visibility timeout: keep it short.
    settings = {"MAX_IN_FLIGHT_RECORDS": "20", "POLLERS": "2", "VISIBILITY_TIMEOUT_SECONDS": "5", "WRITE_MODE": mode}
    # Each write call takes 0.5 s more (a slow table), so 300 records take at least 7.5 s at 20 in flight: the
    # SIGTERM after the first 20 items lands mid-backlog however fast or loaded the machine is.
    slow_table = FaultProxy(emulator.endpoint, rate=0.0, delays={"PutItem": 0.5, "BatchExecuteStatement": 0.5})
    with slow_table:
        worker = start_worker(emulator, tmp_path, AWS_ENDPOINT_URL=slow_table.url, **settings)
        try:
            await eventually(lambda: len(emulator.items()) >= 20, 60)
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=15) == 0
        finally:
            worker.kill()
    events = [entry["event"] for entry in log_events(tmp_path)]
    assert events[-1] == "worker.stopped"
    written_before_restart = len(emulator.items())
    assert written_before_restart < len(keys), "the worker finished everything before SIGTERM: nothing was tested"
    deleted_before_restart = deleted(log_events(tmp_path))
    with capture_logs() as logs:
        await run_until(
            emulator.settings(write_mode=mode), lambda: deleted_before_restart | deleted(logs) >= sent, timeout_s=90
        )
    assert emulator.depth() == 0
    items = emulator.items()
    assert set(items) == {photo_id(BUCKET, key) for key in keys}
    assert all(items[photo_id(BUCKET, key)]["s3Key"] == key for key in keys)
