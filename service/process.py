"""The plumbing every command shares: settings with readable errors, stop handlers and exit codes.

Subcommands import this module, never `service.cli`, so the command line sits on top of everything and nothing
imports it back.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import math
import os
import re
import signal
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import structlog
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import SettingsError

from service.aws import environment
from service.config import HealthSettings, Settings, TableSettings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# The cyclic collector's first threshold: it runs once this many more container objects live than at its last run.
# Python's 700 made it run every few messages, about 15% of the worker's CPU (docs/performance.md).
COLLECTOR_YOUNG_OBJECTS = 50_000
# glibc serves a block of this size or more from its own mapping, handed back to the system when freed. Its default
# starts here but rises to the largest block ever freed, so after a few 1 MiB bodies they stay in the heap's arenas
# and the peak RSS outgrows MAX_IN_FLIGHT_BYTES (docs/performance.md, "Memory bounded by bytes"). Fixing it holds it.
MMAP_THRESHOLD_BYTES = 128 * 1024
_M_MMAP_THRESHOLD = -3  # <malloc.h>
SettingsT = TypeVar("SettingsT", bound=HealthSettings)
Handler = Callable[[argparse.Namespace], int]


class ConfigurationError(Exception):
    """A setting is missing or invalid; the message names the variable."""


def load_settings(cls: type[SettingsT] = Settings, **overrides: Any) -> SettingsT:  # type: ignore[assignment]
    """Settings from the environment and `.env`; for a command that reaches AWS (all that load `TableSettings` or
    richer: `health` does not), the AWS SDK's own variables are checked too.

    Every problem is one `VARIABLE: what is wrong` clause, all of them on one line, with no traceback."""
    problems = environment.problems(os.environ) if issubclass(cls, TableSettings) else []
    try:
        settings = cls(**overrides)
    except ValidationError as exc:
        problems = [*map(_explain, exc.errors()), *problems]
    except SettingsError as exc:  # a complex value (a JSON object) that does not decode, before validation
        problems = [_undecodable(exc), *problems]
    if problems:
        raise ConfigurationError("; ".join(problems))
    return settings


def check_aws_environment() -> None:
    """For `demo` and `local`, which make clients before they load settings: the AWS variables alone."""
    if problems := environment.problems(os.environ):
        raise ConfigurationError("; ".join(problems))


def _explain(error: ErrorDetails) -> str:
    """`VARIABLE: problem`, or `VARIABLE[key]: problem` inside a JSON object or list. A check across fields has
    no location: its message names the variables itself."""
    message = str(error["ctx"]["error"]) if error["type"] == "value_error" and "ctx" in error else error["msg"]
    if not error["loc"]:
        return message
    variable, *inside = (str(part) for part in error["loc"])
    where = f"[{']['.join(inside)}]" if inside else ""
    return f"{variable.upper()}{where}: {message}"


def _undecodable(exc: SettingsError) -> str:
    field = re.search(r'field "(\w+)"', str(exc))
    variable = field.group(1).upper() if field else "a setting"
    cause = f" ({exc.__cause__})" if exc.__cause__ else ""
    return f"{variable}: must be valid JSON{cause}"


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when the `fast` extra is installed (the image installs it), else asyncio's own."""
    try:
        import uvloop  # noqa: PLC0415 - optional: the worker runs without it
    except ImportError:
        return None
    return uvloop.new_event_loop


def quiet_collector() -> None:
    """For a long-running worker: what was built at start-up is never scanned again (`gc.freeze`), and the cyclic
    collector waits for COLLECTOR_YOUNG_OBJECTS new objects. A message's objects are freed by reference counting
    (botocore's per-response parser, the one cycle per request, is reused: service/aws/pipeline.py), so the
    collector only ever finds a little garbage, and at 700 objects it mostly scanned requests still in flight."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(COLLECTOR_YOUNG_OBJECTS, middle, old)


def bounded_heap() -> bool:
    """For a long-running worker: large blocks (message bodies, response buffers) go back to the system when
    freed, so the memory a body held is released with it. Skipped when the operator set glibc's own
    `MALLOC_MMAP_THRESHOLD_`, or where the C library is not glibc. True when the setting took."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # no C library to load, or one without mallopt (macOS)
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def install_stop_handlers(stop: asyncio.Event) -> None:
    """SIGTERM (ECS, Kubernetes, docker stop) and SIGINT (Ctrl-C) only request a stop; the work drains."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _request_stop, stop, sig)


def _request_stop(stop: asyncio.Event, sig: signal.Signals) -> None:
    if not stop.is_set():
        structlog.get_logger("service.process").info("process.stop_requested", signal=sig.name)
    stop.set()


def bounded(kind: type[int] | type[float], low: float, high: float | None = None) -> Callable[[str], Any]:
    """An argparse `type` for a number from `low` to `high`, whose error says so as a user would:
    `argument --max: must be a whole number, 1 or more, not 'abc'`."""
    noun = "a whole number" if kind is int else "a number"
    allowed = f"{noun}, {low:g} or more" if high is None else f"{noun} from {low:g} to {high:g}"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= (math.inf if high is None else high):  # NaN is never in range
            raise argparse.ArgumentTypeError(f"must be {allowed}, not {text!r}")
        return value

    return parse


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
