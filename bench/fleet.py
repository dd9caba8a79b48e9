"""The fleet benchmark (issue 14): K worker processes share one table of C writes a second.

Each case is one endpoint whose table admits C writes a second (`bench/capacity.py`, empty at `arm`), whose
queue has a redrive policy to a dead-letter queue, and which gives every process its own port so that each
count is also known per process. The queue is pre-filled with N notifications of N distinct photos (no
duplicate deliveries: every message needs exactly one write, so the ideal is N / C seconds and
goodput / C = 1). The clock runs from `arm` until the queue is empty: every message deleted or dead-lettered.

Figures, all counted at the endpoint except CPU and memory:
- goodput: items written a second (`put.written` / wall time), and goodput / C;
- throttled: throttled `PutItem` attempts / all `PutItem` attempts (the SDK's retries are attempts too);
- receives per message: deliveries / N (1.0 when nothing is received twice);
- the highest `ApproximateReceiveCount` delivered, and the messages moved to the dead-letter queue;
- CPU per message: the processes' CPU from `arm` to the end / N; peak RSS: the largest process's VmHWM.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.runner import (
    QUEUE,
    BenchError,
    Case,
    Options,
    Stage,
    base_env,
    check_end_state,
    machine_busy_s,
    wait_progress,
)

DLQ = f"{QUEUE}-dlq"
TARGET_GOODPUT = 0.9  # goodput >= 0.9 C
TARGET_THROTTLED = 0.05  # <= 5% of put attempts throttled
TARGET_RECEIVES = 2.0  # <= 2 receives per message
TARGET_DLQ = 0


@dataclass(frozen=True)
class Fleet:
    """The shared table and queue of a fleet case."""

    wcu: float | None = 300.0  # the table's write capacity, writes a second
    latency_ms: float = 5.0
    n: int = 4_500
    partition_wcu: float | None = None  # hot-partition mode: each key range's capacity
    partitions: int = 1
    max_receive_count: int = 5
    visibility_timeout_s: int = 30
    burst_s: float = 1.0

    @property
    def capacity(self) -> float:
        """The writes a second the table can take at most: the table's capacity or the key ranges' sum."""
        limits = [x for x in (self.wcu, (self.partition_wcu or 0) * self.partitions) if x]
        if not limits:
            raise ValueError("a fleet case needs a table capacity (--fleet-wcu) or --partition-wcu")
        return min(limits)

    def endpoint_args(self, listeners: int) -> list[str]:
        args = ["--dead-letter-queue", DLQ, "--max-receive-count", str(self.max_receive_count)]
        args += ["--visibility-timeout", str(self.visibility_timeout_s), "--burst-s", str(self.burst_s)]
        args += ["--listeners", str(listeners)]
        if self.wcu:
            args += ["--table-wcu", str(self.wcu)]
        if self.partition_wcu:
            args += ["--partition-wcu", str(self.partition_wcu), "--partitions", str(self.partitions)]
        return args


def case_for(contender: str, processes: int, fleet: Fleet, variant: str) -> Case:
    return Case(contender, fleet.latency_ms, fleet.n, processes, variant=variant, duplicate_every=0)


def run_fleet_case(case: Case, opts: Options, fleet: Fleet) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        stage = Stage(case, opts, Path(tmp), fleet.endpoint_args(case.processes))
        try:
            stage.start()
            stage.wait_ready()
            busy0 = machine_busy_s()
            stage.arm()
            drained = wait_progress(stage, drained=1)
            cpu = stage.cpu_since_arm_per_proc()
            busy_s = machine_busy_s() - busy0
            stats = stage.control.call("stats")
            stage.stop_contenders()
            result = figures(stage, fleet, drained, stats, cpu)
            wall_s = result["wall_s"]
            endpoint_cpu_s = drained["marks"]["drained"]["cpu_s"] - drained["marks"]["armed"]["cpu_s"]
            result["other_cores"] = round(max(0.0, (busy_s - result["cpu_s"] - endpoint_cpu_s) / wall_s), 2)
            result["end_state"] = end_state(stage, stats)
        finally:
            stage.close()
        return result


def figures(
    stage: Stage, fleet: Fleet, drained: dict[str, Any], stats: dict[str, Any], cpu: list[tuple[float, float]]
) -> dict[str, Any]:
    case = stage.case
    marks = drained["marks"]
    wall_s = marks["drained"]["t"] - marks["armed"]["t"]
    puts = stats["calls"].get("PutItem", 0)
    written = stats.get("put.written", 0)
    cpu_s = sum(u + s for u, s in cpu)
    goodput = written / wall_s
    return {
        "case": case.label,
        "contender": case.contender,
        "processes": case.processes,
        "latency_ms": case.latency_ms,
        "n": case.n,
        "wcu": fleet.wcu,
        "partition_wcu": fleet.partition_wcu,
        "partitions": fleet.partitions if fleet.partition_wcu else None,
        "capacity": fleet.capacity,
        "max_receive_count_policy": fleet.max_receive_count,
        "wall_s": round(wall_s, 3),
        "ideal_wall_s": round(case.n / fleet.capacity, 3),
        "items_written": written,
        "goodput": round(goodput, 1),
        "goodput_over_c": round(goodput / fleet.capacity, 3),
        "put_attempts": puts,
        "put_throttled": stats.get("put.throttled", 0),
        "throttled_share": round(stats.get("put.throttled", 0) / puts, 4) if puts else 0.0,
        "condition_failed": stats.get("put.condition_failed", 0),
        "receives_per_msg": round(stats.get("delivered", 0) / case.n, 3),
        "max_receive_count": stats.get("max_receive_count", 0),
        "dead_lettered": stats.get("dead_lettered", 0),
        "calls_per_msg": {op: round(count / case.n, 3) for op, count in sorted(stats["calls"].items())},
        "cpu_s": round(cpu_s, 3),
        "cpu_ms_per_msg": round(cpu_s * 1000 / case.n, 4),
        "peak_rss_mb": round(max(p.peak_rss_mb for p in stage.procs), 1),
        "exit_codes": [p.exit_code for p in stage.procs],
        "stderr": {p.name: p.stderr_tail() for p in stage.procs if p.exit_code},
        "per_process": per_process(stats, cpu, stage),
        "endpoint_counts": {k: v for k, v in stats.items() if k not in {"calls", "marks", "queues", "by_listener"}},
    }


def per_process(stats: dict[str, Any], cpu: list[tuple[float, float]], stage: Stage) -> list[dict[str, Any]]:
    """Process i had port i: the endpoint's counts for that port are this process's own."""
    rows = []
    for index, (proc, (user_s, system_s)) in enumerate(zip(stage.procs, cpu, strict=True)):
        mine = stats.get("by_listener", {}).get(str(index), {})
        puts, deleted = mine.get("call.PutItem", 0), mine.get("deleted", 0)
        rows.append(
            {
                "process": proc.name,
                "received": mine.get("delivered", 0),
                "deleted": deleted,
                "puts": puts,
                "throttled": mine.get("put.throttled", 0),
                "throttled_share": round(mine.get("put.throttled", 0) / puts, 4) if puts else 0.0,
                "written": mine.get("put.written", 0),
                "cpu_s": round(user_s + system_s, 3),
                "cpu_ms_per_msg": round((user_s + system_s) * 1000 / deleted, 4) if deleted else None,
                "peak_rss_mb": round(proc.peak_rss_mb, 1),
                "exit_code": proc.exit_code,
            }
        )
    return rows


def end_state(stage: Stage, stats: dict[str, Any]) -> dict[str, Any]:
    """The usual check, except that a photo whose message is on the dead-letter queue is not lost: it is
    waiting there for a redrive. Lost is a missing photo that is nowhere."""
    result = check_end_state(stage.control.url, stage.queue_url, stage.jobs)
    dead = dead_lettered_photos(stage, stats.get("dead_lettered", 0))
    missing = set(result.pop("missing_ids"))
    result["dead_lettered_photos"] = len(dead)
    result["lost"] = len(missing - dead)
    result["ok"] = (
        result["duplicate_items"] == result["wrong_photo_id"] == result["unexpected_items"] == result["lost"] == 0
        and result["queue_left"] == 0
    )
    return result


def dead_lettered_photos(stage: Stage, count: int) -> set[str]:
    """The photoIds of the messages on the dead-letter queue (read once each, hidden for the rest of the run)."""
    import boto3

    env = base_env(stage.control.url)
    session = boto3.Session(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])
    sqs = session.client("sqs", endpoint_url=stage.control.url)
    url = stage.queue_url.rsplit("/", 1)[0] + f"/{DLQ}"
    by_body = {body: photo.photo_id for body, photo in zip(stage.jobs.bodies, stage.jobs.photos, strict=True)}
    found: set[str] = set()
    seen = 0
    while seen < count:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=3600).get("Messages")
        if not messages:
            raise BenchError(f"the dead-letter queue holds fewer than the {count} messages moved to it")
        seen += len(messages)
        found |= {by_body[m["Body"]] for m in messages}
    return found


def meets(result: dict[str, Any]) -> dict[str, bool]:
    """The issue's targets for one fleet row (reported, not enforced)."""
    return {
        f"goodput >= {TARGET_GOODPUT:g} C": result["goodput_over_c"] >= TARGET_GOODPUT,
        f"throttled <= {TARGET_THROTTLED:.0%}": result["throttled_share"] <= TARGET_THROTTLED,
        f"receives/msg <= {TARGET_RECEIVES:g}": result["receives_per_msg"] <= TARGET_RECEIVES,
        "DLQ 0": result["dead_lettered"] == TARGET_DLQ,
    }
