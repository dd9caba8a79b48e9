"""One invocation's messages, settled concurrently through the core, and what the event source mapping must
hear back: which messages to leave on the queue (`batchItemFailures`).

    messages ─▶ one task each: Ingest.settle_body ─▶ Settlement ─▶ acknowledge │ release │ quarantine
       all under one deadline: what has not finished when it passes is cancelled and released

A message is acknowledged (left out of the failures, so the mapping deletes it) exactly when the worker would
delete it: every record settled, or quarantined into the dead-letter queue, which accepted it first. What the
worker would release is reported as a failure, and so is a quarantine without a dead-letter queue, which the
redrive policy then moves. Nothing here deletes a message or changes its visibility.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import structlog

from service import telemetry
from service.aws.errors import ErrorKind, classify, error_code, pauses_intake
from service.aws.queue import Message, send_to_dead_letter
from service.ingest.outcomes import Disposition, Outcome
from service.ingest.settle import Ingest, Settlement
from service.metrics import Metrics

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

log = structlog.get_logger("service.aws_lambda.batch")


class DeadLetter(NamedTuple):
    client: SQSClient
    url: str


@dataclass(frozen=True, slots=True)
class Reply:
    """One message's answer. `environment` names the AWS failure it was released for, when every failed record
    failed that way (a missing table, no permission, throttling, an outage), not for a fault of its own."""

    acknowledged: bool
    environment: ErrorKind | None = None


class Batch:
    def __init__(self, ingest: Ingest, metrics: Metrics, dead_letter: DeadLetter | None) -> None:
        self._ingest = ingest
        self._metrics = metrics
        self._dead_letter = dead_letter

    async def settle(self, messages: Sequence[Message], budget_s: float, queue: str = "") -> dict[str, Reply]:
        """Every message's reply, by message id. What is unfinished after `budget_s` is cancelled and released;
        with no budget left, no put starts at all."""
        self._metrics.messages["received"] += len(messages)
        replies: dict[str, Reply] = {}
        if budget_s > 0:
            try:
                deadline = time.monotonic() + budget_s  # a throttled put retries in its slot until then
                async with asyncio.timeout(budget_s), asyncio.TaskGroup() as group:
                    for message in messages:
                        group.create_task(self._settle(message, replies, deadline, queue))
            except TimeoutError:
                pass  # the group has cancelled and awaited the unfinished ones
        unfinished = [message for message in messages if message.message_id not in replies]
        if unfinished:
            log.warning("invocation.deadline_reached", unfinished=len(unfinished), budgetMs=round(budget_s * 1000))
        for message in unfinished:
            with structlog.contextvars.bound_contextvars(messageId=message.message_id):
                replies[message.message_id] = self._release("deadline")
        return replies

    async def _settle(self, message: Message, replies: dict[str, Reply], deadline: float, queue: str) -> None:
        structlog.contextvars.bind_contextvars(messageId=message.message_id, receiveCount=message.receive_count)
        if message.sent_at_ms:
            self._metrics.sample(self._metrics.message_age_s, time.time() - message.sent_at_ms / 1000)
        with telemetry.process(queue, message.message_id, message.receive_count, message.trace_header) as span:
            try:
                settlement = await self._ingest.settle_body(message.body, deadline, message.sent_at_ms)
                telemetry.disposed(span, settlement.disposition, settlement.reason)
                replies[message.message_id] = await self._reply(message, settlement)
            except Exception:  # a bug, not an AWS failure: keep this message, settle the others
                log.exception("message.unexpected_error")
                replies[message.message_id] = self._release("unexpected_error")

    async def _reply(self, message: Message, settlement: Settlement) -> Reply:
        if settlement.disposition is Disposition.DELETE:
            self._metrics.messages["deleted"] += 1  # by the event source mapping, once the invocation returns
            log.debug("message.acknowledged")  # DEBUG, as the worker's `message.deleted`
            return Reply(acknowledged=True)
        if settlement.disposition is Disposition.QUARANTINE:
            return await self._quarantine(message, settlement.reason, settlement.detail)
        kinds = [record.kind for record in settlement.records if record.outcome is Outcome.FAILED]
        environment = kinds[0] if kinds and all(kind and pauses_intake(kind) for kind in kinds) else None
        return self._release(settlement.reason, environment)

    async def _quarantine(self, message: Message, reason: str, detail: str) -> Reply:
        """Into the dead-letter queue, then acknowledged; without one, left for the redrive policy."""
        destination = "left on the queue for its redrive policy"
        if self._dead_letter:
            try:
                await send_to_dead_letter(self._dead_letter.client, self._dead_letter.url, message, reason)
            except Exception as exc:  # noqa: BLE001 - classified; the message stays and comes back
                log.error("message.quarantine_failed", reason=reason, kind=classify(exc), code=error_code(exc))
                return self._release("quarantine_failed")
            destination = self._dead_letter.url
        self._metrics.messages["quarantined"] += 1
        log.error("message.quarantined", reason=reason, detail=detail or None, destination=destination)
        return Reply(acknowledged=self._dead_letter is not None)

    def _release(self, reason: str, environment: ErrorKind | None = None) -> Reply:
        """Named in `batchItemFailures`: visible again when the queue's visibility timeout ends."""
        self._metrics.messages["released"] += 1
        log.warning("message.released", reason=reason)
        return Reply(acknowledged=False, environment=environment)
