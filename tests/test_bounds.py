"""Every value from a message is bounded where it leaves the process (docs/security.md, "What reaches logs and
terminals"): no log line over 16 KiB in either format, whatever its values, nothing unprintable on the output as
it is, and every dead-letter attribute one that SQS accepts.

The log lines go through the whole chain that `configure_logging` installs (`service.logs.processors`).
"""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import AsyncExitStack
from typing import Any

import aioboto3
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from service import logs
from service.aws.clients import open_sqs
from service.aws.queue import ATTRIBUTE_CHARS_MAX, Message, quarantine_attributes, send_to_dead_letter
from tests.conftest import Stack

LINE_BYTES_MAX = 16 * 1024
SQS_ATTRIBUTE_VALUE = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")
HOSTILE_CHARACTERS = "\x1b[31m\x07\r\n\x00\x7f\x85\u202e\u2028\U000e0001\ufeff"


def render(use_json: bool, method: str = "info", **event: Any) -> str:
    for processor in logs.processors(use_json=use_json):
        event = processor(None, method, event)
    assert isinstance(event, str)
    return event


def fits(line: str) -> bool:
    return len(line.encode("utf-8", "surrogatepass")) + 1 <= LINE_BYTES_MAX


@pytest.mark.parametrize("use_json", [True, False], ids=["json", "console"])
def test_a_900_KB_event_name_is_cut_with_a_visible_marker(use_json: bool) -> None:
    """The issue's skipped record logged its eventName in full: one 900,259-byte line. Now the value keeps its
    first 4,096 characters and says how many it left out."""
    name = "ObjectRemoved:" + "x" * 900_245
    line = render(use_json, event="record.skipped", reason="not_object_created", eventName=name)
    assert fits(line)
    assert f"{name[:4096]}…[cut {900_259 - 4096} chars]" in line
    if use_json:
        assert json.loads(line)["eventName"] == f"{name[:4096]}…[cut 896163 chars]"


@pytest.mark.parametrize("use_json", [True, False], ids=["json", "console"])
def test_a_key_of_1024_bytes_stays_whole(use_json: bool) -> None:
    """Keys are evidence: S3's longest key (1,024 UTF-8 bytes) is never cut, beside a long eventName."""
    key = "photos-raw/" + "é" * 506 + "x"
    line = render(use_json, event="record.skipped", key=key, eventName="ObjectRemoved:" + "y" * 5_000)
    assert fits(line)
    assert key in line
    assert "…[cut " in line


@pytest.mark.parametrize("use_json", [True, False], ids=["json", "console"])
def test_a_line_still_too_long_is_cut_tighter_and_at_last_keeps_only_its_names(use_json: bool) -> None:
    """Sixty fields of 5,000 control characters each (six bytes apiece once escaped): every pass of tighter cuts
    is still too long, so the line keeps its time, level, event and message id, and says what it left out."""
    fields = {f"field{n}": "\x01" * 5_000 for n in range(60)}
    line = render(use_json, "error", event="photo.failed", messageId="m-1", **fields)
    assert fits(line)
    assert "60 fields left out: the line was over 16384 bytes" in line
    if use_json:
        assert set(json.loads(line)) == {"event", "level", "timestamp", "messageId", "cut"}


def test_a_line_over_the_bound_after_escaping_is_cut_tighter_not_dropped() -> None:
    """4,096 tag characters are 48 KiB once JSON-escaped: the line is rendered again with values cut to 1,024
    characters, and keeps every field."""
    line = render(True, event="record.skipped", eventName="\U000e0001" * 5_000, key="photos-raw/x.jpg")
    assert fits(line)
    event = json.loads(line)
    assert event["eventName"] == "\U000e0001" * 1024 + "…[cut 3976 chars]"
    assert event["key"] == "photos-raw/x.jpg"


