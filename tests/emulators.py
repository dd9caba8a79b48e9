"""The second emulator: ministack (SQS, DynamoDB and S3 in one process), run in server mode on 127.0.0.1 beside
moto, so that the end-to-end tests of the core do not rest on one emulator's reading of AWS. Where the two
differ, docs/emulators.md says which one AWS agrees with.

The server is a child process on a free port (`GATEWAY_PORT`), waited for until it answers its health check,
reset before each test (`POST /_ministack/reset`) and stopped at the end of the session.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT_S = 60.0
MINISTACK_LITERAL_KEYS = (
    "ministack's S3 notifications carry the object key as it is, where S3 form-encodes it (space as `+`): "
    "a key with `+` or `%` would be decoded into another key"
)
MOTO_CANNOT_BATCH = (
    "moto 5.2 answers a PartiQL INSERT with `?` parameters with HTTP 500 (earlier releases ignored them and "
    "overwrote the item): it cannot run WRITE_MODE=batch"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - our own loopback server
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def ministack_server(log_path: Path) -> Iterator[str]:
    """A ministack process on 127.0.0.1; yields its endpoint once it answers, and stops it on exit."""
    port = free_port()
    env = dict(os.environ) | {"GATEWAY_PORT": str(port), "BIND_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING"}
    endpoint = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "ministack"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not answers(f"{endpoint}/_ministack/health"):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ministack did not start:\n{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)  # between health checks of a server that is still starting
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def reset_ministack(endpoint: str) -> None:
    request = urllib.request.Request(f"{endpoint}/_ministack/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - our own loopback server
        assert response.status == 200
