"""An SQS message body -> the S3 objects it announces. Pure code: no AWS calls, no I/O.

Accepted envelopes (see docs/architecture.md, "Event formats"):

    {"Records": [...]}                        direct S3 notification, or SNS raw delivery
    {"Type": "Notification", "Message": "…"}  SNS envelope; `Message` is a JSON *string*, unwrapped once
    {"detail-type": "Object Created", ...}    EventBridge event (the whole event is the body)
    {"Event": "s3:TestEvent", ...}            S3's test message, bare or inside SNS: acknowledged

This is the trust boundary (docs/security.md): the JSON must be unambiguous, and every bucket, topic, key and
record count passes `trust` before anything is skipped or written, in every envelope. Whatever fails is poison
with a reason, for the whole message: nothing of a rejected body is ever written.

Key decoding is part of the product's contract:
- Records keys are form-encoded by S3 (space is `+`, `+` is `%2B`), so they are decoded with `unquote_plus`
  exactly once, before the prefix check. A second decoding would corrupt keys holding `%` and hex digits.
- EventBridge keys arrive literal: AWS does not document any encoding and field reports show raw `+` and `%`.
  Decoding them would turn a literal `+` into a space and give a different photoId for the same object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from service.ingest.fields import (
    PoisonMessageError,
    load_json,
    object_field,
    shown,
    size_field,
    string_field,
    text_field,
    time_field,
)
from service.ingest.trust import ANY_SENDER, Trust, valid_key

__all__ = ["Entry", "ObjectRecord", "PoisonMessageError", "SkippedRecord", "is_folder_marker", "parse_body", "screen"]


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


def parse_body(body: str, raw_prefix: str, trust: Trust = ANY_SENDER) -> list[Entry]:
    """Parse one SQS body and check it against `trust`. Raises `PoisonMessageError`; returns an empty list for
    nothing to do."""
    document = load_json(body, "body_not_json")
    return [screen(entry) for entry in _parse_document(document, raw_prefix, trust, inside_sns=False)]


def screen(entry: Entry) -> Entry:
    """The rule for every object, however its record was made (parsed here, or listed by backfill); `Ingest.settle`
    applies it too: a folder marker is skipped, never written."""
    if isinstance(entry, ObjectRecord) and is_folder_marker(entry.key):
        return SkippedRecord("folder_marker", entry.bucket, entry.key, entry.event_name)
    return entry


def is_folder_marker(key: str) -> bool:
    """A key that ends in `/`: the zero-byte object the S3 console's "Create folder" makes, which fires
    ObjectCreated:Put like any upload."""
    return key.endswith("/")


def _parse_document(doc: object, raw_prefix: str, trust: Trust, *, inside_sns: bool) -> list[Entry]:
    if not isinstance(doc, dict):
        raise PoisonMessageError("body_not_object", type(doc).__name__)
    if "Records" in doc:
        records = doc["Records"]
        if not isinstance(records, list):
            raise PoisonMessageError("records_not_list")
        trust.records(len(records))
        return [_from_notification_record(record, raw_prefix, trust) for record in records]
    if doc.get("Event") == "s3:TestEvent":
        bucket = doc.get("Bucket")
        return [SkippedRecord("test_event", bucket=trust.bucket(bucket) if isinstance(bucket, str) else None)]
    if doc.get("Type") == "Notification" and "Message" in doc and not inside_sns:
        trust.topic(doc.get("TopicArn"))
        message = doc["Message"]
        if not isinstance(message, str):
            raise PoisonMessageError("sns_message_not_string")
        return _parse_document(load_json(message, "sns_message_not_json"), raw_prefix, trust, inside_sns=True)
    if "detail-type" in doc and doc.get("source") == "aws.s3":
        return [_from_eventbridge(doc, raw_prefix, trust)]
    return [SkippedRecord("not_an_s3_event")]


def _from_notification_record(record: object, raw_prefix: str, trust: Trust) -> Entry:
    if not isinstance(record, dict):
        raise PoisonMessageError("broken_structure", f"record is {type(record).__name__}")
    s3 = object_field(record, "record", "s3")
    bucket = string_field(object_field(s3, "s3", "bucket"), "bucket", "name")
    obj = object_field(s3, "s3", "object")
    encoded_key = string_field(obj, "object", "key")
    event_name = text_field(record, "record", "eventName") or ""
    if bucket:
        trust.bucket(bucket)
    if not bucket or not encoded_key:
        return SkippedRecord("missing_bucket_or_key", bucket=bucket, event_name=event_name)
    key = _decoded(encoded_key)
    name = event_name.removeprefix("s3:")
    if not name.startswith("ObjectCreated:"):
        return SkippedRecord("not_object_created", bucket=bucket, key=key, event_name=event_name)
    if not key.startswith(raw_prefix):
        return SkippedRecord("outside_prefix", bucket=bucket, key=key, event_name=event_name)
    return ObjectRecord(
        bucket=bucket,
        key=key,
        event_name=name,
        event_time=time_field(record, "eventTime"),  # no string, or an unreadable one, is no time (items.py)
        size=size_field(obj, "size"),
        etag=text_field(obj, "object", "eTag"),
        version_id=text_field(obj, "object", "versionId"),
        sequencer=text_field(obj, "object", "sequencer"),
    )


def _decoded(encoded_key: str) -> str:
    """The key S3 form-encoded, decoded exactly once; poison unless it is a key S3 could hold."""
    try:
        key = unquote_plus(encoded_key, errors="strict")
    except UnicodeError as exc:
        raise PoisonMessageError("invalid_key", f"{shown(encoded_key)} is not percent-encoded UTF-8") from exc
    return valid_key(key)


def _from_eventbridge(event: dict[str, Any], raw_prefix: str, trust: Trust) -> Entry:
    detail_type = text_field(event, "event", "detail-type") or ""
    detail = object_field(event, "event", "detail")
    bucket = string_field(object_field(detail, "detail", "bucket"), "bucket", "name")
    obj = object_field(detail, "detail", "object")
    key = string_field(obj, "object", "key")  # literal: see the module docstring
    _check_resources(event.get("resources"), trust)
    if bucket:
        trust.bucket(bucket)
    if key:
        valid_key(key)
    if detail_type != "Object Created":
        return SkippedRecord("not_object_created", bucket=bucket, key=key, event_name=detail_type)
    if not bucket or not key:
        return SkippedRecord("missing_bucket_or_key", bucket=bucket, event_name=detail_type)
    if not key.startswith(raw_prefix):
        return SkippedRecord("outside_prefix", bucket=bucket, key=key, event_name=detail_type)
    reason = text_field(detail, "detail", "reason")
    return ObjectRecord(
        bucket=bucket,
        key=key,
        event_name=f"ObjectCreated:{reason}" if reason else "ObjectCreated",
        event_time=time_field(event, "time"),
        size=size_field(obj, "size"),
        etag=text_field(obj, "object", "etag"),
        version_id=text_field(obj, "object", "version-id"),
        sequencer=text_field(obj, "object", "sequencer"),
    )


def _check_resources(resources: object, trust: Trust) -> None:
    """With a bucket allowlist, every bucket the EventBridge envelope names in `resources` must be on it too."""
    if trust.allowed_buckets is None or not isinstance(resources, list):
        return
    for arn in resources:
        if isinstance(arn, str) and ":s3:::" in arn:
            trust.bucket(arn.split(":s3:::", 1)[1].split("/", 1)[0])
