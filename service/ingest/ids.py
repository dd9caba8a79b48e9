"""The photoId rule. It is a contract with every existing Photos table: never change it."""

from __future__ import annotations

from hashlib import sha256


def photo_id(bucket: str, key: str) -> str:
    """`sha256("{bucket}/{key}")`, first 20 hex digits; `key` is the decoded S3 key."""
    return sha256(f"{bucket}/{key}".encode()).hexdigest()[:20]
