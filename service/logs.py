"""structlog set-up: one event per line, JSON in containers, colours on a terminal.

Event names are dotted nouns (`photo.inserted`, `message.deleted`); values are fields. At INFO a stored photo is
one line, its `photo.inserted`: the product's record. `message.deleted` is a DEBUG line: each line is a flushed
write, and the `MessagesDeleted` metric counts deletions already. Per-message context (`messageId`,
`receiveCount`) is bound through contextvars, which each asyncio task copies, so concurrent messages never see
each other's fields.

Whatever a message holds, a line stays readable and bounded (docs/security.md, "What reaches logs and
terminals"), in both formats, in one place, `BoundedRenderer`:
- every string value (in lists and mappings too) is cut to VALUE_CHARS_MAX characters, marked `…[cut N chars]`;
- a line still over LINE_BYTES_MAX bytes is rendered again with every value cut shorter, and at last with only
  the event's name, level, time and message ids, saying how many fields were left out;
- nothing that is not printable reaches the output as it is: JSON writes it as a `\\uXXXX` escape (so the
  decoded value is exact), the console as a Python escape (`service.text.printable`).
The current span, while there is one, joins each line with its `trace_id` and `span_id` (`trace_ids`).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from service import telemetry
from service.text import cut, printable

LINE_BYTES_MAX = 16 * 1024  # one line with its newline: Docker's and most log drivers' limit before they split
VALUE_CHARS_MAX = 4_096  # a string value, before it is cut: every S3 key (at most 1,024 bytes) stays whole
TIGHTER_CHARS = (1_024, 256, 64)  # what every value is cut to, in turn, while the line is still too long
KEPT_LAST = ("timestamp", "level", "event", "messageId", "awsRequestId", "trace_id")  # the last resort's fields
KEPT_CHARS_MAX = 128

Renderer = Callable[[WrappedLogger, str, EventDict], str]


def configure_logging(level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto") -> None:
    structlog.configure(
        processors=processors(use_json=fmt == "json" or (fmt == "auto" and not sys.stdout.isatty())),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


def processors(*, use_json: bool) -> list[Processor]:
    """The whole chain, ending in the one renderer that bounds every line."""
    return [
        structlog.contextvars.merge_contextvars,
        trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,  # a traceback is a string like any other, bounded and escaped
        BoundedRenderer(_json_renderer() if use_json else _console_renderer()),
    ]


def trace_ids(_logger: object, _method: str, event: EventDict) -> EventDict:
    """While a span is active (traces exported: docs/observability.md), its W3C `trace_id` and `span_id`."""
    if (ids := telemetry.ids()) is not None:
        event["trace_id"], event["span_id"] = ids
    return event


class BoundedRenderer:
    """Renders an event in at most LINE_BYTES_MAX bytes, with its newline, whatever its values hold."""

    def __init__(self, render: Renderer) -> None:
        self._render = render

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> str:
        for limit in (VALUE_CHARS_MAX, *TIGHTER_CHARS):
            line = self._render(logger, method, _each_string(event, partial(cut, limit=limit)))
            if _fits(line):
                return line
        kept = {name: cut(str(event[name]), KEPT_CHARS_MAX) for name in KEPT_LAST if name in event}
        left_out = f"{len(event) - len(kept)} fields left out: the line was over {LINE_BYTES_MAX} bytes"
        return self._render(logger, method, kept | {"cut": left_out})


def _fits(line: str) -> bool:
    """With its newline; a character is at most 4 UTF-8 bytes, so a short line needs no encoding."""
    return len(line) * 4 < LINE_BYTES_MAX or len(line.encode("utf-8", "surrogatepass")) < LINE_BYTES_MAX


def _each_string(value: Any, change: Callable[[str], str]) -> Any:
    """`value` with `change` applied to each string in it, in containers too; any other object is its repr,
    as the renderers would write it."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {(change(k) if isinstance(k, str) else k): _each_string(v, change) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_each_string(item, change) for item in value]
    if value is None or isinstance(value, int | float):
        return value
    return change(repr(value))


def _json_renderer() -> Renderer:
    dumps = _orjson_dumps()
    render = structlog.processors.JSONRenderer(**({"serializer": dumps} if dumps else {}))
    return lambda logger, method, event: json_escaped(str(render(logger, method, event)))


def json_escaped(line: str) -> str:
    """A JSON line with every character that is not printable (DEL, C1 controls, bidirectional overrides, line
    separators) written as a JSON escape: the same JSON value, and nothing a terminal would act on. Outside its
    strings, a JSON line holds only printable ASCII, so this never changes its structure."""
    if line.isprintable():
        return line
    return "".join(char if char.isprintable() else _json_escape(ord(char)) for char in line)


def _json_escape(code: int) -> str:
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"  # a surrogate pair, as JSON spells it


def _console_renderer() -> Renderer:
    """A terminal: a key's ESC or CR must not reach it as they are. A string is written as it is, so it goes
    through `printable` (a traceback line by line, keeping its line breaks); the renderer writes anything else as
    its repr, which escapes what is not printable."""
    render = structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())

    def rendered(logger: WrappedLogger, method: str, event: EventDict) -> str:
        shown = {name: printable(value) if isinstance(value, str) else value for name, value in event.items()}
        if isinstance(trace := event.get("exception"), str):
            shown["exception"] = "\n".join(printable(line) for line in trace.split("\n"))
        return render(logger, method, shown)

    return rendered


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
