"""Batch deletes and visibility changes report exactly the entries that failed, retry included."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from structlog.testing import capture_logs

from service.aws.queue import Message, _with_one_retry

MESSAGES = [Message(f"m{n}", f"handle-{n}", "{}", 1, None) for n in range(4)]


def scripted(*answers: list[str] | BaseException) -> tuple[Any, list[list[str]]]:
    """A batch call that answers, call by call, the listed failed Ids or raises; and the Ids each call sent."""
    calls: list[list[str]] = []

    async def call(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        calls.append([entry["Id"] for entry in batch])
        answer = answers[len(calls) - 1]
        if isinstance(answer, BaseException):
            raise answer
        return [{"Id": id_, "Code": "InternalError", "SenderFault": False} for id_ in answer]

    return call, calls


async def test_a_failed_retry_reports_only_the_entries_it_retried() -> None:
    """On main, a retry call that raised failed every entry of the batch, though the first call had deleted
    most of them. Now only the retried entries are reported failed."""
    call, calls = scripted(["1", "3"], EndpointConnectionError(endpoint_url="https://sqs"))
    with capture_logs() as logs:
        failed = await _with_one_retry("delete", [(m, 0) for m in MESSAGES], call, lambda m, _t: {})
    assert failed == {"handle-1", "handle-3"}
    assert calls == [["0", "1", "2", "3"], ["1", "3"]]
    assert [entry["event"] for entry in logs].count("sqs.delete_retry_failed") == 1


async def test_a_retry_that_succeeds_reports_nothing_failed() -> None:
    call, _ = scripted(["2"], [])
    assert await _with_one_retry("delete", [(m, 0) for m in MESSAGES], call, lambda m, _t: {}) == set()


async def test_an_entry_failed_twice_is_reported_failed() -> None:
    call, _ = scripted(["0", "2"], ["2"])
    assert await _with_one_retry("delete", [(m, 0) for m in MESSAGES], call, lambda m, _t: {}) == {"handle-2"}


async def test_a_first_call_that_raises_raises() -> None:
    """Nothing was settled yet: the caller hears the call's own error."""
    call, _ = scripted(EndpointConnectionError(endpoint_url="https://sqs"))
    with pytest.raises(EndpointConnectionError):
        await _with_one_retry("delete", [(m, 0) for m in MESSAGES], call, lambda m, _t: {})
