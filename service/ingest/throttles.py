"""A put that DynamoDB throttles is retried in its slot, after a backoff, while its deadline allows. Every
attempt waits for its turn in the write pace (pace.py), and both the pace and the limiter hear every answer (a
success grows them, a throttle shrinks them). Each throttle is counted by
its scope (the metrics ThrottledKeyRange, ThrottledTableCapacity, ThrottledAccountLimit, ThrottledOther), and
a key-range throttle is named in a warning, since backing off does not cure a hot key (docs/throughput.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable

import structlog

from service import telemetry
from service.aws.errors import ErrorKind, ThrottleScope, classify, error_code, throttle_scopes
from service.ingest.items import Item
from service.ingest.limiter import Limiter
from service.ingest.outcomes import PutOutcome
from service.ingest.pace import WritePace
from service.metrics import Metrics

log = structlog.get_logger("service.ingest.throttles")

HOT_KEY_WARNING_EVERY_S = 60.0  # per resource


class ThrottledPuts:
    def __init__(
        self,
        put: Callable[[Item], Awaitable[PutOutcome]],
        limiter: Limiter,
        metrics: Metrics,
        pace: WritePace | None = None,
    ) -> None:
        self._put = put
        self._limiter = limiter
        self._pace = pace or WritePace()
        self._metrics = metrics
        self._warned_at: dict[str, float] = {}

    async def put(self, item: Item, deadline: float | None) -> PutOutcome:
        """The put, retried until `deadline` (monotonic seconds; None: never) while it is throttled. Any other
        failure is raised at once, and so is the last throttle. Every attempt takes its turn in the pace first;
        one that would get it only after the deadline, or not at all (shutdown), fails as `PaceTimeout`."""
        attempt = 0
        while True:
            attempt += 1
            epoch = self._limiter.epoch
            with telemetry.waited("pace"):
                pace_epoch = await self._pace.turn(deadline)
            try:
                result = await self._put(item)
            except Exception as exc:
                if classify(exc) is not ErrorKind.THROTTLED:
                    raise
                self._throttled(exc, epoch, pace_epoch, item["photoId"]["S"], attempt)
                if deadline is None or not await self._limiter.backoff(attempt, deadline):
                    raise
            else:
                self._limiter.succeeded(grow=not self._pace.binding)
                self._pace.succeeded()
                return result

    def close(self) -> None:
        """At shutdown: no throttled put is retried, and no put waits for a turn."""
        self._limiter.close()
        self._pace.close()

    def _throttled(self, exc: Exception, epoch: int, pace_epoch: int, photo_id: str, attempt: int) -> None:
        """Tell the limiter and the pace; count the throttle once per scope its reasons name; warn about a key
        range."""
        self._limiter.throttled(epoch)
        self._pace.throttled(pace_epoch)
        scopes = throttle_scopes(exc)
        for scope in dict.fromkeys(scope for scope, _ in scopes):
            self._metrics.throttles[scope] += 1
        log.debug("photo.throttled", photoId=photo_id, attempt=attempt, code=error_code(exc), scopes=scopes)
        for resource in dict.fromkeys(resource for scope, resource in scopes if scope is ThrottleScope.KEY_RANGE):
            self._warn_hot(resource, photo_id)

    def _warn_hot(self, resource: str, photo_id: str) -> None:
        """At most once per HOT_KEY_WARNING_EVERY_S per table or index."""
        now = time.monotonic()
        if now - self._warned_at.get(resource, -math.inf) < HOT_KEY_WARNING_EVERY_S:
            return
        self._warned_at[resource] = now
        log.warning(
            "table.key_range_throttled",
            resource=resource,
            photoId=photo_id,
            note="a partition's limit was hit: if one key is hot, backing off does not cure it (docs/throughput.md)",
        )
