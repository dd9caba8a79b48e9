"""`python -m bench.lambda_cpu`: the Lambda handler's CPU per message, warm, against the bench endpoint.

The function runs in its own process, as in Lambda: it imports `service.aws_lambda` (its cold import is timed),
then is invoked with the workload's bodies in events of 10 (Lambda's camelCase records), one invocation after
another as one execution environment sees them. The first invocation (clients opened) is reported apart; the
steady figure is the process's CPU time over the other invocations, divided by their messages. The event source
mapping's own receives and deletes run in Lambda's pollers, not in the function: they are not in this figure,
while the worker's CPU per message (`python -m bench`) includes its receives and deletes.

    python -m bench.lambda_cpu --n 5000 [--batch 10] [--latency-ms 0] [--zip dist/photo-ingest-lambda.zip]

With `--zip`, the function is the unpacked deployment package in a bare interpreter (`python -S`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from bench import workload
from bench.runner import REPO, TABLE, base_env, start_endpoint

FUNCTION = """
import json, resource, sys, time
started, started_cpu = time.perf_counter(), time.process_time()
import service.aws_lambda as function
imported = {"wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - started_cpu}

class Context:
    def __init__(self, n):
        self.aws_request_id, self.deadline = f"bench-{n}", time.monotonic() + 900
    def get_remaining_time_in_millis(self):
        return int((self.deadline - time.monotonic()) * 1000)

def event(bodies, first):
    arn = "arn:aws:sqs:us-east-1:000000000000:bench-queue"
    return {"Records": [{"messageId": f"m-{first + i}", "receiptHandle": "r", "body": body, "eventSource": "aws:sqs",
             "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
             "eventSourceARN": arn} for i, body in enumerate(bodies)]}

bodies, batch = json.load(open(sys.argv[1])), int(sys.argv[3])
events = [event(bodies[i : i + batch], i) for i in range(0, len(bodies), batch)]
cpu, wall = time.process_time(), time.perf_counter()
failures = len(function.handler(events[0], Context(0))["batchItemFailures"])
first = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
cpu, wall = time.process_time(), time.perf_counter()
for n, warm in enumerate(events[1:], 1):
    failures += len(function.handler(warm, Context(n))["batchItemFailures"])
warm = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
warm["messages"] = len(bodies) - len(events[0]["Records"])
function.close()
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
json.dump({"import": imported, "first": first, "warm": warm, "invocations": len(events), "failures": failures,
           "peak_rss_mb": rss_mb}, open(sys.argv[2], "w"))
"""


def measure(n: int, batch: int, latency_ms: float, package: Path | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="lambda-cpu-") as scratch:
        work = Path(scratch)
        endpoint, control = start_endpoint(work)
        try:
            control.call("config", latency_ms=latency_ms)
            (work / "bodies.json").write_text(json.dumps(workload.build(n).bodies))
            env = base_env(control.url) | {"PHOTOS_TABLE": TABLE, "LOG_FORMAT": "json", "METRICS_ENABLED": "true"}
            argv = [sys.executable, "-c", FUNCTION, str(work / "bodies.json"), str(work / "result.json"), str(batch)]
            if package:
                zipfile.ZipFile(package).extractall(work / "task")
                argv[1:1], env["PYTHONPATH"] = ["-S"], str(work / "task")
            with (work / "function.out").open("wb") as out:
                subprocess.run(argv, env=env, cwd=work, stdout=out, check=True, timeout=600)
            result = json.loads((work / "result.json").read_text())
        finally:
            endpoint.popen.terminate()
            endpoint.popen.wait(30)
    warm = result["warm"]
    result["warm_cpu_ms_per_msg"] = round(warm["cpu_s"] * 1000 / warm["messages"], 4)
    result["warm_msgs_per_cpu_s"] = round(warm["messages"] / warm["cpu_s"])
    result["warm_cpu_ms_per_invocation"] = round(warm["cpu_s"] * 1000 / (result["invocations"] - 1), 3)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lambda_cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5_000, help="messages (default 5,000)")
    parser.add_argument("--batch", type=int, default=10, help="messages per invocation (default 10)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the endpoint's per-request latency")
    parser.add_argument("--zip", type=Path, help="run the unpacked deployment package instead of the source tree")
    args = parser.parse_args(argv)
    package = (REPO / args.zip) if args.zip and not args.zip.is_absolute() else args.zip
    print(json.dumps(measure(args.n, args.batch, args.latency_ms, package), indent=2))


if __name__ == "__main__":
    main()
