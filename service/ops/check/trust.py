"""`photo-ingest check`'s findings on the trust boundary: whom the worker believes (docs/security.md)."""

from __future__ import annotations

from service.config import IngestSettings
from service.ops.check.findings import Finding, Level


def trust_findings(settings: IngestSettings) -> list[Finding]:
    """A warning for each allowlist left unset: then any sender that can reach the queue is believed."""
    return [_buckets(settings), _topics(settings)]


def _buckets(settings: IngestSettings) -> Finding:
    if settings.allowed_buckets is None:
        fix = "set ALLOWED_BUCKETS to your raw bucket(s), or anyone who can send to the queue can write items"
        return Finding(Level.WARN, "trust", f"ALLOWED_BUCKETS is unset: any bucket's notifications are believed; {fix}")
    verified = "; VERIFY_OBJECTS: each object is checked in S3 first" if settings.verify_objects else ""
    return Finding(
        Level.OK, "trust", f"only buckets {', '.join(sorted(settings.allowed_buckets))} are believed{verified}"
    )


def _topics(settings: IngestSettings) -> Finding:
    if settings.allowed_topic_arns is None:
        fix = "list your SNS topic(s), or set it empty if none delivers to this queue"
        return Finding(
            Level.WARN, "trust", f"ALLOWED_TOPIC_ARNS is unset: an SNS envelope from any topic is believed; {fix}"
        )
    if not settings.allowed_topic_arns:
        return Finding(Level.OK, "trust", "ALLOWED_TOPIC_ARNS is empty: no SNS envelope is believed")
    return Finding(Level.OK, "trust", f"only topics {', '.join(sorted(settings.allowed_topic_arns))} are believed")
