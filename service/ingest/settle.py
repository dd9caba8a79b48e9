"""The core: what happens to one message's records, whoever delivered them (the worker, Lambda, backfill).

    body ─▶ parse_body (trust checks) ─▶ entries ─▶ one conditional put per object, each in a slot of the
         limiter ─▶ outcomes ─▶ decide     (a throttled put is retried in its slot until the caller's deadline)

It knows nothing of receipt handles, pollers or visibility: it is handed a store and answers with a
`Settlement`, which the runtime acknowledges in its own way (delete and release, or `batchItemFailures`).
Nothing a message contains raises past it: its content can only end in an outcome, and a message whose content
can never pass (poison, untrusted, an item the table refuses) is quarantined rather than retried. A settlement
is returned only once every put of its message has finished.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog

from service import telemetry
from service.aws.errors import ErrorKind, classify, error_code
from service.ingest.events import Entry, ObjectRecord, PoisonMessageError, SkippedRecord, parse_body, screen
from service.ingest.items import Item, build_item
from service.ingest.limiter import Limiter
from service.ingest.outcomes import Disposition, Outcome, PutOutcome, decide, reason
from service.ingest.pace import WritePace
from service.ingest.throttles import ThrottledPuts
from service.ingest.trust import ANY_SENDER, UNTRUSTED_REASONS, Trust
from service.metrics import Metrics

log = structlog.get_logger("service.ingest")

DEFAULT_SLOTS = 128  # the bounded limiter of a caller that hands none
REPLAYED_AFTER_S = 900.0  # sent this long after its event: a backfill or a replay, not S3's own notification


class Store(Protocol):
    async def put(self, item: Item) -> PutOutcome: ...


class PutWatcher(Protocol):
    """What a runtime wants to hear about puts (the worker's heartbeat and intake gate)."""

    def put_succeeded(self) -> None: ...

    def put_failed(self, kind: ErrorKind) -> None: ...


@dataclass(frozen=True, slots=True)
class Settled:
    """One record's outcome; `kind` says why a failed record failed."""

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
    """Settles records through one store, within the slots of one limiter and the turns of one write pace. One
    instance serves a whole process.
    `trust` is the boundary's rules (allowlists, record limit); the default checks the body's shape but believes
    any sender."""

    def __init__(
        self,
        store: Store,
        raw_prefix: str,
        metrics: Metrics,
        watcher: PutWatcher | None = None,
        *,
        limiter: Limiter | None = None,
        pace: WritePace | None = None,
        trust: Trust = ANY_SENDER,
    ) -> None:
        self._raw_prefix = raw_prefix
        self._trust = trust
        self._metrics = metrics
        self._watcher = watcher
        self._limiter = limiter or Limiter(DEFAULT_SLOTS, floor=DEFAULT_SLOTS)
        self._puts = ThrottledPuts(store.put, self._limiter, metrics, pace)

    def close(self) -> None:
        """At shutdown: a throttled or paced record fails (its message is released) instead of waiting."""
        self._puts.close()

    async def settle_body(self, body: str, deadline: float | None = None, sent_at_ms: int | None = None) -> Settlement:
        """Parse one message body and settle its records; a body that can never succeed is quarantined.
        `sent_at_ms` (the message's SentTimestamp) times each inserted item's QueueLag and EventAge."""
        try:
            entries = parse_body(body, self._raw_prefix, self._trust)
        except PoisonMessageError as exc:  # logged once, by the runtime's quarantine line
            if exc.reason in UNTRUSTED_REASONS:
                self._metrics.messages["untrusted"] += 1
            return Settlement([], Disposition.QUARANTINE, exc.reason, str(exc))
        except Exception as exc:  # a parser bug that this body sets off: retrying it cannot help
            log.exception("message.parse_failed")
            return Settlement([], Disposition.QUARANTINE, "parse_failed", f"{type(exc).__name__}: {exc}")
        return await self.settle(entries, deadline, sent_at_ms)

    async def settle(
        self, entries: Sequence[Entry], deadline: float | None = None, sent_at_ms: int | None = None
    ) -> Settlement:
        """Settle these records, each put in a slot of the limiter; the disposition follows `decide`. A
        throttled put is retried until `deadline` (`time.monotonic()` seconds); without one, it fails. Every
        record meets `screen` first, whoever made it: a folder marker is skipped in every runtime."""
        entries = [screen(entry) for entry in entries]
        sent_s = sent_at_ms / 1000 if sent_at_ms else None
        if len(entries) == 1:
            records = [await self._settle(entries[0], deadline, sent_s)]
        else:
            records = await self._settle_many(entries, deadline, sent_s)
        outcomes = [record.outcome for record in records]
        return Settlement(records, decide(outcomes), reason(outcomes))

    async def _settle_many(
        self, entries: Sequence[Entry], deadline: float | None, sent_s: float | None
    ) -> list[Settled]:
        """A put starts only once it has a slot, so a message of any size holds at most the limit's slots; the
        task group ends every put before the message is settled, and cancels them with the message."""
        settled: list[Settled | asyncio.Task[Settled]] = []
        async with asyncio.TaskGroup() as puts:
            for entry in entries:
                if isinstance(entry, SkippedRecord):
                    settled.append(self._skipped(entry))
                    continue
                with telemetry.waited("slot"):
                    await self._limiter.acquire()
                settled.append(puts.create_task(self._put_in_slot(entry, deadline, sent_s)))
        return [record if isinstance(record, Settled) else record.result() for record in settled]

    async def _settle(self, entry: Entry, deadline: float | None, sent_s: float | None) -> Settled:
        if isinstance(entry, SkippedRecord):
            return self._skipped(entry)
        with telemetry.waited("slot"):
            await self._limiter.acquire()
        return await self._put_in_slot(entry, deadline, sent_s)

    async def _put_in_slot(self, record: ObjectRecord, deadline: float | None, sent_s: float | None) -> Settled:
        try:
            return await self._put(record, deadline, sent_s)
        finally:
            self._limiter.release()

    def _skipped(self, entry: SkippedRecord) -> Settled:
        level = log.warning if entry.reason == "missing_bucket_or_key" else log.info
        level("record.skipped", reason=entry.reason, bucket=entry.bucket, key=entry.key, eventName=entry.event_name)
        self._metrics.records["skipped"] += 1
        return Settled(Outcome.SKIPPED)

    async def _put(self, record: ObjectRecord, deadline: float | None, sent_s: float | None) -> Settled:
        """The record's write, traced (its span is the DynamoDB span) with its outcome."""
        with telemetry.write() as span:
            settled = await self._write(record, deadline, sent_s)
            span.note(outcome="throttled" if settled.kind is ErrorKind.THROTTLED else settled.outcome.value)
        return settled

    async def _write(self, record: ObjectRecord, deadline: float | None, sent_s: float | None) -> Settled:
        now = datetime.now(UTC)
        fields = {"bucket": record.bucket, "key": record.key}
        try:  # the item is built inside the record's own error handling: its content ends in an outcome
            item = build_item(record, now)
            fields["photoId"] = item["photoId"]["S"]
            started = time.perf_counter()
            result = await self._puts.put(item, deadline)
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
        if result is PutOutcome.INSERTED and sent_s is not None:
            self._freshness(item, sent_s)
        log.info(f"photo.{result.value}", **fields)
        return Settled(Outcome(result.value))

    def _freshness(self, item: Item, sent_s: float) -> None:
        """QueueLag: the message's time on the queue and in the worker, to the item's write. EventAge: from the
        event's own time, for S3's own notifications only: an item without an event time, or one sent long
        after its event (a `--via-queue` backfill, a replay), would report the object's age, not the path's."""
        written_s = time.time()
        self._metrics.sample(self._metrics.queue_lag_s, written_s - sent_s)
        if item["uploadedAt"]["S"] == item["ingestedAt"]["S"]:
            return
        event_s = datetime.fromisoformat(item["uploadedAt"]["S"]).timestamp()
        if sent_s - event_s <= REPLAYED_AFTER_S:
            self._metrics.sample(self._metrics.event_age_s, written_s - event_s)

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
