"""The heartbeat file and `photo-ingest health`'s verdict."""

from __future__ import annotations

import json
import time
from pathlib import Path

from service.cli import main
from service.config import HealthSettings
from service.ops.health import check
from service.worker.heartbeat import Heartbeat


def settings(path: Path, **overrides: float) -> HealthSettings:
    return HealthSettings(health_file=path, **overrides)  # type: ignore[arg-type]


def test_a_fresh_heartbeat_is_healthy(tmp_path: Path) -> None:
    """Just after a beat, the worker is healthy."""
    path = tmp_path / "hb"
    Heartbeat(path).beat(force=True)
    healthy, reason = check(settings(path))
    assert healthy, reason


def test_a_stale_heartbeat_is_unhealthy(tmp_path: Path) -> None:
    """A heartbeat older than HEALTH_MAX_AGE_SECONDS means a stuck or dead poll loop."""
    path = tmp_path / "hb"
    Heartbeat(path).beat(force=True)
    healthy, reason = check(settings(path, health_max_age_seconds=5), now=time.time() + 6)
    assert not healthy
    assert "old" in reason


def test_a_missing_or_garbled_file_is_unhealthy(tmp_path: Path) -> None:
    """No heartbeat file (the worker never started) or a broken one is unhealthy, not a crash."""
    assert not check(settings(tmp_path / "absent"))[0]
    (tmp_path / "bad").write_text("{")
    assert not check(settings(tmp_path / "bad"))[0]


def test_failing_puts_for_too_long_make_the_worker_unhealthy(tmp_path: Path) -> None:
    """Every put failing for longer than UNHEALTHY_AFTER_FAILING_SECONDS is unhealthy; one success resets it."""
    path = tmp_path / "hb"
    heartbeat = Heartbeat(path)
    heartbeat.record_put(ok=False)
    heartbeat.beat(force=True)
    later = time.time() + 11
    state = json.loads(path.read_text())
    assert state["failingSince"] is not None
    assert not check(settings(path, unhealthy_after_failing_seconds=10, health_max_age_seconds=60), now=later)[0]
    heartbeat.record_put(ok=True)
    heartbeat.beat(force=True)
    assert check(settings(path, unhealthy_after_failing_seconds=10, health_max_age_seconds=60), now=later)[0]


def test_beats_are_throttled(tmp_path: Path) -> None:
    """The poll loop may beat on every turn; the file is rewritten at most every couple of seconds."""
    path = tmp_path / "hb"
    heartbeat = Heartbeat(path, min_interval_s=60)
    heartbeat.beat()
    first = path.read_text()
    heartbeat.record_put(ok=False)
    heartbeat.beat()
    assert path.read_text() == first


def test_the_health_command_exits_0_or_1(tmp_path: Path, monkeypatch: object, capsys: object) -> None:
    """`photo-ingest health` prints its verdict and exits 0 when healthy, 1 when not."""
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    path = tmp_path / "hb"
    monkeypatch.setenv("HEALTH_FILE", str(path))
    assert main(["health"]) == 1
    Heartbeat(path).beat(force=True)
    assert main(["health"]) == 0
