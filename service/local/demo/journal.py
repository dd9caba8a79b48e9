"""The demo's journal: the worker's outcome events, kept while it runs and matched to the scenario's steps after.

While the worker runs, one short line per outcome and per warning; once it has stopped, "What happened to
each upload": each step with the event that settled it, then any event no step asked for, then the totals.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any, NoReturn

import structlog

from service.local.demo.scenario import Step
from service.text import printable

OUTCOMES = ("inserted", "duplicate", "conflict", "failed", "skipped", "quarantined")
OUTCOME_EVENTS = {f"photo.{name}" for name in OUTCOMES[:4]} | {"record.skipped", "message.quarantined"}
_QUIET_FIELDS = {"event", "key", "bucket", "messageId", "receiveCount", "eventName"}

Settled = list[tuple[Step, dict[str, Any] | None]]


class Journal:
    """A structlog processor: keeps the worker's outcome events, prints one short line for each outcome and each
    warning, and drops them all (the worker's full log lines are for `run` and `local`)."""

    def __init__(self) -> None:
        self.outcomes: list[dict[str, Any]] = []
        self.untaken: list[dict[str, Any]] = []

    def __call__(self, _logger: object, method_name: str, event: structlog.typing.EventDict) -> NoReturn:
        if event["event"] in OUTCOME_EVENTS:
            self.outcomes.append(dict(event))
            self.untaken.append(self.outcomes[-1])
        if event["event"] in OUTCOME_EVENTS or method_name in ("warning", "error", "exception", "critical"):
            print(f"   {_describe(event)}", flush=True)
        raise structlog.DropEvent

    def take(self, match: str, expect: str | None) -> dict[str, Any] | None:
        """An outcome not taken yet that names `match` (a key or a message id), the expected one if there is one:
        concurrent messages for one key log in any order. None if `expect` is None: nothing should reach the worker."""
        candidates = [event for event in self.untaken if match in (event.get("key"), event.get("messageId"))]
        if expect is None or not candidates:
            return None
        event = next((event for event in candidates if event["event"] == expect), candidates[0])
        self.untaken.remove(event)
        return event


def watch_worker_logs() -> Journal:
    """Route the worker's log events to a new journal, instead of the log lines `run` prints."""
    journal = Journal()
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, journal],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    return journal


def _describe(event: Mapping[str, Any]) -> str:
    subject = printable(str(event.get("key") or f"message {str(event.get('messageId', '?'))[:8]}"))
    details = " ".join(f"{name}={value}" for name, value in event.items() if name not in _QUIET_FIELDS and value)
    return f"{event['event']:<20} {subject:<40} {printable(details)}"


def print_outcomes(settled: Settled, journal: Journal) -> None:
    print("\n3. What happened to each upload")
    for step, event in settled:
        mark = "✓" if event_name(event) == step.expect else "✗"
        print(f"   {mark} {step.action:<5} {step.subject:<44} {_outcome(event)}")
    for event in journal.untaken:
        test_event = event.get("reason") == "test_event"
        subject = "S3's test event (notification set up)" if test_event else _describe(event)
        print(f"   ✓ {'also':<5} {subject:<44} {_outcome(event)}")
    totals = Counter(str(event["event"]).split(".")[1] for event in journal.outcomes)
    print("   totals: " + ", ".join(f"{totals[name]} {name}" for name in OUTCOMES if totals[name]))


def event_name(event: dict[str, Any] | None) -> str | None:
    return None if event is None else str(event["event"])


def _outcome(event: dict[str, Any] | None) -> str:
    if event is None:
        return "no event"
    detail = f"photoId {event['photoId']}" if "photoId" in event else f"reason {printable(str(event.get('reason')))}"
    return f"{str(event['event']).split('.')[1]:<12} {detail}"
