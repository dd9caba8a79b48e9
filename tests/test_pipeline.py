"""The trimmed SDK pipeline: endpoint resolution cached per operation and table, no-op handlers gone, and the
handlers that do something here kept."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

import pytest
from botocore import auth, handlers

from service.aws.clients import make_session, open_dynamodb, open_sqs


def handler_names(client: Any, event: str) -> set[str]:
    found = client.meta.events._emitter._handlers.prefix_search(event)
    return {getattr(handler, "__name__", type(handler).__name__) for handler in found}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients are only built here, never called: no endpoint, fixed credentials."""
    for name, value in {"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)


async def test_endpoint_resolution_is_cached_per_operation_and_table() -> None:
    """The same operation on the same table resolves once; another table or operation resolves on its own."""
    async with AsyncExitStack() as exits:
        client = await open_dynamodb(exits, make_session(), 2)
        resolver, model = client._ruleset_resolver, client.meta.service_model  # type: ignore[attr-defined]
        put, get = model.operation_model("PutItem"), model.operation_model("GetItem")
        first = await resolver.construct_endpoint(put, {"TableName": "Photos"}, {})
        assert await resolver.construct_endpoint(put, {"TableName": "Photos"}, {}) is first
        assert await resolver.construct_endpoint(put, {"TableName": "Other"}, {}) is not first
        assert await resolver.construct_endpoint(get, {"TableName": "Photos"}, {}) is not first
        assert first.url == "https://dynamodb.eu-west-1.amazonaws.com"


async def test_no_op_handlers_are_gone_and_working_ones_stay() -> None:
    """Idempotency tokens, validation modes, endpoint discovery, API-version and (outside Lambda) trace-id handlers
    are unregistered; the signer, the user agent, the retry headers and the retry handler remain."""
    async with AsyncExitStack() as exits:
        session = make_session()
        for client, operation in (
            (await open_dynamodb(exits, session, 2), "dynamodb.PutItem"),
            (await open_sqs(exits, session, 2, 20), "sqs.ReceiveMessage"),
        ):
            assert handler_names(client, f"before-parameter-build.{operation}") == set()
            assert handler_names(client, f"before-call.{operation}") == set()
            assert handler_names(client, f"request-created.{operation}") >= {
                "handler",
                handlers.add_retry_headers.__name__,
            }
            assert handler_names(client, f"needs-retry.{operation}") == {"needs_retry"}


async def test_in_lambda_the_trace_id_handler_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    """In Lambda, botocore's recursion-detection handler forwards the trace id: it is kept there."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "photo-ingest")
    async with AsyncExitStack() as exits:
        client = await open_dynamodb(exits, make_session(), 2)
        assert handler_names(client, "before-call.dynamodb.PutItem") == {"add_recursion_detection_header"}


async def test_the_signers_host_parsing_is_cached_and_answers_as_before() -> None:
    """Once a client is trimmed, botocore's SigV4 host parser is cached; it gives the host (and a non-default
    port, IPv6 in brackets) exactly as before."""
    async with AsyncExitStack() as exits:
        await open_sqs(exits, make_session(), 2, 20)
    host_from_url = auth._host_from_url  # type: ignore[attr-defined]
    assert host_from_url("https://sqs.eu-west-1.amazonaws.com/") == "sqs.eu-west-1.amazonaws.com"
    assert host_from_url("http://127.0.0.1:4566/") == "127.0.0.1:4566"
    assert host_from_url("http://[::1]:8000/") == "[::1]:8000"
    assert host_from_url("https://sqs.eu-west-1.amazonaws.com/") == "sqs.eu-west-1.amazonaws.com"
    assert host_from_url.cache_info().hits >= 1
