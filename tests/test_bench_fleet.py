"""The fleet benchmark end to end on a small N, the Node peer against the bench endpoint, and the charts.

These run real processes (`photo-ingest run`, and Node when `.scratch/node-peer` has been installed by
`python -m bench`), so they check the instrument, not the numbers: every figure must be consistent with the
endpoint's own counts and the end state must hold.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import charts, fleet_report, node_peer
from bench.fleet import Fleet, case_for, meets, run_fleet_case
from bench.runner import Case, Options, run_case


def test_a_small_fleet_case_counts_every_put_and_loses_nothing() -> None:
    """One photo-ingest process, 300 messages, 150 writes/s: attempts = written + throttled, nothing lost."""
    fleet = Fleet(wcu=150, latency_ms=0, n=300)
    result = run_fleet_case(case_for("photo-ingest", 1, fleet, "photo-ingest"), Options(), fleet)
    assert result["end_state"]["ok"], result["end_state"]
    assert result["items_written"] == 300
    assert result["put_attempts"] == result["items_written"] + result["put_throttled"] + result["condition_failed"]
    assert result["wall_s"] >= 300 / 150 * 0.99  # the buckets start empty: no run beats N / C
    assert result["goodput_over_c"] <= 1.0
    (process,) = result["per_process"]
    assert (process["deleted"], process["puts"]) == (300, result["put_attempts"])
    assert set(meets(result)) == {"goodput >= 0.9 C", "throttled <= 5%", "receives/msg <= 2", "DLQ 0"}
    assert "photo-ingest x1" in fleet_report.fleet_table([result])
    assert "photo-ingest-0" in fleet_report.process_table([result])


@pytest.mark.skipif(not node_peer.node_binary().exists(), reason="the Node peer is not installed (python -m bench)")
def test_the_node_peer_stores_every_photo_once_through_the_bench_endpoint() -> None:
    """SDK v3's SQS JSON protocol, MD5 checks and batch deletes all work against the endpoint."""
    result = run_case(Case("node", 0.0, 300), Options(node_argv=node_peer.install()))
    assert result["end_state"]["ok"], result["end_state"]
    assert result["exit_codes"] == [0]
    assert result["calls_per_msg"]["DeleteMessageBatch"] <= 0.2  # batch acknowledgement, not one call a message


def test_charts_are_drawn_from_a_results_document(tmp_path: Path) -> None:
    row = {"contender": "photo-ingest", "case": "photo-ingest x1", "latency_ms": 0.0, "msg_per_s": 1000.0}
    results = [row | {"cpu_ms_per_msg": 0.9}, row | {"latency_ms": 20.0, "msg_per_s": 900.0, "cpu_ms_per_msg": 1.0}]
    fleet = {"case": "photo-ingest x1", "processes": 1, "goodput_over_c": 0.7, "throttled_share": 0.4}
    document = {"results": results, "fleet": [fleet], "fleet_config": {"capacity": 300.0, "latency_ms": 5.0, "n": 9}}
    written = charts.draw(document, tmp_path)
    assert [path.name for path in written] == ["bench-throughput.png", "bench-cpu.png", "bench-fleet.png"]
    assert all(path.stat().st_size > 10_000 for path in written)
