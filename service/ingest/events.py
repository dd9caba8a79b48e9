"""An SQS message body -> the S3 objects it announces. Pure code: no AWS calls, no I/O.

Accepted envelopes (see docs/architecture.md, "Event formats"):

    {"Records": [...]}                        direct S3 notification, or SNS raw delivery
    {"Type": "Notification", "Message": "…"}  SNS envelope; `Message` is a JSON *string*, unwrapped once
    {"detail-type": "Object Created", ...}    EventBridge event (the whole event is the body)
    {"Event": "s3:TestEvent", ...}            S3's test message, bare or inside SNS: acknowledged

Key decoding is part of the product's contract:
- Records keys are form-encoded by S3 (space is `+`, `+` is `%2B`), so they are decoded with `unquote_plus`
  exactly once, before the prefix check. A second decoding would corrupt keys holding `%` and hex digits.
- EventBridge keys arrive literal: AWS does not document any encoding and field reports show raw `+` and `%`.
  Decoding them would turn a literal `+` into a space and give a different photoId for the same object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


class PoisonMessageError(ValueError):
    """The body can never be processed: not JSON, or a known envelope whose structure is broken."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """One created S3 object under the prefix: the only thing that leads to a write."""

    bucket: str
    key: str
    event_name: str
    event_time: str | None = None
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None


@dataclass(frozen=True, slots=True)
class SkippedRecord:
    """Something deliberately not written. `reason` is a stable, machine-readable word."""

    reason: str
    bucket: str | None = None
    key: str | None = None
    event_name: str | None = None


Entry = ObjectRecord | SkippedRecord


def parse_body(body: str, raw_prefix: str) -> list[Entry]:
    """Parse one SQS body. Raises `PoisonMessageError`; returns an empty list for nothing to do."""
    return _parse_document(_load_json(body, "body_not_json"), raw_prefix, inside_sns=False)


def _parse_document(doc: object, raw_prefix: str, *, inside_sns: bool) -> list[Entry]:
    if not isinstance(doc, dict):
        raise PoisonMessageError("body_not_object", type(doc).__name__)
    if "Records" in doc:
        records = doc["Records"]
        if not isinstance(records, list):
            raise PoisonMessageError("records_not_list")
        return [_from_notification_record(record, raw_prefix) for record in records]
    if doc.get("Event") == "s3:TestEvent":
        return [SkippedRecord("test_event", bucket=_optional_str(doc.get("Bucket")))]
    if doc.get("Type") == "Notification" and "Message" in doc and not inside_sns:
        message = doc["Message"]
        if not isinstance(message, str):
            raise PoisonMessageError("sns_message_not_string")
        return _parse_document(_load_json(message, "sns_message_not_json"), raw_prefix, inside_sns=True)
    if "detail-type" in doc and doc.get("source") == "aws.s3":
        return [_from_eventbridge(doc, raw_prefix)]
    return [SkippedRecord("not_an_s3_event")]


def _from_notification_record(record: object, raw_prefix: str) -> Entry:
    if not isinstance(record, dict):
        raise PoisonMessageError("broken_structure", f"record is {type(record).__name__}")
    s3 = _object_field(record, "record", "s3")
    bucket = _string_field(_object_field(s3, "s3", "bucket"), "bucket", "name")
    obj = _object_field(s3, "s3", "object")
    encoded_key = _string_field(obj, "object", "key")
    event_name = _string_field(record, "record", "eventName") or ""
    if not bucket or not encoded_key:
        return SkippedRecord("missing_bucket_or_key", bucket=bucket, event_name=event_name)
    try:
        key = unquote_plus(encoded_key, errors="strict")
    except UnicodeDecodeError as exc:
        raise PoisonMessageError("key_not_utf8", encoded_key) from exc
    name = event_name.removeprefix("s3:")
    if not name.startswith("ObjectCreated:"):
        return SkippedRecord("not_object_created", bucket=bucket, key=key, event_name=event_name)
    if not key.startswith(raw_prefix):
        return SkippedRecord("outside_prefix", bucket=bucket, key=key, event_name=event_name)
    return ObjectRecord(
        bucket=bucket,
        key=key,
        event_name=name,
        event_time=_string_field(record, "record", "eventTime"),
        size=_int_field(obj, "size"),
        etag=_string_field(obj, "object", "eTag"),
        version_id=_string_field(obj, "object", "versionId"),
        sequencer=_string_field(obj, "object", "sequencer"),
    )


def _from_eventbridge(event: dict[str, Any], raw_prefix: str) -> Entry:
    detail_type = _string_field(event, "event", "detail-type") or ""
    detail = _object_field(event, "event", "detail")
    bucket = _string_field(_object_field(detail, "detail", "bucket"), "bucket", "name")
    obj = _object_field(detail, "detail", "object")
    key = _string_field(obj, "object", "key")  # literal: see the module docstring
    if detail_type != "Object Created":
        return SkippedRecord("not_object_created", bucket=bucket, key=key, event_name=detail_type)
    if not bucket or not key:
        return SkippedRecord("missing_bucket_or_key", bucket=bucket, event_name=detail_type)
    if not key.startswith(raw_prefix):
        return SkippedRecord("outside_prefix", bucket=bucket, key=key, event_name=detail_type)
    reason = _string_field(detail, "detail", "reason")
    return ObjectRecord(
        bucket=bucket,
        key=key,
        event_name=f"ObjectCreated:{reason}" if reason else "ObjectCreated",
        event_time=_string_field(event, "event", "time"),
        size=_int_field(obj, "size"),
        etag=_string_field(obj, "object", "etag"),
        version_id=_string_field(obj, "object", "version-id"),
        sequencer=_string_field(obj, "object", "sequencer"),
    )


def _load_json(text: str, reason: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise PoisonMessageError(reason, str(exc)[:200]) from exc


def _object_field(container: object, where: str, name: str) -> dict[str, Any]:
    """`container[name]` as a dict; missing or null is `{}`, any other type is poison."""
    value = container.get(name) if isinstance(container, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PoisonMessageError("broken_structure", f"{where}.{name} is {type(value).__name__}")
    return value


def _string_field(container: dict[str, Any] | object, where: str, name: str) -> str | None:
    value = container.get(name) if isinstance(container, dict) else None
    if value is None or isinstance(value, str):
        return value
    raise PoisonMessageError("broken_structure", f"{where}.{name} is {type(value).__name__}")


def _int_field(container: dict[str, Any], name: str) -> int | None:
    value = container.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        return None  # size is informational; a missing or odd one never blocks a photo
    return value


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
