"""`photo-ingest health`: liveness for Docker's HEALTHCHECK, ECS's `healthCheck` and a Kubernetes probe.

It reads the heartbeat file that the worker writes (`service.worker.heartbeat`) in a separate process and exits
0 or 1, with no AWS call, so a hung event loop or a worker that can no longer write anything is replaced by the
orchestrator, while its messages wait safely on the queue.
"""

from __future__ import annotations

from service.config import HealthSettings
from service.ops.liveness import verdict


def check(settings: HealthSettings, now: float | None = None) -> tuple[bool, str]:
    """(healthy, reason) from the heartbeat file: the liveness probe's own verdict, with validated settings."""
    return verdict(
        str(settings.health_file), settings.health_max_age_seconds, settings.unhealthy_after_failing_seconds, now
    )
