"""`python -m bench.freshness`: how soon a photo is in the table, from `SendMessage` to the item's write.

For each round trip (5 and 20 ms) and each contender (photo-ingest with its default settings, and the Node peer,
one process each), in one run: the contender's capacity at that RTT (draining a pre-filled queue), then a steady
stream at 50% and 90% of it. The endpoint records each item's first write; the sender each message's send time;
the table gives p50, p99 and max per load, and p99 in round trips against issue 20's goal (at half load, p99 at
most 5 round trips). The first `--warmup-s` of each load is left out (the worker comes from idle: one poller).

python -m bench.freshness                    the whole run (a few minutes on 2 cores)
python -m bench.freshness --rtts 20 --contenders photo-ingest --duration-s 5     a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from bench import freshness_stats, node_peer
from bench.__main__ import RESULTS, environment
from bench.freshness_run import Plan, capacity, loads
from bench.runner import BenchError, Options

DEFAULT_ENV = {"METRICS_ENABLED": "true"}  # photo-ingest's defaults: the runner turns metrics off unless told


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.freshness", description=__doc__.splitlines()[0])
    floats = lambda text: tuple(float(x) for x in text.split(","))  # noqa: E731 - a one-line argparse type
    parser.add_argument("--rtts", type=floats, default=(5.0, 20.0), help="round trips in ms (5,20)")
    parser.add_argument("--loads", type=floats, default=(0.5, 0.9), help="fractions of capacity (0.5,0.9)")
    parser.add_argument("--contenders", default="photo-ingest,node", help="photo-ingest and/or node")
    parser.add_argument("--duration-s", type=float, default=12.0, help="seconds of steady sending per load")
    parser.add_argument("--warmup-s", type=float, default=2.0, help="the first seconds of each load, left out")
    parser.add_argument("--capacity-n", type=int, default=4_000, help="messages drained to measure capacity")
    parser.add_argument("--results", type=os.path.abspath, default=str(RESULTS))
    parser.add_argument("--tag", default="", help="appended to the results file's name")
    parser.add_argument("--service-path", help="PYTHONPATH for photo-ingest: a scratch copy of service/ to try")
    return parser.parse_args(argv)


def contenders(names: list[str], opts: Options) -> list[str]:
    """The contenders that can run here; the Node peer is installed on demand, or skipped with the reason."""
    if "node" not in names:
        return names
    try:
        opts.node_argv = node_peer.install()
    except node_peer.NodePeerUnavailable as exc:
        print(f"bench.freshness: skipping the Node peer (sqs-consumer): {exc}")
        return [name for name in names if name != "node"]
    return names


def measure(args: argparse.Namespace, opts: Options, names: list[str]) -> tuple[list[dict[str, Any]], list[Any]]:
    rows: list[dict[str, Any]] = []
    capacities: list[dict[str, Any]] = []
    for rtt_ms in args.rtts:
        plan = Plan(rtt_ms, args.loads, args.duration_s, args.warmup_s, args.capacity_n)
        for name in names:
            cap = capacity(name, plan, opts)
            capacities.append({k: cap[k] for k in ("case", "latency_ms", "n", "msg_per_s", "cpu_ms_per_msg")})
            print(f"{cap['case']} at {rtt_ms:g} ms: capacity {cap['msg_per_s']:,.0f} msg/s", flush=True)
            rows += loads(name, plan, cap["msg_per_s"], opts)
            for row in rows[-len(args.loads) :]:
                print(f"  {row['load']:.0%}: p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms", flush=True)
    return rows, capacities


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    opts = Options(worker_env=dict(DEFAULT_ENV), service_path=args.service_path)
    names = contenders([n.strip() for n in args.contenders.split(",") if n.strip()], opts)
    env = environment()
    load = os.getloadavg()[0]
    print(f"bench.freshness: {', '.join(names)} at {args.rtts} ms on {env['cpus']} CPUs (load {load:.2f})")
    started = time.monotonic()
    try:
        rows, capacities = measure(args, opts, names)
    except BenchError as exc:
        print(f"bench.freshness: {exc}", file=sys.stderr)
        return 1
    print()
    print(freshness_stats.table(rows))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    document = {
        "argv": sys.argv[1:] if argv is None else argv,
        "stamp": stamp,
        "environment": env | {"loadavg_at_end": os.getloadavg(), "node_peer": opts.node_argv},
        "wall_s": round(time.monotonic() - started, 1),
        "worker_env": opts.worker_env,
        "service_path": opts.service_path,
        "capacities": capacities,
        "rows": rows,
    }
    os.makedirs(args.results, exist_ok=True)
    path = os.path.join(args.results, f"freshness-{stamp}{'-' + args.tag if args.tag else ''}.json")
    with open(path, "w") as out:
        json.dump(document, out, indent=2)
    print(f"\nwall time {document['wall_s']:.0f} s; load average now {os.getloadavg()[0]:.2f}; results: {path}")
    return 0 if all(row["end_state_ok"] and row["missing_writes"] == 0 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
