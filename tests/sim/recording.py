"""The product's log lines, recorded instead of printed: counted per process and event (for the accounting),
and written into the history with the message or photo they name. Debug lines are left out, so a run's
history does not depend on the level another test configured: `message.deleted` and `message.acknowledged` are
among them, and the accounting counts deletions by the metric and the queue's own `delete` instead. A line
logged with an exception that is not an AWS failure (`message.unexpected_error`, `message.parse_failed`...) is
a bug: it breaks an invariant."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import structlog

from tests.sim.runtimes import PROCESS
from tests.sim.world import World

BUGS = ("message.unexpected_error", "message.parse_failed")
SETTLED = ("photo.inserted", "photo.duplicate")


@contextlib.contextmanager
def recorded_logs(world: World) -> Iterator[None]:
    def record(_logger: Any, method: str, event: dict[str, Any]) -> Any:
        if method != "debug":
            who, name = PROCESS.get(), str(event.get("event"))
            world.logs[(who, name)] += 1
            subjects = [str(event.get(k, "")) for k in ("messageId", "photoId", "reason")]
            world.history.add(who, f"log {name}", *subjects)
            if name in SETTLED:
                world.settled.add((who, subjects[1]))
            if name in BUGS:
                world.violate("product bug", str(event.get("messageId", who)), repr(sys.exc_info()[1]))
        raise structlog.DropEvent

    processors = structlog.get_config()["processors"]
    saved = processors.copy()
    processors.clear()
    processors.extend([structlog.contextvars.merge_contextvars, record])
    try:
        yield
    finally:
        processors.clear()
        processors.extend(saved)
