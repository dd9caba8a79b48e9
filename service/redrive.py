"""`photo-ingest redrive`: move the dead-letter queue's messages back to the source queue, once the cause is fixed.

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

import argparse
import asyncio
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aioboto3
import structlog

from service import cli
from service.clients import open_sqs
from service.config import Settings
from service.errors import classify, error_code
from service.logs import configure_logging
from service.queue import QUARANTINE_ATTRIBUTE_PREFIX, Queue, message_from_sqs

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import MessageTypeDef

log = structlog.get_logger("service.redrive")

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


async def would_move(sqs: SQSClient, dead_letter_url: str) -> tuple[int, int]:
    """(visible, in flight) on the DLQ: SQS's approximate counts, read without touching a message."""
    response = await sqs.get_queue_attributes(
        QueueUrl=dead_letter_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    counts = response["Attributes"]
    return int(counts["ApproximateNumberOfMessages"]), int(counts["ApproximateNumberOfMessagesNotVisible"])


async def redrive_command(settings: Settings, args: argparse.Namespace, stop: asyncio.Event) -> int:
    """The whole command once settings are loaded; exit 1 if a message could not be sent or it was stopped."""
    assert settings.dead_letter_queue_url, "checked by the caller"
    dlq, queue = settings.dead_letter_queue_url, settings.queue_url
    async with AsyncExitStack() as stack:
        sqs = await open_sqs(stack, aioboto3.Session(), 8, RECEIVE_WAIT_S)
        if args.dry_run:
            visible, in_flight = await would_move(sqs, dlq)
            count = visible if args.max is None else min(visible, args.max)
            print(f"dry run: would move about {count} messages from {dlq} to {queue}")
            print(f"  (ApproximateNumberOfMessages {visible}; {in_flight} more are in flight and move once visible)")
            return cli.EXIT_OK
        moves = await Redrive(sqs, dlq, queue).run(stop, args.max)
    log.info(
        "redrive.finished",
        moved=moves.moved,
        sendFailed=moves.send_failed,
        deleteFailed=moves.delete_failed,
        leftNew=len(moves.left_new),
        interrupted=stop.is_set(),
    )
    print(f"moved {moves.moved} messages from {dlq} to {queue}" + (" (interrupted)" if stop.is_set() else ""))
    for count, note in (
        (moves.send_failed, "could not be sent: still on the dead-letter queue; run it again"),
        (moves.delete_failed, "were sent but not deleted: the next run moves them again (a harmless duplicate)"),
        (len(moves.left_new), "arrived after the redrive started and were left for the next run"),
    ):
        if count:
            print(f"  {count} {note}")
    return cli.EXIT_FAILED if moves.send_failed or stop.is_set() else cli.EXIT_OK


def _cmd_redrive(args: argparse.Namespace) -> int:
    settings = cli.load_settings(Settings)
    if not settings.dead_letter_queue_url:
        raise cli.ConfigurationError("DEAD_LETTER_QUEUE_URL: required by `photo-ingest redrive`")
    if settings.dead_letter_queue_url == settings.queue_url:
        raise cli.ConfigurationError("DEAD_LETTER_QUEUE_URL: must not be QUEUE_URL")
    configure_logging(settings.log_level, settings.log_format)

    async def main() -> int:
        stop = asyncio.Event()
        cli.install_stop_handlers(stop)
        return await redrive_command(settings, args, stop)

    return asyncio.run(main())


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `redrive`; it needs QUEUE_URL and DEAD_LETTER_QUEUE_URL."""
    parser = commands.add_parser("redrive", help="move the dead-letter queue's messages back to the queue")
    parser.add_argument("--max", type=_positive, help="move at most this many messages")
    parser.add_argument("--dry-run", action="store_true", help="print how many would move; move nothing")
    parser.set_defaults(handler=_cmd_redrive)
