"""`python -m bench.otel_cost`: photo-ingest's CPU per message with telemetry off and on, one case after another
on the bench endpoint, in rounds, each round in another order (so the machine's drift, and whatever one case
leaves behind for the next, hits every variant alike):

    before         the service/ of another revision (--baseline REV, e.g. the commit before telemetry)
    unconfigured   this build, the `otel` extra installed, no OTEL_* variable: nothing imported, nothing sent
    sampled 100%   OTEL_EXPORTER_OTLP_ENDPOINT at a local receiver (it answers 200 and drops the data),
                   OTEL_TRACES_SAMPLER=always_on: every span exported
    sampled 1%     the same with OTEL_TRACES_SAMPLER=traceidratio, OTEL_TRACES_SAMPLER_ARG=0.01

    python -m bench.otel_cost [--n 5000] [--latency-ms 0] [--rounds 3] [--baseline REV]

The figure is the worker's CPU time (user + system) between the first receive and the last delete, per message:
the median of the rounds per variant. Its spans are exported by a background thread of the same process, so
they are in it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any

from bench.runner import REPO, Case, Options, run_case


class _Discard(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def receiver() -> Iterator[str]:
    """An OTLP/HTTP endpoint on loopback that accepts every export and keeps nothing."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discard)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def checkout(revision: str, into: Path) -> str:
    """`service/` as it was at `revision`, for PYTHONPATH."""
    archive = subprocess.run(["git", "archive", revision, "service"], cwd=REPO, check=True, capture_output=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return str(into)


def variants(endpoint: str, baseline: str | None) -> dict[str, dict[str, str]]:
    sampled = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "photo-ingest-bench"}
    found = {
        "unconfigured": {},
        "sampled 100%": sampled | {"OTEL_TRACES_SAMPLER": "always_on"},
        "sampled 1%": sampled | {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"},
    }
    if baseline:
        found = {f"before ({baseline})": {"PYTHONPATH": checkout(baseline, Path(tempfile.mkdtemp()))}} | found
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.otel_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5_000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", help="a git revision whose service/ runs as the 'before' variant")
    args = parser.parse_args(argv)
    figures: dict[str, list[float]] = {}
    with receiver() as endpoint:
        found = variants(endpoint, args.baseline)
        opts = Options(variants=found)
        labels = list(found)
        for round_ in range(args.rounds):
            for label in labels[round_ % len(labels) :] + labels[: round_ % len(labels)]:  # each round rotated
                result = run_case(Case("photo-ingest", args.latency_ms, args.n, variant=label), opts)
                assert result["end_state"]["ok"], result["end_state"]
                figures.setdefault(label, []).append(result["cpu_ms_per_msg"])
                print(json.dumps({"variant": label, "cpu_ms_per_msg": result["cpu_ms_per_msg"]}), flush=True)
    first = statistics.median(next(iter(figures.values())))
    print(f"\nCPU per message, median of {args.rounds} rounds, N={args.n}, {args.latency_ms:g} ms per request")
    for label, values in figures.items():
        median = statistics.median(values)
        print(f"  {label:<22} {median * 1000:7.1f} us  ({median / first - 1:+.1%})  rounds: {values}")


if __name__ == "__main__":
    main()
