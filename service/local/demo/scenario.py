"""The demo's scenario: what `photo-ingest demo` does to the embedded stack, and what the worker should make of it.

Each step is an upload, a copy, a notification or a raw message, with the one outcome event it expects; the
photos are tiny real JPEGs, distinct per key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote_plus

from service.ingest.ids import photo_id
from service.local.endpoint import REGION
from service.local.stack import BUCKET, RAW_PREFIX, Stack

MALFORMED_BODY = "this is not JSON {"


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the demo does to the stack, and the worker's event it expects (None: nothing reaches it)."""

    action: str  # put, copy (from `source`), event (an S3 notification sent by hand), send (a raw body)
    subject: str  # the key, or the body sent
    expect: str | None
    note: str = ""
    source: str = ""


SCENARIO = (
    Step("put", f"{RAW_PREFIX}beach.jpg", "photo.inserted"),
    Step("put", f"{RAW_PREFIX}mountain.jpg", "photo.inserted"),
    Step("put", f"{RAW_PREFIX}city.jpg", "photo.inserted"),
    Step("put", f"{RAW_PREFIX}beach.jpg", "photo.duplicate", "the same key again"),
    Step("put", f"{RAW_PREFIX}2024 Trip/Café C++ 東京.jpg", "photo.inserted", "spaces, + and non-ASCII"),
    Step("copy", f"{RAW_PREFIX}album/city (copy).jpg", "photo.inserted", source=f"{RAW_PREFIX}city.jpg"),
    Step("put", "other/readme.txt", None, "outside the prefix, so S3's notification filter sends no event"),
    Step("event", "other/readme.txt", "record.skipped", "by hand, as a notification with no filter would"),
    Step("send", MALFORMED_BODY, "message.quarantined", "a malformed message, by hand"),
)


def expected_items() -> set[tuple[str, str]]:
    """(photoId, key): one item for each distinct photo of the scenario."""
    return {(photo_id(BUCKET, step.subject), step.subject) for step in SCENARIO if step.expect == "photo.inserted"}


async def perform(stack: Stack, step: Step) -> str:
    """Do one step; return what the worker's events will name: the key, or the id of the message sent."""
    names = step.subject
    if step.action == "put":
        await stack.s3.put_object(Bucket=BUCKET, Key=step.subject, Body=_content(step.subject))
    elif step.action == "copy":
        await stack.s3.copy_object(Bucket=BUCKET, Key=step.subject, CopySource={"Bucket": BUCKET, "Key": step.source})
    elif step.action == "event":
        await _send(stack, _notification(step.subject))
    else:
        names = await _send(stack, step.subject)
    note = f"CopyObject of {step.source}" if step.source else step.note
    print(f"   {step.action:<5} {step.subject}" + (f"  ({note})" if note else ""))
    return names


async def _send(stack: Stack, body: str) -> str:
    return (await stack.sqs.send_message(QueueUrl=stack.queue_url, MessageBody=body))["MessageId"]


def _content(key: str) -> bytes:
    return tiny_jpeg(key) if key.endswith(".jpg") else b"not a photo\n"


def _notification(key: str) -> str:
    """The body S3 sends for one created object, its key form-encoded as in every `Records` event."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"}, "object": {"key": quote_plus(key)}},
    }
    return json.dumps({"Records": [record]})


def tiny_jpeg(comment: str) -> bytes:
    """A valid 1x1 grey baseline JPEG whose comment segment makes each photo's bytes distinct."""
    one_code = bytes([1] + [0] * 15) + b"\x00"  # a Huffman table with one code, of length 1, for symbol 0

    def segment(marker: int, payload: bytes) -> bytes:
        return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload

    return b"".join(
        [
            b"\xff\xd8",  # start of image
            segment(0xFE, comment.encode()),
            segment(0xDB, b"\x00" + b"\x01" * 64),  # quantisation table 0: all ones
            segment(0xC0, bytes([8, 0, 1, 0, 1, 1, 1, 0x11, 0])),  # baseline, 1x1, one component
            segment(0xC4, b"\x00" + one_code),  # DC table 0
            segment(0xC4, b"\x10" + one_code),  # AC table 0
            segment(0xDA, bytes([1, 1, 0, 0, 63, 0])),  # start of scan
            b"\x3f",  # DC difference 0, then end of block, padded with ones
            b"\xff\xd9",  # end of image
        ]
    )
