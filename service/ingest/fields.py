"""Reading an untrusted JSON document: strict JSON, typed fields, and the one error for a body that can never pass.

Pure code. Every way a body can be wrong ends in `PoisonMessageError`, with a stable, machine-readable `reason`
and a detail that is safe to log (`shown`: ASCII only, short).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

SIZE_MAX = 2**63 - 1  # a larger (or negative) size is no size: S3 objects are at most tens of TB


class PoisonMessageError(ValueError):
    """The body can never be processed: not JSON, ambiguous, untrusted, or a known envelope whose structure is
    broken."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class _AmbiguousError(ValueError):
    """Two JSON readers could read this document differently."""


def shown(value: object, limit: int = 80) -> str:
    """A value for a log line or an error: ASCII-escaped (no control character, no lone surrogate) and short."""
    text = value if isinstance(value, str) else repr(value)
    return ascii(text[:limit] + ("…" if len(text) > limit else ""))


def load_json(text: str, reason: str) -> object:
    """`text` as JSON. A repeated member name at any level, or NaN / Infinity (not JSON at all), is
    `ambiguous_json`: another reader, such as S3's or a log tool's, could see another document. Anything else
    that does not parse is poison with `reason`."""
    try:
        return json.loads(text, object_pairs_hook=_unique_members, parse_constant=_not_json)
    except _AmbiguousError as exc:
        raise PoisonMessageError("ambiguous_json", str(exc)) from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; so is a 5,000-digit number
        raise PoisonMessageError(reason, str(exc)[:200]) from exc


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        [(name, _)] = Counter(name for name, _ in pairs).most_common(1)
        raise _AmbiguousError(f"member {shown(name)} appears more than once")
    return members


def _not_json(constant: str) -> object:
    raise _AmbiguousError(f"{constant} is not a JSON number")


def object_field(container: object, where: str, name: str) -> dict[str, Any]:
    """`container[name]` as a dict; missing or null is `{}`, any other type is poison."""
    value = container.get(name) if isinstance(container, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PoisonMessageError("broken_structure", f"{where}.{name} is {type(value).__name__}")
    return value


def string_field(container: object, where: str, name: str) -> str | None:
    """`container[name]` as it is: a string or None; any other type is poison. The caller checks its content."""
    value = container.get(name) if isinstance(container, dict) else None
    if value is None or isinstance(value, str):
        return value
    raise PoisonMessageError("broken_structure", f"{where}.{name} is {type(value).__name__}")


def text_field(container: object, where: str, name: str) -> str | None:
    """A string that goes into the item or a log line: it must be valid Unicode (no lone surrogate)."""
    value = string_field(container, where, name)
    if value is not None and not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise PoisonMessageError("broken_structure", f"{where}.{name} is not valid Unicode") from exc
    return value


def time_field(container: dict[str, Any], name: str) -> str | None:
    """The event's time, informational like the size: a value that is not a string (a number, an object, a list)
    is no time. A string that is not a readable time is no time either, but `items.py` decides that."""
    value = container.get(name)
    return value if isinstance(value, str) else None


def size_field(container: dict[str, Any], name: str) -> int | None:
    """The object's size, informational: a missing, odd or out-of-range one never blocks a photo."""
    value = container.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SIZE_MAX:
        return None
    return value
