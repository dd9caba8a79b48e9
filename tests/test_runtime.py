"""The `fast` extra: uvloop runs the worker's event loop and orjson renders its JSON logs, when installed (the
dev extra and the image install them); without them the worker runs on asyncio's loop and the json module."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import structlog
import uvloop
from structlog.processors import JSONRenderer

from service import logs, process
from service.aws.errors import ErrorKind


def test_the_worker_loop_is_uvloop_when_it_is_installed() -> None:
    """`photo-ingest run` builds its event loop with uvloop's factory."""
    assert process.event_loop_factory() is uvloop.new_event_loop


def test_orjson_renders_what_the_json_module_renders() -> None:
    """Every value the worker logs (strings, numbers, enums, a path through the fallback, a non-string key)
    renders to the same JSON object as with the json module, on one line."""
    event = {"event": "photo.failed", "kind": ErrorKind.THROTTLED, "path": Path("/tmp/x"), "counts": {1: 2}, "n": 3}
    event |= {"key": "photos-raw/Café C++ 東京.jpg", "exception": "Traceback ...\nValueError: boom"}
    dumps = logs._orjson_dumps()
    assert dumps is not None
    fast = JSONRenderer(serializer=dumps)(None, "error", dict(event))
    assert json.loads(fast) == json.loads(JSONRenderer()(None, "error", dict(event)))
    assert "\n" not in fast


def test_json_logs_use_orjson_when_it_is_installed() -> None:
    """LOG_FORMAT=json renders with orjson: compact, where the json module would put spaces after separators."""
    logs.configure_logging("INFO", "json")
    try:
        renderer = structlog.get_config()["processors"][-1]
        assert renderer(None, "info", {"event": "photo.inserted", "n": 1}) == '{"event":"photo.inserted","n":1}'
    finally:
        structlog.reset_defaults()


def test_without_the_extra_the_standard_library_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the extra, the worker logs through the json module and runs on asyncio's own loop."""
    monkeypatch.setitem(sys.modules, "orjson", None)  # `import orjson` now raises ImportError
    assert logs._orjson_dumps() is None
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert process.event_loop_factory() is None


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's mallopt")
def test_the_worker_fixes_glibcs_mmap_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert process.bounded_heap() is True


def test_an_operators_own_mmap_threshold_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "262144")
    assert process.bounded_heap() is False
