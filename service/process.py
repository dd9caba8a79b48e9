"""The plumbing every command shares: settings with readable errors, stop handlers and exit codes.

Subcommands import this module, never `service.cli`, so the command line sits on top of everything and nothing
imports it back.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import structlog
from pydantic import ValidationError

from service.config import HealthSettings, Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
SettingsT = TypeVar("SettingsT", bound=HealthSettings)
Handler = Callable[[argparse.Namespace], int]


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


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when the `fast` extra is installed (the image installs it), else asyncio's own."""
    try:
        import uvloop  # noqa: PLC0415 - optional: the worker runs without it
    except ImportError:
        return None
    return uvloop.new_event_loop


def install_stop_handlers(stop: asyncio.Event) -> None:
    """SIGTERM (ECS, Kubernetes, docker stop) and SIGINT (Ctrl-C) only request a stop; the work drains."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _request_stop, stop, sig)


def _request_stop(stop: asyncio.Event, sig: signal.Signals) -> None:
    if not stop.is_set():
        structlog.get_logger("service.process").info("process.stop_requested", signal=sig.name)
    stop.set()


AWS_VARIABLES = ("AWS_REGION", "AWS_ENDPOINT_URL[_SQS|_DYNAMODB|_S3]", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS")


def variables(cls: type[HealthSettings]) -> list[str]:
    """The environment variables a settings class reads, as a user types them."""
    return [name.upper() for name in cls.model_fields]


def add_command(
    commands: argparse._SubParsersAction[Any], name: str, summary: str, reads: Sequence[str], handler: Handler
) -> argparse.ArgumentParser:
    """A subcommand whose help says, for its users, what it is for and which environment variables it reads."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.",
        epilog="environment variables: " + ", ".join(reads) if reads else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser
