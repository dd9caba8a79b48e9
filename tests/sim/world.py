"""The simulated world of one seed: its clock, randomness, services, faults, traffic and history, and the
invariant that is checked while the run goes: no message is deleted before every record in it is settled.

At the moment a delete reaches the queue, the message's content must be settled in the services' own records:
every photo it announces that must be stored has its item, naming that photo; a message whose content must be
quarantined already has its copy in the dead-letter queue.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

from tests.sim.clock import VirtualClock
from tests.sim.faults import Faults, Plan
from tests.sim.history import History
from tests.sim.sqs import SimMessage, SimQueue
from tests.sim.table import SimObjects, SimTable
from tests.sim.traffic import Photo, Sent, Traffic


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: str
    subject: str  # a message id or photoId, to find its events in the history
    detail: str


@dataclass(slots=True)
class Options:
    """One seed's scenario."""

    runtime: str = "worker"  # worker | lambda
    processes: int = 2
    write_mode: str = "put"
    verify_objects: bool = False
    max_in_flight: int = 16
    pollers: int = 2
    max_receives: int = 10
    fault_rate: float = 0.05
    messages: int = 100
    faults: int = 3
    traffic_s: float = 120.0


@dataclass
class World:
    seed: int
    options: Options
    traffic: Traffic
    plan: Plan
    clock: VirtualClock = field(default_factory=VirtualClock)
    violations: list[Violation] = field(default_factory=list)
    logs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (process, event) -> lines
    settled: set[tuple[str, str]] = field(default_factory=set)  # (process, photoId) logged inserted or duplicate

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.history = History(self.clock)
        self.dead_letter = SimQueue("photos-dlq", self.history, self.rng)
        self.main = SimQueue(
            "photos", self.history, self.rng, max_receives=self.options.max_receives, dead_letter=self.dead_letter
        )
        self.main.duplicate_rate = self.options.fault_rate
        self.main.on_delete = self.check_delete
        self.table = SimTable("Photos", self.history)
        self.objects = SimObjects()
        self.faults = Faults(self.rng, self.plan, rate=self.options.fault_rate, calm_at=self.calm_at)
        self.sent: dict[str, Sent] = {}

    @property
    def calm_at(self) -> float:
        """When faults stop: the traffic's span, its late copies, and a minute."""
        return self.options.traffic_s + 120.0

    def queue(self, url: str) -> SimQueue:
        return self.main if url == self.main.url else self.dead_letter

    def violate(self, invariant: str, subject: str, detail: str) -> None:
        self.violations.append(Violation(invariant, subject, detail))
        self.history.add("check", f"VIOLATION {invariant}", subject, detail)

    def must_store(self, photo: Photo) -> bool:
        return photo.kind == "stored" or (photo.kind == "gone" and not self.options.verify_objects)

    def stored(self, photo: Photo) -> bool:
        item = self.table.items.get(photo.id)
        return item is not None and (item["s3Bucket"]["S"], item["s3Key"]["S"]) == (photo.bucket, photo.key)

    def check_delete(self, message: SimMessage, who: str) -> None:
        sent = self.sent[message.id]
        unsettled = [p.id for p in sent.photos if self.must_store(p) and not self.stored(p)]
        if unsettled:
            self.violate("deleted before settled", message.id, f"{who}: no item yet for {', '.join(unsettled)}")
        if sent.reason and not self.dead_lettered(message.id):
            self.violate("deleted before dead-lettered", message.id, f"{who}: {sent.reason}, not in the DLQ yet")

    def dead_lettered(self, message_id: str) -> list[SimMessage]:
        """The copies of a message that a runtime (not the redrive policy) sent to the dead-letter queue."""
        copies = self.dead_letter.messages.values()
        return [c for c in copies if c.source_id == message_id and c.sender != "redrive"]
