"""The Lambda runtime in process, against moto: `service.aws_lambda.handler` behind a simulated SQS event source
mapping (tests/lambda_mapping.py), and the worker beside it on the same bodies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from service.aws_lambda import entry, handler
from service.aws_lambda.entry import EnvironmentFailureError
from service.aws_lambda.event import InvalidEventError
from service.aws_lambda.settings import LambdaSettings
from service.ingest.events import ObjectRecord, PoisonMessageError, parse_body
from service.ingest.items import build_item
from tests.bodies import direct, eventbridge, photos, sns
from tests.conftest import BUCKET, EVENTS, Stack, capture_logs, event_body, run_until
from tests.fault_proxy import FaultProxy
from tests.lambda_mapping import FakeContext, acknowledge, failed_ids, receive_event

Handler = Callable[[dict[str, Any], FakeContext], dict[str, Any]]
NOT_BODIES = ("sqs-lambda-event-", "sqs-receive-", "sqs-delete-", "sqs-error-", "dynamodb-")  # tests/events/SOURCES.md
AWKWARD = photos(5, BUCKET, label="lambda")[4]  # "café Ω"
BODIES = {path.stem: path.read_text() for path in EVENTS.glob("*.json") if not path.stem.startswith(NOT_BODIES)}
BODIES |= {
    "poison-not-json": "not json",
    "poison-records-not-a-list": '{"Records": "broken"}',
    "generated-direct-slash-encoded": direct(AWKWARD, encode_slash=True),
    "generated-sns": sns(AWKWARD),
    "generated-eventbridge": eventbridge(AWKWARD),
}


@pytest.fixture
def lambda_env(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Handler]]:
    """`service.aws_lambda.handler` as a fresh execution environment would run it, configured only by environment
    variables; the caller chooses them first. Logging stays as the tests set it up (capture_logs)."""
    monkeypatch.setattr(entry, "configure_logging", lambda *_: None)

    def configure(**settings: object) -> Handler:
        values = {"photos_table": stack.table, "metrics_enabled": False} | settings
        for name, value in values.items():
            monkeypatch.setenv(name.upper(), str(value))
        return handler

    entry.close()
    yield configure
    entry.close()


def stable(item: dict[str, Any]) -> dict[str, Any]:
    """An item without the time it was written (and `uploadedAt`, when that is the same time)."""
    kept = {name: value for name, value in item.items() if name != "ingestedAt"}
    if item.get("uploadedAt") == item.get("ingestedAt"):
        del kept["uploadedAt"]
    return kept


def expected_end(body: str) -> tuple[dict[str, dict[str, Any]], str]:
    """What the core says a body must become, with a healthy table and a dead-letter queue: the items, and the
    message's fate."""
    try:
        entries = parse_body(body, "photos-raw/")
    except PoisonMessageError:
        return {}, "quarantined"
    now = datetime.now(UTC)
    items = [build_item(entry, now) for entry in entries if isinstance(entry, ObjectRecord)]
    plain = [{name: next(iter(value.values())) for name, value in item.items()} for item in items]
    return {item["photoId"]: stable(item) for item in plain}, "deleted"


def actual_end(stack: Stack) -> tuple[dict[str, dict[str, Any]], str]:
    items = {photo_id: stable(item) for photo_id, item in stack.items().items()}
    if stack.depth(stack.dlq_url):
        return items, "quarantined"
    return items, "deleted" if stack.depth() == 0 else "left on the queue"


@pytest.mark.parametrize("runtime", ["worker", "lambda"])
@pytest.mark.parametrize("name", sorted(BODIES))
def test_every_body_ends_the_same_under_the_worker_and_under_lambda(
    stack: Stack, lambda_env: Callable[..., Handler], runtime: str, name: str
) -> None:
    """Each golden body (and poison, and generated awkward keys) gives the same items and the same fate of its
    message, whichever runtime settles it: the core's answer, applied by each."""
    stack.send(BODIES[name])
    if runtime == "worker":
        settings = stack.settings(dead_letter_queue_url=stack.dlq_url, pollers=1)
        asyncio.run(run_until(settings, lambda: stack.depth() == 0))
    else:
        function = lambda_env(dead_letter_queue_url=stack.dlq_url)
        event = receive_event(stack, 1)
        acknowledge(stack, event, function(event, FakeContext()))
    assert actual_end(stack) == expected_end(BODIES[name])


