"""Outages and health, on real worker processes: a missing table or queue deletes nothing, pauses intake, and
heals without a restart; `photo-ingest health` tells a live worker from a dead or uselessly failing one.

Every worker here runs with RETRY_BACKOFF_MAX_SECONDS=1, so a released message is visible again after 1 s.
While a worker runs, what it deleted is counted exactly: DeleteMessage calls at a counting proxy, or the
`message.deleted` events in its log (DEBUG lines: `worker_env` sets LOG_LEVEL=DEBUG). The queue's approximate
counts are read only once it has stopped.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.worker.worker import INTAKE_BACKOFF_CAP_S
from tests import bodies
from tests.conftest import BUCKET, Stack, deleted
from tests.fault_proxy import FaultProxy
from tests.workers import WorkerProcess, Workers, health, poll_until, worker_env, worker_pool

RELEASE_S = 1  # RETRY_BACKOFF_MAX_SECONDS: the longest a released message stays hidden
REDRIVE_AT = 5  # the stack's maxReceiveCount
OUTAGE_S = 8.0  # longer than REDRIVE_AT releases: a worker that did not pause would push messages to the DLQ
RECOVERY_S = INTAKE_BACKOFF_CAP_S + 15  # the longest intake pause, plus time to work
DELETES = ("DeleteMessage", "DeleteMessageBatch")
QUARANTINES = ("SendMessage", "SendMessageBatch")  # the worker sends only to the DLQ


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    with worker_pool(tmp_path) as pool:
        yield pool


def start(workers: Workers, stack: Stack, tmp_path: Path, endpoint: str = "", **settings: object) -> WorkerProcess:
    env = worker_env(
        stack,
        endpoint or stack.endpoint,
        tmp_path / "worker.health",
        retry_backoff_base_seconds=0.4,
        retry_backoff_max_seconds=RELEASE_S,
        **settings,
    )
    return workers.start("worker", env)


def logged(worker: WorkerProcess, name: str) -> list[dict[str, Any]]:
    return [event for event in worker.events() if event.get("event") == name]


def send(stack: Stack, url: str, messages: list[str]) -> set[str]:
    entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(messages)]
    response = stack.sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert not response.get("Failed")
    return {entry["MessageId"] for entry in response["Successful"]}


def last_beat(worker: WorkerProcess) -> float:
    """When the worker last wrote its heartbeat, by its own clock."""
    return float(json.loads(worker.health_file.read_text())["beatAt"])


def assert_stored(stack: Stack, photos: list[bodies.Photo]) -> None:
    items = stack.items()
    assert items.keys() == {photo.photo_id for photo in photos}
    for photo in photos:
        assert (items[photo.photo_id]["s3Bucket"], items[photo.photo_id]["s3Key"]) == (photo.bucket, photo.key)


def assert_one_life(worker: WorkerProcess) -> None:
    """The same process did everything: it is alive and started once."""
    assert worker.alive(), worker.stderr()[-3000:]
    assert len(logged(worker, "worker.started")) == 1


def test_without_its_table_the_worker_deletes_nothing_pauses_intake_and_recovers_without_restart(
    stack: Stack, workers: Workers, tmp_path: Path
) -> None:
    """The table is missing while five messages (four photos, one announced twice) wait on the queue. For an
    8 s outage nothing is deleted and nothing reaches the DLQ: each failed put releases its message, and the
    worker pauses receiving (IntakeGate) instead of cycling the backlog every second, so receive counts stay
    far below the redrive threshold of 5 that a non-pausing worker would pass in 5 s. The process stays up.
    Once the table is created, the same process stores every photo exactly once and deletes every message.

    The worker talks to moto through a proxy that injects nothing and counts calls: no DeleteMessage and no
    send to the DLQ reached it during the outage. Nothing receives from the DLQ, so its count cannot race."""
    stack.dynamodb.delete_table(TableName=stack.table)
    photos = bodies.photos(4, BUCKET, "outage")
    messages = [
        bodies.direct(photos[0]),
        bodies.sns(photos[1]),
        bodies.eventbridge(photos[2]),
        bodies.direct(photos[3], encode_slash=True),
        bodies.eventbridge(photos[0]),
    ]
    sent = stack.send(*messages)
    with FaultProxy(stack.endpoint) as counter:  # rate 0: every call passes, and is counted
        worker = start(workers, stack, tmp_path, endpoint=counter.url)
        poll_until(lambda: logged(worker, "photo.failed"), 30, what="the first failed put")
        outage_started = time.monotonic()

        def outage_held() -> bool:
            assert worker.alive(), worker.stderr()[-3000:]
            assert counter.calls(*DELETES) == 0, "a message was deleted during the outage"
            assert counter.calls(*QUARANTINES) == 0, "a message was quarantined during the outage"
            assert stack.depth(stack.dlq_url) == 0, "a message reached the DLQ during the outage"
            return time.monotonic() - outage_started >= OUTAGE_S

        poll_until(outage_held, OUTAGE_S + 10, interval_s=0.5, what="the end of the outage")
        failed = logged(worker, "photo.failed")
        assert {(event["kind"], event["code"]) for event in failed} == {("missing", "ResourceNotFoundException")}
        assert max(event["receiveCount"] for event in failed) < REDRIVE_AT
        receives_without_pause = len(messages) * OUTAGE_S / RELEASE_S
        assert len(failed) < receives_without_pause / 2, f"{len(failed)} receives in {OUTAGE_S}s"
        assert stack.table not in stack.dynamodb.list_tables()["TableNames"]

        stack.create_table()
        recovery_started = time.monotonic()
        poll_until(lambda: deleted(worker.events()) == sent, RECOVERY_S, what="every message deleted")
        recovery_s = time.monotonic() - recovery_started
        assert counter.calls(*DELETES) > 0  # the counter sees the deletes it saw none of during the outage
        assert_stored(stack, photos)
        assert_one_life(worker)
        assert len(logged(worker, "photo.inserted")) == len(photos)
        code, _ = worker.terminate()
    assert code == 0
    assert stack.depth() == 0
    assert stack.depth(stack.dlq_url) == 0
    figures = {"receivesDuringOutage": len(failed), "withoutPause": receives_without_pause}
    print("outage:", json.dumps(figures | {"recoverySeconds": round(recovery_s, 1)}))


def test_without_its_queue_the_worker_backs_off_stays_up_and_starts_once_the_queue_exists(
    stack: Stack, workers: Workers, tmp_path: Path
) -> None:
    """QUEUE_URL names a queue that does not exist yet. The worker logs `queue.receive_failed` (kind
    `missing`) with a pause that grows exponentially and stays under the intake cap, and it keeps running.
    When the queue is created and fed, the same process stores every photo and deletes every message."""
    late_url = stack.queue_url.rsplit("/", 1)[0] + "/photos-late"
    worker = start(workers, stack, tmp_path, queue_url=late_url)
    failures = poll_until(
        lambda: (
            len({e["pause"] for e in logged(worker, "queue.receive_failed")}) >= 6
            and logged(worker, "queue.receive_failed")
        ),
        30,
        what="six pauses after failed receives",
    )
    assert isinstance(failures, list)
    assert {event["kind"] for event in failures} == {"missing"}
    assert {event["code"] for event in failures} <= {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue"}
    first_of_each_pause = {int(event["pause"]): float(event["retryInSeconds"]) for event in reversed(failures)}
    delays = [first_of_each_pause[pause] for pause in sorted(first_of_each_pause)][:6]
    assert len(delays) == 6, failures  # concurrent failures of one pause count once
    assert delays == sorted(delays), delays  # each pause at least as long as the one before
    assert delays[-1] >= 4 * delays[0], delays
    assert max(delays) <= INTAKE_BACKOFF_CAP_S
    assert_one_life(worker)

    assert stack.sqs.create_queue(QueueName="photos-late")["QueueUrl"] == late_url
    photos = bodies.photos(3, BUCKET, "late queue")
    sent = send(stack, late_url, [bodies.direct(photos[0]), bodies.sns(photos[1]), bodies.eventbridge(photos[2])])
    poll_until(lambda: deleted(worker.events()) == sent, RECOVERY_S, what="every message deleted")
    assert_stored(stack, photos)
    assert_one_life(worker)
    code, _ = worker.terminate()
    assert code == 0
    assert stack.depth(late_url) == 0


def test_health_is_0_while_the_worker_polls_and_1_once_a_killed_workers_heartbeat_is_stale(
    stack: Stack, workers: Workers, tmp_path: Path
) -> None:
    """`photo-ingest health` exits 0 for a running worker, checked repeatedly over more than
    HEALTH_MAX_AGE_SECONDS, while the worker rewrites its heartbeat (so it is refreshed, not merely written
    once); after the worker is SIGKILLed it exits 1 because that last heartbeat grew older than
    HEALTH_MAX_AGE_SECONDS. The photos the worker stored before it died are in the table and the queue is empty.

    How soon after the kill is not bounded here: the heartbeat's own timestamps (`beatAt`, the worker's clock)
    show it was refreshed up to the end, and the health rule itself is tested in test_health.py."""
    max_age_s = 5.0
    photos = bodies.photos(3, BUCKET, "health")
    sent = stack.send(*(bodies.direct(photo) for photo in photos))
    worker = start(workers, stack, tmp_path)
    poll_until(lambda: deleted(worker.events()) == sent, 30, what="every message deleted")

    checks: list[tuple[int, str]] = []
    beats: set[float] = set()
    first_check = time.monotonic()

    def healthy_for_a_while() -> bool:
        checks.append(health(worker.env, health_max_age_seconds=max_age_s))
        assert checks[-1][0] == 0, checks[-1]
        beats.add(last_beat(worker))
        return time.monotonic() - first_check > max_age_s + 1

    poll_until(healthy_for_a_while, 30, interval_s=0.5, what="a healthy period longer than the max age")
    assert checks[-1][1].startswith("healthy")
    assert len(beats) >= 2, f"the heartbeat was never rewritten: {beats}"

    worker.kill()
    killed_at = time.monotonic()
    final_beat = last_beat(worker)
    verdict = poll_until(
        lambda: (result := health(worker.env, health_max_age_seconds=max_age_s))[0] == 1 and result,
        max_age_s + 15,
        interval_s=0.5,
        what="an unhealthy verdict",
    )
    stale_after_s = time.monotonic() - killed_at
    assert isinstance(verdict, tuple)
    stated = re.search(r"heartbeat is (\d+)s old", verdict[1])
    assert stated, verdict
    assert int(stated.group(1)) >= max_age_s, verdict
    assert last_beat(worker) == final_beat, "the heartbeat was written after the kill"
    assert_stored(stack, photos)
    assert stack.depth() == 0
    print("health:", json.dumps({"healthyChecks": len(checks), "staleAfterKillSeconds": round(stale_after_s, 1)}))


def test_a_worker_whose_every_put_fails_reports_unhealthy_and_keeps_its_messages_on_the_queue(
    stack: Stack, workers: Workers, tmp_path: Path
) -> None:
    """Every DynamoDB call is throttled or answered 500 (a proxy fails all of them; SQS passes). The worker is
    healthy while its puts have failed for less than UNHEALTHY_AFTER_FAILING_SECONDS; once every put has failed
    for longer than that (2 s), `photo-ingest health` exits 1 although the heartbeat is fresh, so the
    orchestrator replaces the worker. Meanwhile nothing is written and nothing is deleted (the proxy counts
    no DeleteMessage call): the messages stay on the queue, also after SIGTERM."""
    photos = bodies.photos(3, BUCKET, "unhealthy")
    stack.send(*(bodies.direct(photo) for photo in photos))
    every_put_fails = FaultProxy(
        stack.endpoint, rate=1.0, kinds=("throttle", "server_error"), services=frozenset({"dynamodb"})
    )
    with every_put_fails as proxy:
        worker = start(workers, stack, tmp_path, endpoint=proxy.url)
        poll_until(worker.health_file.exists, 30, what="the first heartbeat")
        # 60 s, not 2: on a loaded 2-core machine the health process alone can take 2 s to start.
        assert health(worker.env, unhealthy_after_failing_seconds=60)[0] == 0
        verdict = poll_until(
            lambda: (result := health(worker.env, unhealthy_after_failing_seconds=2))[0] == 1 and result,
            30,
            interval_s=0.5,
            what="an unhealthy verdict",
        )
        assert isinstance(verdict, tuple)
        assert "every put has failed" in verdict[1], verdict
        assert worker.alive(), worker.stderr()[-3000:]
        assert proxy.calls("ReceiveMessage") > 0  # the proxy saw the worker's SQS calls, and no delete among them
        assert proxy.calls(*DELETES) == 0
        assert not stack.items()
        failed = logged(worker, "photo.failed")
        assert failed
        assert {event["kind"] for event in failed} <= {"throttled", "unavailable"}
        code, _ = worker.terminate()
    assert code == 0
    assert proxy.faults(service="dynamodb") > 0
    assert proxy.faults(service="sqs") == 0
    assert proxy.calls(*DELETES) == 0, "a message was deleted although its photo was never stored"
    assert stack.depth() == len(photos)
    assert not stack.items()
    assert stack.depth(stack.dlq_url) == 0
