"""The worker's side of liveness: a heartbeat file that `photo-ingest health` (`service.ops.health`) reads.

The poll loop calls `beat()` on every turn; the file says when it last did (`beatAt`), and since when every put
has failed (`failingSince`), if they all have. The write is atomic, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import structlog

log = structlog.get_logger("service.worker.heartbeat")


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
