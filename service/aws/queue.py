"""The SQS queue: receive, delete, change visibility and quarantine, through one long-lived client.

Deletes and visibility changes requested in the same event-loop turn are coalesced into batch calls of at
most 10 entries, which is most of SQS's cost per message. `DeleteMessageBatch` answers HTTP 200 even when
entries fail, so the `Failed` list is read, logged, and retried once; only what is still failed after that is
reported failed.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog

from service.aws.errors import classify, error_code
from service.text import cut

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import BatchResultErrorEntryTypeDef, MessageTypeDef

log = structlog.get_logger("service.aws.queue")

SQS_BATCH_MAX = 10
SQS_MESSAGE_BYTES_MAX = 1_048_576  # body and attributes together
QUARANTINE_ATTRIBUTE_PREFIX = "photo-ingest."
ATTRIBUTE_CHARS_MAX = 256  # a quarantine attribute's value: a reason is a word, a message id at most 100 characters
_SQS_REFUSED = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")  # SQS's allowed characters


@dataclass(slots=True, eq=False)
class Message:
    """One received SQS message; the receipt handle is valid for this receive only."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    sent_at_ms: int | None
    trace_header: str | None = None  # AWSTraceHeader: the X-Ray context of whoever sent it (S3, backfill)
    received_at: float = field(default_factory=time.monotonic)


def message_from_sqs(raw: MessageTypeDef) -> Message:
    attributes = raw.get("Attributes", {})
    sent = attributes.get("SentTimestamp")
    return Message(
        message_id=raw["MessageId"],
        receipt_handle=raw["ReceiptHandle"],
        body=raw.get("Body", ""),
        receive_count=int(attributes.get("ApproximateReceiveCount", "1")),
        sent_at_ms=int(sent) if sent else None,
        trace_header=attributes.get("AWSTraceHeader"),
    )


Entry = tuple[Message, int]  # a message, and a visibility timeout in seconds (unused for deletes)


