"""The findings of `photo-ingest check`: each one a level, a subject and a line that says what to fix.

An AWS error becomes a finding through its one classification (`service.aws.errors.classify`). A probe is a
call that AWS authorizes first and then refuses as intended: that refusal proves the permission, and changes
nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable
from dataclasses import dataclass

from service.aws.errors import AWS_ERRORS, ErrorKind, classify, error_code

PROBE_REFUSALS = frozenset({"ReceiptHandleIsInvalid", "ConditionalCheckFailedException"})


class Level(enum.StrEnum):
    OK = "ok"
    NOTE = "note"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    subject: str
    text: str


def failure(subject: str, what: str, action: str, exc: BaseException) -> Finding:
    """A classified AWS error as a finding that says what to fix."""
    kind, code = classify(exc), error_code(exc)
    fixes = {
        ErrorKind.MISSING: f"{what} does not exist: create it, or fix the setting",
        ErrorKind.FORBIDDEN: f"{action} on {what} is denied ({code}): grant it to the task role, or fix credentials",
        ErrorKind.UNAVAILABLE: f"cannot reach AWS for {what} ({exc}): check the credentials, AWS_REGION, the network",
        ErrorKind.THROTTLED: f"{action} on {what} was throttled ({code}): run the check again",
    }
    return Finding(Level.FAIL, subject, fixes.get(kind, f"{action} on {what} was rejected ({code}): {exc}"))


async def probe(action: str, what: str, call: Awaitable[object]) -> Finding:
    """Allowed when AWS authorizes the call, then refuses it as intended (or lists it in a batch's `Failed`)."""
    try:
        await call
    except AWS_ERRORS as exc:
        if error_code(exc) not in PROBE_REFUSALS:
            return failure("access", what, action, exc)
    return Finding(Level.OK, "access", f"{action} allowed (a probe AWS authorized, then refused; nothing changed)")
