"""The queue as a backfill sends to it: one batch of notifications through SendMessageBatch, at `--rate`.

`SendMessageBatch` answers 200 even when entries fail, and botocore retries calls, never entries: the `Failed`
entries are sent again, up to SEND_ATTEMPTS times with a growing pause, and an object counts as sent only once
SQS lists it as `Successful`. A call that fails after the SDK's retries is tried again the same way, unless the
queue is missing or the send denied, which every other batch would meet too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from service import telemetry
from service.aws.errors import ErrorKind, classify, error_code
from service.ops.backfill.objects import Listed
from service.ops.backfill.pacing import TokenBucket, wait_or_stop
from service.text import cut

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

log = structlog.get_logger("service.ops.backfill.outbox")

SEND_ATTEMPTS = 5
SEND_BACKOFF_S = 0.2  # doubled after each failed attempt: 0.2, 0.4, 0.8, 1.6 s
_FATAL = frozenset({ErrorKind.MISSING, ErrorKind.FORBIDDEN})
Entry = tuple[int, Listed]  # (index in listing order, object)


@dataclass(slots=True)
class Delivery:
    sent: list[Entry] = field(default_factory=list)
    failed: list[Entry] = field(default_factory=list)  # not sent, after every attempt
    error: tuple[ErrorKind, str] | None = None  # the call itself failed for good: the run must stop


class Outbox:
    def __init__(self, sqs: SQSClient, queue_url: str, rate: TokenBucket | None, body: Callable[[Listed], str]) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._rate = rate
        self._body = body  # the notification S3 would send for an object

    async def send(self, batch: list[Entry], stop: asyncio.Event) -> Delivery | None:
        """Send `batch` (at most 10), retrying failed entries; None if `stop` came before the first send."""
        todo = {str(i): entry for i, entry in enumerate(batch)}
        delivery = Delivery()
        bodies = self._bodies(todo, delivery)
        for attempt in range(1, SEND_ATTEMPTS + 1):
            if not todo:
                break
            if self._rate:
                await wait_or_stop(stop, self._rate.reserve(len(todo)))
            if attempt == 1 and stop.is_set():
                return None
            await self._attempt(todo, bodies, attempt, delivery)
            if not todo or delivery.error:
                break
            await asyncio.sleep(SEND_BACKOFF_S * 2 ** (attempt - 1))
        delivery.failed += todo.values()
        return delivery

    def _bodies(self, todo: dict[str, Entry], out: Delivery) -> dict[str, str]:
        """Each object's body; an object whose body cannot be made (a bug) fails alone, never its batch."""
        bodies = {}
        for id_, (_, obj) in list(todo.items()):
            try:
                bodies[id_] = self._body(obj)
            except Exception as exc:  # counted as failed: the resume point stays before it
                log.exception("backfill.body_failed", key=cut(obj.key, 200), error=cut(repr(exc), 300))
                out.failed.append(todo.pop(id_))
        return bodies

    async def _attempt(self, todo: dict[str, Entry], bodies: dict[str, str], attempt: int, out: Delivery) -> None:
        """One SendMessageBatch of what is left in `todo`; what SQS took moves from `todo` to `out.sent`."""
        entries: Any = [{"Id": id_, "MessageBody": bodies[id_]} for id_ in todo]
        if trace_header := telemetry.trace_header():  # the worker's process span links back to this send
            for entry in entries:
                entry["MessageSystemAttributes"] = {
                    "AWSTraceHeader": {"DataType": "String", "StringValue": trace_header}
                }
        try:
            response = await self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
        except Exception as exc:  # noqa: BLE001 - classified: tried again, or the run stops
            kind, error = classify(exc), f"{error_code(exc)}: {exc}"
            if kind in _FATAL or attempt == SEND_ATTEMPTS:
                out.error = (kind, error)
            else:
                log.warning("backfill.send_retried", kind=kind, error=error, messages=len(todo), attempt=attempt)
            return
        out.sent += [todo.pop(sent["Id"]) for sent in response.get("Successful", []) if sent["Id"] in todo]
        for failed in response.get("Failed", []):
            (log.error if attempt == SEND_ATTEMPTS else log.warning)(
                "backfill.send_entry_failed",
                key=cut(todo[failed["Id"]][1].key, 200) if failed["Id"] in todo else None,
                code=failed.get("Code"),
                senderFault=failed.get("SenderFault"),
                message=failed.get("Message"),
                attempt=attempt,
            )
