"""`photo-ingest health`: liveness for Docker's HEALTHCHECK, ECS's `healthCheck` and a Kubernetes probe.

It reads the heartbeat file that the worker writes (`service.worker.heartbeat`) in a separate process and exits
0 or 1, with no AWS call, so a hung event loop or a worker that can no longer write anything is replaced by the
orchestrator, while its messages wait safely on the queue.
"""

from __future__ import annotations

import json
import time

from service.config import HealthSettings


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
