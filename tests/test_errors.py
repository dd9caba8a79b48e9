"""One classification of failures: every exception maps to exactly one kind."""

from __future__ import annotations

import asyncio
import json

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from service.aws.errors import ErrorKind, ThrottleScope, classify, error_code, pauses_intake, throttle_scopes
from service.ingest.events import PoisonMessageError
from tests.conftest import EVENTS


def client_error(code: str, status: int = 400, query_code: str | None = None) -> ClientError:
    error = {"Code": code, "Message": "m"} | ({"QueryErrorCode": query_code} if query_code else {})
    return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (PoisonMessageError("body_not_json"), ErrorKind.POISON),
        (client_error("ProvisionedThroughputExceededException"), ErrorKind.THROTTLED),
        (client_error("ThrottlingException"), ErrorKind.THROTTLED),
        (client_error("RequestLimitExceeded"), ErrorKind.THROTTLED),
        (client_error("InternalServerError", 500), ErrorKind.UNAVAILABLE),
        (client_error("ServiceUnavailable", 503), ErrorKind.UNAVAILABLE),
        (client_error("ResourceNotFoundException"), ErrorKind.MISSING),
        (client_error("AccessDeniedException"), ErrorKind.FORBIDDEN),
        (client_error("Whatever", 403), ErrorKind.FORBIDDEN),
        (client_error("ExpiredTokenException"), ErrorKind.FORBIDDEN),
        (client_error("ValidationException"), ErrorKind.REJECTED),
        (EndpointConnectionError(endpoint_url="http://x"), ErrorKind.UNAVAILABLE),
        (ReadTimeoutError(endpoint_url="http://x"), ErrorKind.UNAVAILABLE),
        (ConnectTimeoutError(endpoint_url="http://x"), ErrorKind.UNAVAILABLE),
        (TimeoutError(), ErrorKind.UNAVAILABLE),
        (ConnectionResetError(), ErrorKind.UNAVAILABLE),
        (KeyError("x"), ErrorKind.UNEXPECTED),
    ],
)
def test_each_exception_has_one_kind(exc: Exception, kind: ErrorKind) -> None:
    """The tree in service/errors.py's docstring, case by case."""
    assert classify(exc) is kind


def test_recorded_sqs_json_errors_are_classified_by_their_query_code() -> None:
    """SQS over JSON answers `AWS.SimpleQueueService.NonExistentQueue` with QueryErrorCode `QueueDoesNotExist`."""
    response = json.loads((EVENTS / "sqs-error-nonexistent-queue.json").read_text())
    assert classify(ClientError(response, "ReceiveMessage")) is ErrorKind.MISSING
    too_many = json.loads((EVENTS / "sqs-error-too-many-entries-in-batch.json").read_text())
    assert classify(ClientError(too_many, "DeleteMessageBatch")) is ErrorKind.REJECTED


def test_the_recorded_conditional_check_failure_is_not_an_environment_failure() -> None:
    """ConditionalCheckFailed never reaches classification in practice; if it did, it would not pause intake."""
    response = json.loads((EVENTS / "dynamodb-conditional-check-failed-all-old.json").read_text())
    kind = classify(ClientError(response, "PutItem"))
    assert kind is ErrorKind.REJECTED
    assert not pauses_intake(kind)


def test_environment_kinds_pause_intake_and_message_kinds_do_not() -> None:
    """Throttling, outages, missing resources, bad credentials and a table keyed wrongly pause receiving; bad
    messages don't."""
    assert {k for k in ErrorKind if pauses_intake(k)} == {
        ErrorKind.THROTTLED,
        ErrorKind.UNAVAILABLE,
        ErrorKind.MISSING,
        ErrorKind.FORBIDDEN,
        ErrorKind.MISCONFIGURED,
    }


def test_cancellation_is_not_an_exception_to_classify() -> None:
    """CancelledError is a BaseException: `except Exception` in the worker never swallows it."""
    assert not issubclass(asyncio.CancelledError, Exception)


def test_error_code_names_the_aws_code_or_the_class() -> None:
    """Logs carry the AWS error code, or the exception's class for everything else."""
    assert error_code(client_error("ThrottlingException")) == "ThrottlingException"
    assert error_code(TimeoutError()) == "TimeoutError"


@pytest.mark.parametrize(
    ("reason", "scope"),
    [
        ("TableWriteKeyRangeThroughputExceeded", ThrottleScope.KEY_RANGE),
        ("IndexWriteKeyRangeThroughputExceeded", ThrottleScope.KEY_RANGE),
        ("TableWriteProvisionedThroughputExceeded", ThrottleScope.TABLE_CAPACITY),
        ("TableWriteMaxOnDemandThroughputExceeded", ThrottleScope.TABLE_CAPACITY),
        ("TableWriteAccountLimitExceeded", ThrottleScope.ACCOUNT_LIMIT),
        ("SomethingNew", ThrottleScope.OTHER),
    ],
)
def test_throttling_reasons_tell_a_key_range_from_a_table_or_account_limit(reason: str, scope: ThrottleScope) -> None:
    """DynamoDB names the limit type at the end of each reason (ResourceType + OperationType + LimitType)."""
    arn = "arn:aws:dynamodb:us-east-1:123456789012:table/Photos"
    response = {"Error": {"Code": "ProvisionedThroughputExceededException"}}
    exc = ClientError(response | {"ThrottlingReasons": [{"reason": reason, "resource": arn}]}, "PutItem")  # type: ignore[arg-type]
    assert throttle_scopes(exc) == [(scope, arn)]
    lower = ClientError(response | {"throttlingReasons": [{"reason": reason, "resource": arn}]}, "PutItem")  # type: ignore[arg-type]
    assert throttle_scopes(lower) == [(scope, arn)]  # a ThrottlingException spells the member so


def test_a_throttle_without_reasons_is_other() -> None:
    assert throttle_scopes(client_error("ThrottlingException")) == [(ThrottleScope.OTHER, "")]
