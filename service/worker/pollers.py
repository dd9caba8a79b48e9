"""How many pollers run: as many as the demand needs, from one up to POLLERS, as Lambda's event source mapping
scales its pollers.

    a receive that comes back full, with room left under the in-flight limit and the byte budget:
        one poller more, up to POLLERS (the ceiling)
    a receive that comes back empty (a whole long poll without a message): its poller retires, except the
        first, which never does (it is also the one that probes during an outage, pacing.py)

An idle worker so sends one long poll at a time: 3 receives a minute with the 20 s wait, against POLLERS x 3
before. Under a backlog the pollers grow by one per full receive, so they reach the number that the round trip
needs (receives a second x round trip) within a few round trips.
"""

from __future__ import annotations


class PollerCount:
    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.active = 0
        self._started = 0

    def start(self) -> int:
        """A poller starts: its index (0 for the first, which never retires)."""
        self.active += 1
        self._started += 1
        return self._started - 1

    def stopped(self) -> None:
        self.active -= 1

    def grows(self, received: int, full: int, room: bool) -> bool:
        """Whether a receive of `received` messages (of at most `full`) should start one poller more."""
        return received >= full and room and self.active < self.ceiling

    @staticmethod
    def retires(index: int, received: int) -> bool:
        """Whether the poller that made an empty receive should stop (all but the first)."""
        return received == 0 and index > 0
