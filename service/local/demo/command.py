"""`photo-ingest demo`: the whole pipeline on an embedded AWS stack, no account needed.

Provision the stack, play the scenario (`scenario`), run the real worker (`run_worker`, as `run` does)
until the queue is drained, say what happened to each step (`journal`), and check it: exit 1 and say why if
anything is off. `photo-ingest local` runs the same stack and worker for your own uploads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass
from typing import Any

from service import process
from service.aws.queue import QUARANTINE_ATTRIBUTE_PREFIX
from service.config import Settings
from service.local import endpoint as moto_endpoint
from service.local import stack as embedded
from service.local.demo.journal import Settled, event_name, print_outcomes, watch_worker_logs
from service.local.demo.scenario import MALFORMED_BODY, SCENARIO, expected_items, perform
from service.local.stack import BUCKET, RAW_PREFIX, Stack
from service.text import printable
from service.worker.worker import run_worker

DRAIN_TIMEOUT_S = 30.0
DRAIN_POLL_INTERVAL_S = 0.2
REASON_ATTRIBUTE = f"{QUARANTINE_ATTRIBUTE_PREFIX}reason"


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `demo`; its handler returns the exit code."""
    summary = "run the whole pipeline once on an embedded AWS stack (moto) and check what it did"
    process.add_command(commands, "demo", summary, [], _cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    if not moto_endpoint.available():
        print(moto_endpoint.install_hint("demo"), file=sys.stderr)
        return process.EXIT_USAGE
    process.check_aws_environment()  # the stack's clients are made before the settings are loaded
    with moto_endpoint.running() as endpoint:
        return asyncio.run(_demo(endpoint))


async def _demo(endpoint: str) -> int:
    started = time.monotonic()
    async with embedded.open_stack(endpoint) as stack:
        _print_stack(stack)
        print("\n1. Uploads")
        matches = [await perform(stack, step) for step in SCENARIO]
        print("\n2. The worker (the code of `photo-ingest run`), until the queue is drained")
        journal = watch_worker_logs()
        await _run_worker_until_drained(stack, len(expected_items()))
        settled = [(step, journal.take(match, step.expect)) for step, match in zip(SCENARIO, matches, strict=True)]
        print_outcomes(settled, journal)
        observed = await _observe(stack)
    found = problems(settled, observed)
    if found:
        print("\nFAILED: " + "\n        ".join(printable(line) for line in found))
        return process.EXIT_FAILED
    print(f"\nOK in {time.monotonic() - started:.1f} s: one item per photo, the duplicate recognised, the key outside")
    print("the prefix skipped, the malformed message quarantined. The worker and the stack are stopped.")
    return process.EXIT_OK


def _print_stack(stack: Stack) -> None:
    print(f"photo-ingest demo: S3 -> SQS -> DynamoDB on an embedded AWS stack (moto at {stack.endpoint})")
    print(f"   bucket s3://{BUCKET}: ObjectCreated:* under {RAW_PREFIX} is notified to the queue")
    print(f"   queue {embedded.QUEUE}, dead letters to {embedded.DEAD_LETTER_QUEUE} after ", end="")
    print(f"{embedded.MAX_RECEIVE_COUNT} receives; table {embedded.TABLE} (photoId hash key, on demand)")


async def _run_worker_until_drained(stack: Stack, expected_count: int) -> None:
    """The worker, as `run` starts it, stopped as SIGTERM would stop it once the pipeline has drained."""
    overrides = {"receive_wait_seconds": 1, "shutdown_timeout_seconds": 5, "metrics_enabled": False}
    settings = process.load_settings(Settings, **stack.settings_overrides(), **overrides)
    stop = asyncio.Event()
    process.install_stop_handlers(stop)
    started = time.monotonic()
    worker = asyncio.create_task(run_worker(settings, stop))
    try:
        with contextlib.suppress(TimeoutError):  # the checks that follow say what is missing
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                while not (worker.done() or stop.is_set() or await _drained(stack, expected_count)):  # noqa: ASYNC110 - the state is in moto
                    await asyncio.sleep(DRAIN_POLL_INTERVAL_S)
    finally:
        stop.set()
        await asyncio.wait_for(worker, settings.shutdown_timeout_seconds + 5)
    print(f"   ... drained in {time.monotonic() - started:.1f} s; the worker has stopped")


async def _drained(stack: Stack, expected_count: int) -> bool:
    return await stack.depth(stack.queue_url) == 0 and len(await stack.items()) >= expected_count


@dataclass(frozen=True, slots=True)
class Observed:
    """What the stack holds once the worker has stopped."""

    items: list[dict[str, str]]
    dead_letters: list[tuple[str, dict[str, str]]]
    queue_depth: int


async def _observe(stack: Stack) -> Observed:
    observed = Observed(await stack.items(), await stack.dead_letters(), await stack.depth(stack.queue_url))
    print(f"\n4. Table {embedded.TABLE}: {len(observed.items)} items")
    for item in sorted(observed.items, key=lambda item: item["s3Key"]):
        key, event_name = printable(item["s3Key"]), printable(item.get("eventName", ""))
        print(f"   {item['photoId']}  {key:<44} {event_name}, {item.get('size', '?')} bytes")
    print(f"\n5. Queue {embedded.QUEUE}: {observed.queue_depth} messages. ", end="")
    print(f"Dead-letter queue {embedded.DEAD_LETTER_QUEUE}: {len(observed.dead_letters)}")
    for body, attributes in observed.dead_letters:
        print(f"   '{printable(body)}'  {REASON_ATTRIBUTE}={printable(attributes.get(REASON_ATTRIBUTE, ''))}")
    return observed


def problems(settled: Settled, observed: Observed) -> list[str]:
    """What differs from the scenario's expectations, one line each; empty when the pipeline did its job."""
    found = [
        f"{step.action} {step.subject}: expected {step.expect or 'no event'}, got {event_name(event) or 'no event'}"
        for step, event in settled
        if event_name(event) != step.expect
    ]
    if {(item["photoId"], item["s3Key"]) for item in observed.items} != expected_items():
        found.append(f"the table holds {len(observed.items)} items; expected one per photo: {len(expected_items())}")
    if observed.queue_depth:
        found.append(f"the queue still holds {observed.queue_depth} messages after {DRAIN_TIMEOUT_S:.0f} s")
    if (MALFORMED_BODY, "body_not_json") not in [(b, a.get(REASON_ATTRIBUTE)) for b, a in observed.dead_letters]:
        found.append("the dead-letter queue does not hold the malformed message with reason body_not_json")
    return found
