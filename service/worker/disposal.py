"""What happens to a message once its records are settled: deleted, released with a backoff, or quarantined.

Nothing is deleted without being stored or quarantined: a quarantined message is deleted only after the
dead-letter queue accepted it. A failed SQS call leaves the message where it is; it reappears when its
visibility timeout ends, and the conditional put makes the second pass harmless.
"""

from __future__ import annotations

import math

import structlog

from service.aws.errors import classify, error_code
from service.aws.queue import Message, Queue
from service.config import SQS_MAX_VISIBILITY_SECONDS, Settings
from service.ingest.limiter import backoff_delay
from service.ingest.outcomes import Disposition
from service.metrics import Metrics
from service.worker.pacing import IntakeGate

log = structlog.get_logger("service.worker.disposal")


class Disposal:
    def __init__(self, settings: Settings, queue: Queue, metrics: Metrics, intake: IntakeGate) -> None:
        self._settings = settings
        self._queue = queue
        self._metrics = metrics
        self._intake = intake

    async def apply(self, message: Message, disposition: Disposition, reason: str, detail: str = "") -> None:
        try:
            if disposition is Disposition.DELETE:
                await self._delete(message)
            elif disposition is Disposition.QUARANTINE:
                await self._quarantine(message, reason, detail)
            else:
                await self._release(message, reason)
        except Exception as exc:  # noqa: BLE001 - the message reappears when its visibility timeout ends
            log.error(
                "message.disposition_failed",
                disposition=disposition,
                kind=classify(exc),
                code=error_code(exc),
                error=str(exc),
            )

    async def _delete(self, message: Message) -> None:
        if await self._queue.delete(message):
            self._metrics.messages["deleted"] += 1
            log.debug("message.deleted")  # INFO is for each photo's `photo.inserted`; MessagesDeleted counts these
        else:
            self._metrics.messages["delete_failed"] += 1
            log.warning("message.delete_failed", note="it will be delivered again; the put is idempotent")

    async def _quarantine(self, message: Message, reason: str, detail: str) -> None:
        if self._queue.dead_letter_url:
            if not await self._queue.quarantine(message, reason):
                log.warning("message.delete_failed", note="quarantined, but the original will be delivered again")
            destination = self._queue.dead_letter_url
        else:
            await self._release(message, reason, quarantining=True)
            destination = "left on the queue for its redrive policy"
        self._metrics.messages["quarantined"] += 1
        log.error("message.quarantined", reason=reason, detail=detail or None, destination=destination)

    async def _release(self, message: Message, reason: str, *, quarantining: bool = False) -> None:
        """Visible again after a backoff; a quarantine without a dead-letter queue is counted and logged
        as a quarantine only."""
        settings = self._settings
        delay = backoff_delay(
            message.receive_count, settings.retry_backoff_base_seconds, settings.retry_backoff_max_seconds
        )
        # During an intake pause, hide the message until after the next probe too, so probes rotate through
        # the backlog instead of taking the same message again and again towards maxReceiveCount.
        delay = min(delay + self._intake.remaining_s(), SQS_MAX_VISIBILITY_SECONDS)
        await self._queue.change_visibility(message, math.ceil(delay))
        if not quarantining:
            self._metrics.messages["released"] += 1
            log.warning("message.released", reason=reason, retryInSeconds=math.ceil(delay))
