"""One benchmark case: a fresh endpoint, the pre-filled queue, the contender's processes, the measurement, and
the end-state check that keeps a fast but wrong run from passing.

The clock and the CPU window run from `arm` (every contender process started, its imports done, its receives
waiting) to `drained` (the endpoint's last delete): start-up is excluded from msg/s and from the steady CPU per
message, and reported separately through each process's whole-life rusage from `os.wait4`.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlencode

from bench import node_peer, workload

REPO = Path(__file__).resolve().parent.parent
QUEUE = "bench-queue"
TABLE = "Photos"
CLK_TCK = os.sysconf("SC_CLK_TCK")
STALL_S = 75.0  # no delete for this long (2.5 visibility timeouts): the contender has lost messages or hung
EXIT_WAIT_S = 30.0
FLOOR_LOOPS = 6
PAIRED = (" (paired)", " (paired)")  # the labels' suffixes in a pair run


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class Case:
    contender: str  # naive | photo-ingest | floor | node
    latency_ms: float
    n: int
    processes: int = 1
    soak: bool = False
    seed: int = 7
    variant: str = "photo-ingest"  # photo-ingest's label: name another build (--service-path) to compare it
    duplicate_every: int = workload.DUPLICATE_EVERY  # 0: every message a distinct photo

    @property
    def label(self) -> str:
        if self.contender == "photo-ingest":
            return f"{self.variant} x{self.processes}" + (" (soak)" if self.soak else "")
        if self.contender == "node":
            return f"node sqs-consumer x{self.processes}"
        return self.contender


@dataclass
class Options:
    worker_env: dict[str, str] = field(default_factory=dict)
    service_path: str | None = None  # PYTHONPATH for photo-ingest: a scratch copy of `service/` to try
    keep_logs: Path | None = None
    profile_dir: Path | None = None  # py-spy (collapsed stacks) of the photo-ingest processes, if installed
    node_argv: list[str] | None = None  # how to run the Node peer (bench/node_peer.py), once installed
    variants: dict[str, dict[str, str]] = field(default_factory=dict)  # more photo-ingest builds: label -> env

    def photo_ingest_env(self, variant: str) -> dict[str, str]:
        """photo-ingest's settings for a variant: --worker-env, --service-path, then the variant's own env
        (where PYTHONPATH names another copy of `service/`)."""
        env = dict(self.worker_env)
        if self.service_path:
            env["PYTHONPATH"] = self.service_path
        return env | self.variants.get(variant, {})


# ---------------------------------------------------------------------------------------------- processes


def proc_cpu_s(pid: int) -> tuple[float, float]:
    """(utime, stime) of a live process, from /proc (10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (user, nice, system, steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + steal) / CLK_TCK  # irq and softirq: mostly our own loopback traffic


def proc_rss_mb(pid: int, field: str = "VmRSS") -> float:
    """VmRSS (now) or VmHWM (the peak since exec) of a live process, in MB; 0 once it has gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    exit_code: int | None = None
    cpu_total_s: float = 0.0
    peak_rss_mb: float = 0.0  # VmHWM: wait4's ru_maxrss would also count the runner's pages at fork/exec

    @property
    def pid(self) -> int:
        return self.popen.pid

    def reap(self, timeout_s: float) -> None:
        """Wait for the exit (a bounded wait on the process's own state) and read its rusage via wait4."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.peak_rss_mb = max(self.peak_rss_mb, proc_rss_mb(self.pid, "VmHWM"))
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.popen.kill()
                pid, status, usage = os.wait4(self.pid, 0)
                break
            time.sleep(0.02)
        self.popen.returncode = self.exit_code = os.waitstatus_to_exitcode(status)
        self.cpu_total_s = usage.ru_utime + usage.ru_stime

    def stderr_tail(self) -> str:
        try:
            return "\n".join(self.stderr.read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return ""


def spawn(name: str, argv: list[str], env: dict[str, str], workdir: Path, stdout: IO[bytes] | None = None) -> Proc:
    out, err = workdir / f"{name}.out", workdir / f"{name}.err"
    with out.open("wb") as out_file, err.open("wb") as err_file:
        popen = subprocess.Popen(argv, stdout=stdout or out_file, stderr=err_file, env=env, cwd=workdir)
    return Proc(name, popen, out, err)


def base_env(endpoint_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"}}
    env |= {
        "PYTHONPATH": str(REPO),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    return env


# ---------------------------------------------------------------------------------------------- the endpoint


class Control:
    """The endpoint's `/_bench/` calls (a connection each: a long wait must not hold up the others)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def call(self, command: str, timeout_s: float = 30.0, **query: object) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
        try:
            conn.request("GET", f"/_bench/{command}?{urlencode(query)}")
            return dict(json.loads(conn.getresponse().read()))
        finally:
            conn.close()

    def wait(self, timeout_s: float, **condition: object) -> dict[str, Any] | None:
        """The endpoint's snapshot once the condition holds; None if it did not within `timeout_s`."""
        try:
            return self.call("wait", timeout_s=timeout_s, **condition)
        except TimeoutError:
            return None


def start_endpoint(workdir: Path, extra_args: list[str] | None = None) -> tuple[Proc, list[Control]]:
    """The endpoint, and a control for each of its ports (one per contender process with `--listeners`)."""
    argv = [sys.executable, "-m", "bench.endpoint", "--queue", QUEUE, "--table", TABLE, *(extra_args or [])]
    proc = spawn("endpoint", argv, base_env(), workdir, stdout=subprocess.PIPE)  # type: ignore[arg-type]
    assert proc.popen.stdout is not None
    line = proc.popen.stdout.readline()
    if not line:
        raise BenchError(f"the endpoint did not start:\n{proc.stderr_tail()}")
    return proc, [Control(int(port)) for port in json.loads(line)["ports"]]


async def _prefill(endpoint_url: str, queue_url: str, bodies: list[str]) -> None:
    from aiobotocore.session import get_session

    env = base_env()
    client = get_session().create_client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    async with client as sqs:
        chunks = [bodies[i : i + 10] for i in range(0, len(bodies), 10)]
        limit = asyncio.Semaphore(8)

        async def send(chunk: list[str]) -> None:
            async with limit:
                entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
                response = await sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
                if response.get("Failed"):
                    raise BenchError(f"pre-fill failed: {response['Failed']}")

        await asyncio.gather(*(send(chunk) for chunk in chunks))


# ---------------------------------------------------------------------------------------------- contenders


def queue_url(endpoint_url: str) -> str:
    return f"{endpoint_url}/000000000000/{QUEUE}"


def contender_procs(case: Case, opts: Options, endpoint_urls: list[str], workdir: Path) -> list[Proc]:
    """The case's processes; process i talks to `endpoint_urls[i]` (its own port when there are several)."""

    def env_for(index: int) -> dict[str, str]:
        url = endpoint_urls[index % len(endpoint_urls)]
        return base_env(url) | {"QUEUE_URL": queue_url(url), "PHOTOS_TABLE": TABLE, "RAW_PREFIX": workload.RAW_PREFIX}

    bin_dir = Path(sys.executable).parent
    if case.contender == "naive":
        return [spawn("naive", [sys.executable, "-m", "bench.naive"], env_for(0), workdir)]
    if case.contender == "floor":
        argv = [sys.executable, "-m", "bench.floor", "--n", str(case.n), "--seed", str(case.seed)]
        return [spawn("floor", [*argv, "--loops", str(FLOOR_LOOPS)], env_for(0), workdir)]
    if case.contender == "node":
        if not opts.node_argv:
            raise BenchError("the Node peer is not installed (bench/node_peer.py)")
        return [spawn(f"node-{i}", opts.node_argv, env_for(i), workdir) for i in range(case.processes)]
    worker_env = {"LOG_FORMAT": "json", "METRICS_ENABLED": "false", **opts.photo_ingest_env(case.variant)}
    procs = []
    for index in range(case.processes):
        env_i = env_for(index) | worker_env | {"HEALTH_FILE": str(workdir / f"health-{index}")}
        procs.append(spawn(f"photo-ingest-{index}", [str(bin_dir / "photo-ingest"), "run"], env_i, workdir))
    return procs


def expected_receivers(case: Case, opts: Options) -> int:
    """How many receives are waiting once the contender is up: that is when the clock may start."""
    if case.contender == "naive":
        return 1
    if case.contender == "floor":
        return FLOOR_LOOPS
    if case.contender == "node":
        return case.processes * node_peer.CONSUMERS
    env = opts.photo_ingest_env(case.variant)
    if idle_pollers(env.get("PYTHONPATH")) == 1:  # pollers that adapt to demand: one while idle
        return case.processes
    return case.processes * int(env.get("POLLERS") or idle_pollers(env.get("PYTHONPATH")))


@functools.cache
def idle_pollers(service_path: str | None) -> int:
    """How many pollers an idle photo-ingest runs, read from the code that will run (a scratch copy may
    differ): one where pollers adapt to demand (service/worker/pollers.py), else its POLLERS default."""
    env = base_env() | ({"PYTHONPATH": service_path} if service_path else {})
    code = (
        "import importlib.util; from service.config import Settings; "
        "print(1 if importlib.util.find_spec('service.worker.pollers') else Settings.model_fields['pollers'].default)"
    )
    neutral = tempfile.gettempdir()  # `python -c` puts its working directory first on sys.path
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=neutral)
    return int(out.stdout.strip())


# ---------------------------------------------------------------------------------------------- one case


class Stage:
    """One case's world: its endpoint, its pre-filled queue, its contender processes, and their figures."""

    def __init__(self, case: Case, opts: Options, workdir: Path, endpoint_args: list[str] | None = None) -> None:
        self.case, self.opts = case, opts
        self.workdir = workdir / case.label.replace(" ", "_")
        self.workdir.mkdir()
        self.jobs = workload.build(case.n, case.seed, case.duplicate_every)
        self.endpoint, self.controls = start_endpoint(self.workdir, endpoint_args)
        self.control = self.controls[0]
        self.queue_url = queue_url(self.control.url)
        self.procs: list[Proc] = []
        self.profilers: list[subprocess.Popen[bytes]] = []
        self.rss: dict[str, list[float]] = {}
        self.cpu0: list[tuple[float, float]] = []

    def start(self) -> None:
        asyncio.run(_prefill(self.control.url, self.queue_url, self.jobs.bodies))
        self.control.call("config", latency_ms=self.case.latency_ms)
        urls = [control.url for control in self.controls]
        self.procs = contender_procs(self.case, self.opts, urls, self.workdir)

    def wait_ready(self) -> None:
        ready = self.control.wait(120.0, receivers=expected_receivers(self.case, self.opts))
        if ready is None or any(p.popen.poll() is not None for p in self.procs):
            tails = "\n".join(f"{p.name}: {p.stderr_tail()}" for p in self.procs)
            raise BenchError(f"{self.case.label}: the contender did not start polling:\n{tails}")
        self.profilers = _start_profilers(self.case, self.opts, self.procs)

    def arm(self) -> None:
        self.cpu0 = [proc_cpu_s(p.pid) for p in self.procs]
        self.rss["start"] = self.sample_rss()
        self.control.call("arm")

    def sample_rss(self) -> list[float]:
        return [proc_rss_mb(p.pid) for p in self.procs]

    def cpu_since_arm(self) -> tuple[float, float]:
        per_proc = self.cpu_since_arm_per_proc()
        return sum(u for u, _ in per_proc), sum(s for _, s in per_proc)

    def cpu_since_arm_per_proc(self) -> list[tuple[float, float]]:
        now = [proc_cpu_s(p.pid) for p in self.procs]
        return [(u - u0, s - s0) for (u, s), (u0, s0) in zip(now, self.cpu0, strict=True)]

    def stop_contenders(self) -> None:
        for profiler in self.profilers:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(EXIT_WAIT_S)
        for proc in self.procs:
            if proc.exit_code is None:
                proc.peak_rss_mb = max(proc.peak_rss_mb, proc_rss_mb(proc.pid, "VmHWM"))  # a quick exit leaves none
                proc.popen.send_signal(signal.SIGTERM)
        for proc in self.procs:
            if proc.exit_code is None:
                proc.reap(EXIT_WAIT_S)

    def close(self) -> None:
        self.stop_contenders()
        self.endpoint.popen.send_signal(signal.SIGTERM)
        self.endpoint.reap(EXIT_WAIT_S)
        if self.endpoint.popen.stdout is not None:
            self.endpoint.popen.stdout.close()
        if self.opts.keep_logs:
            _keep_logs(self.workdir, self.opts.keep_logs, self.case)

    def figures(self, drained: dict[str, Any], cpu: tuple[float, float], other_cores: float, n: int) -> dict[str, Any]:
        """The case's figures; `cpu` is the contender's (user, system) seconds over its first `n` messages;
        `other_cores` is what everything else on the machine used meanwhile (other engineers' tests)."""
        case, stats = self.case, self.control.call("stats")
        marks = drained["marks"]
        wall_s = marks["drained"]["t"] - marks["armed"]["t"]
        endpoint_cpu_s = marks["drained"]["cpu_s"] - marks["armed"]["cpu_s"]
        user_s, system_s = cpu
        return {
            "case": case.label,
            "contender": case.contender,
            "processes": case.processes,
            "latency_ms": case.latency_ms,
            "n": case.n,
            "wall_s": round(wall_s, 3),
            "msg_per_s": round(case.n / wall_s, 1),
            "cpu_ms_per_msg": round((user_s + system_s) * 1000 / n, 4),
            "cpu_ms_per_msg_user_system": [round(user_s * 1000 / n, 4), round(system_s * 1000 / n, 4)],
            "cpu_ms_per_msg_with_startup": round(sum(p.cpu_total_s for p in self.procs) * 1000 / case.n, 4),
            "worker_cores": round((user_s + system_s) / wall_s * case.n / n, 2),
            "other_cores": round(max(0.0, other_cores), 2),
            "peak_rss_mb": round(max(p.peak_rss_mb for p in self.procs), 1),
            "rss_mb": {k: [round(v, 1) for v in values] for k, values in self.rss.items()},
            "exit_codes": [p.exit_code for p in self.procs],
            "stderr": {p.name: p.stderr_tail() for p in self.procs if p.exit_code},
            "endpoint": {
                "cpu_window_s": round(endpoint_cpu_s, 3),
                "cpu_ms_per_msg": round(endpoint_cpu_s * 1000 / case.n, 4),
                "core_share": round(endpoint_cpu_s / wall_s, 3),
                "connections": stats["connections"],
            },
            "calls_per_msg": {op: round(count / case.n, 3) for op, count in sorted(stats["calls"].items())},
            "endpoint_counts": {k: v for k, v in stats.items() if k not in {"calls", "marks", "queues", "items"}},
        }

    def end_state(self) -> dict[str, Any]:
        return check_end_state(self.control.url, self.queue_url, self.jobs)


def run_case(case: Case, opts: Options) -> dict[str, Any]:
    """One contender alone: the clock runs from `arm` to the endpoint's last delete."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        stage = Stage(case, opts, Path(tmp))
        try:
            stage.start()
            stage.wait_ready()
            busy0 = machine_busy_s()
            stage.arm()
            if case.soak:
                for label, threshold in (("at_20000", min(20_000, case.n)), ("middle", case.n // 2)):
                    wait_progress(stage, deleted=threshold)
                    stage.rss[label] = stage.sample_rss()
            drained = wait_progress(stage, drained=1)
            busy_s, cpu = machine_busy_s() - busy0, stage.cpu_since_arm()
            stage.rss["end"] = stage.sample_rss()
            stage.stop_contenders()
            marks = drained["marks"]
            wall_s = marks["drained"]["t"] - marks["armed"]["t"]
            others = (busy_s - sum(cpu) - (marks["drained"]["cpu_s"] - marks["armed"]["cpu_s"])) / wall_s
            result = stage.figures(drained, cpu, others, case.n)
            result["end_state"] = stage.end_state()
        finally:
            stage.close()
        result["endpoint"]["cpu_total_s"] = round(stage.endpoint.cpu_total_s, 3)
        return result


def run_pair(first: Case, second: Case, opts: Options, suffixes: tuple[str, str] = PAIRED) -> list[dict[str, Any]]:
    """Two contenders at the same time, each on its own endpoint, armed together: both see the same machine
    noise, so their CPU per message compares fairly on a shared, busy machine. CPU per message is taken over
    the overlap: from `arm` until the first of the two drains (the other's count of deletes at that moment)."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        stages = [Stage(first, opts, Path(tmp)), Stage(second, opts, Path(tmp))]
        try:
            for stage in stages:
                stage.start()
            for stage in stages:
                stage.wait_ready()
            busy0 = machine_busy_s()
            for stage in stages:
                stage.arm()
            armed_at = time.monotonic()
            first, snapshot = _wait_first_drained(stages)
            overlap_s = time.monotonic() - armed_at
            overlap = [(stage.cpu_since_arm(), stage.control.call("stats")) for stage in stages]
            busy_s = machine_busy_s() - busy0
            ours = sum(sum(cpu) + stats["cpu_s"] - stats["marks"]["armed"]["cpu_s"] for cpu, stats in overlap)
            others = (busy_s - ours) / overlap_s
            results = []
            for stage, (cpu, stats), suffix in zip(stages, overlap, suffixes, strict=True):
                drained = snapshot if stage is first else wait_progress(stage, drained=1)
                stage.stop_contenders()
                deleted = stats["deleted"]
                result = stage.figures(drained, cpu, others, max(1, deleted))
                result["case"] += suffix
                result["overlap_messages"] = deleted
                result["end_state"] = stage.end_state()
                results.append(result)
        finally:
            for stage in stages:
                stage.close()
        return results


def _wait_first_drained(stages: list[Stage]) -> tuple[Stage, dict[str, Any]]:
    while True:
        for stage in stages:
            snapshot = stage.control.wait(0.1, drained=1)
            if snapshot is not None:
                return stage, snapshot
            if any(p.popen.poll() is not None for p in stage.procs):
                raise BenchError(f"{stage.case.label} exited early:\n{stage.procs[0].stderr_tail()}")


def _start_profilers(case: Case, opts: Options, procs: list[Proc]) -> list[subprocess.Popen[bytes]]:
    """py-spy on each photo-ingest process, from before `arm` to `drained` (idle samples are not kept)."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not opts.profile_dir or case.contender in {"naive", "node"} or not py_spy.exists():
        return []
    opts.profile_dir.mkdir(parents=True, exist_ok=True)
    profilers = []
    for proc in procs:
        out = opts.profile_dir / f"{case.label.replace(' ', '_')}-{case.latency_ms:g}ms-{proc.name}.txt"
        argv = [str(py_spy), "record", "--pid", str(proc.pid), "--rate", "200", "--nonblocking", "--format", "raw"]
        profilers.append(
            subprocess.Popen([*argv, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    time.sleep(1.0)  # py-spy needs a moment to attach; nothing is measured yet
    return profilers


def wait_progress(stage: Stage, **condition: object) -> dict[str, Any]:
    """Wait for an endpoint condition while deletes keep coming; fail on a stall or a dead contender."""
    control = stage.control
    last_deleted, last_progress = -1, time.monotonic()
    while True:
        snapshot = control.wait(5.0, **condition)
        if snapshot is not None:
            return snapshot
        dead = [p for p in stage.procs if p.popen.poll() is not None]
        if dead:
            raise BenchError(f"{dead[0].name} exited early:\n{dead[0].stderr_tail()}")
        stats = control.call("stats")
        deleted = stats["deleted"] + stats.get("dead_lettered", 0)  # a redrive is progress too
        if deleted != last_deleted:
            last_deleted, last_progress = deleted, time.monotonic()
        elif time.monotonic() - last_progress > STALL_S:
            raise BenchError(f"no progress for {STALL_S:.0f} s at {deleted} deleted: lost or stuck messages")


# ---------------------------------------------------------------------------------------------- the end state


def check_end_state(endpoint_url: str, queue_url: str, jobs: workload.Workload) -> dict[str, Any]:
    """Items == distinct photos, each with the contract's photoId; the queue empty; nothing else written."""
    import boto3

    env = base_env(endpoint_url)
    session = boto3.Session(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], region_name=env["AWS_REGION"])
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    ddb = session.client("dynamodb", endpoint_url=endpoint_url)
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    left = int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
    items = [item for page in ddb.get_paginator("scan").paginate(TableName=TABLE) for item in page["Items"]]
    expected = jobs.distinct
    ids = [item["photoId"]["S"] for item in items]
    objects = [(item["s3Bucket"]["S"], item["s3Key"]["S"]) for item in items]
    wrong_id = sum(1 for pid, (b, k) in zip(ids, objects, strict=True) if pid != workload.photo_id(b, k))
    unexpected = len(set(ids) - set(expected))
    missing_ids = sorted(set(expected) - set(ids))
    missing = len(missing_ids)
    duplicates = len(objects) - len(set(objects))
    result = {
        "items": len(items),
        "distinct_photos": len(expected),
        "duplicate_items": duplicates,
        "wrong_photo_id": wrong_id,
        "unexpected_items": unexpected,
        "missing_photos": missing,
        "queue_left": left,
    }
    result["ok"] = len(items) == len(expected) and duplicates == wrong_id == unexpected == missing == 0 and left == 0
    result["missing_ids"] = missing_ids  # the fleet looks for them on the dead-letter queue
    return result


def _keep_logs(workdir: Path, dest: Path, case: Case) -> None:
    target = dest / f"{case.label.replace(' ', '_')}-{case.latency_ms:g}ms"
    target.mkdir(parents=True, exist_ok=True)
    for path in workdir.iterdir():
        if path.is_file():
            (target / path.name).write_bytes(path.read_bytes())
