"""structlog set-up: one event per line, JSON in containers, colours on a terminal.

Event names are dotted nouns (`photo.inserted`, `message.deleted`); values are fields. Per-message context
(`messageId`, `receiveCount`) is bound through contextvars, which each asyncio task copies, so concurrent
messages never see each other's fields; so is the current span, whose `trace_id` and `span_id` join each line.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any, Literal

import structlog

from service import telemetry
from service.text import printable


def configure_logging(level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto") -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if use_json:
        renderer = structlog.processors.JSONRenderer(**({"serializer": dumps} if (dumps := _orjson_dumps()) else {}))
        processors += [structlog.processors.format_exc_info, renderer]
    else:  # a terminal: a key's ESC or CR must not reach it as they are
        processors += [_printable_values, structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


def trace_ids(_logger: object, _method: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """While a span is active (traces exported: docs/observability.md), its W3C `trace_id` and `span_id`."""
    if (ids := telemetry.ids()) is not None:
        event["trace_id"], event["span_id"] = ids
    return event


def _printable_values(_logger: object, _method: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    return {name: printable(value) if isinstance(value, str) else value for name, value in event.items()}


def _orjson_dumps() -> Callable[..., str] | None:
    """orjson's serializer when the `fast` extra is installed (the image installs it); else the standard one."""
    try:
        import orjson  # noqa: PLC0415 - optional: the worker runs without it
    except ImportError:
        return None

    def dumps(value: Any, **kwargs: Any) -> str:
        try:
            return orjson.dumps(value, default=kwargs.get("default"), option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:  # a lone surrogate (a hostile key): orjson refuses what json escapes
            return json.dumps(value, **kwargs)

    return dumps
