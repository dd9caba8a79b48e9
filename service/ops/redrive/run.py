"""One redrive: move the dead-letter queue's messages back to the source queue, send first, delete after.

    receive ≤10 from the DLQ ─▶ SendMessageBatch to the queue (same body) ─▶ DeleteMessageBatch of what was sent

Send first, delete after: a crash between the two leaves the message on both queues, and the worker's
conditional put turns the second delivery into a harmless duplicate. Nothing is ever lost.

The `photo-ingest.*` quarantine attributes are dropped: the worker never reads them, SQS allows only 10
attributes per message, and a message quarantined twice would pile them up. Their history is not lost: each
move is logged (`message.redriven`, with the quarantine reason and the original message id), next to the
worker's own `message.quarantined` line. Any other attribute is kept as it is.

Messages sent to the DLQ after the redrive started (`SentTimestamp`) are left for the next run: they are
new failures, or messages this run moved that failed again, and moving them again would loop forever.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from service.aws.errors import classify, error_code
from service.aws.queue import QUARANTINE_ATTRIBUTE_PREFIX, Queue, message_from_sqs

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import MessageTypeDef

log = structlog.get_logger("service.ops.redrive.run")

RECEIVE_WAIT_S = 2  # a long poll asks every SQS server, so an empty answer means the DLQ has nothing visible
HOLD_S = 60  # visibility while a batch is sent and deleted; a failed send reappears after it
BATCH_BYTES_MAX = 256 * 1024  # SendMessageBatch's limit on a whole batch (the classic SQS limit; the safe one)
ATTRIBUTES_BYTES_MARGIN = 1024  # for the attributes kept: SQS counts their names, types and values too


@dataclass(slots=True)
class Moves:
    moved: int = 0
    send_failed: int = 0  # still on the DLQ; they reappear after HOLD_S and move on the next run
    delete_failed: int = 0  # on both queues: the next run moves them again (a harmless duplicate)
    left_new: set[str] = field(default_factory=set)  # ids of messages sent to the DLQ after the run started


def _attributes(raw: MessageTypeDef) -> dict[str, Any]:
    """The message attributes to carry over: all but ours, in the shape SendMessage accepts."""
    return {
        name: {key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value}
        for name, value in raw.get("MessageAttributes", {}).items()
        if not name.startswith(QUARANTINE_ATTRIBUTE_PREFIX)
    }


def _quarantine_note(raw: MessageTypeDef, name: str) -> str | None:
    value = raw.get("MessageAttributes", {}).get(f"{QUARANTINE_ATTRIBUTE_PREFIX}{name}")
    return value.get("StringValue") if value else None


class Redrive:
    def __init__(self, sqs: SQSClient, dead_letter_url: str, queue_url: str) -> None:
        self._sqs = sqs
        self._dlq = Queue(sqs, dead_letter_url)
        self._queue_url = queue_url
        self.moves = Moves()
        self.started_ms = int(time.time() * 1000)  # a message sent to the DLQ later is not this run's to move

    async def run(self, stop: asyncio.Event, max_messages: int | None = None) -> Moves:
        """Move until the DLQ answers an empty receive (or only new messages), `--max`, or `stop`."""
        while not stop.is_set():
            want = 10 if max_messages is None else min(10, max_messages - self.moves.moved)
            if want <= 0:
                break
            received = await self._receive(want)
            old = [raw for raw in received if int(raw.get("Attributes", {}).get("SentTimestamp", 0)) <= self.started_ms]
            self.moves.left_new.update(raw["MessageId"] for raw in received if raw not in old)
            if not old or not await self._move(old):
                break
        return self.moves

    async def _receive(self, count: int) -> list[MessageTypeDef]:
        response = await self._sqs.receive_message(
            QueueUrl=self._dlq.url,
            MaxNumberOfMessages=count,
            WaitTimeSeconds=RECEIVE_WAIT_S,
            VisibilityTimeout=HOLD_S,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["SentTimestamp"],
        )
        return response.get("Messages", [])

    async def _move(self, messages: list[MessageTypeDef]) -> bool:
        """Send, then delete what was sent. False if SQS refused the call itself (the run stops)."""
        for batch in _batches(messages):
            entries: list[Any] = [
                {"Id": str(i), "MessageBody": raw["Body"], "MessageAttributes": _attributes(raw)}
                for i, raw in enumerate(batch)
            ]
            try:
                response = await self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            except Exception as exc:  # noqa: BLE001 - classified; the batch reappears on the DLQ after HOLD_S
                self.moves.send_failed += len(batch)
                log.error("redrive.send_failed", messages=len(batch), kind=classify(exc), code=error_code(exc))
                return False
            for failure in response.get("Failed", []):
                self.moves.send_failed += 1
                log.error("redrive.send_failed", messageId=batch[int(failure["Id"])]["MessageId"], code=failure["Code"])
            sent = {int(entry["Id"]): entry["MessageId"] for entry in response.get("Successful", [])}
            self.moves.moved += len(sent)
            await asyncio.gather(*(self._delete(batch[i], new_id) for i, new_id in sent.items()))
        return True

    async def _delete(self, raw: MessageTypeDef, new_id: str) -> None:
        log.info(
            "message.redriven",
            messageId=raw["MessageId"],
            newMessageId=new_id,
            reason=_quarantine_note(raw, "reason"),
            quarantinedAt=_quarantine_note(raw, "quarantined-at"),
            sourceMessageId=_quarantine_note(raw, "source-message-id"),
        )
        try:  # the deletes of one batch are coalesced into one DeleteMessageBatch call
            deleted = await self._dlq.delete(message_from_sqs(raw))
        except Exception as exc:  # noqa: BLE001 - classified; the next run moves it again, harmlessly
            log.error("redrive.delete_failed", messageId=raw["MessageId"], kind=classify(exc), code=error_code(exc))
            deleted = False
        self.moves.delete_failed += not deleted


def _batches(messages: list[MessageTypeDef]) -> Iterator[list[MessageTypeDef]]:
    """SendMessageBatch takes at most BATCH_BYTES_MAX in all; a DLQ may hold large (poison) bodies."""
    batch: list[MessageTypeDef] = []
    size = 0
    for raw in messages:
        body_size = len(raw["Body"].encode()) + ATTRIBUTES_BYTES_MARGIN
        if batch and size + body_size > BATCH_BYTES_MAX:
            yield batch
            batch, size = [], 0
        batch.append(raw)
        size += body_size
    if batch:
        yield batch
