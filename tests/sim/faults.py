"""What goes wrong, and when: one seed's fault plan, and the fault (if any) of every AWS call.

Two layers:
- noise, on every call until `calm_at`: throttles, 500s before or after the effect, read timeouts, responses
  lost after the effect, partial `Failed` entries in SQS batches, duplicate deliveries, a latency tail;
- planned faults (`count` a seed, within the traffic's span): a process crashing at its n-th AWS call (before or
  after the call takes effect) or at a virtual instant, SIGTERM, one service's outage, a throttling storm on the
  table.
After `calm_at` nothing fails any more (latency stays): the liveness window.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

WRITES = frozenset({"PutItem", "BatchExecuteStatement"})
NOISE = {  # a call's fault, by service: (kind, weight)
    "sqs": (("throttle", 2), ("error", 2), ("error_after", 1), ("cut", 2), ("lost", 2)),
    "dynamodb": (("throttle", 4), ("error", 2), ("error_after", 1), ("timeout", 1), ("cut", 1), ("lost", 2)),
    "s3": (("error", 2), ("cut", 1), ("timeout", 1)),
}
BASE_LATENCY_S = {"sqs": 0.008, "dynamodb": 0.004, "s3": 0.012}


@dataclass(frozen=True, slots=True)
class Window:
    kind: str  # outage | storm
    service: str
    start: float
    end: float


@dataclass(slots=True)
class Plan:
    windows: list[Window] = field(default_factory=list)
    call_crashes: dict[int, tuple[int, str]] = field(default_factory=dict)  # slot -> (n-th call, before|after)
    timed: list[tuple[float, str, int]] = field(default_factory=list)  # (at, kill|sigterm, slot)

    def describe(self) -> list[str]:
        lines = [f"{w.kind} {w.service} {w.start:.1f}-{w.end:.1f}s" for w in self.windows]
        lines += [
            f"crash slot {slot} at its call {n} ({phase} effect)" for slot, (n, phase) in self.call_crashes.items()
        ]
        return lines + [f"{kind} slot {slot} at {at:.1f}s" for at, kind, slot in self.timed]


def make_plan(rng: random.Random, slots: int, span_s: float, count: int, *, s3: bool) -> Plan:
    plan = Plan()
    services = ["sqs", "dynamodb", "s3"] if s3 else ["sqs", "dynamodb"]
    for _ in range(count):
        kind = rng.choice(("call_crash", "call_crash", "kill", "sigterm", "outage", "storm"))
        slot, start = rng.randrange(slots), rng.uniform(0, span_s)
        if kind == "call_crash" and slot not in plan.call_crashes:
            plan.call_crashes[slot] = (rng.randint(1, 120), rng.choice(("before", "after")))
        elif kind in ("kill", "sigterm", "call_crash"):  # a second crash of one slot comes at an instant
            kind = "kill" if kind == "call_crash" else kind
            plan.timed.append((start, kind, slot))
        elif kind == "outage":
            plan.windows.append(Window("outage", rng.choice(services), start, start + rng.uniform(5, 60)))
        else:
            plan.windows.append(Window("storm", "dynamodb", start, start + rng.uniform(5, 45)))
    plan.timed.sort()
    return plan


class Faults:
    def __init__(self, rng: random.Random, plan: Plan, *, rate: float, calm_at: float) -> None:
        self.plan, self.rate, self.calm_at = plan, rate, calm_at
        self.counts: dict[str, int] = {}
        self._rng = rng
        self._calls: dict[int, int] = {}

    def draw(self, service: str, operation: str, now: float) -> str | None:
        if now >= self.calm_at:
            return None
        for window in self.plan.windows:
            if window.service == service and window.start <= now < window.end:
                if window.kind == "outage":
                    return self._count(self._rng.choice(("error", "cut")))
                if operation in WRITES and self._rng.random() < 0.8:
                    return self._count("throttle")
        if self._rng.random() >= self.rate:
            return None
        kinds, weights = zip(*NOISE[service], strict=True)
        return self._count(self._rng.choices(kinds, weights)[0])

    def outage_ends(self, service: str, now: float) -> float | None:
        """When the outage of `service` under way ends; None if there is none."""
        ends = [
            w.end for w in self.plan.windows if w.kind == "outage" and w.service == service and w.start <= now < w.end
        ]
        return max(ends) if ends and now < self.calm_at else None

    def entry_fails(self, now: float) -> bool:
        """A batch entry refused on its own (SenderFault false)."""
        return now < self.calm_at and self._rng.random() < self.rate and self._count("entry") != ""

    def crash_point(self, slot: int) -> str | None:
        """'before' or 'after' when this call of the process in `slot` is the one it crashes at."""
        self._calls[slot] = self._calls.get(slot, 0) + 1
        planned = self.plan.call_crashes.get(slot)
        if planned is None or planned[0] != self._calls[slot]:
            return None
        del self.plan.call_crashes[slot]
        self._count(f"crash {planned[1]} a call's effect")
        return planned[1]

    def latency(self, service: str) -> float:
        base = BASE_LATENCY_S[service] * self._rng.lognormvariate(0, 0.5)
        return base * 25 if self._rng.random() < 0.01 else base

    def _count(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return kind
