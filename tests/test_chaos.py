"""Chaos: three worker processes on one queue, every photo announced up to three times through different
envelopes, one worker SIGKILLed mid-run and started again; then the same through a proxy that injects
throttling, 500s and cut connections. The promise under test: every photo gets exactly one item, no message is
lost, and nothing is overwritten.

How "nothing was overwritten" is proved, three ways, each sound on its own:
- Every 12th photo has an item before the run, carrying a marker attribute and an `ingestedAt` far in the past,
  and its messages are sent like the others. A PutItem replaces the whole item, so an overwrite would drop
  the marker and change `ingestedAt`; at the end each seeded item must be byte-for-byte what was seeded.
- When the worker is killed, the test snapshots every item's `ingestedAt` (each put writes its own wall-clock
  time). Most photos still have copies on the queue at that moment; at the end every snapshotted item must
  have the same `ingestedAt`, so no later put replaced it.
- Across all processes' logs, `photo.inserted` (the put's condition held) appears at most once per photoId
  and never for a seeded photo.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import bodies
from tests.conftest import BUCKET, Stack
from tests.fault_proxy import FAULT_KINDS, FaultProxy
from tests.workers import WorkerProcess, Workers, poll_until, worker_env, worker_pool

PHOTOS = 240
WAVES = 3
LOW_WATER = 60  # the next wave is sent when fewer messages than this are on the queue: moto's SQS stays shallow
VICTIM_WORK = 10  # the victim is killed once it has settled this many records, while it holds messages ...
DEPTH_CHECK_S = 0.5  # ... or, at the latest, when the last wave is due: it is held back until the kill
SEEDED_EVERY = 12
SEEDED_AT = "2000-01-01T00:00:00+00:00"
RUN_TIMEOUT_S = 100.0


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    with worker_pool(tmp_path) as pool:
        yield pool


def seed(stack: Stack, photos: list[bodies.Photo]) -> dict[str, dict[str, Any]]:
    """Items that exist before the run, as a previous worker (or the old Lambda) left them, plus a marker."""
    for photo in photos:
        stack.dynamodb.put_item(
            TableName=stack.table,
            Item={
                "photoId": {"S": photo.photo_id},
                "s3Bucket": {"S": photo.bucket},
                "s3Key": {"S": photo.key},
                "uploadedAt": {"S": SEEDED_AT},
                "ingestedAt": {"S": SEEDED_AT},
                "seededBy": {"S": "test_chaos"},
            },
        )
    items = stack.items()
    return {photo.photo_id: items[photo.photo_id] for photo in photos}


class ChaosRun:
    """Feeds the plan in waves to three workers, kills one mid-run, restarts it, and waits for the end state."""

    def __init__(self, stack: Stack, workers: Workers, endpoint: str, tmp_path: Path, **settings: object) -> None:
        self.stack = stack
        self.workers = workers
        self.photos = bodies.photos(PHOTOS, BUCKET)
        self.plan = bodies.deliveries(self.photos, WAVES)
        self.expected = {photo.photo_id: photo for photo in self.photos}
        self.seeded = seed(stack, self.photos[::SEEDED_EVERY])
        self._waves = list(self.plan.waves)
        self._env = [worker_env(stack, endpoint, tmp_path / f"worker{i}.health", **settings) for i in range(3)]
        self.processes: list[WorkerProcess] = []
        self.victim: WorkerProcess | None = None
        self.snapshot: dict[str, str] = {}
        self.cut_in_flight = 0
        self.killed_at_share = 0.0
        self.max_depth = 0
        self._next_depth_check = 0.0

    def run(self) -> float:
        started = time.monotonic()
        self._send_next_wave()
        self.processes = [self.workers.start(f"worker{i}", env) for i, env in enumerate(self._env)]
        poll_until(self._time_to_kill, RUN_TIMEOUT_S, interval_s=0.05, what=self._state)
        self._kill_and_restart()
        poll_until(self._finished, RUN_TIMEOUT_S, interval_s=0.25, what=self._state)
        return time.monotonic() - started

    def _time_to_kill(self) -> bool:
        """Feed waves, but hold the last one back; true once the victim has done some work and holds messages
        (logged a record without settling its message), or when the held-back wave is due. Only log files
        are read at this pace: a table scan under load takes seconds, longer than a wave lasts."""
        self._assert_alive()
        victim = self.processes[0]
        worked = sum(str(event.get("event")).startswith("photo.") for event in victim.events()) >= VICTIM_WORK
        if worked and victim.in_flight_at_end():
            return True
        if time.monotonic() < self._next_depth_check:
            return False
        self._next_depth_check = time.monotonic() + DEPTH_CHECK_S
        depth = self._depth()
        if depth < LOW_WATER and len(self._waves) > 1:
            self._send_next_wave()
            return False
        return worked and depth < LOW_WATER

    def _finished(self) -> bool:
        self._assert_alive()
        depth = self._depth()
        if self._waves and depth < LOW_WATER:
            self._send_next_wave()
            return False
        return not self._waves and depth == 0 and self.stack.items().keys() == self.expected.keys()

    def _assert_alive(self) -> None:
        for process in self.processes:
            assert process.alive(), f"{process.name} died: {process.stderr()[-3000:]}"

    def _depth(self) -> int:
        depth = self.stack.depth()
        self.max_depth = max(self.max_depth, depth)
        return depth

    def _send_next_wave(self) -> None:
        for batch in self._waves.pop(0):  # one SendMessageBatch each: duplicates packed together stay together
            self.stack.send(*batch)

    def _state(self) -> str:
        missing = self.expected.keys() - self.stack.items().keys()
        events = {p.name: Counter(str(e.get("event")) for e in p.events()) for p in self.workers.started}
        return (
            f"the run to progress; missing {len(missing)} photos, waves left {len(self._waves)},"
            f" queue {self.stack.depth()}, DLQ {self.stack.depth(self.stack.dlq_url)}, killed {bool(self.victim)},"
            f" events {events}"
        )

    def _kill_and_restart(self) -> None:
        """SIGKILL the victim, snapshot the table, start the victim's replacement."""
        self.victim = self.processes[0]
        self.victim.kill()
        self.cut_in_flight = len(self.victim.in_flight_at_end())
        items = self.stack.items()
        self.snapshot = {photo_id: item["ingestedAt"] for photo_id, item in items.items()}
        self.killed_at_share = round((len(items) - len(self.seeded)) / (PHOTOS - len(self.seeded)), 2)
        assert 0 < self.killed_at_share < 1, "the kill must come after some but not all photos are stored"
        self.processes[0] = self.workers.start("worker0-restarted", self._env[0])

    def stop_all(self) -> list[tuple[int, float]]:
        """SIGTERM every live worker at once, as ECS does on a scale-in, and collect (exit code, seconds)."""
        for process in self.processes:
            process.request_stop()
        return [process.wait_stopped() for process in self.processes]

    def inserted_per_photo(self) -> Counter[str]:
        return Counter(
            str(event["photoId"]) for event in self.workers.all_events() if event.get("event") == "photo.inserted"
        )

    def assert_end_state(self) -> dict[str, Any]:
        """Exactly one correct item per photo, nothing overwritten, both queues empty; returns the figures."""
        items = self.stack.items()
        assert items.keys() == self.expected.keys()
        for photo_id, item in items.items():
            photo = self.expected[photo_id]
            assert (item["s3Bucket"], item["s3Key"]) == (photo.bucket, photo.key), item
        for photo_id, seeded in self.seeded.items():
            assert items[photo_id] == seeded, "a pre-existing item was overwritten"
        changed = {pid for pid, at in self.snapshot.items() if items[pid]["ingestedAt"] != at}
        assert not changed, f"items rewritten after the snapshot: {sorted(changed)[:5]}"
        inserted = self.inserted_per_photo()
        duplicates_written = sum(count - 1 for count in inserted.values() if count > 1)
        assert duplicates_written == 0, inserted.most_common(5)
        assert not inserted.keys() & self.seeded.keys(), "a put succeeded over a seeded item"
        assert self.stack.depth() == 0
        assert self.stack.depth(self.stack.dlq_url) == 0
        events = Counter(str(event.get("event")) for event in self.workers.all_events())
        for bad in ("message.unexpected_error", "photo.conflict", "message.poison", "message.quarantined"):
            assert events[bad] == 0, (bad, events)
        receive_counts = [
            int(event["receiveCount"]) for event in self.workers.all_events() if event.get("event") == "message.deleted"
        ]
        return {
            "messagesSent": self.plan.messages,
            "distinctPhotos": len(self.expected),
            "preSeeded": len(self.seeded),
            "sameBatchDuplicates": self.plan.same_batch_pairs,
            "mixedEnvelopePhotos": self.plan.mixed_envelopes,
            "itemsAtEnd": len(items),
            "duplicatesWritten": duplicates_written,
            "messagesLost": len(self.expected.keys() - items.keys()),
            "maxQueueDepth": self.max_depth,
            "snapshotItems": len(self.snapshot),
            "killedAtShareStored": self.killed_at_share,
            "victimInFlightAtKill": self.cut_in_flight,
            "deletedAfterRedelivery": sum(count > 1 for count in receive_counts),
            "maxReceiveCount": max(receive_counts, default=0),
            "events": {name: events[name] for name in sorted(events) if not name.startswith("worker.")},
        }


