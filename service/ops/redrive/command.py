"""`photo-ingest redrive`: move the dead-letter queue's messages back to the source queue, once the cause is fixed.

`redrive_run` moves them, send first and delete after, so nothing is ever lost; messages that reach the DLQ
after the start are left for the next run. `--server-side` has SQS move them (StartMessageMoveTask) instead.
`--dry-run` only reads the DLQ's approximate counts. Every mode first refuses a DLQ whose policy lets anyone send
to it (`guard`), unless `--force`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import structlog

from service import process
from service.aws.clients import make_session, open_sqs
from service.config import Settings
from service.logs import configure_logging
from service.ops.redrive import guard, server
from service.ops.redrive.run import RECEIVE_WAIT_S, Moves, Redrive
from service.text import printable

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

log = structlog.get_logger("service.ops.redrive.command")


async def would_move(sqs: SQSClient, dead_letter_url: str) -> tuple[int, int]:
    """(visible, in flight) on the DLQ: SQS's approximate counts, read without touching a message."""
    response = await sqs.get_queue_attributes(
        QueueUrl=dead_letter_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )
    counts = response["Attributes"]
    return int(counts["ApproximateNumberOfMessages"]), int(counts["ApproximateNumberOfMessagesNotVisible"])


async def redrive_command(settings: Settings, args: argparse.Namespace, stop: asyncio.Event) -> int:
    """The whole command once settings are loaded; exit 1 if a message could not be sent or it was stopped, 2 if
    the DLQ is open to anyone and `--force` was not given."""
    assert settings.dead_letter_queue_url, "checked by the caller"
    dlq, queue = settings.dead_letter_queue_url, settings.queue_url
    async with AsyncExitStack() as stack:
        sqs = await open_sqs(stack, make_session(), 8, RECEIVE_WAIT_S)
        dlq_arn, refusal = await _policy_check(sqs, dlq)
        if refusal and not args.force:
            print(f"photo-ingest: redrive: refusing {printable(dlq)}: {refusal}. {OPEN_DLQ}", file=sys.stderr)
            return process.EXIT_USAGE
        if refusal:
            log.warning("redrive.forced", reason=refusal)
        if args.dry_run:
            await _dry_run(sqs, dlq, queue, args.max)
            return process.EXIT_OK
        if args.server_side:
            return await server.move(sqs, dlq_arn, queue, args.rate, stop)
        moves = await Redrive(sqs, dlq, queue).run(stop, args.max)
    _report(moves, dlq, queue, stop.is_set())
    return process.EXIT_FAILED if moves.send_failed or stop.is_set() else process.EXIT_OK


OPEN_DLQ = (
    "A body sent straight to it would be moved to the queue under your identity, past the queue's policy. Deny "
    "SendMessage on it to all but the quarantining role (docs/security.md), or pass --force"
)


async def _policy_check(sqs: SQSClient, dlq: str) -> tuple[str, str | None]:
    """The DLQ's ARN, and why its policy lets anyone send (None if it does not)."""
    response = await sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["Policy", "QueueArn"])
    attributes = response["Attributes"]
    return attributes["QueueArn"], guard.open_reason(attributes.get("Policy"), attributes["QueueArn"])


async def _dry_run(sqs: SQSClient, dlq: str, queue: str, max_messages: int | None) -> None:
    visible, in_flight = await would_move(sqs, dlq)
    count = visible if max_messages is None else min(visible, max_messages)
    print(f"dry run: would move about {count} messages from {printable(dlq)} to {printable(queue)}")
    print(f"  (ApproximateNumberOfMessages {visible}; {in_flight} more are in flight and move once visible)")


def _report(moves: Moves, dlq: str, queue: str, interrupted: bool) -> None:
    log.info(
        "redrive.finished",
        moved=moves.moved,
        sendFailed=moves.send_failed,
        deleteFailed=moves.delete_failed,
        leftNew=len(moves.left_new),
        interrupted=interrupted,
    )
    moved = f"moved {moves.moved} messages from {printable(dlq)} to {printable(queue)}"
    print(moved + (" (interrupted)" if interrupted else ""))
    for count, note in (
        (moves.send_failed, "could not be sent: still on the dead-letter queue; run it again"),
        (moves.delete_failed, "were sent but not deleted: the next run moves them again (a harmless duplicate)"),
        (len(moves.left_new), "arrived after the redrive started and were left for the next run"),
    ):
        if count:
            print(f"  {count} {note}")


def _cmd_redrive(args: argparse.Namespace) -> int:
    if args.rate is not None and not args.server_side:
        raise process.ConfigurationError("--rate: only with --server-side (SQS's own move)")
    settings = process.load_settings(Settings)
    if not settings.dead_letter_queue_url:
        raise process.ConfigurationError("DEAD_LETTER_QUEUE_URL: required by `photo-ingest redrive`")
    configure_logging(settings.log_level, settings.log_format)

    async def main() -> int:
        stop = asyncio.Event()
        process.install_stop_handlers(stop)
        return await redrive_command(settings, args, stop)

    return asyncio.run(main())


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `redrive`; it needs QUEUE_URL and DEAD_LETTER_QUEUE_URL."""
    reads = ["QUEUE_URL", "DEAD_LETTER_QUEUE_URL", "LOG_LEVEL", "LOG_FORMAT", *process.AWS_VARIABLES]
    summary = "move the dead-letter queue's messages back to the queue, once their cause is fixed"
    parser = process.add_command(commands, "redrive", summary, reads, _cmd_redrive)
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--max", type=process.bounded(int, 1), help="move at most this many messages")
    how.add_argument(
        "--server-side",
        action="store_true",
        help="have SQS move them (StartMessageMoveTask): FIFO-safe, up to 500/s, goes on if you disconnect",
    )
    rate = process.bounded(int, 1, server.MAX_RATE)
    parser.add_argument("--rate", type=rate, help="with --server-side: at most this many messages a second")
    parser.add_argument("--dry-run", action="store_true", help="print how many would move; move nothing")
    parser.add_argument("--force", action="store_true", help="move even from a DLQ whose policy lets anyone send to it")
