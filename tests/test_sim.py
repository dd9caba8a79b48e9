"""The deterministic simulator (tests/sim/, docs/reliability.md "The simulator"): the CI seeds hold every
invariant, a seed replays byte for byte, virtual time jumps, and each planted defect is caught within the CI
seed budget."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sim.clock import Stalled, VirtualClock, VirtualLoop
from tests.sim.defects import DEFECTS
from tests.sim.sweep import CI_SEEDS, Job, first_failure, report, sweep

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_every_ci_seed_holds_every_invariant() -> None:
    job = Job()
    results = sweep(CI_SEEDS, job)
    failed = [report(result, job) for result in results if result.violations]
    assert not failed, "\n\n".join(failed[:5])
    assert len(results) == len(CI_SEEDS)
    assert {result.options.runtime for result in results} == {"worker", "lambda"}


def test_a_seed_replays_byte_for_byte() -> None:
    job = Job()
    first, again, other = job(7), job(7), job(8)
    assert first.digest == again.digest
    assert first.digest != other.digest


def test_a_seed_replays_byte_for_byte_in_another_process() -> None:
    """Another interpreter, with its own string hashing (PYTHONHASHSEED) and memory layout."""
    replay = subprocess.run(
        [sys.executable, "-m", "tests.sim", "--seed", "7"],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"history digest {Job()(7).digest}" in replay.stdout


CAUGHT_BY = {  # each planted defect, and the invariants that may catch it first
    "delete-before-put": {"deleted before settled", "deleted before dead-lettered"},
    "condition-as-duplicate": {"deleted before dead-lettered", "quarantined for the wrong reason"},
    "ignore-failed-deletes": {"metrics disagree with AWS"},
    "double-release": {"limiter slots leaked", "in-flight limit exceeded"},
    "lost-response-failed": {"own write not counted"},
}


def test_every_planted_defect_has_its_test() -> None:
    assert set(CAUGHT_BY) == set(DEFECTS)


@pytest.mark.parametrize("name", sorted(CAUGHT_BY))
def test_each_planted_defect_is_caught_within_the_ci_budget(name: str) -> None:
    caught = first_failure(CI_SEEDS, Job(plant=name))
    assert caught is not None, f"{name} survived {len(CI_SEEDS)} seeds"
    assert {v.invariant for v in caught.violations} & CAUGHT_BY[name], report(caught, Job(plant=name))


def test_an_hour_of_virtual_time_passes_at_once() -> None:
    clock = VirtualClock()
    loop = VirtualLoop(clock)
    try:
        loop.run_until_complete(asyncio.sleep(3600))
    finally:
        loop.close()
    assert 3600 <= clock.now < 3600.01


def test_a_deadlock_is_reported_not_waited_out() -> None:
    loop = VirtualLoop(VirtualClock())
    try:
        with pytest.raises(Stalled):
            loop.run_until_complete(loop.create_future())
    finally:
        loop.close()