def assert_clean_exits(exits: list[tuple[int, float]], run: ChaosRun) -> None:
    for process, (code, _) in zip(run.processes, exits, strict=True):
        assert code == 0, f"{process.name} exited {code}: {process.stderr()[-3000:]}"
        assert "Traceback" not in process.stderr(), process.stderr()[-3000:]


@pytest.mark.timeout(150)
def test_three_workers_one_killed_store_every_photo_exactly_once(
    stack: Stack, workers: Workers, tmp_path: Path
) -> None:
    """Three workers share one queue carrying 240 photos in 493 messages (most photos two or three times,
    through direct, SNS and EventBridge envelopes, some duplicates in one send batch). One worker is
    SIGKILLed while it holds messages, after some but before all photos are stored, and is started again.
    At the end every photo has exactly one item with the right bucket and key, no item was overwritten, the
    queue and the DLQ are empty, and every worker exits 0 on SIGTERM."""
    run = ChaosRun(stack, workers, stack.endpoint, tmp_path)
    elapsed = run.run()
    exits = run.stop_all()
    assert_clean_exits(exits, run)
    report = run.assert_end_state()
    report |= {"seconds": round(elapsed, 1), "exitSeconds": [round(s, 1) for _, s in exits]}
    print("chaos:", json.dumps(report))


