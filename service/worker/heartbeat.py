"""The worker's side of liveness: a heartbeat file that `photo-ingest health` (`service.ops.health`) reads.

The poll loop calls `beat()` on every turn; the file says when it last did (`beatAt`), and since when every put
has failed (`failingSince`), if they all have. The write is atomic, so a reader never sees half a file: a new
temporary file, then a rename over the heartbeat. The temporary is created only if nothing is at its path
(`O_CREAT|O_EXCL|O_NOFOLLOW`) under a name of this process's own, with a random part: in a shared directory
such as /tmp, a link planted there is never followed, and the write moves to a fresh name instead.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

import structlog

log = structlog.get_logger("service.worker.heartbeat")

CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class Heartbeat:
    def __init__(self, path: Path, min_interval_s: float = 2.0) -> None:
        self._path = path
        self._min_interval_s = min_interval_s
        self._written_at = 0.0
        self._failing_since: float | None = None
        self._warned = False
        self.temporary = self._fresh_name()

    def _fresh_name(self) -> Path:
        return self._path.with_name(f".{self._path.name}.{os.getpid()}.{secrets.token_hex(8)}")

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
        try:
            self._write(json.dumps(state).encode())
        except OSError as exc:
            if not self._warned:
                log.warning("health.write_failed", path=str(self._path), error=str(exc))
                self._warned = True

    def _write(self, data: bytes) -> None:
        try:
            descriptor = os.open(self.temporary, CREATE_NEW, 0o644)
        except FileExistsError:  # something else is at this name (a planted link?): never touch it, take another
            self.temporary = self._fresh_name()
            descriptor = os.open(self.temporary, CREATE_NEW, 0o644)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
            os.replace(self.temporary, self._path)  # atomic; a link at the heartbeat's path is replaced, not followed
        except OSError:
            self.temporary.unlink(missing_ok=True)
            raise
