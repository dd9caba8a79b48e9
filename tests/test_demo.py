"""`photo-ingest demo` and `photo-ingest local`, run as a new user runs them: as processes, with no AWS set up.

The subprocesses get a clean environment (no `AWS_*`, no `QUEUE_URL`) and an empty working directory, so no
developer's `.env` or the `moto_endpoint` fixture's variables can leak in; each one starts its own moto.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from service.ingest.ids import photo_id
from service.local.demo.command import Observed, problems
from service.local.demo.scenario import MALFORMED_BODY, SCENARIO, Step, tiny_jpeg
from service.local.stack import BUCKET, RAW_PREFIX, TABLE

PHOTO_KEYS = sorted({step.subject for step in SCENARIO if step.expect == "photo.inserted"})
DEMO_TIMEOUT_S = 90


def clean_env(directory: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    for name in ("QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "PHOTOS_TABLE", "RAW_PREFIX"):
        env.pop(name, None)
    return env | {"HEALTH_FILE": str(directory / "photo-ingest.health")}


def photo_ingest(directory: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=directory,
        env=clean_env(directory),
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """One run of `photo-ingest demo`, shared by the tests that read its summary."""
    return photo_ingest(tmp_path_factory.mktemp("demo"), "demo")


def summary_row(output: str, action: str, subject: str) -> list[str]:
    """The rows of section 3 ("What happened to each upload") for one step, in order."""
    section = output.split("3. What happened to each upload")[1].split("\n4. ", maxsplit=1)[0]
    return [line.strip() for line in section.splitlines() if re.match(rf"\s+\S {action}\s+{re.escape(subject)} ", line)]


def test_demo_exits_0_and_says_the_pipeline_did_its_job(demo: subprocess.CompletedProcess[str]) -> None:
    """A clean run ends with exit code 0 and the verdict line, with nothing on stderr."""
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "OK in " in demo.stdout
    assert "one item per photo, the duplicate recognised" in demo.stdout
    assert demo.stderr == ""


def test_demo_writes_one_item_per_photo(demo: subprocess.CompletedProcess[str]) -> None:
    """The table holds exactly one item per distinct photo key, under the contract's photoId."""
    table = demo.stdout.split(f"4. Table {TABLE}: ")[1].split("\n5. ")[0]
    assert table.startswith(f"{len(PHOTO_KEYS)} items")
    rows = [line.split(maxsplit=1) for line in table.splitlines()[1:] if line.strip()]
    assert sorted((photo, rest.split("  ")[0].strip()) for photo, rest in rows) == sorted(
        (photo_id(BUCKET, key), key) for key in PHOTO_KEYS
    )


def test_demo_decodes_a_key_with_spaces_plus_and_non_ascii(demo: subprocess.CompletedProcess[str]) -> None:
    """The key S3 form-encodes (space, `+`, `é`, CJK) is inserted under its literal name's photoId."""
    key = f"{RAW_PREFIX}2024 Trip/Café C++ 東京.jpg"
    [row] = summary_row(demo.stdout, "put", key)
    assert f"inserted     photoId {photo_id(BUCKET, key)}" in row


def test_demo_recognises_the_second_upload_of_a_key_as_a_duplicate(demo: subprocess.CompletedProcess[str]) -> None:
    """The same key uploaded twice gives one insert, then one confirmed duplicate with the same photoId."""
    key = f"{RAW_PREFIX}beach.jpg"
    first, second = summary_row(demo.stdout, "put", key)
    assert f"inserted     photoId {photo_id(BUCKET, key)}" in first
    assert f"duplicate    photoId {photo_id(BUCKET, key)}" in second


def test_demo_skips_the_key_outside_the_prefix(demo: subprocess.CompletedProcess[str]) -> None:
    """S3's filter sends nothing for `other/`; the event sent by hand is skipped by the worker's own check."""
    [put] = summary_row(demo.stdout, "put", "other/readme.txt")
    [event] = summary_row(demo.stdout, "event", "other/readme.txt")
    assert put.endswith("no event")
    assert "skipped      reason outside_prefix" in event


