"""OpenTelemetry on the wire: the real worker, the Lambda handler and backfill against moto, exporting to a real
OTLP/HTTP receiver in process (tests/otlp_receiver.py), configured only by the standard OTEL_* variables.

With no endpoint, or with the SDK disabled, nothing is exported and nothing complains.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import structlog.contextvars
import structlog.testing
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from packaging.requirements import Requirement

from service import telemetry
from service.aws_lambda import entry, handler
from service.logs import trace_ids
from service.metrics import METRIC_UNITS
from service.telemetry.meters import FRESHNESS_BUCKETS_S
from tests import test_backfill as backfill
from tests.bodies import direct, direct_many, photos
from tests.conftest import BUCKET, Stack, deleted, run_until
from tests.fleet import open_sender, photo_keys, queue_options, upload
from tests.lambda_mapping import FakeContext, receive_event
from tests.otlp_receiver import Received, attributes, otlp_receiver

# An upload's X-Ray context as S3 puts it into AWSTraceHeader (the format of AWS's documentation)
TRACE_ID = "5759e988bd862e3fe1be46a994272793"
PARENT_ID = "53995c3f42cd8ad8"


def xray_header(trace_id: str, parent_id: str) -> str:
    return f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={parent_id};Sampled=1"


HEADER = xray_header(TRACE_ID, PARENT_ID)


@pytest.fixture
def otlp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Received]:
    """A receiver, and OTEL_EXPORTER_OTLP_ENDPOINT pointing at it; the exporters end with the test."""
    with otlp_receiver() as (endpoint, received):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "photo-ingest-test")
        yield received
        telemetry.stop()


def capture_logs() -> Any:
    """The log events as dicts, through the processors that give them their context and their trace ids."""
    return structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars, trace_ids])


def send_traced(stack: Stack, body: str, header: str = HEADER) -> str:
    response = stack.sqs.send_message(
        QueueUrl=stack.queue_url,
        MessageBody=body,
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": header}},
    )
    return str(response["MessageId"])


def queue_name(stack: Stack) -> str:
    return stack.queue_url.rsplit("/", 1)[1]


def only(spans: list[Span]) -> Span:
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


def assert_linked_process(process: Span, stack: Stack, message_id: str) -> None:
    """A CONSUMER span with the messaging attributes, linked to (never the child of) the header's context."""
    assert process.kind == Span.SPAN_KIND_CONSUMER
    assert process.trace_id.hex() != TRACE_ID
    [link] = process.links
    assert (link.trace_id.hex(), link.span_id.hex()) == (TRACE_ID, PARENT_ID)
    assert attributes(process) | {"messaging.aws_sqs.receive_count": 1} == attributes(process)
    assert {
        "messaging.system": "aws_sqs",
        "messaging.operation.type": "process",
        "messaging.destination.name": queue_name(stack),
        "messaging.message.id": message_id,
        "photo_ingest.disposition": "delete",
    }.items() <= attributes(process).items()
    assert "photo_ingest.reason" not in attributes(process)  # a reason says why a message was kept


def assert_write_under(process: Span, received: Received, outcome: str = "inserted") -> Span:
    write = only([span for span in received.named("photo.write") if span.parent_span_id == process.span_id])
    assert write.trace_id == process.trace_id
    assert write.kind == Span.SPAN_KIND_CLIENT
    assert attributes(write) == {"db.system": "dynamodb", "photo_ingest.outcome": outcome}
    assert "pace.waited" in {event.name for event in write.events}
    return write


async def test_a_message_with_an_awstraceheader_is_traced_from_receive_to_write(
    stack: Stack, otlp: Received, capsys: pytest.CaptureFixture[str]
) -> None:
    """The worker: a receive span, a process span linked to the upload's trace with its write as its child, the
    slot wait as an event, and log lines carrying the write span's trace and span ids."""
    [photo] = photos(1, BUCKET, label="otel")
    message_id = send_traced(stack, direct(photo))
    settings = stack.settings(metrics_enabled=True, metrics_exporter="otlp", metrics_interval_seconds=3600)
    with capture_logs() as logs:
        await run_until(settings, lambda: bool(deleted(logs)))

    process = only(otlp.named(f"process {queue_name(stack)}"))
    assert_linked_process(process, stack, message_id)
    assert "slot.waited" in {event.name for event in process.events}
    write = assert_write_under(process, otlp)
    receives = otlp.named(f"receive {queue_name(stack)}")
    assert {span.kind for span in receives} == {Span.SPAN_KIND_CLIENT}
    assert 1 in {attributes(span).get("messaging.batch.message_count") for span in receives}
    [inserted] = [line for line in logs if line["event"] == "photo.inserted"]
    assert (inserted["trace_id"], inserted["span_id"]) == (write.trace_id.hex(), write.span_id.hex())
    [deletion] = [line for line in logs if line["event"] == "message.deleted"]
    assert (deletion["trace_id"], deletion["span_id"]) == (process.trace_id.hex(), process.span_id.hex())
    assert {"service.name": "photo-ingest-test"}.items() <= otlp.resources[0].items()
    assert '"_aws"' not in capsys.readouterr().out  # METRICS_EXPORTER=otlp: no EMF line


