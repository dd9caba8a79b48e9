"""The trust boundary's rules: which senders a body is believed from, and what it may hold (docs/security.md).

Pure code. Each check returns the checked value or raises `PoisonMessageError` with the reason the message is
quarantined under:

    untrusted_bucket   a bucket outside ALLOWED_BUCKETS (when it is set)
    untrusted_topic    an SNS envelope from a topic outside ALLOWED_TOPIC_ARNS (when it is set)
    invalid_bucket     a name no S3 bucket has ever had: not 3-255 of A-Z a-z 0-9 . - _ (`/` above all)
    invalid_key        a decoded key over 1,024 UTF-8 bytes, or not valid Unicode (a lone surrogate)
    too_many_records   more than MAX_RECORDS_PER_MESSAGE records

A key may hold any other character, control characters included: the item keeps the exact key.

The bucket rule accepts every name S3 has ever created, the legacy ones of us-east-1 before March 2018 included
(upper case, `_`, up to 255 characters), since those buckets still send events. It is not the trust boundary:
the allowlist is. The rule keeps photoIds unambiguous: with no `/` in a bucket, `sha256(f"{bucket}/{key}")` names
one (bucket, key) pair. `ALLOWED_BUCKETS` is checked against the same rule (service/config.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from service.ingest.fields import PoisonMessageError, shown

BUCKET_NAME = re.compile(r"[A-Za-z0-9._-]{3,255}")  # today's rules (3-63 of a-z 0-9 . -) are a subset
TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
KEY_BYTES_MAX = 1024  # S3's own limit on a key, in UTF-8 bytes
MAX_RECORDS_DEFAULT = 100
UNTRUSTED_REASONS = frozenset({"untrusted_bucket", "untrusted_topic"})


@dataclass(frozen=True, slots=True)
class Trust:
    """Whom a body is believed from, and how much of it. None: any bucket, or any topic (the setting unset)."""

    allowed_buckets: frozenset[str] | None = None
    allowed_topic_arns: frozenset[str] | None = None
    max_records: int = MAX_RECORDS_DEFAULT

    def bucket(self, name: str) -> str:
        if not BUCKET_NAME.fullmatch(name):
            raise PoisonMessageError("invalid_bucket", shown(name))
        if self.allowed_buckets is not None and name not in self.allowed_buckets:
            raise PoisonMessageError("untrusted_bucket", name)
        return name

    def topic(self, arn: object) -> None:
        """The `TopicArn` of an SNS envelope; a missing one is untrusted too once there is an allowlist."""
        if self.allowed_topic_arns is None:
            return
        if not isinstance(arn, str) or arn not in self.allowed_topic_arns:  # a list or a number is no topic
            raise PoisonMessageError("untrusted_topic", shown(arn, 300))

    def records(self, count: int) -> None:
        if count > self.max_records:
            raise PoisonMessageError("too_many_records", f"{count} records; at most {self.max_records}")


ANY_SENDER = Trust()


def valid_key(key: str) -> str:
    """The decoded key, if S3 could hold it."""
    try:
        size = len(key.encode())
    except UnicodeEncodeError as exc:
        raise PoisonMessageError("invalid_key", f"{shown(key)} is not valid Unicode") from exc
    if size > KEY_BYTES_MAX:
        raise PoisonMessageError("invalid_key", f"{size} UTF-8 bytes; S3 allows {KEY_BYTES_MAX}")
    return key
