"""A fault-injecting HTTP proxy for the process-level tests: workers -> proxy -> moto.

It speaks just enough HTTP/1.1 for the AWS JSON protocols (a request line, headers, a body sized by
`Content-Length`), keeps the client's connection alive like AWS does, and opens a fresh upstream connection per
request, because moto's server closes its connection after every response. For a share `rate` of the requests
that carry an `X-Amz-Target` header (DynamoDB's `DynamoDB_20120810.*`, SQS's `AmazonSQS.*`), it injects one of:

    throttle      HTTP 400 with the service's throttling error (DynamoDB: ThrottlingException or
                  ProvisionedThroughputExceededException, carrying `throttling_reasons` if given, as DynamoDB's
                  ThrottlingReasons; SQS: ThrottlingException)
    server_error  HTTP 500 (DynamoDB: InternalServerError; SQS: InternalError)
    cut_before    the connection is closed without a response; moto never sees the request
    cut_after     the request is forwarded and moto answers, then the connection is closed without a response:
                  the call took effect but the client saw a network error (the nasty case)

With `delay_s`, every request those filters select (`services`, `operations`, and `match` on the body) is
held that long before it is answered or faulted: a slow endpoint. A request still held when the proxy stops is
dropped without an answer.

Everything else passes through unchanged, after `delays[operation]` seconds if given (a slow table).
`counts` tells which faults were injected, per kind and per service and operation, so a test can assert that
they happened; `calls` tells how many requests of an operation arrived, so at rate 0 the proxy is an exact
counter of, say, the deletes a worker sends while it runs. The proxy runs its own event loop in a daemon
thread, so a test's blocking boto3 calls never stall it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

FAULT_KINDS = ("throttle", "server_error", "cut_before", "cut_after")
MAX_HEADER_BYTES = 64 * 1024
UPSTREAM_TIMEOUT_S = 60.0  # above the longest long poll (20 s) plus moto's slowest answers
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Photos"

_ERRORS = {
    ("dynamodb", "throttle"): [
        (400, "com.amazonaws.dynamodb.v20120810#ThrottlingException", "Rate exceeded"),
        (
            400,
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded.",
        ),
    ],
    ("dynamodb", "server_error"): [(500, "com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal error")],
    ("sqs", "throttle"): [(400, "com.amazonaws.sqs#ThrottlingException", "Rate exceeded")],
    ("sqs", "server_error"): [(500, "com.amazonaws.sqs#InternalError", "We encountered an internal error.")],
}


@dataclass
class _Request:
    head: bytes  # the request line and headers, without the blank line
    headers: dict[str, str]
    body: bytes

    @property
    def target(self) -> str:
        return self.headers.get("x-amz-target", "")

    @property
    def service(self) -> str | None:
        if self.target.startswith("DynamoDB_"):
            return "dynamodb"
        if self.target.startswith("AmazonSQS."):
            return "sqs"
        return None

    @property
    def operation(self) -> str:
        return self.target.rpartition(".")[2]

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


@dataclass
class FaultProxy:
    """`FaultProxy(upstream, rate=0.15).start()` gives a URL to use as `AWS_ENDPOINT_URL`; `stop()` ends it.

    `rate` and `services` may be changed while it runs. `operations` limits faults to those operation names
    (e.g. {"PutItem"}); `match` to requests whose body holds these bytes (e.g. one photo's id); `kinds` picks
    the fault kinds, chosen uniformly. `delay_s` holds the requests so selected before answering them.
    `throttling_reasons` (e.g. ["TableWriteKeyRangeThroughputExceeded"]) are listed, each for TABLE_ARN, in
    DynamoDB's throttling errors.
    """

    upstream: str
    rate: float = 0.0
    kinds: Sequence[str] = FAULT_KINDS
    services: frozenset[str] = frozenset({"dynamodb", "sqs"})
    operations: frozenset[str] | None = None
    match: bytes | None = None
    delay_s: float = 0.0
    seed: int | None = None
    delays: Mapping[str, float] = field(default_factory=dict)
    throttling_reasons: Sequence[str] = ()
    counts: Counter[str] = field(default_factory=Counter)
    peaks: Counter[str] = field(default_factory=Counter)  # the most requests of each operation open at once
    url: str = ""
    _random: random.Random = field(init=False, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _server: asyncio.Server | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _open: Counter[str] = field(default_factory=Counter, init=False, repr=False)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set, init=False, repr=False)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)
    _closing: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        assert not unknown, f"unknown fault kinds: {unknown}"
        self._random = random.Random(self.seed)
        host, _, port = self.upstream.removeprefix("http://").partition(":")
        self._upstream_host, self._upstream_port = host, int(port or 80)

    # -- life cycle, called from the test's thread ------------------------------------------------------------

    def start(self) -> str:
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), name="fault-proxy", daemon=True)
        self._thread.start()
        assert started.wait(10), "the fault proxy did not start"
        return self.url

    def stop(self) -> None:
        """Close the listener and every open connection, then end the thread."""
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def faults(self, kind: str | None = None, service: str | None = None) -> int:
        """How many faults were injected, optionally of one kind and/or for one service."""
        with self._lock:
            return sum(
                n
                for name, n in self.counts.items()
                if name.startswith("fault:")
                and (kind is None or name.split(":")[1] == kind)
                and (service is None or name.split(":")[2] == service)
            )

    def by_operation(self) -> dict[str, int]:
        """Faults injected per `kind:service:operation`."""
        with self._lock:
            faults = sorted((name, n) for name, n in self.counts.items() if name.startswith("fault:"))
            return {name.removeprefix("fault:"): n for name, n in faults}

    def calls(self, *operations: str) -> int:
        """Requests that arrived for these operations (e.g. "DeleteMessage", "DeleteMessageBatch"), faulted or not."""
        with self._lock:
            return sum(self.counts[f"call:{operation}"] for operation in operations)

    def summary(self) -> dict[str, int]:
        """Requests seen and faults injected, by kind."""
        with self._lock:
            requests = self.counts["requests"]
        return {"requests": requests} | {kind: self.faults(kind) for kind in FAULT_KINDS}

    # -- the server, in its own thread ------------------------------------------------------------------------

    def _serve(self, started: threading.Event) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        started.set()
        try:
            self._loop.run_forever()
        finally:
            self._loop.close()

    async def _shutdown(self) -> None:
        """Abort every connection, so each handler sees end-of-stream and returns; cancel none of them."""
        assert self._server is not None
        self._closing.set()  # held requests are dropped
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5)
        await self._server.wait_closed()

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def _selected(self, request: _Request) -> bool:
        if request.service is None or request.service not in self.services:
            return False
        if self.operations is not None and request.operation not in self.operations:
            return False
        return self.match is None or self.match in request.body

    def _choose_fault(self, request: _Request) -> str | None:
        if not self._selected(request) or self._random.random() >= self.rate:
            return None
        return self._random.choice(list(self.kinds))

    async def _hold(self, request: _Request) -> bool:
        """Wait `delay_s` before answering a selected request; False if the proxy stopped meanwhile."""
        if not self.delay_s or not self._selected(request):
            return True
        self._count(f"delayed:{request.service}:{request.operation}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), self.delay_s)
        return not self._closing.is_set()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                if not await self._answer(request, writer) or not request.keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return
        finally:
            self._handlers.discard(handler)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; False if the connection was cut on purpose."""
        self._count("requests")
        self._count(f"request:{request.service}:{request.operation}")
        self._count(f"call:{request.operation}")
        self._open[request.operation] += 1
        self.peaks[request.operation] = max(self.peaks[request.operation], self._open[request.operation])
        try:
            return await self._answer_now(request, writer)
        finally:
            self._open[request.operation] -= 1

    async def _answer_now(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        if not await self._hold(request):
            return False
        fault = self._choose_fault(request)
        if fault is not None:
            self._count(f"fault:{fault}:{request.service}:{request.operation}")
        if fault == "cut_before":
            return False
        if fault in {"throttle", "server_error"}:
            assert request.service is not None
            status, code, message = self._random.choice(_ERRORS[(request.service, fault)])
            writer.write(_error_response(status, code, message, request.keep_alive, self._reasons(code)))
            await writer.drain()
            return True
        await asyncio.sleep(self.delays.get(request.operation, 0.0))
        response = await self._forward(request)
        if fault == "cut_after":
            return False
        writer.write(response)
        await writer.drain()
        return True

    def _reasons(self, code: str) -> dict[str, object]:
        """DynamoDB's throttling reasons, under the member name of the error's shape."""
        if not self.throttling_reasons or "dynamodb" not in code:
            return {}
        name = "throttlingReasons" if code.endswith("#ThrottlingException") else "ThrottlingReasons"
        return {name: [{"reason": reason, "resource": TABLE_ARN} for reason in self.throttling_reasons]}

    async def _forward(self, request: _Request) -> bytes:
        """Send the request to moto on a fresh connection and return its whole response, re-framed for a
        keep-alive client (moto answers `Connection: close`)."""
        reader, writer = await asyncio.open_connection(self._upstream_host, self._upstream_port)
        self._writers.add(writer)
        try:
            lines = request.head.split(b"\r\n")
            kept = [line for line in lines[1:] if not line.lower().startswith(b"connection:")]
            head = b"\r\n".join([lines[0], *kept, b"Connection: close"])
            writer.write(head + b"\r\n\r\n" + request.body)
            await writer.drain()
            async with asyncio.timeout(UPSTREAM_TIMEOUT_S):
                raw = await reader.read(-1)  # moto closes after its response
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
        if not raw:
            raise ConnectionResetError("the upstream closed without a response")
        head_bytes, _, body = raw.partition(b"\r\n\r\n")
        status_line, *header_lines = head_bytes.split(b"\r\n")
        headers = [
            line
            for line in header_lines
            if not line.lower().startswith((b"connection:", b"content-length:", b"transfer-encoding:"))
        ]
        headers.append(b"Content-Length: " + str(len(body)).encode())
        headers.append(b"Connection: " + (b"keep-alive" if request.keep_alive else b"close"))
        return b"\r\n".join([status_line, *headers]) + b"\r\n\r\n" + body


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed an idle connection
    if len(head) > MAX_HEADER_BYTES:
        return None
    head = head[:-4]
    headers: dict[str, str] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    assert "chunked" not in headers.get("transfer-encoding", ""), "chunked requests are not supported"
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return _Request(head, headers, body)


def _error_response(status: int, code: str, message: str, keep_alive: bool, extra: dict[str, object]) -> bytes:
    body = json.dumps({"__type": code, "message": message, **extra}).encode()
    reason = {400: "Bad Request", 500: "Internal Server Error"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/x-amz-json-1.0\r\n"
        "x-amzn-RequestId: fault-proxy\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode() + body
