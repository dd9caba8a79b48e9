"""`python -m service.ops.liveness`, the probe that Kubernetes, ECS and Docker's HEALTHCHECK run every 30 s: the
verdict of `photo-ingest health` from the same variables and defaults, exit codes 0/1/2, and nothing imported but
the standard library (what makes it cheap; docs/kubernetes.md has the measurement)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.config import HealthSettings
from service.ops import health, liveness
from service.worker.heartbeat import Heartbeat

PROBE = [sys.executable, "-I", "-m", "service.ops.liveness"]
ROOT = Path(__file__).parent.parent


def probe(**environment: str) -> subprocess.CompletedProcess[str]:
    variables = {k: v for k, v in os.environ.items() if not k.startswith(("HEALTH_", "UNHEALTHY_"))}
    return subprocess.run(PROBE, env=variables | environment, capture_output=True, text=True, check=False, cwd=ROOT)


def test_its_defaults_are_the_health_settings_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in liveness.DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    defaults = HealthSettings()
    assert {
        "HEALTH_FILE": str(defaults.health_file),
        "HEALTH_MAX_AGE_SECONDS": f"{defaults.health_max_age_seconds:g}",
        "UNHEALTHY_AFTER_FAILING_SECONDS": f"{defaults.unhealthy_after_failing_seconds:g}",
    } == liveness.DEFAULTS


def test_it_exits_0_on_a_fresh_heartbeat_1_on_none_or_a_failing_worker_and_2_on_a_bad_variable(tmp_path: Path) -> None:
    path = tmp_path / "photo-ingest.health"
    assert probe(HEALTH_FILE=str(path)).returncode == 1  # no heartbeat yet
    Heartbeat(path).beat(force=True)
    healthy = probe(HEALTH_FILE=str(path))
    assert (healthy.returncode, healthy.stdout.split(":")[0]) == (0, "healthy")

    path.write_text(json.dumps({"beatAt": time.time(), "failingSince": time.time() - 10}))
    failing = probe(HEALTH_FILE=str(path), UNHEALTHY_AFTER_FAILING_SECONDS="5")
    assert failing.returncode == 1
    assert "every put has failed" in failing.stdout

    bad = probe(HEALTH_FILE=str(path), HEALTH_MAX_AGE_SECONDS="soon")
    assert bad.returncode == 2
    assert "HEALTH_MAX_AGE_SECONDS" in bad.stderr


@pytest.mark.parametrize(
    "state",
    [{"beatAt": 0}, {"beatAt": "x"}, {}, {"beatAt": 1e12, "failingSince": 0}, {"beatAt": 1e12}],
)
def test_health_and_the_probe_give_one_verdict(tmp_path: Path, state: dict[str, object]) -> None:
    path = tmp_path / "hb"
    path.write_text(json.dumps(state))
    settings = HealthSettings(health_file=path)
    assert health.check(settings, now=1e12) == liveness.verdict(str(path), 60.0, 300.0, now=1e12)


def test_it_imports_nothing_but_the_standard_library() -> None:
    """What running the probe adds to sys.modules: the standard library and the two packages on its path, whose
    `__init__` files import nothing (the version is read lazily). runpy does not keep the module itself."""
    script = (
        "import json, runpy, sys; before = set(sys.modules); "
        "runpy.run_module('service.ops.liveness', run_name='probe'); "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = json.loads(result.stdout)
    ours = {name for name in loaded if name.split(".")[0] == "service"}
    assert ours == {"service", "service.ops"}
    assert {name.split(".")[0] for name in loaded} - {"service"} <= set(sys.stdlib_module_names)