@pytest.mark.parametrize("name", ["sqs-lambda-event-s3", "sqs-lambda-event-sns-wrapped-non-s3"])
def test_the_recorded_lambda_events_are_acknowledged(
    stack: Stack, lambda_env: Callable[..., Handler], name: str
) -> None:
    """Lambda's own SQS events (an S3 notification outside the prefix, a foreign SNS message) are understood:
    every message acknowledged (a DEBUG line), nothing written, one skip each with its reason."""
    function = lambda_env()
    with capture_logs() as logs:
        response = function(json.loads(event_body(name)), FakeContext())
    assert response == {"batchItemFailures": []}
    assert stack.items() == {}
    skipped = [entry["reason"] for entry in logs if entry["event"] == "record.skipped"]
    assert skipped == [{"sqs-lambda-event-s3": "outside_prefix"}.get(name, "not_an_s3_event")]
    acknowledged = [entry for entry in logs if entry["event"] == "message.acknowledged"]
    assert {entry["messageId"] for entry in acknowledged} == {
        record["messageId"] for record in json.loads(event_body(name))["Records"]
    }
    assert {entry["log_level"] for entry in acknowledged} == {"debug"}  # as the worker's `message.deleted`


@pytest.mark.parametrize("dead_letter", [True, False], ids=["with-dlq", "without-dlq"])
def test_a_batch_of_ten_names_exactly_the_messages_to_retry(
    stack: Stack, lambda_env: Callable[..., Handler], monkeypatch: pytest.MonkeyPatch, dead_letter: bool
) -> None:
    """Seven good photos, one poison, one id conflict and one put that keeps failing (HTTP 500 through the SDK's
    retries): only the failing put is retried, plus the poison and the conflict when there is no dead-letter
    queue to move them to; the seven items exist once, and the conflicting item is untouched."""
    good = photos(7, BUCKET, label="good")
    [conflict] = photos(1, BUCKET, label="conflict")
    [transient] = photos(1, BUCKET, label="transient")
    foreign = {"photoId": {"S": conflict.photo_id}, "s3Bucket": {"S": "other"}, "s3Key": {"S": "photos-raw/x.jpg"}}
    stack.dynamodb.put_item(TableName=stack.table, Item=foreign)
    bodies = {"poison": "not json", "conflict": direct(conflict), "transient": direct(transient)}
    bodies |= {f"good-{i}": direct(photo) for i, photo in enumerate(good)}
    stack.send(*bodies.values())
    event = receive_event(stack, 10)
    ids = {name: next(r["messageId"] for r in event["Records"] if r["body"] == body) for name, body in bodies.items()}
    throttle = FaultProxy(stack.endpoint, rate=1.0, kinds=("server_error",), match=transient.photo_id.encode())
    with throttle:
        monkeypatch.setenv("AWS_ENDPOINT_URL", throttle.url)
        function = lambda_env(dead_letter_queue_url=stack.dlq_url) if dead_letter else lambda_env()
        response = function(event, FakeContext())

    expected = {ids["transient"]} if dead_letter else {ids["transient"], ids["poison"], ids["conflict"]}
    assert failed_ids(response) == expected
    assert throttle.by_operation() == {"server_error:dynamodb:PutItem": 2}  # the pinned 2 attempts for DynamoDB
    items = stack.items()
    assert sorted(items) == sorted([photo.photo_id for photo in good] + [conflict.photo_id])
    assert {items[photo.photo_id]["s3Key"] for photo in good} == {photo.key for photo in good}
    assert items[conflict.photo_id]["s3Bucket"] == "other"
    assert stack.depth(stack.dlq_url) == (2 if dead_letter else 0)


