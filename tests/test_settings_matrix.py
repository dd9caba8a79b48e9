"""Every shared setting means the same thing in every runtime: one case per field, run through each runtime
where the field applies, each configured only by environment variables, through its real entry point:

    worker           `photo-ingest run` (`cli.main`), stopped once the queue is empty, as SIGTERM would
    lambda           `service.aws_lambda.handler`, fed by the event source mapping of tests/lambda_mapping.py
    backfill         `photo-ingest backfill --bucket ...` (direct: it writes the items itself)
    backfill-queue   `photo-ingest backfill --bucket ... --via-queue`, then the worker over that queue

A case is a world (objects in the bucket; the notifications on the queue, for the runtimes that read one), the
variables, and what must follow: the same items in every runtime, plus the case's own check of each runtime.

Adding a setting: `test_every_field_has_a_case` fails until the new field is in `CASES`, with the runtimes it
applies to and, for each runtime it does not, why not (`not_in`); or, if only one runtime reads it, in
`ONE_RUNTIME`, with the reason and the test that shows its effect there.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from service import cli, process
from service.aws_lambda import entry
from service.aws_lambda.settings import LambdaSettings
from service.config import BackfillQueueSettings, IngestSettings, Settings
from service.ops.backfill import command as backfill_command
from tests.bodies import Photo, direct, direct_many, sns
from tests.conftest import BUCKET, Stack, build_stack, capture_logs, reset_moto
from tests.emulators import reset_ministack
from tests.fault_proxy import FaultProxy
from tests.lambda_mapping import FakeContext, acknowledge, receive_event

RUNTIMES = ("worker", "lambda", "backfill", "backfill-queue")
NOTIFIED = ("worker", "lambda")  # the runtimes that read notifications; backfill lists the bucket instead
A, B = Photo(BUCKET, "photos-raw/a.jpg"), Photo(BUCKET, "photos-raw/b.jpg")
GHOST = Photo(BUCKET, "photos-raw/never-uploaded.jpg")
OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:someone-else"
BOTH = frozenset({A.key, B.key})
OBJECT_BYTES = b"x" * 1000  # the objects' real size: a notification says len(key)


@dataclass
class Observed:
    """What one runtime did: its exit code (a command's), the EMF lines and the logging it was given."""

    stack: Stack
    proxy: FaultProxy
    code: int = 0
    stdout: str = ""
    logging: list[tuple[str, str]] = field(default_factory=list)
    health_file: Path | None = None


@dataclass(frozen=True)
class Case:
    env: dict[str, str]
    written: frozenset[str]  # the keys in the table at the end, the same in every runtime that applies
    runtimes: tuple[str, ...]
    not_in: dict[str, str] = field(default_factory=dict)  # runtime -> why the field does not apply there
    uploaded: tuple[Photo, ...] = (A, B)
    bodies: tuple[str, ...] = (direct(A), direct(B))
    emulator: str = "moto"
    delays: dict[str, float] = field(default_factory=dict)  # per operation, at the proxy in front of the emulator
    check: Callable[[str, Observed], None] = lambda runtime, observed: None


def _quarantined(runtime: str, observed: Observed) -> None:
    if runtime == "backfill":
        assert observed.code == process.EXIT_USAGE  # refused before anything ran
    else:
        assert observed.stack.depth(observed.stack.dlq_url) >= 1


def _batched(_: str, observed: Observed) -> None:
    assert observed.proxy.calls("BatchExecuteStatement") >= 1
    assert observed.proxy.calls("PutItem") == 0


def _verified(_: str, observed: Observed) -> None:
    item = observed.stack.items()[A.photo_id]
    assert int(item["size"]) == len(OBJECT_BYTES)  # S3's own size, not the notification's (len(key))


def _only_in_matrix(_: str, observed: Observed) -> None:
    pages = observed.stack.dynamodb.get_paginator("scan").paginate(TableName="Photos")
    assert [item for page in pages for item in page["Items"]] == []


def _emf(runtime: str, observed: Observed) -> list[dict[str, Any]]:
    return [json.loads(line) for line in observed.stdout.splitlines() if line.startswith('{"_aws"')]


def _emits(namespace: str, dimension: str) -> Callable[[str, Observed], None]:
    def check(runtime: str, observed: Observed) -> None:
        metrics = _emf(runtime, observed)
        assert metrics, observed.stdout
        assert {line["_aws"]["CloudWatchMetrics"][0]["Namespace"] for line in metrics} == {namespace}
        assert all(dimension in line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0] for line in metrics)

    return check


