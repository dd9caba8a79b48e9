"""What one backfill run is asked to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Options:
    bucket: str
    prefix: str
    raw_prefix: str
    start_after: str | None = None
    dry_run: bool = False
    concurrency: int = 16
