"""Worker processes for the process-level tests: `python -m service run`, configured only by environment
variables as in a container, with JSON logs captured per process. `worker_pool` kills whatever a test leaves
running, whatever happened to the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Stack

STOP_TIMEOUT_S = 15.0
# A message's last line; `message.deleted` is a DEBUG line, there with `worker_env`'s LOG_LEVEL.
DISPOSITIONS = frozenset({"message.deleted", "message.released", "message.quarantined", "message.delete_failed"})


def worker_env(stack: Stack, endpoint: str, health_file: Path, **settings: object) -> dict[str, str]:
    """The environment of one worker container: the SDK's variables, then the service's settings (LOG_LEVEL
    DEBUG unless `settings` says otherwise)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST", "COV_"))}
    env |= {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "PYTHONUNBUFFERED": "1",  # a SIGKILLed worker's log is complete up to the kill
        "QUEUE_URL": stack.queue_url,
        "DEAD_LETTER_QUEUE_URL": stack.dlq_url,
        "PHOTOS_TABLE": stack.table,
        "RECEIVE_WAIT_SECONDS": "1",
        "VISIBILITY_TIMEOUT_SECONDS": "6",
        "RETRY_BACKOFF_BASE_SECONDS": "0.2",
        "RETRY_BACKOFF_MAX_SECONDS": "1",
        "SHUTDOWN_TIMEOUT_SECONDS": "5",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",  # the tests count deletions by `message.deleted`, a DEBUG line; a test may set INFO
        "METRICS_ENABLED": "false",
        "HEALTH_FILE": str(health_file),
    }
    env |= {name.upper(): str(value) for name, value in settings.items()}
    return env


@dataclass
class WorkerProcess:
    """One `photo-ingest run` process; its stdout (JSON lines) and stderr go to files in the test's tmp dir."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    err_path: Path
    health_file: Path
    env: dict[str, str] = field(repr=False)
    _stop_requested_at: float = field(default=0.0, init=False, repr=False)

    def alive(self) -> bool:
        return self.process.poll() is None

    def events(self) -> list[dict[str, Any]]:
        """Every JSON log line written so far (a line cut by SIGKILL is ignored)."""
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def request_stop(self) -> None:
        """SIGTERM, as ECS sends it."""
        self._stop_requested_at = time.monotonic()
        self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, timeout_s: float = STOP_TIMEOUT_S) -> tuple[int, float]:
        """(exit code, seconds since SIGTERM); fails the test if the process does not exit in time."""
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} did not exit within {timeout_s}s of SIGTERM:\n{self.stderr()[-2000:]}")
        return code, time.monotonic() - self._stop_requested_at

    def terminate(self, timeout_s: float = STOP_TIMEOUT_S) -> tuple[int, float]:
        self.request_stop()
        return self.wait_stopped(timeout_s)

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is released; its messages come back after the visibility timeout."""
        if self.alive():
            self.process.kill()
        self.process.wait(10)

    def in_flight_at_end(self) -> set[str]:
        """Messages this process logged about but never settled (delete, release, quarantine)."""
        last: dict[str, str] = {}
        for event in self.events():
            if "messageId" in event:
                last[event["messageId"]] = event["event"]
        return {mid for mid, name in last.items() if name not in DISPOSITIONS}


class Workers:
    """Starts worker processes and remembers them, so that `worker_pool` can kill them all at the end."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self.started: list[WorkerProcess] = []

    def start(self, name: str, env: dict[str, str]) -> WorkerProcess:
        log_path = self._directory / f"{name}.{len(self.started)}.log"
        err_path = log_path.with_suffix(".err")
        with log_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "service", "run"],
                env=env,
                cwd=self._directory,  # no stray `.env` is read
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        worker = WorkerProcess(name, process, log_path, err_path, Path(env["HEALTH_FILE"]), env)
        self.started.append(worker)
        return worker

    def all_events(self) -> list[dict[str, Any]]:
        return [event for worker in self.started for event in worker.events()]

    def kill_all(self) -> None:
        for worker in self.started:
            worker.kill()


@contextlib.contextmanager
def worker_pool(directory: Path) -> Iterator[Workers]:
    """Yields a `Workers`; on exit every process it started is killed (a no-op for those already stopped)."""
    pool = Workers(directory)
    try:
        yield pool
    finally:
        pool.kill_all()


def health(env: dict[str, str], **overrides: object) -> tuple[int, str]:
    """Run `photo-ingest health` as Docker's HEALTHCHECK would; (exit code, its one line)."""
    check_env = env | {name.upper(): str(value) for name, value in overrides.items()}
    result = subprocess.run(
        [sys.executable, "-m", "service", "health"],
        env=check_env,
        cwd=Path(env["HEALTH_FILE"]).parent,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr).strip()


def poll_until(
    condition: Callable[[], object],
    timeout_s: float,
    interval_s: float = 0.2,
    what: str | Callable[[], str] = "",
) -> object:
    """Poll `condition()` until it is truthy and return its value; fail the test after `timeout_s`, saying
    `what` was awaited (a callable is asked then, so it can describe the state at the time)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            description = what() if callable(what) else what or repr(condition)
            pytest.fail(f"timed out after {timeout_s}s waiting for {description}")
        time.sleep(interval_s)