def _no_emf(runtime: str, observed: Observed) -> None:
    """METRICS_EXPORTER=none: the items are written (the case's keys), and no EMF line is."""
    assert _emf(runtime, observed) == [], observed.stdout


def _logged_as(level: str, form: str) -> Callable[[str, Observed], None]:
    def check(runtime: str, observed: Observed) -> None:
        assert observed.logging
        assert set(observed.logging) == {(level, form)}

    return check


def _bounded_puts(_: str, observed: Observed) -> None:
    assert 1 <= observed.proxy.peaks["PutItem"] <= 2


def _heartbeat(_: str, observed: Observed) -> None:
    assert observed.health_file is not None
    assert json.loads(observed.health_file.read_text())["beatAt"] > 0


def _metrics(env: dict[str, str], namespace: str, dimension: str) -> Case:
    """METRICS_ENABLED=true and `env`: each runtime's EMF lines carry this namespace and this dimension."""
    no_emf = "backfill prints a summary, not CloudWatch metrics"
    not_in = {"backfill": no_emf, "backfill-queue": no_emf}
    return Case({"METRICS_ENABLED": "true"} | env, BOTH, NOTIFIED, not_in, check=_emits(namespace, dimension))


NO_ENVELOPE = "backfill reads no message: it lists the bucket, or sends S3's own direct notification, one per object"
SEND_ONLY = "the sender writes no item; the workers that read its messages are the worker runtime"
CASES: dict[str, Case] = {
    "photos_table": Case(
        {"PHOTOS_TABLE": "Matrix"},
        BOTH,
        ("worker", "lambda", "backfill"),
        {"backfill-queue": SEND_ONLY},
        check=_only_in_matrix,
    ),
    "raw_prefix": Case(
        {"RAW_PREFIX": "uploads/"},
        frozenset({"uploads/c.jpg"}),
        RUNTIMES,
        uploaded=(A, Photo(BUCKET, "uploads/c.jpg")),
        bodies=(direct(A), direct(Photo(BUCKET, "uploads/c.jpg"))),
    ),
    "allowed_buckets": Case(
        {"ALLOWED_BUCKETS": "another-bucket"}, frozenset(), RUNTIMES, check=_quarantined, bodies=(direct_many([A, B]),)
    ),
    "allowed_topic_arns": Case(
        {"ALLOWED_TOPIC_ARNS": OTHER_TOPIC},
        frozenset(),
        NOTIFIED,
        {"backfill": NO_ENVELOPE, "backfill-queue": NO_ENVELOPE},
        bodies=(sns(A), sns(B)),
        check=_quarantined,
    ),
    "max_records_per_message": Case(
        {"MAX_RECORDS_PER_MESSAGE": "1"},
        frozenset(),
        NOTIFIED,
        {"backfill": NO_ENVELOPE, "backfill-queue": NO_ENVELOPE},
        bodies=(direct_many([A, B]),),
        check=_quarantined,
    ),
    "verify_objects": Case(
        {"VERIFY_OBJECTS": "true", "ALLOWED_BUCKETS": BUCKET},
        frozenset({A.key}),
        NOTIFIED,
        {
            "backfill": "S3 has just listed the objects: a direct backfill does not ask again (it ignores it)",
            "backfill-queue": "it sends only objects S3 has just listed; the workers verify them as the worker case",
        },
        uploaded=(A,),
        bodies=(direct(A), direct(GHOST)),
        check=_verified,
    ),
    "write_mode": Case({"WRITE_MODE": "batch"}, BOTH, RUNTIMES, emulator="ministack", check=_batched),
    "log_level": Case({"LOG_LEVEL": "WARNING"}, BOTH, RUNTIMES, check=_logged_as("WARNING", "auto")),
    "log_format": Case({"LOG_FORMAT": "json"}, BOTH, RUNTIMES, check=_logged_as("INFO", "json")),
    "dead_letter_queue_url": Case(
        {},  # the base environment names it; the poison body must end there
        frozenset({A.key}),
        NOTIFIED,
        {"backfill": NO_ENVELOPE, "backfill-queue": SEND_ONLY},
        bodies=(direct(A), "not json"),
        check=_quarantined,
    ),
    "max_in_flight_records": Case(
        {"MAX_IN_FLIGHT_RECORDS": "2"},
        frozenset(photo.key for photo in [A, B, *(Photo(BUCKET, f"photos-raw/{n}.jpg") for n in range(4))]),
        NOTIFIED,
        {"backfill": "bounded by --concurrency instead", "backfill-queue": SEND_ONLY},
        uploaded=(),
        bodies=(direct_many([A, B, *(Photo(BUCKET, f"photos-raw/{n}.jpg") for n in range(4))]),),
        delays={"PutItem": 0.3},
        check=_bounded_puts,
    ),
    "metrics_enabled": _metrics({}, "PhotoIngest", "Service"),
    "metrics_namespace": _metrics({"METRICS_NAMESPACE": "MatrixSpace"}, "MatrixSpace", "Service"),
    "metrics_dimensions": _metrics({"METRICS_DIMENSIONS": '{"Fleet": "matrix"}'}, "PhotoIngest", "Fleet"),
    "metrics_exporter": Case(  # otlp and both: tests/test_telemetry.py, with an OTLP receiver
        {"METRICS_ENABLED": "true", "METRICS_EXPORTER": "none"},
        BOTH,
        NOTIFIED,
        {"backfill": "backfill prints a summary, not metrics", "backfill-queue": "the sender prints a summary"},
        check=_no_emf,
    ),
    "health_file": Case(
        {},  # the base environment names a file of the test's own
        BOTH,
        ("worker",),
        {
            "lambda": "Lambda has no health check: the service watches the function",
            "backfill": "a command, not a service: it ends with an exit code",
            "backfill-queue": "a command, not a service: it ends with an exit code",
        },
        check=_heartbeat,
    ),
}
# Fields that one runtime alone reads: no other runtime could disagree about them. The reason, and the test that
# shows the effect there.
ONE_RUNTIME: dict[str, str] = {
    "queue_url": "the worker's queue (every worker case reads it); the --via-queue target (every backfill-queue case)",
    "health_max_age_seconds": "read by `photo-ingest health`, no runtime: tests/test_health.py",
    "unhealthy_after_failing_seconds": "read by `photo-ingest health`, no runtime: tests/test_health.py",
    "pollers": "the worker's polling; Lambda's event source mapping polls: tests/test_worker.py",
    "max_in_flight_bytes": "the worker's pollers' byte budget; Lambda's mapping receives for it: tests/test_budget.py",
    "receive_wait_seconds": "the worker's polling: tests/test_worker.py",
    "receive_batch_size": "the worker's polling: tests/test_worker.py",
    "visibility_timeout_seconds": "the worker's visibility keeper; the mapping keeps Lambda's: tests/test_worker.py",
    "visibility_extension_max_seconds": "the worker's visibility keeper: tests/test_worker.py",
    "retry_backoff_base_seconds": "the worker's release backoff; the mapping retries Lambda's: tests/test_worker.py",
    "retry_backoff_max_seconds": "the worker's release backoff: tests/test_worker.py",
    "shutdown_timeout_seconds": "the worker's drain at SIGTERM: tests/test_shutdown.py",
    "metrics_interval_seconds": "the worker's flush timer; Lambda flushes once an invocation: tests/test_metrics.py",
    "lambda_deadline_margin_ms": "the Lambda runtime's own deadline: tests/test_lambda.py",
}
SHARED_CLASSES = (IngestSettings, Settings, LambdaSettings, BackfillQueueSettings)


