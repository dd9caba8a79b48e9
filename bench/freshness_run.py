"""One contender's freshness at one round trip: its capacity first, then steady loads at fractions of it.

Capacity is the contender's own: one process draining a pre-filled queue at that RTT (`runner.run_case`, the
main benchmark's method). Then a fresh endpoint with an empty queue, the contender started and waiting, and for
each load a steady `SendMessage` stream for `duration_s`; the row's percentiles are taken once every message of
that load is deleted, from the endpoint's record of each item's first write. Both contenders are measured from
outside, the same way: neither one's own metrics are read.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import freshness_stats as stats
from bench.freshness_sender import send_steady
from bench.runner import BenchError, Case, Options, Stage, contender_procs, run_case, wait_progress

SEED = 11  # not the main benchmark's 7: these photos are new to the table


@dataclass(frozen=True)
class Plan:
    rtt_ms: float
    loads: tuple[float, ...]
    duration_s: float
    warmup_s: float
    capacity_n: int


def capacity(contender: str, plan: Plan, opts: Options) -> dict[str, Any]:
    """One process's throughput at this RTT, draining a pre-filled queue; refuses a run with a wrong end state."""
    result = run_case(Case(contender, plan.rtt_ms, plan.capacity_n), opts)
    if not result["end_state"]["ok"]:
        raise BenchError(f"{result['case']} at {plan.rtt_ms:g} ms: wrong end state {result['end_state']}")
    return result


def loads(contender: str, plan: Plan, capacity_msg_s: float, opts: Options) -> list[dict[str, Any]]:
    """A row per load: the offered rate, what the sender achieved, and the freshness percentiles."""
    rates = [capacity_msg_s * load for load in plan.loads]
    counts = [max(1, round(rate * plan.duration_s)) for rate in rates]
    case = Case(contender, plan.rtt_ms, sum(counts), seed=SEED, duplicate_every=0)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-freshness-") as tmp:
        stage = Stage(case, opts, Path(tmp))
        try:
            stage.control.call("config", latency_ms=plan.rtt_ms)
            stage.procs = contender_procs(case, opts, [stage.control.url], stage.workdir)
            stage.wait_ready()
            stage.arm()
            offset = 0
            for load, rate, count in zip(plan.loads, rates, counts, strict=True):
                rows.append(_load(stage, plan, load, rate, range(offset, offset + count)))
                offset += count
            stage.stop_contenders()
            end_state = stage.end_state()
        finally:
            stage.close()
    for row in rows:
        row |= {"contender": case.label, "capacity_msg_s": round(capacity_msg_s, 1), "end_state_ok": end_state["ok"]}
        row["exit_codes"] = [p.exit_code for p in stage.procs]
    return rows


def _load(stage: Stage, plan: Plan, load: float, rate: float, indices: range) -> dict[str, Any]:
    bodies = [stage.jobs.bodies[i] for i in indices]
    cpu0 = time.process_time()
    sent = asyncio.run(send_steady(stage.control.port, stage.queue_url, bodies, rate, plan.rtt_ms / 1000))
    sender_cores = (time.process_time() - cpu0) / max(sent.finished - sent.started, 1e-9)
    wait_progress(stage, deleted=indices.stop)
    written = stage.control.call("writes")["written_at"]
    sent_at = {stage.jobs.photos[indices.start + i].photo_id: t for i, t in sent.at.items()}
    lag_s, missing = stats.lags(sent_at, written, sent.started + plan.warmup_s)
    return {
        "rtt_ms": plan.rtt_ms,
        "load": load,
        "offered_msg_s": round(rate, 1),
        "sent_msg_s": round(sent.rate, 1),
        "sender_max_late_ms": round(sent.max_late_s * 1000, 1),
        "sender_cores": round(sender_cores, 2),  # the sender's own CPU, taken from the same 2 cores
        "warmup_excluded": len(sent.at) - len(lag_s) - missing,
        "missing_writes": missing,
        **stats.summarize(lag_s, plan.rtt_ms),
    }
