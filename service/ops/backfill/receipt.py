"""The human summary of a backfill through the queue: what was sent for the workers, and where to resume.

Everything in it that came from outside (the report's URI, the queue's URL, an abort's reason) is bounded and
escaped; the resume token is printed as a shell word that a terminal cannot misread (`service.text.shell_word`):
a key may hold any control character.
"""

from __future__ import annotations

from service.ops.backfill.options import Options
from service.ops.backfill.progress import Run, shown, skipped
from service.text import shell_word


def queue_summary(sender: Run, options: Options, interrupted: bool) -> str:
    figures, key = sender.figures(), sender.resume.key
    state = "aborted" if sender.aborted else "interrupted" if interrupted else "finished"
    rows: list[tuple[str, object]] = [("reason", shown(sender.aborted))] if sender.aborted else []
    rows.append(("listed", figures["listed"]))
    if options.dry_run:
        rows.append(("would send", f"{figures['wouldWrite']}  (dry run: nothing sent)"))
    else:
        rows.append(("sent", f"{figures['sent']}  (the workers write the items)"))
    rows.append(("skipped", skipped(figures)))
    if not options.dry_run:
        rows += [("failed", figures["failed"]), ("paused", f"{figures['backlogPauses']} times  (--max-backlog)")]
        resume = f"{shell_word(key)}  (resume: --start-after {shell_word(key)})" if key else "none"
        rows.append(("last key done", resume))
    source = shown(options.inventory or f"s3://{options.bucket}/{options.prefix}")
    head = f"backfill of {source} through {shown(options.queue_url or '')} {state}"
    head += f" after {figures['elapsedSeconds']} s ({figures['objectsPerSecond']} objects/s)"
    return "\n".join([head, *(f"  {label:<14}{value}" for label, value in rows)])
