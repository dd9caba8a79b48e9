"""The `photo-ingest` command: builds settings, logging and clients once, and maps failures to exit codes.

Exit codes: 0 done, 1 failed (unhealthy, a failed check, an unexpected error), 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import structlog
from botocore.exceptions import NoRegionError
from pydantic import ValidationError

from service import __version__, backfill, demo, health, local, preflight, redrive
from service.clients import make_session, open_dynamodb, open_sqs
from service.config import HealthSettings, Settings
from service.logs import configure_logging
from service.metrics import Metrics
from service.queue import Queue
from service.store import PhotoStore
from service.worker import Worker

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SettingsT = TypeVar("SettingsT", bound=HealthSettings)
log = structlog.get_logger("service.cli")


class ConfigurationError(Exception):
    """A setting is missing or invalid; the message names the variable."""


def load_settings(cls: type[SettingsT] = Settings, **overrides: Any) -> SettingsT:  # type: ignore[assignment]
    """Settings from the environment and `.env`; one readable line per problem, no traceback."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            variable = "_".join(str(part) for part in error["loc"]).upper() or "settings"
            lines.append(f"{variable}: {error['msg']}")
        raise ConfigurationError("; ".join(lines)) from None


def install_stop_handlers(stop: asyncio.Event) -> None:
    """SIGTERM (ECS, docker stop) and SIGINT (Ctrl-C) only request a stop; the worker drains."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _request_stop, stop, sig)


def _request_stop(stop: asyncio.Event, sig: signal.Signals) -> None:
    if not stop.is_set():
        structlog.get_logger("service.cli").info("process.stop_requested", signal=sig.name)
    stop.set()


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """The production path, also used by `demo` and `local`: one SQS and one DynamoDB client for the
    process's lifetime, with connection pools sized to the in-flight limit."""
    session = make_session()
    async with AsyncExitStack() as stack:
        sqs_pool = settings.pollers + settings.max_in_flight_records // 5 + 4  # receives + batch calls
        sqs = await open_sqs(stack, session, sqs_pool, settings.receive_wait_seconds)
        dynamodb = await open_dynamodb(stack, session, settings.max_in_flight_records + 4)
        queue = Queue(sqs, settings.queue_url, settings.dead_letter_queue_url)
        worker = Worker(settings, queue, PhotoStore(dynamodb, settings.photos_table), Metrics())
        await worker.run(stop)


async def _run_command(settings: Settings) -> int:
    stop = asyncio.Event()
    install_stop_handlers(stop)
    await run_worker(settings, stop)
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings(Settings)
    configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(_run_command(settings))


def _cmd_health(args: argparse.Namespace) -> int:
    healthy, reason = health.check(load_settings(HealthSettings))
    print(("healthy: " if healthy else "unhealthy: ") + reason)
    return EXIT_OK if healthy else EXIT_FAILED


Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="photo-ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"photo-ingest {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("run", help="run the worker (configured by environment variables)").set_defaults(
        handler=_cmd_run
    )
    commands.add_parser("health", help="exit 0 if the worker's heartbeat is fresh, 1 if not").set_defaults(
        handler=_cmd_health
    )
    for module in (preflight, demo, local, backfill, redrive):  # each adds its own subcommands
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConfigurationError as exc:
        print(f"photo-ingest: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NoRegionError:
        print("photo-ingest: configuration error: AWS_REGION: no AWS region is configured", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
