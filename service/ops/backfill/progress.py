"""How far a backfill has got: the Tally of outcomes and the ResumePoint, shown while it runs and summed up after.

While it runs: one line redrawn on a terminal, or a `backfill.progress` log line every few seconds. At the end:
the human summary, which names the last key up to which everything is settled, for `--start-after`. A key may
hold control characters: the summary writes it as a shell word that gives back the exact key (`shell_word`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import structlog

from service.ops.backfill.options import Options
from service.text import cut, printable, shell_word

log = structlog.get_logger("service.ops.backfill.progress")

PROGRESS_LOG_INTERVAL_S = 10.0
PROGRESS_TTY_INTERVAL_S = 0.2
SHOWN_CHARS = 500  # outside text in a summary: an abort's reason (an AWS error's message), a URI


@dataclass(slots=True)
class Tally:
    listed: int = 0
    sent: int = 0  # --via-queue: a notification for it is on the queue, for the workers to write
    inserted: int = 0
    duplicate: int = 0
    skipped: int = 0
    conflict: int = 0
    invalid: int = 0  # an item the table refused for its content (never expected from a listing)
    failed: int = 0
    would_write: int = 0  # --dry-run: under the prefix, so it would be written (or found to be a duplicate)
    skipped_by: Counter[str] = field(default_factory=Counter)  # the skipped, by reason (`outside_prefix`...)

    def add(self, outcome: str, reason: str | None = None) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        if reason:
            self.skipped_by[reason] += 1

    @property
    def done(self) -> int:
        settled = self.inserted + self.duplicate + self.skipped + self.conflict + self.invalid
        return self.sent + settled + self.failed + self.would_write


class ResumePoint:
    """The last key K such that K and every key listed before it are settled, so `--start-after K` skips only
    settled work. Puts finish out of order; settled keys past a gap wait in `_ahead` until the gap closes. A
    failed key is a gap that never closes: the resume point stays before it, so a resumed run retries it."""

    def __init__(self, start_after: str | None) -> None:
        self.key = start_after
        self._next = 0
        self._ahead: dict[int, str] = {}
        self._gap: int | None = None

    def settled(self, index: int, key: str) -> None:
        if self._gap is not None and index > self._gap:
            return  # past a failure: never the resume point, so not worth keeping
        self._ahead[index] = key
        while self._next in self._ahead:
            self.key = self._ahead.pop(self._next)
            self._next += 1

    def failed(self, index: int) -> None:
        self._gap = index if self._gap is None else min(self._gap, index)
        self._ahead = {i: key for i, key in self._ahead.items() if i < self._gap}


class Run(Protocol):
    """What progress reads of a running backfill (`service.ops.backfill.run.Backfill`)."""

    aborted: str | None
    resume: ResumePoint

    def figures(self) -> dict[str, Any]: ...


async def report_progress(backfill: Run, terminal: TextIO | None) -> None:
    """Redraw one line on a terminal; without one, a `backfill.progress` log line every few seconds."""
    while True:
        await asyncio.sleep(PROGRESS_TTY_INTERVAL_S if terminal else PROGRESS_LOG_INTERVAL_S)
        figures = backfill.figures()
        if terminal:
            names = ("listed", "sent", "inserted", "duplicate", "skipped", "conflict", "failed", "objectsPerSecond")
            line = "  ".join(f"{name} {figures[name]:,}" for name in names if name in figures)
            terminal.write(f"\r\033[K{line}")  # back to the line's start, clear it, redraw
            terminal.flush()
        else:
            log.info("backfill.progress", **figures)


def summary(backfill: Run, options: Options, interrupted: bool) -> str:
    """The human summary: what happened to the listed objects, and where to resume."""
    figures, key = backfill.figures(), backfill.resume.key
    state = "aborted" if backfill.aborted else "interrupted" if interrupted else "finished"
    rows: list[tuple[str, object]] = [("reason", shown(backfill.aborted))] if backfill.aborted else []
    rows.append(("listed", figures["listed"]))
    if options.dry_run:
        rows.append(("would write", f"{figures['wouldWrite']}  (dry run: nothing written, so duplicates unknown)"))
    else:
        rows += [("inserted", figures["inserted"]), ("duplicates", figures["duplicate"])]
    rows.append(("skipped", skipped(figures)))
    if not options.dry_run:
        rows += [("conflicts", figures["conflict"]), ("failed", figures["failed"])]
        rows += [("invalid items", figures["invalid"])] if figures["invalid"] else []
        resume = f"{shell_word(key)}  (resume: --start-after {shell_word(key)})" if key else "none"
        rows.append(("last key done", resume))
    head = f"backfill of {shown(f's3://{options.bucket}/{options.prefix}')} {state}"
    head += f" after {figures['elapsedSeconds']} s"
    head += f" ({figures['objectsPerSecond']} objects/s)"
    return "\n".join([head, *(f"  {label:<14}{value}" for label, value in rows)])


def skipped(figures: dict[str, Any]) -> str:
    """The skipped count, and how many for each reason: `3  (outside_prefix 2, invalid_key 1)`."""
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(figures["skippedBy"].items()))
    return f"{figures['skipped']}  ({reasons})" if reasons else str(figures["skipped"])


def shown(text: str) -> str:
    """Outside text (an abort's reason, an AWS error, a URI) as a summary prints it: bounded, then escaped."""
    return printable(cut(text, SHOWN_CHARS))
