"""A table's write capacity as DynamoDB enforces it, for the bench endpoint: token buckets in writes a second.

- **Table capacity** (`table_wcu`): one bucket for the whole table, like provisioned write capacity. A put
  that finds it empty is throttled with the reason `TableWriteProvisionedThroughputExceeded`.
- **Key ranges** (`partition_wcu`, `partitions`): the hash-key space is cut into `partitions` equal ranges of
  an MD5 of the key, each with its own bucket, like DynamoDB's partitions (at most 1,000 writes a second
  each). A put whose range is empty is throttled with `TableWriteKeyRangeThroughputExceeded`.

A put is admitted only if every bucket it needs has a whole token, and only then are the tokens taken: a
throttled request consumes nothing, as in DynamoDB. Each admitted put costs one token (one write unit: the
bench's items are about 300 bytes), whether its condition then holds or fails.

The buckets hold at most `burst_s` seconds of capacity and start empty at `reset` (the bench's `arm`), so
over any window of T seconds at most rate x T + depth writes pass, and from `arm` at most rate x T: DynamoDB's
five minutes of burst credit are left out on purpose, so that goodput / capacity measures the steady state.
The reason names are AWS's (API_ThrottlingReason: ResourceType + OperationType + LimitType).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

TABLE_REASON = "TableWriteProvisionedThroughputExceeded"
KEY_RANGE_REASON = "TableWriteKeyRangeThroughputExceeded"


@dataclass(slots=True)
class TokenBucket:
    rate_per_s: float
    depth: float
    tokens: float = 0.0
    updated_at: float = 0.0

    def refill(self, now: float) -> None:
        if now > self.updated_at:
            self.tokens = min(self.depth, self.tokens + (now - self.updated_at) * self.rate_per_s)
            self.updated_at = now

    def reset(self, now: float) -> None:
        self.tokens, self.updated_at = 0.0, now


@dataclass
class WriteCapacity:
    """The write buckets of one table; no bucket at all when neither limit is set (unlimited)."""

    table_wcu: float | None = None
    partition_wcu: float | None = None
    partitions: int = 1
    burst_s: float = 1.0
    table: TokenBucket | None = field(init=False, default=None)
    ranges: list[TokenBucket] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.table_wcu:
            self.table = TokenBucket(self.table_wcu, max(1.0, self.table_wcu * self.burst_s))
        if self.partition_wcu:
            depth = max(1.0, self.partition_wcu * self.burst_s)
            self.ranges = [TokenBucket(self.partition_wcu, depth) for _ in range(max(1, self.partitions))]

    @property
    def limited(self) -> bool:
        return self.table is not None or bool(self.ranges)

    def key_range(self, key: str) -> int:
        """Which range a hash key falls in: DynamoDB places items by a hash of the partition key."""
        digest = int.from_bytes(hashlib.md5(key.encode()).digest()[:8], "big")  # noqa: S324 - placement, not security
        return digest * len(self.ranges) >> 64

    def reset(self, now: float) -> None:
        for bucket in self.buckets():
            bucket.reset(now)

    def buckets(self) -> list[TokenBucket]:
        return ([self.table] if self.table else []) + self.ranges

    def admit(self, key: str, now: float) -> list[str]:
        """Take one write unit for a put of `key`; the throttling reasons instead if any bucket is empty."""
        needed: list[tuple[TokenBucket, str]] = []
        if self.table is not None:
            needed.append((self.table, TABLE_REASON))
        if self.ranges:
            needed.append((self.ranges[self.key_range(key)], KEY_RANGE_REASON))
        for bucket, _ in needed:
            bucket.refill(now)
        reasons = [reason for bucket, reason in needed if bucket.tokens < 1.0]
        if not reasons:
            for bucket, _ in needed:
                bucket.tokens -= 1.0
        return reasons
