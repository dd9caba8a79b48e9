"""The `photo-ingest` command line: one subcommand per runtime or operator task, mapped to exit codes.

Exit codes: 0 done, 1 failed (unhealthy, a failed check, an unexpected error), 2 bad configuration or usage.
Nothing imports this module: the subcommands take their plumbing from `service.process`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from service import __version__, process
from service.aws.errors import NoRegionError
from service.config import HealthSettings, Settings
from service.local import serve
from service.local.demo import command as demo
from service.logs import configure_logging
from service.ops import health
from service.ops.backfill import command as backfill
from service.ops.check import command as check
from service.ops.connect import command as connect
from service.ops.redrive import command as redrive
from service.text import printable
from service.worker.worker import run_worker

DESCRIPTION = """\
photo-ingest: one DynamoDB Photos item per photo uploaded to S3, from the bucket's event notifications on SQS.

Configuration comes from environment variables (and a .env file); `photo-ingest COMMAND --help` lists the ones
each command reads. Exit codes: 0 done, 1 failed, 2 bad configuration or usage."""


async def _run_command(settings: Settings) -> int:
    stop = asyncio.Event()
    process.install_stop_handlers(stop)
    await run_worker(settings, stop)
    return process.EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    settings = process.load_settings(Settings)
    configure_logging(settings.log_level, settings.log_format)
    process.quiet_collector()
    process.bounded_heap()
    with asyncio.Runner(loop_factory=process.event_loop_factory()) as runner:
        return runner.run(_run_command(settings))


def _cmd_health(args: argparse.Namespace) -> int:
    healthy, reason = health.check(process.load_settings(HealthSettings))
    print(("healthy: " if healthy else "unhealthy: ") + printable(reason))
    return process.EXIT_OK if healthy else process.EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="photo-ingest", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"photo-ingest {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    reads = [*process.variables(Settings), *process.AWS_VARIABLES]
    process.add_command(commands, "run", "run the worker: poll the queue and write Photos items", reads, _cmd_run)
    health_reads = process.variables(HealthSettings)
    process.add_command(
        commands,
        "health",
        "exit 0 if the worker's heartbeat is fresh, 1 if not (no AWS call)",
        health_reads,
        _cmd_health,
    )
    for module in (check, demo, serve, backfill, redrive, connect):  # each adds its own subcommand
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: process.Handler = args.handler
    try:
        return handler(args)
    except process.ConfigurationError as exc:
        print(f"photo-ingest: configuration error: {printable(str(exc))}", file=sys.stderr)
        return process.EXIT_USAGE
    except NoRegionError:
        print("photo-ingest: configuration error: AWS_REGION: no AWS region is configured", file=sys.stderr)
        return process.EXIT_USAGE
    except KeyboardInterrupt:
        return process.EXIT_OK
