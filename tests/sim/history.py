"""The history of one run: every event the simulated services saw, in order, stamped with virtual time.

Two runs of one seed must write the same history, byte for byte (`digest`). A broken invariant is reported
with the events that concern its message or photo (`about`), the last of them first to be read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from tests.sim.clock import VirtualClock


@dataclass(slots=True)
class History:
    clock: VirtualClock
    lines: list[str] = field(default_factory=list)

    def add(self, who: str, what: str, *subjects: str) -> None:
        self.lines.append(f"{self.clock.now:10.3f} {who:<10} {what} {' '.join(subjects)}".rstrip())

    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.lines).encode()).hexdigest()

    def about(self, subject: str, limit: int = 12) -> list[str]:
        """The last `limit` events that name `subject`."""
        return [line for line in self.lines if subject in line][-limit:]
