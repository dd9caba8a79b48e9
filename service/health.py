"""Liveness through a heartbeat file, for Docker's HEALTHCHECK and ECS's `healthCheck`.

The poll loop calls `beat()` on every turn; the file says when it last did, and since when every put has
failed (if they all have). `photo-ingest health` reads it in a separate process and exits 0 or 1, so a hung
event loop or a worker that can no longer write anything is replaced by the orchestrator, while its
messages wait safely on the queue.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import structlog

from service.config import HealthSettings

log = structlog.get_logger("service.health")


class Heartbeat:
    def __init__(self, path: Path, min_interval_s: float = 2.0) -> None:
        self._path = path
        self._min_interval_s = min_interval_s
        self._written_at = 0.0
        self._failing_since: float | None = None
        self._warned = False

    def record_put(self, *, ok: bool) -> None:
        if ok:
            self._failing_since = None
        elif self._failing_since is None:
            self._failing_since = time.time()

    def beat(self, *, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._written_at < self._min_interval_s:
            return
        self._written_at = now
        state = {"beatAt": now, "failingSince": self._failing_since, "pid": os.getpid()}
        temporary = self._path.with_name(f".{self._path.name}.{os.getpid()}")
        try:
            temporary.write_text(json.dumps(state))
            temporary.replace(self._path)  # atomic: a reader never sees half a file
        except OSError as exc:
            if not self._warned:
                log.warning("health.write_failed", path=str(self._path), error=str(exc))
                self._warned = True


def check(settings: HealthSettings, now: float | None = None) -> tuple[bool, str]:
    """(healthy, reason) from the heartbeat file."""
    now = time.time() if now is None else now
    try:
        state = json.loads(settings.health_file.read_text())
        beat_at = float(state["beatAt"])
        failing_since = state.get("failingSince")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"no readable heartbeat at {settings.health_file}: {exc}"
    age = now - beat_at
    if age > settings.health_max_age_seconds:
        return False, f"heartbeat is {age:.0f}s old (limit {settings.health_max_age_seconds:.0f}s)"
    if failing_since is not None and now - float(failing_since) > settings.unhealthy_after_failing_seconds:
        return False, f"every put has failed for {now - float(failing_since):.0f}s"
    return True, f"heartbeat {age:.1f}s old"
