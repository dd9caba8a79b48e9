"""`python -m bench`'s plan and its Node targets: which cases a command line runs, how a pair's rows are labelled,
and the batch mode's case end to end (a real `photo-ingest run` with WRITE_MODE=batch against the bench
endpoint, checked like every case: one item per distinct photo, the queue empty, exit 0)."""

from __future__ import annotations

from typing import Any

import pytest

from bench import __main__ as bench
from bench.runner import Case, Options, run_case


def test_the_default_contenders_include_the_batch_mode_and_its_pair_with_node() -> None:
    args = bench.parse_args([])
    assert {"batch", "pair-node", "pair-batch-node"} <= set(bench.contender_names(args))


def test_batch_is_photo_ingest_with_write_mode_batch_at_every_latency() -> None:
    args = bench.parse_args(["--contenders", "one,batch,node", "--latencies", "0,20", "--n", "500"])
    cases = [case for (case,) in bench.plan(args)]
    batch = [case for case in cases if case.variant == "photo-ingest batch"]
    assert [(case.contender, case.latency_ms, case.label) for case in batch] == [
        ("photo-ingest", 0.0, "photo-ingest batch x1"),
        ("photo-ingest", 20.0, "photo-ingest batch x1"),
    ]
    assert bench.modes(args) == {"photo-ingest batch": {"WRITE_MODE": "batch"}}
    options = Options(worker_env={"WRITE_MODE": "put"}, variants=bench.modes(args))
    assert options.photo_ingest_env("photo-ingest batch")["WRITE_MODE"] == "batch"  # the mode wins over --worker-env


def test_the_pairs_run_both_modes_beside_node_with_distinct_labels() -> None:
    args = bench.parse_args(["--contenders", "pair-node,pair-batch-node", "--pair-latencies", "0,5"])
    jobs = bench.plan(args)
    assert [(first.variant, second.contender, first.latency_ms) for first, second in jobs] == [
        ("photo-ingest", "node", 0.0),
        ("photo-ingest batch", "node", 0.0),
        ("photo-ingest", "node", 5.0),
        ("photo-ingest batch", "node", 5.0),
    ]
    labels = [case.label + suffix for job in jobs[:2] for case, suffix in zip(job, bench.suffixes(job), strict=True)]
    assert labels == [
        "photo-ingest x1 (paired w/ node)",
        "node sqs-consumer x1 (paired w/ photo-ingest)",
        "photo-ingest batch x1 (paired w/ node)",
        "node sqs-consumer x1 (paired w/ photo-ingest batch)",
    ]


def test_an_unknown_contender_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--contenders", "one,bacth"])
    assert "unknown bacth" in capsys.readouterr().err


def row(case: str, cpu: float, latency: float = 0.0) -> dict[str, Any]:
    return {"case": case, "latency_ms": latency, "cpu_ms_per_msg": cpu, "msg_per_s": 1000.0}


def test_the_node_target_passes_on_the_best_mode_and_reports_the_default_ratio() -> None:
    results = [
        row("photo-ingest x1 (paired w/ node)", 0.8),
        row("node sqs-consumer x1 (paired w/ photo-ingest)", 0.4),
        row("photo-ingest batch x1 (paired w/ node)", 0.3),
        row("node sqs-consumer x1 (paired w/ photo-ingest batch)", 0.4),
    ]
    ratios = bench.node_ratios(results, "photo-ingest")
    assert [(r["mode"], r["how"], r["ratio"]) for r in ratios] == [
        ("default", "paired", 2.0),
        ("batch", "paired", 0.75),
    ]
    target, default = bench.node_targets(ratios)
    assert (target["value"], target["passed"]) == (0.75, True)
    assert "at least one mode, paired" in target["target"]
    assert (default["value"], default["passed"]) == (2.0, None)  # reported, neither a pass nor a fail


def test_the_node_target_fails_when_no_mode_is_at_or_below_node() -> None:
    results = [row("photo-ingest x1", 0.9), row("photo-ingest batch x1", 0.5), row("node sqs-consumer x1", 0.45)]
    (target, default) = bench.node_targets(bench.node_ratios(results, "photo-ingest"))
    assert (target["value"], target["passed"]) == (1.111, False)
    assert "in turn" in target["target"]
    assert default["value"] == 2.0


def test_a_batch_mode_case_stores_every_photo_once_through_partiql() -> None:
    """WRITE_MODE=batch against the bench endpoint: the case's end-state check holds, puts went as
    BatchExecuteStatement (well under one call a message), and the duplicates were confirmed with GetItem."""
    args = bench.parse_args([])
    case = Case("photo-ingest", 0.0, 300, variant=bench.mode_label(args, "batch"))
    result = run_case(case, Options(variants=bench.modes(args)))
    assert result["end_state"]["ok"], result["end_state"]
    assert result["exit_codes"] == [0]
    calls = result["calls_per_msg"]
    assert "PutItem" not in calls
    assert 0 < calls["BatchExecuteStatement"] < 0.5
    assert calls["GetItem"] > 0  # 10% of the deliveries repeat a photo: each is confirmed by its stored item