class _Batcher:
    """Coalesces single requests made in one event-loop turn into calls of at most 10 entries."""

    def __init__(self, send: Callable[[list[Entry]], Awaitable[set[str]]]) -> None:
        self._send = send
        self._pending: list[tuple[Entry, asyncio.Future[bool]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, message: Message, timeout_s: int = 0) -> bool:
        """True once the entry succeeded; False if SQS refused it. Raises if the call itself failed."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(((message, timeout_s), future))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        elif len(self._pending) >= SQS_BATCH_MAX:
            self._flush()
        return await future

    def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:SQS_BATCH_MAX], self._pending[SQS_BATCH_MAX:]
            task = asyncio.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[Entry, asyncio.Future[bool]]]) -> None:
        try:
            failed = await self._send([entry for entry, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (message, _), future in batch:
            if not future.done():
                future.set_result(message.receipt_handle not in failed)


class Queue:
    """One SQS queue, and optionally the dead-letter queue that quarantined messages go to."""

    def __init__(self, client: SQSClient, url: str, dead_letter_url: str | None = None) -> None:
        self._client = client
        self.url = url
        self.dead_letter_url = dead_letter_url
        self._deletes = _Batcher(self._delete_batch)
        self._visibility = _Batcher(self._visibility_batch)

    async def receive(self, max_messages: int, wait_s: int, visibility_s: int | None) -> list[Message]:
        kwargs: dict[str, Any] = {"VisibilityTimeout": visibility_s} if visibility_s else {}
        response = await self._client.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_s,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp", "AWSTraceHeader"],
            **kwargs,
        )
        return [message_from_sqs(raw) for raw in response.get("Messages", [])]  # absent when empty

    async def visibility_timeout(self) -> int:
        response = await self._client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["VisibilityTimeout"])
        return int(response["Attributes"]["VisibilityTimeout"])

    async def delete(self, message: Message) -> bool:
        return await self._deletes.submit(message)

    async def change_visibility(self, message: Message, timeout_s: int) -> bool:
        return await self._visibility.submit(message, timeout_s)

    async def quarantine(self, message: Message, reason: str) -> bool:
        """Send the body to the dead-letter queue with the reason, then delete the original. A body that fills
        a whole message leaves no room for the reason's attributes: it goes without them (the worker's
        `message.quarantined` line still names the reason)."""
        assert self.dead_letter_url, "quarantine needs DEAD_LETTER_QUEUE_URL"
        await send_to_dead_letter(self._client, self.dead_letter_url, message, reason)
        return await self.delete(message)

    async def _delete_batch(self, entries: Sequence[Entry]) -> set[str]:
        async def call(batch: list[dict[str, Any]]) -> list[BatchResultErrorEntryTypeDef]:
            response = await self._client.delete_message_batch(QueueUrl=self.url, Entries=batch)  # type: ignore[arg-type]
            return response.get("Failed", [])

        return await _with_one_retry("delete", entries, call, lambda m, _t: {"ReceiptHandle": m.receipt_handle})

    async def _visibility_batch(self, entries: Sequence[Entry]) -> set[str]:
        async def call(batch: list[dict[str, Any]]) -> list[BatchResultErrorEntryTypeDef]:
            response = await self._client.change_message_visibility_batch(QueueUrl=self.url, Entries=batch)  # type: ignore[arg-type]
            return response.get("Failed", [])

        return await _with_one_retry(
            "change_visibility",
            entries,
            call,
            lambda m, t: {"ReceiptHandle": m.receipt_handle, "VisibilityTimeout": t},
        )


async def _with_one_retry(
    operation: str,
    entries: Sequence[Entry],
    call: Callable[[list[dict[str, Any]]], Awaitable[list[BatchResultErrorEntryTypeDef]]],
    shape: Callable[[Message, int], dict[str, Any]],
) -> set[str]:
    """Run a batch call; retry the entries listed in `Failed` once. Returns the receipt handles still failed.
    If the first call raises, so does this; if the retry raises, only the entries it retried are failed: those
    the first call settled are never reported failed."""
    todo = {str(index): entry for index, entry in enumerate(entries)}
    for attempt in (1, 2):
        try:
            failed = await call([{"Id": id_, **shape(m, t)} for id_, (m, t) in todo.items()])
        except Exception as exc:
            if attempt == 1:
                raise
            log.warning(f"sqs.{operation}_retry_failed", entries=len(todo), kind=classify(exc), code=error_code(exc))
            break
        refused = {entry["Id"]: entry for entry in failed if entry.get("Id") in todo}
        todo = {id_: todo[id_] for id_ in refused}
        for id_, entry in refused.items():
            log.warning(
                f"sqs.{operation}_entry_failed",
                messageId=todo[id_][0].message_id,
                code=entry.get("Code"),
                senderFault=entry.get("SenderFault"),
                attempt=attempt,
            )
        if not todo:
            break
    return {message.receipt_handle for message, _ in todo.values()}


async def send_to_dead_letter(client: SQSClient, dead_letter_url: str, message: Message, reason: str) -> None:
    """The body, unchanged, to the dead-letter queue, with why and from which message (`quarantine_attributes`).
    Every runtime quarantines through this: the worker then deletes the original, Lambda acknowledges it. A
    body that fills a whole message leaves no room for the attributes: it goes without them (the runtime's
    `message.quarantined` line still names the reason)."""
    attributes = quarantine_attributes(message, reason)
    if _message_bytes(message.body, attributes) > SQS_MESSAGE_BYTES_MAX:
        attributes = {}
    await client.send_message(QueueUrl=dead_letter_url, MessageBody=message.body, MessageAttributes=attributes)


def _message_bytes(body: str, attributes: dict[str, Any]) -> int:
    """What SQS counts against its size limit: the body, and each attribute's name, type and value."""
    size = len(body.encode("utf-8", "surrogatepass"))
    for name, value in attributes.items():
        size += len(name.encode()) + len(value["DataType"].encode()) + len(value["StringValue"].encode())
    return size


def quarantine_attributes(message: Message, reason: str) -> dict[str, Any]:
    """Why, and from which message. Every value is one SQS accepts whatever the message held (`attribute_text`):
    in Lambda the message id comes from the invocation's event."""

    def text(value: str) -> dict[str, str]:
        return {"DataType": "String", "StringValue": attribute_text(value)}

    return {
        f"{QUARANTINE_ATTRIBUTE_PREFIX}reason": text(reason),
        f"{QUARANTINE_ATTRIBUTE_PREFIX}source-message-id": text(message.message_id),
        f"{QUARANTINE_ATTRIBUTE_PREFIX}receive-count": {
            "DataType": "Number",
            "StringValue": str(message.receive_count),
        },
        f"{QUARANTINE_ATTRIBUTE_PREFIX}quarantined-at": text(datetime.now(UTC).isoformat()),
    }


def attribute_text(value: str) -> str:
    """`value` as a message attribute: each character SQS refuses (controls but tab, CR and LF; lone surrogates;
    U+FFFE and U+FFFF) written as a `\\uXXXX` escape, then cut to ATTRIBUTE_CHARS_MAX characters."""
    return cut(_SQS_REFUSED.sub(lambda found: f"\\u{ord(found.group()):04x}", value), ATTRIBUTE_CHARS_MAX)
