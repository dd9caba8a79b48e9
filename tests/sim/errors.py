"""What AWS answers when it says no, built as botocore builds it: the service's modeled exception class (the
very classes `client.exceptions` of a real client carries, so `except client.exceptions.X` works) with the
parsed error response, or botocore's own network errors. `retryable` is botocore's `standard` mode's rule."""

from __future__ import annotations

import functools
from typing import Any

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError, HTTPClientError, ReadTimeoutError
from botocore.retries.standard import ThrottledRetryableChecker, TransientRetryableChecker

THROTTLING_CODES = frozenset(ThrottledRetryableChecker._THROTTLED_ERROR_CODES)
TRANSIENT_CODES = frozenset(TransientRetryableChecker._TRANSIENT_ERROR_CODES)
TRANSIENT_STATUS = frozenset(TransientRetryableChecker._TRANSIENT_STATUS_CODES)
ENDPOINTS = {
    "sqs": "https://sqs.us-east-1.amazonaws.com/",
    "dynamodb": "https://dynamodb.us-east-1.amazonaws.com/",
    "s3": "https://s3.us-east-1.amazonaws.com/",
}


@functools.cache
def exceptions(service: str) -> Any:
    """A real client's exception classes (made once per process, offline)."""
    client = botocore.session.get_session().create_client(
        service,
        region_name="us-east-1",
        aws_access_key_id="sim",
        aws_secret_access_key="sim",  # noqa: S106
    )
    return client.exceptions


def client_error(service: str, operation: str, code: str, status: int = 400, **extra: Any) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"simulated {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "sim"},
        **extra,
    }
    error: ClientError = exceptions(service).from_code(code)(response, operation)
    return error


def read_timeout(service: str) -> BotoCoreError:
    return ReadTimeoutError(endpoint_url=ENDPOINTS[service])


def connection_closed(service: str) -> BotoCoreError:
    return ConnectionClosedError(endpoint_url=ENDPOINTS[service])


def retryable(exc: Exception, *, paced: bool) -> bool:
    """What botocore's standard mode retries; a paced write's throttle is left to the caller (retries.py)."""
    if isinstance(exc, HTTPClientError):
        return True
    if not isinstance(exc, ClientError):
        return False
    code = exc.response["Error"]["Code"]
    if code in THROTTLING_CODES:
        return not paced
    return code in TRANSIENT_CODES or exc.response["ResponseMetadata"]["HTTPStatusCode"] in TRANSIENT_STATUS
