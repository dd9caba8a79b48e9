"""One object -> the SQS body that S3 itself sends when it is uploaded: a direct notification with one
`ObjectCreated:Put` record. Pure code. The worker cannot tell it from a live event, so it writes the very item
a live event writes, with its own conditional put, trust checks and metrics.

Key encoding: S3 form-encodes the key (`application/x-www-form-urlencoded`: a space is `+`, a `+` is `%2B`,
non-ASCII characters are their UTF-8 bytes as `%XX`, and `/` is left as it is), and the worker decodes it with
`unquote_plus` exactly once. `quote_plus(key, safe="/")` is that encoding, and its exact inverse for every key:
`%`, `+`, spaces, control characters and any Unicode come back unchanged. (The characters left unencoded besides
letters and digits, `-_.~`, differ from Java's form encoding only in `~` and `*`; `unquote_plus` reads both.)

`eventTime` is the object's LastModified in S3's own format (`2026-12-05T08:00:00.000Z`), so the item's
`uploadedAt` is LastModified, as with a direct backfill; an inventory row whose date cannot be read has none (no
event time, as the worker reads it). `sequencer` is S3's to give and is left out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import quote_plus

from service.ops.backfill.objects import Listed

CONFIGURATION_ID = "photo-ingest-backfill"  # S3 puts the notification configuration's id here: this names us
PARTITIONS = {"cn-": "aws-cn", "us-gov-": "aws-us-gov", "us-iso-": "aws-iso", "us-isob-": "aws-iso-b"}


def encode_key(key: str) -> str:
    """The key as S3 writes it in a notification."""
    return quote_plus(key, safe="/")


def event_time(moment: datetime) -> str:
    """S3's eventTime: UTC with milliseconds and `Z`."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def notification_body(obj: Listed, bucket: str, region: str) -> str:
    """The compact JSON body of S3's notification of `obj`'s upload to `bucket` in `region`."""
    entry: dict[str, object] = {"key": encode_key(obj.key)}
    if obj.size is not None:
        entry["size"] = obj.size
    if obj.etag:
        entry["eTag"] = obj.etag
    if obj.version_id:
        entry["versionId"] = obj.version_id
    record: dict[str, object] = {"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region}
    if obj.last_modified is not None:  # else no time: the worker's uploadedAt is then when it writes the item
        record["eventTime"] = event_time(obj.last_modified)
    record |= {
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": CONFIGURATION_ID,
            "bucket": {"name": bucket, "arn": f"arn:{_partition(region)}:s3:::{bucket}"},
            "object": entry,
        },
    }
    return json.dumps({"Records": [record]}, separators=(",", ":"))


def _partition(region: str) -> str:
    return next((name for start, name in PARTITIONS.items() if region.startswith(start)), "aws")