@pytest.mark.timeout(150)
def test_the_same_holds_with_throttling_errors_and_cut_connections(
    stack: Stack, workers: Workers, tmp_path: Path
) -> None:
    """The same run through a proxy that fails 15% of the workers' SQS and DynamoDB calls: throttling errors,
    HTTP 500s, and connections cut before the request reaches moto or after moto has acted on it (a put or
    delete that happened although the client saw an error). With the SDK's attempts set to 2, some failures
    outlast the SDK's retries and reach the worker. The same end state holds, the proxy injected every kind of
    fault into both services, and the workers' logs show the failures the worker handled itself: failed puts,
    and their messages released with a backoff.

    The queue's redrive threshold is raised from 5 to 20 receives for this run: at an injected 15% fault rate a
    healthy message is now and then received four or five times before it is stored, and a move to the DLQ by SQS would
    test the threshold rather than the worker."""
    redrive = json.loads(
        stack.sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["RedrivePolicy"])["Attributes"][
            "RedrivePolicy"
        ]
    )
    redrive["maxReceiveCount"] = 20
    stack.sqs.set_queue_attributes(QueueUrl=stack.queue_url, Attributes={"RedrivePolicy": json.dumps(redrive)})
    with FaultProxy(stack.endpoint, rate=0.15, seed=7) as proxy:
        run = ChaosRun(stack, workers, proxy.url, tmp_path, aws_max_attempts=2)
        elapsed = run.run()
        exits = run.stop_all()
    assert_clean_exits(exits, run)
    report = run.assert_end_state()
    for kind in FAULT_KINDS:
        assert proxy.faults(kind) > 0, proxy.summary()
    assert proxy.faults(service="dynamodb") > 0
    assert proxy.faults(service="sqs") > 0
    events = report["events"]
    assert events.get("photo.failed", 0) > 0, events
    released = [event for event in workers.all_events() if event.get("event") == "message.released"]
    assert released, events
    assert {event["retryInSeconds"] for event in released} == {1}  # the backoff, capped by RETRY_BACKOFF_MAX_SECONDS
    report |= {
        "seconds": round(elapsed, 1),
        "exitSeconds": [round(s, 1) for _, s in exits],
        "faultRate": proxy.rate,
        "proxy": proxy.summary(),
        "faultsByService": {s: proxy.faults(service=s) for s in ("sqs", "dynamodb")},
        "faultsByOperation": proxy.by_operation(),
    }
    print("faults:", json.dumps(report))
