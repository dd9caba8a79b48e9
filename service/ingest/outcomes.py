"""What happened to each record, and what that means for its message. Pure: the failure table of docs/reliability.md."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class PutOutcome(enum.Enum):
    """What the table answered to one conditional put."""

    INSERTED = "inserted"
    DUPLICATE = "duplicate"  # the item exists and names this very object
    CONFLICT = "conflict"  # the item exists and names another object: an id collision; never overwritten
    OBJECT_MISSING = "object_missing"  # VERIFY_OBJECTS: S3 holds no such object, so nothing was put


class Outcome(enum.StrEnum):
    INSERTED = "inserted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    SKIPPED = "skipped"
    INVALID = "invalid"  # the item can never be stored (the table refused its content): retrying cannot help
    FAILED = "failed"


class Disposition(enum.StrEnum):
    DELETE = "delete"
    RELEASE = "release"  # leave it on the queue, visible again after a backoff
    QUARANTINE = "quarantine"


def decide(outcomes: Iterable[Outcome]) -> Disposition:
    """Delete only when every record is settled; retry before quarantining; never drop a conflict, nor an item
    the table refuses."""
    seen = set(outcomes)
    if Outcome.FAILED in seen:
        return Disposition.RELEASE
    if Outcome.CONFLICT in seen or Outcome.INVALID in seen:
        return Disposition.QUARANTINE
    return Disposition.DELETE


def reason(outcomes: Iterable[Outcome]) -> str:
    """Why `decide` kept or quarantined the message: the word its log line and quarantine attribute carry."""
    seen = set(outcomes)
    if Outcome.FAILED in seen:
        return "record_failed"
    return "invalid_item" if Outcome.INVALID in seen else "conflict"