def test_demo_quarantines_the_malformed_message_on_the_dead_letter_queue(
    demo: subprocess.CompletedProcess[str],
) -> None:
    """The body that is not JSON goes to the DLQ with its reason attribute; the main queue ends empty."""
    [row] = summary_row(demo.stdout, "send", MALFORMED_BODY)
    assert "quarantined  reason body_not_json" in row
    assert "Queue photos: 0 messages. Dead-letter queue photos-dlq: 1" in demo.stdout
    assert f"{MALFORMED_BODY!r}  photo-ingest.reason=body_not_json" in demo.stdout


def test_demo_fails_with_the_reason_when_the_duplicate_is_not_recognised() -> None:
    """A result that differs from the scenario is a problem, named in one line (the demo then exits 1)."""
    step = Step("put", f"{RAW_PREFIX}beach.jpg", "photo.duplicate")
    inserted = {"event": "photo.inserted", "key": step.subject, "photoId": photo_id(BUCKET, step.subject)}
    observed = Observed(
        items=[], dead_letters=[(MALFORMED_BODY, {"photo-ingest.reason": "body_not_json"})], queue_depth=0
    )
    assert problems([(step, inserted)], observed)[0] == (
        f"put {step.subject}: expected photo.duplicate, got photo.inserted"
    )


def test_demo_without_moto_names_the_extra_and_exits_2(tmp_path: Path) -> None:
    """Without the optional extra `local`, the demo prints how to install it, in one line, and exits 2."""
    blocker = tmp_path / "moto"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('moto is not installed')\n")
    env = clean_env(tmp_path) | {"PYTHONPATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "service", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "photo-ingest demo needs moto, from the extra `local`: pip install 'photo-ingest[local]'"
    ]


def test_tiny_jpeg_is_a_framed_jpeg_distinct_per_photo() -> None:
    """Each photo is a JPEG (start and end of image markers) whose bytes differ by its comment."""
    beach, city = tiny_jpeg("beach"), tiny_jpeg("city")
    assert beach.startswith(b"\xff\xd8\xff\xfe")  # start of image, then the comment segment
    assert beach.endswith(b"\xff\xd9")  # end of image
    assert beach != city


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_lines(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line)


@pytest.fixture
def local(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """`photo-ingest local` on a free port, its stdout read line by line into a queue; stopped if a test fails."""
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "local", "--port", str(free_port())],
        cwd=tmp_path,
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=read_lines, args=(process, lines), daemon=True)
    reader.start()
    yield process, lines
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)
    reader.join(timeout=10)
    assert process.stdout is not None
    process.stdout.close()


def wait_for(condition: Callable[[], object], timeout_s: float = 30.0) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.1)
    raise AssertionError(f"not true within {timeout_s} s")


def test_local_ingests_an_upload_through_its_endpoint_and_stops_on_ctrl_c(
    local: tuple[subprocess.Popen[str], queue.Queue[str]],
) -> None:
    """An object uploaded through the printed endpoint becomes an item; SIGINT then stops it all with exit 0."""
    process, lines = local
    seen: list[str] = []

    def endpoint() -> str | None:
        seen.append(lines.get(timeout=30))
        found = re.search(r"endpoint (http://\S+)", seen[-1])
        return found.group(1) if found else None

    url = str(wait_for(endpoint))
    aws = {"endpoint_url": url, "region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
    key = f"{RAW_PREFIX}my photo+1.jpg"
    boto3.client("s3", **aws).put_object(Bucket=BUCKET, Key=key, Body=tiny_jpeg(key))
    dynamodb = boto3.client("dynamodb", **aws)
    wait_for(lambda: dynamodb.get_item(TableName=TABLE, Key={"photoId": {"S": photo_id(BUCKET, key)}}).get("Item"))

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0


def test_local_refuses_a_port_in_use_with_exit_2(tmp_path: Path) -> None:
    """A busy `--port` is a usage error named in one line, not a hang."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = photo_ingest(tmp_path, "local", "--port", str(port))
    assert result.returncode == 2
    assert f"--port {port}: 127.0.0.1:{port} is in use" in result.stderr
