"""What reaches a terminal: keys and other outside text never carry a control character to it."""

from __future__ import annotations

import ast
import subprocess
from typing import Any

import pytest

from service.config import Settings
from service.ops.backfill.options import Options
from service.ops.backfill.progress import ResumePoint, summary
from service.ops.check.command import render
from service.ops.check.findings import Finding, Level
from service.text import printable, shell_word

HOSTILE_KEYS = [
    "photos-raw/\x1b[31mred\x07.jpg",
    "photos-raw/line\rover\nwritten.jpg",
    "photos-raw/\x9b2J C1 CSI.jpg",
    "photos-raw/\u202eevil\u2066.jpg",
    "photos-raw/it's a \\ back.jpg",
    "photos-raw/plain café 東京.jpg",
]


def shows_no_control_character(text: str) -> bool:
    return all(char.isprintable() or char in "\n" for char in text)


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_printable_escapes_every_control_character_unambiguously(key: str) -> None:
    shown = printable(key)
    assert shown.isprintable()
    assert ast.literal_eval('"' + shown.replace('"', '\\"') + '"') == key  # Python's own escapes: unambiguous


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_shell_word_gives_back_the_exact_key_in_bash(key: str) -> None:
    """The backfill summary's `--start-after` value: pasted into bash, it is exactly the key, and it shows no
    control character (shlex.quote passed ESC, BEL and CR through to the terminal)."""
    word = shell_word(key)
    assert word.isprintable()
    echoed = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, check=True).stdout
    assert echoed.decode() == key


class FakeRun:
    """What the summary reads of a finished backfill."""

    aborted: str | None = None

    def __init__(self, key: str) -> None:
        self.resume = ResumePoint(None)
        self.resume.settled(0, key)

    def figures(self) -> dict[str, Any]:
        counts = dict.fromkeys(("listed", "inserted", "duplicate", "skipped", "conflict", "invalid", "failed"), 1)
        times = {"elapsedSeconds": 1.0, "objectsPerSecond": 1.0}
        return counts | times | {"wouldWrite": 0, "skippedBy": {"outside_prefix": 1}, "lastKeyDone": None}


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_the_backfill_summary_prints_keys_without_control_characters(key: str) -> None:
    text = summary(FakeRun(key), Options(bucket="beetroot-raw", prefix="photos-raw/", raw_prefix="photos-raw/"), False)
    assert shows_no_control_character(text)
    assert f"--start-after {shell_word(key)}" in text


def test_check_prints_findings_without_control_characters() -> None:
    """An AWS error message or a queue URL is outside text too."""
    settings = Settings(queue_url="https://sqs.example/1/q\x1b[2J")
    text = render(settings, [Finding(Level.FAIL, "queue", "AccessDenied: \x1b]0;owned\x07")])
    assert shows_no_control_character(text)
    assert "\\x1b]0;owned\\x07" in text
