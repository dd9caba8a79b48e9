"""Throttles, each where it belongs, through a fault-injecting proxy in front of moto: a throttled receive
pauses intake and touches no message; a throttled put shrinks the in-flight limit and is retried in process,
so its message is neither released nor received again; a put throttled past its budget still fails and its
message is released. And the SDK's retries are pinned, not inherited."""

from __future__ import annotations

from typing import Any

import pytest

from service.aws.clients import DYNAMODB_MAX_ATTEMPTS, MAX_ATTEMPTS, client_config
from tests import bodies
from tests.conftest import BUCKET, Stack, capture_logs, run_until
from tests.fault_proxy import FaultProxy

DYNAMODB_ONLY, SQS_ONLY = frozenset({"dynamodb"}), frozenset({"sqs"})


def named(logs: list[dict[str, Any]], *events: str) -> list[dict[str, Any]]:
    return [entry for entry in logs if entry["event"] in events]


async def test_a_throttled_receive_pauses_intake_and_touches_no_message(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ReceiveMessage is throttled until the worker has paused three times, each pause longer than the
    last; no message is received meanwhile, so once the throttle lifts each is received for the first time
    (receiveCount 1), stored and deleted."""
    photos = bodies.photos(5, BUCKET, "receive throttle")
    stack.send(*map(bodies.direct, photos))
    proxy = FaultProxy(stack.endpoint, rate=1.0, kinds=("throttle",), services=SQS_ONLY, operations={"ReceiveMessage"})
    with proxy, capture_logs() as logs:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)

        def lift_after_three_pauses_then_drained() -> bool:
            if len({entry["pause"] for entry in named(logs, "queue.receive_failed")}) >= 3:
                proxy.rate = 0.0
            return len(stack.items()) == len(photos) and stack.depth() == 0

        await run_until(stack.settings(), lift_after_three_pauses_then_drained, timeout_s=60)
    failures = named(logs, "queue.receive_failed")
    assert {(entry["kind"], entry["code"]) for entry in failures} == {("throttled", "ThrottlingException")}
    first_delays = {entry["pause"]: entry["retryInSeconds"] for entry in reversed(failures)}
    assert [first_delays[pause] for pause in (1, 2, 3)] == sorted(first_delays[pause] for pause in (1, 2, 3))
    first_message_event = next(i for i, entry in enumerate(logs) if "messageId" in entry)
    assert first_message_event > logs.index(failures[-1]), "a message was handled while receives were throttled"
    assert {entry["receiveCount"] for entry in named(logs, "message.deleted")} == {1}
    assert len(named(logs, "message.deleted")) == len(photos)
    assert proxy.faults("throttle", "sqs") >= 3 * MAX_ATTEMPTS
    assert proxy.faults(service="dynamodb") == 0


async def test_a_throttled_put_shrinks_the_limit_and_is_retried_without_releasing_its_message(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half the PutItems are throttled (ProvisionedThroughputExceeded, with DynamoDB's ThrottlingReasons naming
    the table's write capacity). The in-flight limit drops below MAX_IN_FLIGHT_RECORDS; every throttled put is
    retried in process, so no message is released or received twice, each photo is inserted exactly once, and
    each throttle is counted in ThrottledTableCapacity. AWS_MAX_ATTEMPTS=1 turns the SDK's own retries off, so
    every throttle the proxy injects reaches the worker."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    photos = bodies.photos(40, BUCKET, "put throttle")
    stack.send(*map(bodies.direct, photos))
    proxy = FaultProxy(
        stack.endpoint,
        rate=0.5,
        kinds=("throttle",),
        services=DYNAMODB_ONLY,
        operations={"PutItem"},
        seed=11,
        throttling_reasons=["TableWriteProvisionedThroughputExceeded"],
    )
    settings = stack.settings(metrics_enabled=True, metrics_interval_seconds=0.5)
    with proxy, capture_logs() as logs:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        await run_until(settings, lambda: len(stack.items()) == len(photos) and stack.depth() == 0, timeout_s=60)
    throttles = proxy.faults("throttle", "dynamodb")
    assert throttles > 0
    assert proxy.calls("PutItem") == len(photos) + throttles
    assert len(named(logs, "photo.inserted")) == len(photos)
    assert named(logs, "photo.failed", "message.released", "photo.duplicate") == []
    assert {entry["receiveCount"] for entry in named(logs, "message.deleted")} == {1}
    assert min(entry["limit"] for entry in named(logs, "limit.changed")) < settings.max_in_flight_records
    summaries = named(logs, "metrics.summary")
    assert sum(entry["ThrottledTableCapacity"] for entry in summaries) == throttles
    assert sum(entry["ThrottledKeyRange"] + entry["ThrottledOther"] for entry in summaries) == 0
    assert min(entry["InFlightLimit"] for entry in summaries) < settings.max_in_flight_records
    print("put throttle:", {"photos": len(photos), "puts": proxy.calls("PutItem"), "throttles": throttles})


async def test_a_put_throttled_past_its_budget_fails_and_its_message_is_released(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every PutItem is throttled, and a message may be held 4 s at most (VISIBILITY_EXTENSION_MAX_SECONDS): the
    put is retried in process until its message's budget runs out, then fails; the message is released with a
    backoff and stays on the queue, and nothing is written."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    stack.send(bodies.direct(bodies.photos(1, BUCKET, "budget")[0]))
    proxy = FaultProxy(stack.endpoint, rate=1.0, kinds=("throttle",), services=DYNAMODB_ONLY, operations={"PutItem"})
    settings = stack.settings(visibility_timeout_seconds=2, visibility_extension_max_seconds=4)
    with proxy, capture_logs() as logs:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        await run_until(settings, lambda: bool(named(logs, "message.released")), timeout_s=30)
    [failed] = named(logs, "photo.failed")
    assert failed["kind"] == "throttled"
    assert named(logs, "message.released")[0]["reason"] == "record_failed"
    assert proxy.calls("PutItem") > 1, "the put was not retried in process before it failed"
    assert stack.depth() == 1
    assert stack.items() == {}


@pytest.mark.parametrize(("environment", "attempts"), [({}, None), ({"AWS_MAX_ATTEMPTS": "7"}, "env")])
def test_the_sdk_retries_are_pinned_unless_the_environment_says_otherwise(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], attempts: str | None
) -> None:
    """standard mode, 3 attempts (2 for DynamoDB, so a throttle reaches the limiter early), fixed timeouts;
    AWS_RETRY_MODE and AWS_MAX_ATTEMPTS still win (botocore reads the latter itself)."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    sqs, dynamodb = client_config(4, 30), client_config(4, 10, max_attempts=DYNAMODB_MAX_ATTEMPTS)
    assert sqs.retries["mode"] == dynamodb.retries["mode"] == "standard"
    assert (sqs.connect_timeout, sqs.read_timeout, dynamodb.read_timeout) == (5, 30, 10)
    if attempts is None:
        assert (sqs.retries["total_max_attempts"], dynamodb.retries["total_max_attempts"]) == (3, 2)
    else:
        assert "total_max_attempts" not in sqs.retries
    monkeypatch.setenv("AWS_RETRY_MODE", "adaptive")
    assert client_config(4, 10).retries["mode"] == "adaptive"


@pytest.mark.parametrize(
    ("operation", "kind", "attempts"),
    [
        ("PutItem", "throttle", 1),  # the pace retries it, paced
        ("PutItem", "server_error", DYNAMODB_MAX_ATTEMPTS),  # the SDK retries it, as before
        ("GetItem", "throttle", DYNAMODB_MAX_ATTEMPTS),  # not a paced write: the SDK's
    ],
)
async def test_the_sdk_leaves_only_a_throttled_write_to_the_pace(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, operation: str, kind: str, attempts: int
) -> None:
    """Through the product's own DynamoDB client and a proxy that faults every call of one operation: a
    throttled PutItem reaches the caller after one attempt, while a PutItem that failed with a 500 and a
    throttled GetItem are retried by the SDK."""
    from contextlib import AsyncExitStack

    from botocore.exceptions import ClientError

    from service.aws.clients import make_session, open_dynamodb
    from service.aws.errors import ErrorKind, classify

    proxy = FaultProxy(stack.endpoint, rate=1.0, kinds=(kind,), services=DYNAMODB_ONLY, operations={operation})
    key = {"photoId": {"S": "sdk-retries"}}
    with proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        async with AsyncExitStack() as exits:
            client = await open_dynamodb(exits, make_session(), pool=2)
            if operation == "PutItem":
                call = client.put_item(TableName="Photos", Item=key)
            else:
                call = client.get_item(TableName="Photos", Key=key)  # type: ignore[assignment]
            with pytest.raises(ClientError) as raised:
                await call
    assert classify(raised.value) is {"throttle": ErrorKind.THROTTLED, "server_error": ErrorKind.UNAVAILABLE}[kind]
    assert proxy.calls(operation) == attempts