def test_every_field_has_a_case() -> None:
    """A new setting fails here until it has a case (or is named in ONE_RUNTIME, with the reason)."""
    fields = set().union(*(cls.model_fields for cls in SHARED_CLASSES))
    assert fields - CASES.keys() - ONE_RUNTIME.keys() == set(), "add a case to CASES (see the module docstring)"
    assert CASES.keys() & ONE_RUNTIME.keys() == set()
    assert (CASES.keys() | ONE_RUNTIME.keys()) - fields == set(), "a case for a field that no longer exists"
    for name, case in CASES.items():
        assert sorted([*case.runtimes, *case.not_in]) == sorted(RUNTIMES), f"{name}: every runtime, or why not"


@pytest.fixture
def world(
    request: pytest.FixtureRequest, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[[Case], Observed]]:
    """Builds a case's world on its emulator, behind a proxy that counts the calls; yields an `Observed`."""
    proxies: list[FaultProxy] = []

    def build(case: Case) -> Observed:
        if case.emulator == "ministack":
            endpoint: str = request.getfixturevalue("ministack_endpoint")
            reset_ministack(endpoint)
        else:
            endpoint = moto_endpoint
            reset_moto(endpoint)
        stack = build_stack(endpoint, case.emulator)
        proxy = FaultProxy(endpoint, services=frozenset(), delays=case.delays)
        proxies.append(proxy)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.start())
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)  # the proxy frames DynamoDB's and SQS's JSON calls only
        base = {
            "QUEUE_URL": stack.queue_url,
            "DEAD_LETTER_QUEUE_URL": stack.dlq_url,
            "PHOTOS_TABLE": stack.table,
            "RECEIVE_WAIT_SECONDS": "1",
            "VISIBILITY_TIMEOUT_SECONDS": "30",
            "SHUTDOWN_TIMEOUT_SECONDS": "5",
            "METRICS_ENABLED": "false",
            "HEALTH_FILE": str(tmp_path / "health"),
        }
        for name, value in (base | case.env).items():
            monkeypatch.setenv(name, value)
        if (table := case.env.get("PHOTOS_TABLE")) is not None:
            stack.table = table
            stack.create_table()
        for photo in case.uploaded:
            stack.s3.put_object(Bucket=BUCKET, Key=photo.key, Body=OBJECT_BYTES)
        observed = Observed(stack, proxy, health_file=tmp_path / "health")
        for module in (cli, entry, backfill_command):
            monkeypatch.setattr(module, "configure_logging", lambda *how: observed.logging.append(how))
        return observed

    yield build
    entry.close()
    for proxy in proxies:
        proxy.stop()


