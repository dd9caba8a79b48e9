"""One created object -> its Photos item in DynamoDB's wire form. Pure code: the item is part of the contract."""

from __future__ import annotations

from datetime import UTC, datetime

from service.ingest.events import ObjectRecord
from service.ingest.ids import photo_id

Item = dict[str, dict[str, str]]


def build_item(record: ObjectRecord, now: datetime) -> Item:
    """The item in DynamoDB's wire form. `photoId`, `s3Bucket`, `s3Key`, `uploadedAt` are the contract."""
    ingested_at = now.isoformat()
    item = {
        "photoId": {"S": photo_id(record.bucket, record.key)},
        "s3Bucket": {"S": record.bucket},
        "s3Key": {"S": record.key},
        "uploadedAt": {"S": _uploaded_at(record.event_time) or ingested_at},
        "ingestedAt": {"S": ingested_at},
        "eventName": {"S": record.event_name},
    }
    if record.size is not None:
        item["size"] = {"N": str(record.size)}
    for name, value in (
        ("eTag", record.etag),
        ("versionId", record.version_id),
        ("sequencer", record.sequencer),
    ):
        if value:  # versionId is "" on unversioned buckets: an empty value carries nothing
            item[name] = {"S": value}
    return item


def _uploaded_at(event_time: str | None) -> str | None:
    """The event's time as ISO 8601 UTC (`...+00:00`); None when absent or unreadable, which includes a time
    whose UTC form falls outside years 1-9999 (`0001-01-01T00:00:00+01:00`)."""
    if not event_time:
        return None
    try:
        parsed = datetime.fromisoformat(event_time)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).isoformat()
    except (ValueError, OverflowError):  # a lone surrogate is a ValueError too (UnicodeEncodeError)
        return None