def test_json_lines_escape_what_is_not_printable_and_decode_to_the_exact_value() -> None:
    """JSON itself escapes only C0 controls: orjson wrote DEL, C1 controls, bidirectional overrides and line
    separators as they are. Each is now a `\\uXXXX` escape, and the decoded key is exactly the key."""
    key = "photos-raw/" + HOSTILE_CHARACTERS + "é東😀.jpg"
    line = render(True, event="photo.inserted", key=key, kinds=[HOSTILE_CHARACTERS], counts={HOSTILE_CHARACTERS: 1})
    assert line.isprintable()
    assert "é東😀" in line  # printable text stays readable
    event = json.loads(line)
    assert (event["key"], event["kinds"], event["counts"]) == (key, [HOSTILE_CHARACTERS], {HOSTILE_CHARACTERS: 1})


def test_console_lines_escape_every_value_and_keep_a_tracebacks_line_breaks() -> None:
    """On a terminal: each string, nested ones and a traceback's text included, is escaped; the traceback keeps
    its lines."""
    try:
        fail()
    except ValueError:
        text = render(False, "error", event="message.parse_failed", key=HOSTILE_CHARACTERS, exc_info=True)
    lines = text.split("\n")
    assert len(lines) > 3
    assert all(line.isprintable() for line in lines)
    assert any("Traceback" in line for line in lines)
    assert r"key=\x1b[31m\x07\x0d\x0a\x00\x7f\x85\u202e" in lines[0]


def fail() -> None:
    raise ValueError(HOSTILE_CHARACTERS)


@pytest.mark.parametrize("use_json", [True, False], ids=["json", "console"])
def test_configure_logging_writes_bounded_lines_to_stdout(
    use_json: bool, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The configuration the commands install: a line past every bound, printed, is one line within 16 KiB."""
    logs.configure_logging("INFO", "json" if use_json else "console")
    try:
        structlog.get_logger("test_bounds").info("record.skipped", eventName="x" * 900_000, key="\x1b" * 1024)
    finally:
        structlog.reset_defaults()
    [line] = capsys.readouterr().out.splitlines()
    assert fits(line)
    assert line.isprintable()


@given(st.text(max_size=300) | st.text(alphabet=HOSTILE_CHARACTERS + "\ud800a", min_size=250, max_size=2_000))
def test_every_dead_letter_attribute_is_one_sqs_accepts(text: str) -> None:
    """A message id (in Lambda, read from the invocation's event) and a reason of any length and content become
    attributes within SQS's limits: its allowed characters, and at most 256 characters and the marker."""
    message = Message(message_id=text, receipt_handle="r", body="{}", receive_count=2**40, sent_at_ms=None)
    attributes = quarantine_attributes(message, text)
    assert len(attributes) <= 10
    for name, attribute in attributes.items():
        value = attribute["StringValue"]
        assert SQS_ATTRIBUTE_VALUE.fullmatch(value), name
        assert len(value) <= ATTRIBUTE_CHARS_MAX + len("…[cut 1000000 chars]"), name
        value.encode()  # no lone surrogate


def test_a_dead_letter_of_a_hostile_message_id_is_accepted_and_keeps_a_readable_id(stack: Stack) -> None:
    """Through moto: the attributes of a message id of 300,000 characters, a NUL and a lone surrogate included,
    are sent with the body; the id is escaped and cut, not lost."""
    message_id = "\x00\ud800" + "m" * 300_000
    message = Message(message_id=message_id, receipt_handle="r", body='{"x": 1}', receive_count=1, sent_at_ms=None)

    async def send() -> None:
        async with AsyncExitStack() as exits:
            sqs = await open_sqs(exits, aioboto3.Session(), 1, 0)
            await send_to_dead_letter(sqs, stack.dlq_url, message, "body_not_json")

    asyncio.run(send())
    [dead] = stack.sqs.receive_message(QueueUrl=stack.dlq_url, MessageAttributeNames=["All"])["Messages"]
    source = dead["MessageAttributes"]["photo-ingest.source-message-id"]["StringValue"]
    assert source == "\\u0000\\ud800" + "m" * 244 + "…[cut 299756 chars]"
    assert dead["Body"] == '{"x": 1}'