def run_worker(observed: Observed, monkeypatch: pytest.MonkeyPatch) -> None:
    """`photo-ingest run` until the queue is empty, then a stop request, as SIGTERM makes one."""
    started: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
    monkeypatch.setattr(
        process, "install_stop_handlers", lambda stop: started.append((asyncio.get_running_loop(), stop))
    )
    done = threading.Event()

    def stop_when_drained() -> None:
        while not done.wait(0.1):
            if started and observed.stack.depth() == 0:
                loop, stop = started[0]
                loop.call_soon_threadsafe(stop.set)
                return

    watcher = threading.Thread(target=stop_when_drained, daemon=True)
    watcher.start()
    try:
        observed.code = cli.main(["run"])
    finally:
        done.set()
        watcher.join()


def run_lambda(observed: Observed, messages: int) -> None:
    entry.close()  # a fresh execution environment, configured by this case's variables
    event = receive_event(observed.stack, messages)
    acknowledge(observed.stack, event, entry.handler(event, FakeContext()))
    entry.close()


def run(runtime: str, case: Case, observed: Observed, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setattr(process, "install_stop_handlers", lambda stop: None)
    if runtime in NOTIFIED:
        observed.stack.send(*case.bodies)
    if runtime == "worker":
        run_worker(observed, monkeypatch)
    elif runtime == "lambda":
        run_lambda(observed, len(case.bodies))
    elif runtime == "backfill":
        observed.code = cli.main(["backfill", "--bucket", BUCKET])
    else:
        assert cli.main(["backfill", "--bucket", BUCKET, "--via-queue"]) == process.EXIT_OK
        run_worker(observed, monkeypatch)
    observed.stdout = capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "runtime"), [(name, runtime) for name, case in CASES.items() for runtime in case.runtimes]
)
def test_a_setting_has_the_same_effect_in_every_runtime(
    world: Callable[[Case], Observed],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    runtime: str,
) -> None:
    case = CASES[name]
    observed = world(case)
    with capture_logs():
        run(runtime, case, observed, monkeypatch, capsys)
    assert {item["s3Key"] for item in observed.stack.items().values()} == case.written
    case.check(runtime, observed)
