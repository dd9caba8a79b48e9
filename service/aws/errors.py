"""One classification of failures. Every exception that reaches the worker maps to exactly one kind:

    BaseException
    ├── asyncio.CancelledError ............................. never caught: re-raised everywhere
    └── Exception
        ├── ingest PoisonMessageError ...................... POISON      (not JSON, untrusted, invalid...)
        ├── botocore ClientError, by error code / HTTP status
        │   ├── throttling codes ........................... THROTTLED   (after the SDK's own retries;
        │   │                                                             DynamoDB says why: `throttle_scopes`)
        │   ├── HTTP 5xx, InternalServerError .............. UNAVAILABLE
        │   ├── ResourceNotFound, NonExistentQueue ......... MISSING     (table or queue absent)
        │   ├── AccessDenied, bad or expired credentials ... FORBIDDEN
        │   ├── ValidationException about the item ......... INVALID     (over 400 KB, an empty index key...)
        │   ├── ValidationException about the key schema ... MISCONFIGURED (the table is not keyed by photoId S)
        │   └── any other code (other validation, ...) ..... REJECTED
        ├── botocore BotoCoreError (connect, read timeout) . UNAVAILABLE
        ├── TimeoutError, OSError .......................... UNAVAILABLE
        └── anything else .................................. UNEXPECTED  (a bug: logged with its traceback)

What each kind does to a message is docs/reliability.md's failure table, enforced by the core
(`service.ingest.settle`) and the runtimes:
POISON and INVALID are quarantined: the message's content can never pass, so it is not retried (and an
INVALID put says nothing about the table's health). Every other kind leaves the message on the queue with a
backoff, except that a throttled put is first retried in process, within its message's deadline
(docs/throughput.md). The kinds that describe the environment rather than one message (`pauses_intake`) also pause
receiving, so an outage, or a table whose key schema is wrong and refuses every put, does not burn through the
messages' receive counts.
"""

from __future__ import annotations

import enum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

from service.ingest.fields import PoisonMessageError
from service.ingest.pace import PaceTimeout

AWS_ERRORS = (ClientError, BotoCoreError, OSError)  # what an AWS call raises when AWS, not our code, says no
__all__ = [
    "AWS_ERRORS",
    "ErrorKind",
    "NoRegionError",
    "ThrottleScope",
    "classify",
    "error_code",
    "pauses_intake",
    "throttle_scopes",
]


class ErrorKind(enum.StrEnum):
    POISON = "poison"
    THROTTLED = "throttled"
    UNAVAILABLE = "unavailable"
    MISSING = "missing"
    FORBIDDEN = "forbidden"
    INVALID = "invalid"
    MISCONFIGURED = "misconfigured"
    REJECTED = "rejected"
    UNEXPECTED = "unexpected"


class ThrottleScope(enum.StrEnum):
    """What a DynamoDB throttle says was exceeded, from the limit type in its `ThrottlingReasons`."""

    KEY_RANGE = "key_range"  # one partition's limit: a hot key, or a table not yet split for its load
    TABLE_CAPACITY = "table_capacity"  # provisioned capacity, or an on-demand table's maximum throughput
    ACCOUNT_LIMIT = "account_limit"  # the account's per-table quota in the region
    OTHER = "other"  # no reason given (older endpoints, moto) or one not known here


_THROTTLE_LIMIT_TYPES = (  # reasons read ResourceType + OperationType + LimitType: TableWriteKeyRangeThroughputExceeded
    ("KeyRangeThroughputExceeded", ThrottleScope.KEY_RANGE),
    ("ProvisionedThroughputExceeded", ThrottleScope.TABLE_CAPACITY),
    ("MaxOnDemandThroughputExceeded", ThrottleScope.TABLE_CAPACITY),
    ("AccountLimitExceeded", ThrottleScope.ACCOUNT_LIMIT),
)

_THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
    }
)
_MISSING_CODES = frozenset(
    {"ResourceNotFoundException", "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}
)
_FORBIDDEN_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "MissingAuthenticationToken",
        "SignatureDoesNotMatch",
        "KMS.AccessDeniedException",
    }
)
# DynamoDB's ValidationException messages, lower-cased. The item's own content: it fails for this item alone.
_ITEM_CONTENT = (
    "item size has exceeded",
    "size of hashkey has exceeded",
    "size of all range keys has exceeded",
    "cannot contain an empty string",
    "may not contain an empty string",
    "number overflow",
    "magnitude larger than supported",
    "magnitude smaller than supported",
)
# The table's key schema disagrees with the item: every put fails the same way.
_KEY_SCHEMA = ("missing the key", "type mismatch", "required keys")
_ENVIRONMENT = frozenset(
    {ErrorKind.THROTTLED, ErrorKind.UNAVAILABLE, ErrorKind.MISSING, ErrorKind.FORBIDDEN, ErrorKind.MISCONFIGURED}
)


def classify(exc: BaseException) -> ErrorKind:
    """The one place that decides what an exception means."""
    if isinstance(exc, PoisonMessageError):
        return ErrorKind.POISON
    if isinstance(exc, PaceTimeout):  # no turn in the write pace in time: a throttle the process kept
        return ErrorKind.THROTTLED
    if isinstance(exc, ClientError):
        return _classify_client_error(exc)
    if isinstance(exc, BotoCoreError | TimeoutError | OSError):
        return ErrorKind.UNAVAILABLE
    return ErrorKind.UNEXPECTED


def error_code(exc: BaseException) -> str:
    """The AWS error code, or the exception's class name."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "Unknown"))
    return type(exc).__name__


def pauses_intake(kind: ErrorKind) -> bool:
    """True for kinds that say the environment, not the message, is at fault."""
    return kind in _ENVIRONMENT


def throttle_scopes(exc: BaseException) -> list[tuple[ThrottleScope, str]]:
    """(scope, resource ARN) for each of a DynamoDB throttling error's `ThrottlingReasons`
    (`throttlingReasons` in a ThrottlingException); [(OTHER, "")] when it names none."""
    response: dict[str, Any] = dict(exc.response) if isinstance(exc, ClientError) else {}
    listed = response.get("ThrottlingReasons") or response.get("throttlingReasons") or []
    scopes = [(_scope(str(entry.get("reason", ""))), str(entry.get("resource", ""))) for entry in listed]
    return scopes or [(ThrottleScope.OTHER, "")]


def _scope(reason: str) -> ThrottleScope:
    return next((scope for limit, scope in _THROTTLE_LIMIT_TYPES if reason.endswith(limit)), ThrottleScope.OTHER)


def _classify_client_error(exc: ClientError) -> ErrorKind:
    error = exc.response.get("Error", {})
    codes = {error.get("Code", ""), error.get("QueryErrorCode", "")}
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if codes & _THROTTLING_CODES:
        return ErrorKind.THROTTLED
    if codes & _MISSING_CODES:
        return ErrorKind.MISSING
    if codes & _FORBIDDEN_CODES or status == 403:
        return ErrorKind.FORBIDDEN
    if status >= 500 or codes & {"InternalServerError", "InternalFailure", "ServiceUnavailable"}:
        return ErrorKind.UNAVAILABLE
    if "ValidationException" in codes:
        return _classify_validation(str(error.get("Message", "")).lower())
    return ErrorKind.REJECTED


def _classify_validation(message: str) -> ErrorKind:
    if any(phrase in message for phrase in _KEY_SCHEMA):
        return ErrorKind.MISCONFIGURED
    if any(phrase in message for phrase in _ITEM_CONTENT):
        return ErrorKind.INVALID
    return ErrorKind.REJECTED
