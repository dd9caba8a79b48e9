"""The heartbeat file and `photo-ingest health`'s verdict."""

from __future__ import annotations

import json
import os
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


def test_a_link_planted_at_the_temporary_path_is_never_followed(tmp_path: Path) -> None:
    """In a shared directory (/tmp), a symlink planted where the heartbeat writes its temporary file (the old
    predictable `.<name>.<pid>`, or this process's own name) must not lead the write into another file: the
    temporary is created only if nothing is there, the link is left alone, and the heartbeat is still written."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    path = tmp_path / "health"
    heartbeat = Heartbeat(path)
    links = [path.with_name(f".{path.name}.{os.getpid()}"), getattr(heartbeat, "temporary", None)]
    planted = [link for link in links if link is not None]
    for link in planted:
        link.symlink_to(victim)

    heartbeat.beat(force=True)

    assert victim.read_text() == "precious"
    assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.is_symlink()
    assert all(link.is_symlink() for link in planted)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["health", "victim", *(p.name for p in planted)])


def test_a_link_at_the_heartbeat_itself_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    path = tmp_path / "health"
    path.symlink_to(victim)

    Heartbeat(path).beat(force=True)

    assert victim.read_text() == "precious"
    assert not path.is_symlink()
    assert json.loads(path.read_text())["pid"] == os.getpid()
