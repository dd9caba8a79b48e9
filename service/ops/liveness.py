"""`python -m service.ops.liveness`: the liveness probe, on the standard library alone.

An exec probe runs every 30 s for the life of every pod or task. `photo-ingest health` loads the whole CLI
(pydantic, the AWS SDK, structlog) to read one small file; this entry imports only `json`, `os` and `sys` (and
`service/__init__.py` and `service/ops/__init__.py` import nothing), so the probe costs a tenth as much
(docs/kubernetes.md has the measurement). Both decide with `verdict`, from the same variables and defaults
(HealthSettings's; a test keeps them equal). It reads the environment only, not a `.env` file: a container has none.

Exit codes: 0 healthy, 1 unhealthy, 2 a variable that is not a positive number.
"""

from __future__ import annotations

import json
import os
import sys
import time

DEFAULTS = {
    "HEALTH_FILE": "/tmp/photo-ingest.health",  # noqa: S108 - a tmpfs in the container
    "HEALTH_MAX_AGE_SECONDS": "60",
    "UNHEALTHY_AFTER_FAILING_SECONDS": "300",
}


def verdict(path: str, max_age_s: float, failing_limit_s: float, now: float | None = None) -> tuple[bool, str]:
    """(healthy, reason) from the heartbeat file that the worker writes (`service.worker.heartbeat`)."""
    now = time.time() if now is None else now
    try:
        with open(path, encoding="utf-8") as file:
            state = json.load(file)
        beat_at = float(state["beatAt"])
        failing_since = state.get("failingSince")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"no readable heartbeat at {path}: {exc}"
    age = now - beat_at
    if age > max_age_s:
        return False, f"heartbeat is {age:.0f}s old (limit {max_age_s:.0f}s)"
    if failing_since is not None and now - float(failing_since) > failing_limit_s:
        return False, f"every put has failed for {now - float(failing_since):.0f}s"
    return True, f"heartbeat {age:.1f}s old"


def _seconds(name: str) -> float:
    text = os.environ.get(name, DEFAULTS[name])
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ValueError(f"{name}: must be a number of seconds above 0, not {text!r}")
    return value


def main() -> int:
    try:
        max_age_s = _seconds("HEALTH_MAX_AGE_SECONDS")
        failing_limit_s = _seconds("UNHEALTHY_AFTER_FAILING_SECONDS")
    except ValueError as exc:
        print(f"photo-ingest liveness: configuration error: {exc}", file=sys.stderr)
        return 2
    healthy, reason = verdict(os.environ.get("HEALTH_FILE", DEFAULTS["HEALTH_FILE"]), max_age_s, failing_limit_s)
    print(("healthy: " if healthy else "unhealthy: ") + reason.encode("ascii", "backslashreplace").decode())
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
