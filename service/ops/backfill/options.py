"""What one backfill run is asked to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Options:
    bucket: str
    prefix: str
    raw_prefix: str
    start_after: str | None = None  # a key; with `inventory`, a resume token `FILE:ROW`
    dry_run: bool = False
    concurrency: int = 16  # puts in flight; with `queue_url`, SendMessageBatch calls in flight
    end_before: str | None = None  # list only keys before it (a key range, for listers that share a bucket)
    inventory: str | None = None  # s3://bucket/.../manifest.json of an S3 Inventory report, instead of listing
    queue_url: str | None = None  # send S3's own notification for each object here, instead of writing items
    rate_per_s: float | None = None  # with `queue_url`: at most this many messages a second
    max_backlog: int | None = None  # with `queue_url`: pause while the queue holds more than this many messages

    @property
    def via_queue(self) -> bool:
        return self.queue_url is not None
