"""A bucket's notification configuration with photo-ingest's entry added or updated, and nothing else changed.

S3's PutBucketNotificationConfiguration replaces the whole set: a tool that wrote only its own entry would wipe
every other target (another team's Lambda, an SNS topic, EventBridge delivery). So the entry is merged into the
configuration as read: photo-ingest's entry is the queue configuration with its Id or its queue's ARN; every
other entry is kept as it is, unless named in `replace` (the old function's entry, at cut-over). S3 refuses two
entries whose event types and key filters overlap; `overlapping` finds them first, with a useful message.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

Configuration = dict[str, Any]
TARGETS = {
    "QueueConfigurations": "QueueArn",
    "TopicConfigurations": "TopicArn",
    "LambdaFunctionConfigurations": "LambdaFunctionArn",
}
CREATED = "s3:ObjectCreated:*"


def as_read(response: Mapping[str, Any]) -> Configuration:
    """The configuration part of a GetBucketNotificationConfiguration answer (no ResponseMetadata)."""
    return {
        key: copy.deepcopy(value) for key, value in response.items() if key in (*TARGETS, "EventBridgeConfiguration")
    }


def entry(entry_id: str, queue_arn: str, prefix: str) -> dict[str, Any]:
    """photo-ingest's entry: every ObjectCreated event under `prefix` to the queue."""
    rules = [{"Name": "prefix", "Value": prefix}] if prefix else []
    found: dict[str, Any] = {"Id": entry_id, "QueueArn": queue_arn, "Events": [CREATED]}
    if rules:
        found["Filter"] = {"Key": {"FilterRules": rules}}
    return found


def is_ours(candidate: dict[str, Any], ours: dict[str, Any]) -> bool:
    return bool(candidate.get("Id") == ours["Id"] or candidate.get("QueueArn") == ours["QueueArn"])


def merged(current: Configuration, ours: dict[str, Any], replace: frozenset[str] = frozenset()) -> Configuration:
    """`current` with `ours` added or updated and the entries whose Id is in `replace` removed; all else kept."""
    unknown = replace - {e.get("Id") for kind in TARGETS for e in current.get(kind, [])}
    if unknown:
        raise KeyError(f"no notification entry with the Id {', '.join(sorted(unknown))}")
    result = copy.deepcopy(current)
    for kind in TARGETS:
        kept = [e for e in result.get(kind, []) if e.get("Id") not in replace]
        if kind == "QueueConfigurations":
            kept = [e for e in kept if not is_ours(e, ours)] + [copy.deepcopy(ours)]
        if kept:
            result[kind] = kept
        else:
            result.pop(kind, None)
    return result


def overlapping(configuration: Configuration, ours: dict[str, Any]) -> list[str]:
    """The other entries that S3 would find overlapping ours (same event type, overlapping key filters)."""
    found = []
    for kind, arn_key in TARGETS.items():
        for other in configuration.get(kind, []):
            if is_ours(other, ours) or not _created(other["Events"]):
                continue
            if _filters_overlap(_rules(other), _rules(ours)):
                found.append(f"{other.get('Id', '(no Id)')} ({kind} to {other[arn_key]})")
    return found


def describe(before: Configuration, after: Configuration) -> list[str]:
    """The difference, one line per entry: `+` added, `-` removed, `~` changed, `=` kept as it is."""
    lines = []
    for kind, arn_key in TARGETS.items():
        old = {e.get("Id") or json.dumps(e, sort_keys=True): e for e in before.get(kind, [])}
        new = {e.get("Id") or json.dumps(e, sort_keys=True): e for e in after.get(kind, [])}
        for key in [*old, *[k for k in new if k not in old]]:
            mark = "=" if old.get(key) == new.get(key) else "-" if key not in new else "+" if key not in old else "~"
            shown = new.get(key) or old[key]
            events = ",".join(shown["Events"])
            lines.append(f"{mark} {kind} {shown.get('Id', '(no Id)')}: {events} -> {shown[arn_key]}{_where(shown)}")
    if "EventBridgeConfiguration" in before or "EventBridgeConfiguration" in after:
        lines.append(
            ("=" if ("EventBridgeConfiguration" in before) == ("EventBridgeConfiguration" in after) else "~")
            + " EventBridge delivery"
        )
    return lines


def _rules(configuration: dict[str, Any]) -> dict[str, str]:
    rules = configuration.get("Filter", {}).get("Key", {}).get("FilterRules", [])
    return {rule["Name"].lower(): rule["Value"] for rule in rules}


def _where(configuration: dict[str, Any]) -> str:
    rules = _rules(configuration)
    return "".join(f" {name} {value!r}" for name, value in sorted(rules.items()))


def _created(events: list[str]) -> bool:
    return any(event.startswith("s3:ObjectCreated:") for event in events)


def _filters_overlap(one: dict[str, str], other: dict[str, str]) -> bool:
    prefixes = one.get("prefix", ""), other.get("prefix", "")
    suffixes = one.get("suffix", ""), other.get("suffix", "")
    prefix_overlap = prefixes[0].startswith(prefixes[1]) or prefixes[1].startswith(prefixes[0])
    suffix_overlap = suffixes[0].endswith(suffixes[1]) or suffixes[1].endswith(suffixes[0])
    return prefix_overlap and suffix_overlap