async def test_a_quarantined_message_s_span_says_so_and_why(stack: Stack, otlp: Received) -> None:
    """The disposition and its reason, as the worker's own `message.quarantined` line gives it; no write."""
    send_traced(stack, "not json")
    with capture_logs() as logs:
        settings = stack.settings(dead_letter_queue_url=stack.dlq_url)
        await run_until(settings, lambda: any(line["event"] == "message.quarantined" for line in logs))

    [quarantined] = [line for line in logs if line["event"] == "message.quarantined"]
    process = only(otlp.named(f"process {queue_name(stack)}"))
    assert attributes(process)["photo_ingest.disposition"] == "quarantine"
    assert attributes(process)["photo_ingest.reason"] == quarantined["reason"]
    assert quarantined["trace_id"] == process.trace_id.hex()
    assert otlp.named("photo.write") == []


async def test_metrics_exporter_otlp_exports_the_emf_names_units_and_dimensions(
    stack: Stack, otlp: Received, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every EMF counter goes out as a counter, the in-flight figures as gauges, with the EMF dimensions as
    attributes; METRICS_EXPORTER=both writes the EMF line too."""
    stack.send(direct_many(photos(3, BUCKET, label="otel-metrics")))
    settings = stack.settings(metrics_enabled=True, metrics_exporter="both", metrics_interval_seconds=3600)
    with capture_logs() as logs:
        await run_until(settings, lambda: bool(deleted(logs)))

    names = {metric.name for metric in otlp.metrics}
    counters = {name for name, unit in METRIC_UNITS.items() if unit == "Count" and not name.startswith("InFlight")}
    assert (
        counters | {"InFlightRecords", "InFlightLimit", "PutLatencyP50", "PutLatencyP99"} <= names <= set(METRIC_UNITS)
    )
    [inserted] = otlp.metric("RecordsInserted")
    assert inserted.unit == "1"
    assert inserted.sum.is_monotonic
    [point] = inserted.sum.data_points
    assert (point.as_int, attributes(point)) == (3, {"Service": "photo-ingest"})
    [limit] = otlp.metric("InFlightLimit")
    assert limit.gauge.data_points
    [latency] = otlp.metric("PutLatencyP50")
    assert latency.unit == "ms"
    [lag] = otlp.metric("QueueLag")  # an EMF distribution: an OTLP histogram, one value per item written
    [point] = lag.histogram.data_points
    assert (lag.unit, point.count, list(point.explicit_bounds)) == ("s", 3, list(FRESHNESS_BUCKETS_S))
    assert point.sum >= 0
    assert attributes(point) == {"Service": "photo-ingest"}
    assert '"RecordsInserted":3' in capsys.readouterr().out  # and the EMF line


def test_the_lambda_handler_traces_each_record_under_its_invocation(
    stack: Stack, otlp: Received, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One invocation span; each record's process span its child, linked to its AWSTraceHeader; each write the
    child of its record's span. The spans are exported before the handler returns (Lambda then freezes)."""
    monkeypatch.setattr(entry, "configure_logging", lambda *_: None)
    monkeypatch.setenv("PHOTOS_TABLE", stack.table)
    monkeypatch.setenv("METRICS_ENABLED", "false")
    entry.close()
    message_ids = [send_traced(stack, direct(photo)) for photo in photos(2, BUCKET, label="otel-lambda")]
    try:
        assert handler(receive_event(stack, 2), FakeContext()) == {"batchItemFailures": []}
        invocation = only(otlp.named("invoke"))
        processes = otlp.named(f"process {queue_name(stack)}")
        assert sorted(attributes(span)["messaging.message.id"] for span in processes) == sorted(message_ids)
        for process, message_id in ((span, attributes(span)["messaging.message.id"]) for span in processes):
            assert process.parent_span_id == invocation.span_id
            assert_linked_process(process, stack, message_id)
            assert_write_under(process, otlp)
        assert attributes(invocation)["faas.coldstart"] is True
    finally:
        entry.close()


async def test_backfill_via_queue_sends_each_batch_in_a_span_whose_context_rides_in_awstraceheader(
    stack: Stack, otlp: Received
) -> None:
    """Each SendMessageBatch is a PRODUCER span, and every message in it carries that span's context as its
    AWSTraceHeader, so the worker's process span links back to the backfill."""
    keys = photo_keys(12)
    upload(stack, keys)
    headers: list[str] = []

    def keep(params: dict[str, Any], **_: Any) -> None:
        headers.extend(e["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"] for e in params["Entries"])

    telemetry.start()
    async with open_sender(queue_options(stack, concurrency=1)) as (sender, sqs):
        sqs.meta.events.register("before-parameter-build.sqs.SendMessageBatch", keep)
        tally = await sender.run(asyncio.Event())
    telemetry.flush()

    assert tally.sent == 12
    sends = otlp.named(f"send {queue_name(stack)}")
    assert [attributes(span)["messaging.batch.message_count"] for span in sends] == [10, 2]
    assert {span.kind for span in sends} == {Span.SPAN_KIND_PRODUCER}
    expected = [
        f"Root=1-{s.trace_id.hex()[:8]}-{s.trace_id.hex()[8:]};Parent={s.span_id.hex()};Sampled=1" for s in sends
    ]
    assert headers == [expected[0]] * 10 + [expected[1]] * 2


async def test_a_direct_backfill_writes_each_object_in_its_own_span(
    stack: Stack, otlp: Received, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command's own path starts and stops the exporters: one span per object written, its write a child;
    an object outside RAW_PREFIX is not written, so it has none."""
    keys = backfill.upload(stack, 3, extra=["elsewhere/x.jpg"])
    code, _ = await backfill.run(stack, capsys)

    assert code == 0
    objects = otlp.named("backfill.object")
    assert sorted(attributes(span)["photo_ingest.key"] for span in objects) == keys
    for span in objects:
        assert_write_under(span, otlp)


@pytest.mark.parametrize("disabled", ["no endpoint", "OTEL_SDK_DISABLED"])
async def test_without_an_endpoint_or_with_the_sdk_disabled_nothing_is_exported(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, disabled: str
) -> None:
    """The worker runs as without the extra: no span, no metric, no trace id in a log line, no warning."""
    with otlp_receiver() as (endpoint, received):
        if disabled == "OTEL_SDK_DISABLED":
            monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        send_traced(stack, direct(photos(1, BUCKET, label="otel-off")[0]))
        settings = stack.settings(metrics_enabled=True, metrics_exporter="emf", metrics_interval_seconds=3600)
        with capture_logs() as logs:
            await run_until(settings, lambda: bool(deleted(logs)))

    assert (received.spans, received.metrics) == ([], [])
    assert not [line for line in logs if "trace_id" in line or line["log_level"] in ("warning", "error")]
    assert telemetry.ids() is None


def test_an_endpoint_without_the_extra_installed_is_said_once_and_exports_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setitem(sys.modules, "service.telemetry.sdk", None)  # what an image without the extra has
    with capture_logs() as logs:
        assert telemetry.start(otlp_metrics=True) is False
        assert telemetry.metrics_outputs("otlp", {}, dict) == (True, None)  # EMF instead: no metric lost
    assert [line["event"] for line in logs] == ["telemetry.unavailable", "metrics.otlp_unavailable"]
    with telemetry.process("q", "m", 1, HEADER) as span:
        span.note(disposition="delete")
        assert telemetry.ids() is None


def test_the_image_and_the_lambda_zip_install_the_otel_extra() -> None:
    """config/requirements.lock (what the image and `make lambda-zip` install) pins every package of the extra."""
    lock = (Path(__file__).resolve().parents[1] / "config" / "requirements.lock").read_text().lower()
    extra = [Requirement(line) for line in metadata.requires("photo-ingest") or [] if 'extra == "otel"' in line]
    assert {requirement.name for requirement in extra} >= {"opentelemetry-sdk", "opentelemetry-propagator-aws-xray"}
    for requirement in extra:
        assert f"\n{requirement.name}==" in f"\n{lock}", requirement.name


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, (False, False)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, (True, True)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, (True, False)),
        ({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/v1/metrics"}, (False, True)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, (False, False)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, (False, True)),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, (False, False)),
    ],
)
def test_only_the_standard_variables_turn_exports_on(env: dict[str, str], expected: tuple[bool, bool]) -> None:
    assert telemetry.wanted(env) == expected
