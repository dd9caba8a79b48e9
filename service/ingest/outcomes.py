"""What happened to each record, and what that means for its message. Pure: the failure table of docs/reliability.md."""

from __future__ import annotations

import enum
from collections.abc import Iterable


class PutOutcome(enum.Enum):
    """What the table answered to one conditional put."""

    INSERTED = "inserted"
    DUPLICATE = "duplicate"  # the item exists and names this very object
    CONFLICT = "conflict"  # the item exists and names another object: an id collision; never overwritten


class Outcome(enum.StrEnum):
    INSERTED = "inserted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"
    SKIPPED = "skipped"
    FAILED = "failed"


class Disposition(enum.StrEnum):
    DELETE = "delete"
    RELEASE = "release"  # leave it on the queue, visible again after a backoff
    QUARANTINE = "quarantine"


def decide(outcomes: Iterable[Outcome]) -> Disposition:
    """Delete only when every record is settled; retry before quarantining; never drop a conflict."""
    seen = set(outcomes)
    if Outcome.FAILED in seen:
        return Disposition.RELEASE
    if Outcome.CONFLICT in seen:
        return Disposition.QUARANTINE
    return Disposition.DELETE
