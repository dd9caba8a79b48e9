"""VERIFY_OBJECTS=true: each notified object is looked up in S3 before its put, so a forged message can neither
pre-register a key before its upload nor choose the item's size and eTag."""

from __future__ import annotations

import hashlib
from typing import Any

import structlog
from structlog.testing import capture_logs

from tests import hostile
from tests.conftest import BUCKET, Stack, run_until

JPEG = b"\xff\xd8\xff\xe0 a real photo \xff\xd9"


def forged(key: str, envelope: str) -> str:
    """A notification with the forger's size and eTag."""
    return hostile.body(envelope, [hostile.Obj(key, size=999_999_999, etag="f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0")])


async def test_a_notification_for_a_missing_object_writes_nothing(stack: Stack) -> None:
    """No such object (404): the record is skipped as `object_missing`, its message deleted, no item written, in
    every envelope. The real upload, notified later, is then written with S3's own facts."""
    keys = {envelope: f"photos-raw/not-yet/{envelope}.jpg" for envelope in hostile.ENVELOPES}
    stack.send(*(forged(key, envelope) for envelope, key in keys.items()))
    # A short visibility: messages sent just as the first worker stopped may be taken by its last long poll,
    # which moto finishes on its own; they come back this soon for the second.
    settings = stack.settings(verify_objects=True, allowed_buckets=BUCKET, visibility_timeout_seconds=2)
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        await run_until(settings, lambda: stack.depth() == 0)
    assert stack.items() == {}
    skipped = [entry for entry in logs if entry["event"] == "record.skipped"]
    assert sorted(entry["key"] for entry in skipped) == sorted(keys.values())
    assert {entry["reason"] for entry in skipped} == {"object_missing"}
    assert [entry["event"] for entry in logs].count("message.deleted") == len(keys)

    for key in keys.values():
        stack.s3.put_object(Bucket=BUCKET, Key=key, Body=JPEG)
    stack.send(*(forged(key, envelope) for envelope, key in keys.items()))
    await run_until(settings, lambda: stack.depth() == 0 and len(stack.items()) == len(keys))
    assert_facts_from_s3(stack.items().values())


async def test_an_existing_object_gives_the_item_s3s_size_and_etag(stack: Stack) -> None:
    """The message said 999,999,999 bytes and a made-up eTag; the item says what S3 holds."""
    stack.s3.put_object(Bucket=BUCKET, Key="photos-raw/real.jpg", Body=JPEG)
    stack.send(forged("photos-raw/real.jpg", "direct"))
    settings = stack.settings(verify_objects=True, allowed_buckets=BUCKET)
    await run_until(settings, lambda: stack.depth() == 0 and len(stack.items()) == 1)
    assert_facts_from_s3(stack.items().values())


def assert_facts_from_s3(items: Any) -> None:
    for item in items:
        assert item["size"] == str(len(JPEG))
        assert item["eTag"] == hashlib.md5(JPEG, usedforsecurity=False).hexdigest()
