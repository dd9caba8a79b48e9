"""A simulated SQS standard queue: at-least-once, unordered, with visibility timeouts and a redrive policy.

- A receive hands out visible messages in random order; now and then it hands out again one that is in flight
  (a duplicate delivery). Every receive issues a new receipt handle, and only the newest one acts: a delete with
  an older one succeeds and does nothing, as AWS documents; a visibility change with one is refused.
- A message received `max_receives` times is moved to the dead-letter queue by the queue itself (the redrive).
- A long poll waits, in virtual time, until a message is visible or its wait ends.
- `on_delete` is called before every delete the queue acts on, so the simulator checks its invariants at that
  moment.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.sim.history import History

MAX_VISIBILITY_S = 43_200  # a message stays hidden at most 12 hours from its receive


@dataclass(slots=True, eq=False)
class SimMessage:
    id: str
    body: str
    sent_at: float
    attributes: dict[str, Any] = field(default_factory=dict)
    receives: int = 0
    visible_at: float = 0.0
    handle: str = ""  # the newest receipt handle
    state: str = "queued"  # queued | deleted | redriven
    source_id: str | None = None  # in a dead-letter queue: the message it came from
    sender: str = ""  # the process that sent it, or "redrive"
    received_at: float = 0.0


class SimQueue:
    def __init__(
        self,
        name: str,
        history: History,
        rng: random.Random,
        *,
        visibility_s: int = 30,
        max_receives: int = 0,
        dead_letter: SimQueue | None = None,
    ) -> None:
        self.name, self.url = name, f"https://sqs.us-east-1.amazonaws.com/123456789012/{name}"
        self.visibility_s = visibility_s
        self.max_receives = max_receives
        self.dead_letter = dead_letter
        self.messages: dict[str, SimMessage] = {}
        self.live: dict[str, SimMessage] = {}  # not deleted nor redriven
        self.duplicate_rate = 0.0
        self.duplicates = 0  # deliveries of a message already in flight
        self.on_delete: Callable[[SimMessage, str], None] = lambda _m, _w: None
        self._history, self._rng, self._clock = history, rng, history.clock
        self._handles: dict[str, SimMessage] = {}
        self._changed = asyncio.Event()

    def send(self, body: str, who: str, attributes: dict[str, Any] | None = None, source: str = "") -> SimMessage:
        """`source`: the message a redrive moved; a quarantined copy names its own in its attributes."""
        message = SimMessage(f"{self.name}-{len(self.messages):05d}", body, self._clock.now, attributes or {})
        named = (attributes or {}).get("photo-ingest.source-message-id", {}).get("StringValue")
        message.source_id, message.sender = source or named, who
        self.messages[message.id] = message
        self.live[message.id] = message
        self._history.add(who, f"{self.name}.send", message.id, message.source_id or "")
        self._wake()
        return message

    def in_flight(self) -> int:
        return sum(1 for m in self.live.values() if m.visible_at > self._clock.now)

    async def receive(self, most: int, wait_s: float, visibility_s: int | None, who: str) -> list[SimMessage]:
        deadline = self._clock.now + wait_s
        while True:
            taken = self._take(most, visibility_s or self.visibility_s, who)
            if taken or self._clock.now >= deadline:
                return taken
            due = min((m.visible_at for m in self.live.values() if m.visible_at > self._clock.now), default=deadline)
            self._changed.clear()
            try:
                async with asyncio.timeout(max(0.0, min(deadline, due) - self._clock.now)):
                    await self._changed.wait()
            except TimeoutError:
                pass

    def _take(self, most: int, visibility_s: int, who: str) -> list[SimMessage]:
        now = self._clock.now
        visible = [m for m in self.live.values() if m.visible_at <= now]
        self._rng.shuffle(visible)
        if self.duplicate_rate and self._rng.random() < self.duplicate_rate:
            hidden = [m for m in self.live.values() if m.visible_at > now]
            visible[:0] = again = self._rng.sample(hidden, min(1, len(hidden)))
            self.duplicates += len(again)
        taken = []
        for message in visible:
            if len(taken) == most:
                break
            if self.max_receives and message.receives >= self.max_receives:
                self._redrive(message)
                continue
            message.receives += 1
            message.handle = f"{message.id}#{message.receives}"
            message.visible_at, message.received_at = now + visibility_s, now
            self._handles[message.handle] = message
            self._history.add(who, f"{self.name}.receive", message.handle)
            taken.append(message)
        return taken

    def _redrive(self, message: SimMessage) -> None:
        assert self.dead_letter is not None
        message.state = "redriven"
        del self.live[message.id]
        self.dead_letter.send(message.body, "redrive", source=message.id)

    def delete(self, handle: str, who: str) -> str | None:
        """None once done (or ignored: an older handle); the error code of a refused entry."""
        message = self._handles.get(handle)
        if message is None:
            return "ReceiptHandleIsInvalid"
        self.on_delete(message, who)
        if message.state == "queued" and handle == message.handle:
            message.state = "deleted"
            del self.live[message.id]
            self._history.add(who, f"{self.name}.delete", handle)
        else:
            self._history.add(who, f"{self.name}.delete-ignored", handle)
        return None

    def change_visibility(self, handle: str, timeout_s: int, who: str) -> str | None:
        message = self._handles.get(handle)
        if message is None:
            return "ReceiptHandleIsInvalid"
        if message.state != "queued" or handle != message.handle:
            return "InvalidParameterValue"  # "Value ... for parameter ReceiptHandle is invalid. Reason: expired"
        if self._clock.now + timeout_s - message.received_at > MAX_VISIBILITY_S:
            return "InvalidParameterValue"  # beyond 12 hours from the receive
        message.visible_at = self._clock.now + timeout_s
        self._history.add(who, f"{self.name}.visibility", handle, str(timeout_s))
        if timeout_s == 0:
            self._wake()
        return None

    def _wake(self) -> None:
        self._changed.set()
