"""One INFO line per photo (issue 20 §4): `photo.inserted` is the product's record of a photo stored. A deleted
message says so at DEBUG (`message.deleted`) and in the `MessagesDeleted` metric, not in a second INFO line.

`photo-ingest run` as a container runs it: a process configured by its environment, logging JSON lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import bodies
from tests.conftest import BUCKET, Stack
from tests.workers import poll_until, worker_env, worker_pool

ABOVE_DEBUG = ("info", "warning", "error", "critical")
# The events about a photo or its message. `limit.changed`, logged while a message is settled, carries its
# messageId too, but it is about the worker's concurrency, and at most one in 10 s.
SUBJECTS = ("photo.", "record.", "message.")


@pytest.mark.parametrize("log_level", ["default", "DEBUG"])
def test_a_stored_photo_is_one_info_line_and_its_deletion_a_debug_line(
    stack: Stack, tmp_path: Path, log_level: str
) -> None:
    """One photo in one message, inserted, its message deleted. At the default LOG_LEVEL (INFO), the only line
    about either is the photo's `photo.inserted`, at INFO; at DEBUG, the same INFO line and the message's
    `message.deleted`, at DEBUG."""
    [photo] = bodies.photos(1, BUCKET, label="audit")
    [message_id] = stack.send(bodies.direct(photo))
    env = worker_env(stack, stack.endpoint, tmp_path / "health")
    if log_level == "default":
        del env["LOG_LEVEL"]
    else:
        env["LOG_LEVEL"] = log_level
    with worker_pool(tmp_path) as pool:
        worker = pool.start("audit", env)
        poll_until(lambda: named(worker.events(), "photo.inserted"), 30, what="the photo's photo.inserted line")
        assert worker.terminate()[0] == 0  # SIGTERM: the message in flight is settled before the exit
        events = worker.events()

    assert stack.depth() == 0, "the message was not deleted: nothing was tested"
    assert list(stack.items()) == [photo.photo_id]
    about = [e for e in events if str(e["event"]).startswith(SUBJECTS) and e.get("messageId") == message_id]
    assert [(e["event"], e["level"]) for e in about if e["level"] in ABOVE_DEBUG] == [("photo.inserted", "info")]
    [inserted] = named(events, "photo.inserted")
    assert (inserted["photoId"], inserted["key"]) == (photo.photo_id, photo.key)
    deletions = [(e.get("messageId"), e["level"]) for e in named(events, "message.deleted")]
    assert deletions == ([] if log_level == "default" else [(message_id, "debug")])


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [event for event in events if event.get("event") == name]
