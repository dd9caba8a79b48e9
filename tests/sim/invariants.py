"""The invariants checked at the end of every seed (the one checked during the run is `World.check_delete`).

- photos: each photo that must be stored has exactly its own item; no other item appeared; no item was ever
  overwritten (each is its first write, including the items there before the run);
- messages: each was deleted; none was moved by the redrive policy; one whose content must be quarantined has
  a dead-letter copy with that reason, and no other message has one;
- accounting: each process's metrics agree with its log lines and with what the services answered it; a
  process that stopped cleanly holds no limiter slot; no process had more puts in flight than its limit.
"""

from __future__ import annotations

from typing import Any

from tests.sim.runtimes import SimProcess
from tests.sim.world import World

REASON = "photo-ingest.reason"
SAME = (  # (metric counter, key, log event) that must agree in every process
    ("records", "inserted", "photo.inserted"),
    ("records", "duplicate", "photo.duplicate"),
    ("records", "conflict", "photo.conflict"),
    ("messages", "released", "message.released"),
    ("messages", "quarantined", "message.quarantined"),
)


def check_end(world: World, processes: list[SimProcess], workers: dict[str, Any]) -> None:
    _photos(world)
    _messages(world)
    for process in processes:
        _accounting(world, process, workers.get(process.name))


def _photos(world: World) -> None:
    table = world.table
    expected = {p.id for p in world.traffic.photos if world.must_store(p)}
    for photo in world.traffic.photos:
        if world.must_store(photo) and not world.stored(photo):
            world.violate("photo not stored", photo.id, f"{photo.bucket}/{photo.key}")
    for photo_id, item in table.items.items():
        if photo_id not in expected and table.first.get(photo_id) is not item:
            world.violate("unexpected item", photo_id, f"{item['s3Bucket']['S']}/{item['s3Key']['S']}")
        if item is not table.first[photo_id]:
            world.violate("item overwritten", photo_id, "the stored item is not its first write")
    for write in table.overwrites:
        world.violate("item overwritten", write.photo_id, f"by {write.who}")


def _messages(world: World) -> None:
    for message_id, sent in world.sent.items():
        message = world.main.messages[message_id]
        if message.state == "redriven":
            world.violate("dead-lettered by the redrive policy", message_id, f"{message.receives} receives")
        elif message.state != "deleted":
            world.violate("not drained", message_id, f"still on the queue after {message.receives} receives")
        reasons = {c.attributes.get(REASON, {}).get("StringValue") for c in world.dead_lettered(message_id)}
        if sent.reason and message.state == "deleted" and reasons != {sent.reason}:
            world.violate("quarantined for the wrong reason", message_id, f"want {sent.reason}, got {sorted(reasons)}")
        if not sent.reason and reasons:
            world.violate(
                "deleted and dead-lettered", message_id, f"a message to store, quarantined: {sorted(reasons)}"
            )


def _accounting(world: World, process: SimProcess, worker: Any) -> None:
    logs = {event: n for (who, event), n in world.logs.items() if who == process.name}
    metrics = worker._metrics if worker is not None else getattr(getattr(process, "runtime", None), "_metrics", None)
    if metrics is None:
        return
    for counter, key, event in SAME:
        if getattr(metrics, counter)[key] != logs.get(event, 0):
            world.violate("metrics disagree with logs", process.name, f"{counter}[{key}] vs {event} lines")
    stopped_cleanly = process.finished and not process.crashed and not logs.get("worker.released_unfinished")
    exact = stopped_cleanly or (worker is None and not process.crashed)
    deleted = metrics.messages["deleted"] + metrics.messages["quarantined"]
    if worker is not None:  # a quarantine whose delete failed is logged as a failed delete, without its metric
        deleted -= logs.get("message.delete_failed", 0) - metrics.messages["delete_failed"]
    acted = [("inserted", metrics.records["inserted"])]
    if worker is not None or not process.crashed:  # Lambda counts what the mapping will delete once it returns
        acted.append(("deleted", deleted))
    for what, counted in acted:
        heard = process.delivered[what]
        if counted > heard or (exact and counted != heard):
            world.violate("metrics disagree with AWS", process.name, f"{what}: counted {counted}, AWS said {heard}")
    _bounds(world, process, worker if stopped_cleanly else None)


def _bounds(world: World, process: SimProcess, stopped_worker: Any) -> None:
    """Its own writes counted as settled; its puts within the limit; no slot held after a clean stop."""
    for photo_id in sorted(process.owed):
        if not process.crashed and (process.name, photo_id) not in world.settled:
            world.violate("own write not counted", photo_id, f"{process.name} wrote it, then did not settle it")
    limit = world.options.max_in_flight
    if process.peak_puts > limit:
        world.violate("in-flight limit exceeded", process.name, f"{process.peak_puts} puts at once, limit {limit}")
    if stopped_worker is not None and stopped_worker._limiter.in_use != 0:
        world.violate(
            "limiter slots leaked", process.name, f"in use after a clean stop: {stopped_worker._limiter.in_use}"
        )
