"""The SDK leaves a throttled write to the worker's write pace, and retries everything else as before.

botocore's standard mode retries a throttled request after 0-1 s of its own backoff, outside the worker's pace
(service/ingest/pace.py): the pace then hears of the throttle a second late, and the retry goes out whatever the
table can take. So for the writes that the pace governs (`PutItem`, `BatchExecuteStatement`), a throttle is
handed to the caller at once, which retries it in its slot, paced (service/ingest/throttles.py). Every other
retry stays the SDK's: a 500 or a dropped connection on a write, and a throttle on anything else (`GetItem`,
`DescribeTable`). Only in `standard` mode: a mode the operator chose with `AWS_RETRY_MODE` is left as it is.

botocore has no public hook for one retry condition, so the client's retry handler is swapped for the same
handler with one condition more; tests/test_throttling.py proves both halves against a real HTTP endpoint.
"""

from __future__ import annotations

from typing import Any

from aiobotocore.retries.standard import AioRetryHandler, AioRetryPolicy, AioStandardRetryConditions
from botocore.retries.quota import RetryQuota
from botocore.retries.standard import (
    DEFAULT_MAX_ATTEMPTS,
    ExponentialBackoff,
    RetryContext,
    RetryEventAdapter,
    RetryQuotaChecker,
    ThrottledRetryableChecker,
)

PACED_OPERATIONS = frozenset({"PutItem", "BatchExecuteStatement"})


class _PacedWriteConditions(AioStandardRetryConditions):
    _throttle = ThrottledRetryableChecker()

    async def is_retryable(self, context: RetryContext) -> bool:  # type: ignore[override]  # aiobotocore's is async
        operation = context.operation_model
        if operation is not None and operation.name in PACED_OPERATIONS and self._throttle.is_retryable(context):
            return False
        return bool(await super().is_retryable(context))


def leave_write_throttles_to_caller(client: Any) -> None:
    """Swap the client's standard retry handler for one that does not retry a throttled paced write."""
    retries = client.meta.config.retries
    if retries.get("mode") != "standard":
        return
    name = client.meta.service_model.service_id.hyphenize()
    unique_id = f"retry-config-{name}"
    events = client.meta.events
    events.unregister(f"needs-retry.{name}", unique_id=unique_id)
    quota = RetryQuotaChecker(RetryQuota())
    events.register(f"after-call.{name}", quota.release_retry_quota)
    conditions = _PacedWriteConditions(max_attempts=retries.get("total_max_attempts", DEFAULT_MAX_ATTEMPTS))
    handler = AioRetryHandler(AioRetryPolicy(conditions, ExponentialBackoff()), RetryEventAdapter(), quota)  # type: ignore[arg-type]  # botocore passes the checker too
    events.register(f"needs-retry.{name}", handler.needs_retry, unique_id=unique_id)
