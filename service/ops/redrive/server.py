"""`redrive --server-side`: SQS's own StartMessageMoveTask moves the dead-letter queue back to its source queue.

SQS moves the messages itself (FIFO-safe, up to 500 messages/s, and on after the operator disconnects); this
only starts the task and follows it with ListMessageMoveTasks until it ends. Unlike the client-side move it keeps
every message attribute (the `photo-ingest.*` quarantine attributes too; the worker ignores them) and cannot stop
at `--max`. Stopping this command (Ctrl-C) leaves the task running; `aws sqs cancel-message-move-task` ends it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from service import process
from service.text import printable

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

log = structlog.get_logger("service.ops.redrive.server")

POLL_S = 5.0  # between ListMessageMoveTasks calls; SQS updates a task's counts about that often
ENDED = {"COMPLETED", "FAILED", "CANCELLED"}
MAX_RATE = 500  # MaxNumberOfMessagesPerSecond's upper bound


@dataclass(slots=True)
class MoveTask:
    handle: str
    status: str = "RUNNING"
    moved: int = 0
    to_move: int | None = None
    failure: str | None = None


async def queue_arn(sqs: SQSClient, url: str) -> str:
    attributes = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]


async def start(sqs: SQSClient, dlq_arn: str, queue_arn: str, rate: int | None) -> MoveTask:
    """Start the move; `rate` caps it (messages a second, SQS allows 1-500), None lets SQS choose."""
    request: dict[str, Any] = {"SourceArn": dlq_arn, "DestinationArn": queue_arn}
    if rate is not None:
        request["MaxNumberOfMessagesPerSecond"] = rate
    response = await sqs.start_message_move_task(**request)
    log.info("redrive.move_task_started", taskHandle=response["TaskHandle"], source=dlq_arn, destination=queue_arn)
    return MoveTask(response["TaskHandle"])


async def follow(sqs: SQSClient, dlq_arn: str, task: MoveTask, stop: asyncio.Event) -> MoveTask:
    """Poll the task until it ends or `stop` is set (the task then goes on without us)."""
    while task.status not in ENDED:
        response = await sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=10)
        mine = [r for r in response.get("Results", []) if r.get("TaskHandle") == task.handle]
        latest = mine[0] if mine else response.get("Results", [{}])[0]  # an ended task has no handle any more
        task.status = str(latest.get("Status", task.status))
        task.moved = int(latest.get("ApproximateNumberOfMessagesMoved", task.moved))
        to_move = latest.get("ApproximateNumberOfMessagesToMove")
        task.to_move = int(to_move) if to_move is not None else task.to_move
        task.failure = latest.get("FailureReason")
        if task.status in ENDED:
            break
        try:
            await asyncio.wait_for(stop.wait(), POLL_S)
            break
        except TimeoutError:
            continue
    log.info("redrive.move_task", taskHandle=task.handle, status=task.status, moved=task.moved, failure=task.failure)
    return task


async def move(sqs: SQSClient, dlq_arn: str, queue: str, rate: int | None, stop: asyncio.Event) -> int:
    """Start the move, follow it, print the outcome; exit 1 unless it completed (0 if left running at a stop)."""
    task = await start(sqs, dlq_arn, await queue_arn(sqs, queue), rate)
    print(f"started SQS message move task {task.handle}: {printable(dlq_arn)} back to its source queue")
    task = await follow(sqs, dlq_arn, task, stop)
    if task.status not in ENDED:
        print(f"still running on SQS ({task.moved} moved so far); cancel with aws sqs cancel-message-move-task")
        return process.EXIT_OK
    print(f"move task {task.status.lower()}: moved about {task.moved} messages" + _failure(task.failure))
    return process.EXIT_OK if task.status == "COMPLETED" else process.EXIT_FAILED


def _failure(reason: str | None) -> str:
    return f" ({printable(reason)})" if reason else ""