def test_a_throttled_put_retries_in_its_slot_until_the_deadline_then_is_reported(
    stack: Stack, lambda_env: Callable[..., Handler], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A put that DynamoDB keeps throttling is retried inside the invocation (past the SDK's own two attempts),
    not failed at once; when the deadline margin is reached it is reported for a retry, and the others stand."""
    [good, throttled] = photos(2, BUCKET, label="throttle")
    stack.send(direct(good), direct(throttled))
    event = receive_event(stack, 2)
    throttle = FaultProxy(stack.endpoint, rate=1.0, kinds=("throttle",), match=throttled.photo_id.encode())
    with throttle:
        monkeypatch.setenv("AWS_ENDPOINT_URL", throttle.url)
        context = FakeContext(remaining_ms=5_000)  # 3 s of budget past the 2 s margin
        response = lambda_env()(event, context)
    [record] = [r for r in event["Records"] if r["body"] == direct(throttled)]
    assert failed_ids(response) == {record["messageId"]}
    assert throttle.by_operation()["throttle:dynamodb:PutItem"] > 2  # retried in process, not only by the SDK
    assert context.get_remaining_time_in_millis() > 0  # answered before Lambda would have cut it off
    assert sorted(stack.items()) == [good.photo_id]


def test_a_context_with_300_ms_left_starts_no_put_and_returns_in_time(
    stack: Stack, lambda_env: Callable[..., Handler], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Less time left than LAMBDA_DEADLINE_MARGIN_MS (2 s by default): no put is sent to the slowed table, every
    message is reported for a retry, and the handler answers before the context's time runs out."""
    slow = FaultProxy(stack.endpoint, delay_s=60, services=frozenset({"dynamodb"}))
    stack.send(*(direct(photo) for photo in photos(3, BUCKET, label="late")))
    event = receive_event(stack, 3)
    with slow:
        monkeypatch.setenv("AWS_ENDPOINT_URL", slow.url)
        function = lambda_env()
        function({"Records": []}, FakeContext())  # a first, empty invocation opens the clients
        context = FakeContext(remaining_ms=300)
        response = function(event, context)
        left_ms = context.get_remaining_time_in_millis()
    assert failed_ids(response) == {record["messageId"] for record in event["Records"]}
    assert slow.counts["requests"] == 0
    assert left_ms > 0
    assert stack.items() == {}


def test_puts_still_running_at_the_deadline_are_cut_and_reported(
    stack: Stack, lambda_env: Callable[..., Handler], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With 3 s left and a 1 s margin, the puts of a slowed table's photos are cancelled when 2 s have passed:
    their messages are reported, the others acknowledged, and the handler answers before the time runs out."""
    slow, fast = photos(2, BUCKET, label="slow"), photos(3, BUCKET, label="fast")
    stack.send(*(direct(photo) for photo in slow + fast))
    event = receive_event(stack, 5)
    held = FaultProxy(stack.endpoint, delay_s=60, operations=frozenset({"PutItem"}), match=b"slow")
    with held:
        monkeypatch.setenv("AWS_ENDPOINT_URL", held.url)
        function = lambda_env(lambda_deadline_margin_ms=1000)
        context = FakeContext(remaining_ms=3000)
        with capture_logs() as logs:
            response = function(event, context)
        left_ms = context.get_remaining_time_in_millis()
    slow_ids = {r["messageId"] for r in event["Records"] if "slow" in r["body"]}
    assert failed_ids(response) == slow_ids
    assert held.counts["delayed:dynamodb:PutItem"] == 2
    assert left_ms > 0
    assert sorted(stack.items()) == sorted(photo.photo_id for photo in fast)
    released = {entry["messageId"]: entry["reason"] for entry in logs if entry["event"] == "message.released"}
    assert released == dict.fromkeys(slow_ids, "deadline")


def test_warm_invocations_reuse_one_loop_and_one_set_of_clients(
    stack: Stack, lambda_env: Callable[..., Handler]
) -> None:
    """The second invocation of an execution environment runs on the loop and the clients of the first (aioboto3
    clients die with their loop): both write their photo; the clients were opened once."""
    function = lambda_env(dead_letter_queue_url=stack.dlq_url)
    first, second = photos(2, BUCKET, label="warm")
    with capture_logs() as logs:
        stack.send(direct(first))
        assert function(receive_event(stack, 1), FakeContext()) == {"batchItemFailures": []}
        runtime = entry.runtime()
        loop, clients = runtime.loop, runtime.clients
        stack.send(direct(second))
        assert function(receive_event(stack, 1), FakeContext()) == {"batchItemFailures": []}
    assert entry.runtime() is runtime
    assert runtime.loop is loop
    assert not loop.is_closed()
    assert len(clients) == 2  # the core (its DynamoDB client) and, for the dead-letter queue, SQS
    assert all(now is before for now, before in zip(runtime.clients, clients, strict=True))
    assert [entry["event"] for entry in logs].count("lambda.started") == 1
    assert [entry["coldStart"] for entry in logs if entry["event"] == "invocation.finished"] == [True, False]
    assert sorted(stack.items()) == sorted([first.photo_id, second.photo_id])


def test_every_log_line_of_an_invocation_carries_its_request_id(
    stack: Stack, lambda_env: Callable[..., Handler]
) -> None:
    """The Lambda request id is bound to every line an invocation writes, and only to its own."""
    function = lambda_env()
    stack.send(*(direct(photo) for photo in photos(2, BUCKET, label="ids")))
    contexts = [FakeContext(), FakeContext()]
    with capture_logs() as logs:
        for context in contexts:
            function(receive_event(stack, 1), context)
    assert logs
    ids = [entry.get("awsRequestId") for entry in logs]
    first = ids.index(contexts[1].aws_request_id)
    assert set(ids[:first]) == {contexts[0].aws_request_id}
    assert set(ids[first:]) == {contexts[1].aws_request_id}


def test_a_missing_table_fails_the_invocation_so_the_mapping_backs_off(
    stack: Stack, lambda_env: Callable[..., Handler]
) -> None:
    """When every message failed because the environment did (here, no table), the handler raises: Lambda then
    retries the whole batch and lowers the mapping's concurrency. Nothing was acknowledged."""
    function = lambda_env()
    stack.dynamodb.delete_table(TableName=stack.table)
    stack.send(*(direct(photo) for photo in photos(2, BUCKET, label="gone")))
    with capture_logs() as logs, pytest.raises(EnvironmentFailureError, match="missing"):
        function(receive_event(stack, 2), FakeContext())
    assert [entry["reason"] for entry in logs if entry["event"] == "message.released"] == ["record_failed"] * 2


def test_a_missing_table_with_a_message_settled_anyway_is_a_partial_failure(
    stack: Stack, lambda_env: Callable[..., Handler]
) -> None:
    """A test event needs no table: it is acknowledged, so the invocation reports the photo and does not fail."""
    function = lambda_env()
    stack.dynamodb.delete_table(TableName=stack.table)
    stack.send(direct(photos(1, BUCKET, label="gone")[0]), event_body("s3-testevent"))
    event = receive_event(stack, 2)
    response = function(event, FakeContext())
    assert failed_ids(response) == {r["messageId"] for r in event["Records"] if "TestEvent" not in r["body"]}


@pytest.mark.parametrize("event", [{}, {"Records": "x"}, {"Records": [{"body": "{}"}]}, []])
def test_an_event_that_is_not_from_sqs_fails_with_a_clear_error(lambda_env: Callable[..., Handler], event: Any) -> None:
    """Something other than an SQS event source mapping's event fails the invocation, naming what was expected."""
    with pytest.raises(InvalidEventError, match="SQS event"):
        lambda_env()(event, FakeContext())


def test_the_lambda_runtime_needs_no_queue_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """QUEUE_URL is optional for Lambda only: the event names its queue. The worker's Settings still require it."""
    monkeypatch.delenv("QUEUE_URL", raising=False)
    assert LambdaSettings().queue_url == ""
    assert LambdaSettings().lambda_deadline_margin_ms == 2000
