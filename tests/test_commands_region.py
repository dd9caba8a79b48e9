"""Every command finds its region from `AWS_REGION` alone, as ECS and Lambda set it (botocore 1.40 reads only
`AWS_DEFAULT_REGION` by itself), and refuses a dead-letter queue that is the queue itself."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import BUCKET, Stack
from tests.workers import poll_until


def env_with_region_only(stack: Stack, **settings: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/nonexistent",
        "AWS_REGION": "us-east-1",  # and no AWS_DEFAULT_REGION
        "AWS_ENDPOINT_URL": stack.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "QUEUE_URL": stack.queue_url,
        "DEAD_LETTER_QUEUE_URL": stack.dlq_url,
        "PHOTOS_TABLE": stack.table,
        "LOG_FORMAT": "json",
        "METRICS_ENABLED": "false",
    }
    return env | settings


@pytest.mark.parametrize(
    "args",
    [
        ["check"],
        ["backfill", "--bucket", BUCKET],
        ["backfill", "--bucket", BUCKET, "--dry-run"],
        ["redrive", "--force"],  # the emulator's DLQ has no policy: redrive refuses it without --force
        ["redrive", "--dry-run", "--force"],
    ],
    ids=" ".join,
)
def test_each_command_runs_with_only_aws_region_set(stack: Stack, tmp_path: Path, args: list[str]) -> None:
    """None exits 2 for "no AWS region": each reaches the endpoint and finishes with its own verdict."""
    result = subprocess.run(
        [sys.executable, "-m", "service", *args],
        env=env_with_region_only(stack),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "no AWS region" not in result.stderr
    assert result.returncode == 0, result.stdout + result.stderr


def test_run_runs_with_only_aws_region_set(stack: Stack, tmp_path: Path) -> None:
    """The worker polls (it logs its first empty receive cycle via the heartbeat) and stops with exit 0."""
    health = tmp_path / "health"
    env = env_with_region_only(stack, HEALTH_FILE=str(health), RECEIVE_WAIT_SECONDS="1")
    with subprocess.Popen(
        [sys.executable, "-m", "service", "run"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as worker:
        try:
            poll_until(lambda: health.exists() or worker.poll() is not None, timeout_s=30, what="a heartbeat")
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(30)
        finally:
            worker.kill()
        out, err = worker.communicate()
    assert code == 0, err.decode()
    assert "worker.stopped" in [json.loads(line)["event"] for line in out.decode().splitlines()]


def test_a_dead_letter_queue_that_is_the_queue_is_a_configuration_error(stack: Stack, tmp_path: Path) -> None:
    """Quarantine would send poison back to the queue it came from, forever: exit 2, one line naming it, also
    when the URL is spelled another way (the host's case, a trailing slash)."""
    url = urlsplit(stack.queue_url)
    for same in (stack.queue_url, f"{url.scheme}://{url.netloc.upper()}{url.path}/"):
        env = env_with_region_only(stack, DEAD_LETTER_QUEUE_URL=same)
        command = [sys.executable, "-m", "service", "run"]
        result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert "DEAD_LETTER_QUEUE_URL" in line
