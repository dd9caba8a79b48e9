"""The core: what happens to one message's records, whoever delivered them (the worker, Lambda, backfill).

    body ─▶ parse_body (trust checks) ─▶ entries ─▶ one conditional put per object (concurrently) ─▶ outcomes ─▶ decide

It knows nothing of receipt handles, pollers or visibility: it is handed a store and answers with a
`Settlement`, which the runtime acknowledges in its own way (delete and release, or `batchItemFailures`).
Nothing a message contains raises past it: its content can only end in an outcome, and a message whose content
can never pass (poison, untrusted, an item the table refuses) is quarantined rather than retried. A settlement
is returned only once every put of its message has finished.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog

from service.aws.errors import ErrorKind, classify, error_code
from service.ingest.events import Entry, ObjectRecord, PoisonMessageError, SkippedRecord, parse_body
from service.ingest.items import Item, build_item
from service.ingest.outcomes import Disposition, Outcome, PutOutcome, decide, reason
from service.ingest.trust import ANY_SENDER, UNTRUSTED_REASONS, Trust
from service.metrics import Metrics

log = structlog.get_logger("service.ingest")


class Store(Protocol):
    async def put(self, item: Item) -> PutOutcome: ...


class PutWatcher(Protocol):
    """What a runtime wants to hear about puts (the worker's heartbeat and intake gate)."""

    def put_succeeded(self) -> None: ...

    def put_failed(self, kind: ErrorKind) -> None: ...


@dataclass(frozen=True, slots=True)
class Settled:
    """One record's outcome; `kind` says why a failed or invalid record failed."""

    outcome: Outcome
    kind: ErrorKind | None = None
    error: str = ""  # "<code>: <message>" of a failed record


@dataclass(frozen=True, slots=True)
class Settlement:
    """Every record's outcome, and what that means for the message that carried them."""

    records: list[Settled]
    disposition: Disposition
    reason: str
    detail: str = ""


class Ingest:
    """Settles records through one store. One instance serves a whole process. `trust` is the boundary's rules
    (allowlists, record limit); the default checks the body's shape but believes any sender."""

    def __init__(
        self,
        store: Store,
        raw_prefix: str,
        metrics: Metrics,
        watcher: PutWatcher | None = None,
        trust: Trust = ANY_SENDER,
    ) -> None:
        self._store = store
        self._raw_prefix = raw_prefix
        self._metrics = metrics
        self._watcher = watcher
        self._trust = trust

    async def settle_body(self, body: str, on_parsed: Callable[[int], None] | None = None) -> Settlement:
        """Parse one message body and settle its records; a body that can never succeed is quarantined.
        `on_parsed` hears how many records the body holds before any put starts."""
        try:
            entries = parse_body(body, self._raw_prefix, self._trust)
        except PoisonMessageError as exc:  # logged once, by the runtime's quarantine line
            if exc.reason in UNTRUSTED_REASONS:
                self._metrics.messages["untrusted"] += 1
            return Settlement([], Disposition.QUARANTINE, exc.reason, str(exc))
        except Exception as exc:  # a parser bug that this body sets off: retrying it cannot help
            log.exception("message.parse_failed")
            return Settlement([], Disposition.QUARANTINE, "parse_failed", f"{type(exc).__name__}: {exc}")
        if on_parsed:
            on_parsed(len(entries))
        return await self.settle(entries)

    async def settle(self, entries: Sequence[Entry]) -> Settlement:
        """Settle these records, concurrently, and wait for every one of them, even after one raised (a bug):
        no put outlives its message's settlement. The disposition follows the outcome table in `decide`."""
        if len(entries) == 1:
            records = [await self._settle(entries[0])]
        else:
            results = await asyncio.gather(*(self._settle(entry) for entry in entries), return_exceptions=True)
            records = [result for result in results if isinstance(result, Settled)]
            if bug := next((result for result in results if isinstance(result, BaseException)), None):
                raise bug
        outcomes = [record.outcome for record in records]
        return Settlement(records, decide(outcomes), reason(outcomes))

    async def _settle(self, entry: Entry) -> Settled:
        if isinstance(entry, SkippedRecord):
            return self._skipped(entry)
        return await self._put(entry)

    def _skipped(self, entry: SkippedRecord) -> Settled:
        level = log.warning if entry.reason == "missing_bucket_or_key" else log.info
        level("record.skipped", reason=entry.reason, bucket=entry.bucket, key=entry.key, eventName=entry.event_name)
        self._metrics.records["skipped"] += 1
        return Settled(Outcome.SKIPPED)

    async def _put(self, record: ObjectRecord) -> Settled:
        now = datetime.now(UTC)
        fields = {"bucket": record.bucket, "key": record.key}
        try:  # the item is built inside the record's own error handling: its content ends in an outcome
            item = build_item(record, now)
            fields["photoId"] = item["photoId"]["S"]
            started = time.perf_counter()
            result = await self._store.put(item)
        except Exception as exc:  # noqa: BLE001 - classified; the message stays on the queue or is quarantined
            return self._put_failed(exc, fields)
        self._metrics.sample(self._metrics.put_latency_ms, (time.perf_counter() - started) * 1000)
        if result is PutOutcome.OBJECT_MISSING:  # VERIFY_OBJECTS: a notification for an object S3 does not hold
            self._metrics.records["object_missing"] += 1
            return self._skipped(SkippedRecord("object_missing", record.bucket, record.key, record.event_name))
        if self._watcher:
            self._watcher.put_succeeded()
        self._metrics.records[result.value] += 1
        if result is PutOutcome.CONFLICT:
            log.error("photo.conflict", **fields, reason="photoId held by another object; not overwritten")
            return Settled(Outcome.CONFLICT)
        if result is PutOutcome.INSERTED:
            lag_s = now.timestamp() - datetime.fromisoformat(item["uploadedAt"]["S"]).timestamp()
            self._metrics.sample(self._metrics.lag_s, lag_s)
        log.info(f"photo.{result.value}", **fields)
        return Settled(Outcome(result.value))

    def _put_failed(self, exc: Exception, fields: dict[str, str]) -> Settled:
        kind = classify(exc)
        if kind is ErrorKind.INVALID or "photoId" not in fields:  # refused for its content, or never built
            return self._invalid(exc, fields)
        if self._watcher:
            self._watcher.put_failed(kind)
        self._metrics.records["failed"] += 1
        log.error(
            "photo.failed",
            **fields,
            kind=kind,
            code=error_code(exc),
            error=str(exc),
            exc_info=kind is ErrorKind.UNEXPECTED,
        )
        return Settled(Outcome.FAILED, kind, f"{error_code(exc)}: {exc}")

    def _invalid(self, exc: Exception, fields: dict[str, str]) -> Settled:
        """An item that can never be stored: its message is quarantined. It says nothing about the table's
        health, so the watcher does not hear of it."""
        self._metrics.records["invalid"] += 1
        built = "photoId" in fields
        log.error("photo.invalid", **fields, code=error_code(exc), error=str(exc)[:500], exc_info=not built)
        return Settled(Outcome.INVALID, ErrorKind.INVALID, f"{error_code(exc)}: {str(exc)[:500]}")
