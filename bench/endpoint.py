"""A fast local AWS endpoint for the benchmark: the SQS JSON protocol and the DynamoDB JSON protocol on
127.0.0.1, HTTP/1.1 keep-alive, real semantics, and a configurable per-request latency.

It is a benchmark tool, not a test double: the product's tests stay on moto. moto manages ~430 puts a second
with no keep-alive; this answers a request in tens of microseconds of CPU, so the contenders, not the
endpoint, are what the benchmark measures (its own CPU is reported with every case to show it).

Semantics kept:
- SQS: receipt handles valid for their own receive only (the latest one), visibility timeouts that expire and
  redeliver, long polling (`WaitTimeSeconds`), `ApproximateReceiveCount` and `SentTimestamp`, a correct
  `MD5OfBody`, batch calls answering 200 with per-entry `Failed`, modelled errors (`__type` plus
  `x-amzn-query-error`, as SQS's awsQueryCompatible JSON protocol sends them).
- SQS redrive: with `--dead-letter-queue NAME --max-receive-count K`, a message already received K times is
  moved to the dead-letter queue by the receive that would have delivered it a (K+1)th time, as SQS does.
- DynamoDB: `PutItem` with `attribute_not_exists(<hash key>)` answering `ConditionalCheckFailedException`,
  with the old `Item` when `ReturnValuesOnConditionCheckFailure=ALL_OLD`; `Scan` with pagination;
  `DescribeTable`; `x-amz-crc32` on every response, as DynamoDB sends it.
- DynamoDB PartiQL (photo-ingest's `WRITE_MODE=batch`): `BatchExecuteStatement` of 1-25 statements, each the
  one statement photo-ingest sends, `INSERT INTO "<table>" VALUE {'<name>': ?, ...}` with `Parameters`. An
  INSERT whose key exists answers `DuplicateItem` for that statement alone and overwrites nothing (without
  `Item`: whether DynamoDB sends it is not documented, so the worker confirms with `GetItem`). Two statements
  on one item fail the whole call, as `BatchWriteItem`'s do. A statement beyond the write capacity answers
  `ProvisionedThroughputExceeded` alone. Counted as the conditional put's outcomes (`put.written`, ...).
- Write capacity (`bench/capacity.py`): `--table-wcu C` and/or `--partition-wcu W --partitions P` throttle puts
  with `ProvisionedThroughputExceededException` (HTTP 400, `message` and `ThrottlingReasons`
  `[{reason, resource}]`). The capacity is checked before the condition, so a throttled put never writes.
- The latency is applied with the event loop's timer before the response is written: it costs no CPU.
- `--listeners K` serves the same state on K ports, so that each contender process can get its own port and
  every count is also kept per port (`by_listener` in the stats): who received, deleted, put, was throttled.

Bench control (never delayed) lives under `/_bench/`: `stats`, `config?latency_ms=`, `arm`, `writes` (each
item's first write, `time.monotonic()`, by key: bench/freshness.py), and
`wait?receivers=K` | `wait?deleted=N` | `wait?drained=1` (answers once the condition holds: no sleeps).
Until `arm`, receives deliver nothing (they long-poll), so every contender process can finish starting up
and be waiting before the clock starts.

Run: `python -m bench.endpoint --port 0`; it prints `{"port": P, "ports": [P, ...]}` on its first line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import hashlib
import heapq
import itertools
import json
import re
import resource
import signal
import sys
import time
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bench.capacity import WriteCapacity

ACCOUNT = "000000000000"
REGION = "us-east-1"
SQS_BATCH_MAX = 10
PARTIQL_BATCH_MAX = 25
PARTIQL_INSERT = re.compile(r'^INSERT INTO "(?P<table>[^"]+)" VALUE \{(?P<body>.*)\}$', re.DOTALL)
PARTIQL_PLACEHOLDER = re.compile(r"'([^']+)'\s*:\s*\?")
SCAN_PAGE_ITEMS = 2_000  # about 1 MB of these items, DynamoDB's page size
SQS_ERRORS = {  # code -> (HTTP status, query-compatible code)
    "QueueDoesNotExist": (400, "AWS.SimpleQueueService.NonExistentQueue"),
    "ReceiptHandleIsInvalid": (400, "ReceiptHandleIsInvalid"),
    "MessageNotInflight": (400, "AWS.SimpleQueueService.MessageNotInflight"),
    "TooManyEntriesInBatchRequest": (400, "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
    "EmptyBatchRequest": (400, "AWS.SimpleQueueService.EmptyBatchRequest"),
    "BatchEntryIdsNotDistinct": (400, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
    "InvalidParameterValue": (400, "InvalidParameterValue"),
    "UnsupportedOperation": (400, "AWS.SimpleQueueService.UnsupportedOperation"),
}
THROTTLED_MESSAGES = {  # what DynamoDB says with each reason
    "TableWriteProvisionedThroughputExceeded": "The level of configured provisioned throughput for the table was "
    "exceeded. Consider increasing your provisioning level with the UpdateTable API.",
    "TableWriteKeyRangeThroughputExceeded": "Throughput exceeds the current capacity for one or more partitions of "
    "your table or index. Spread your writes across partition keys, or retry later.",
}


class ApiError(Exception):
    def __init__(self, code: str, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra or {}


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ---------------------------------------------------------------------------------------------------- SQS


@dataclass(slots=True, eq=False)
class Msg:
    id: str
    body: str
    md5: str
    sent_ms: int
    receive_count: int = 0
    receipt: str = ""
    visible: bool = True
    deleted: bool = False
    gen: int = 0  # bumped at every visibility change: stale timer entries are skipped


@dataclass(slots=True, eq=False)
class Waiter:
    conn: HttpConnection
    queue: Queue
    max_messages: int
    visibility_s: int
    attributes: frozenset[str]
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class Queue:
    name: str
    url: str
    visibility_timeout_s: int = 30
    msgs: dict[str, Msg] = field(default_factory=dict)
    visible: deque[Msg] = field(default_factory=deque)
    n_visible: int = 0
    timers: list[tuple[float, int, str]] = field(default_factory=list)  # (visible_at, gen, id)
    deleted_ids: set[str] = field(default_factory=set)
    dead_letter: Queue | None = None  # the redrive policy's target
    max_receive_count: int = 0
    moved_to_dead_letter: int = 0

    def send(self, body: str) -> Msg:
        msg = Msg(str(uuid.uuid4()), body, hashlib.md5(body.encode()).hexdigest(), int(time.time() * 1000))  # noqa: S324 - SQS's checksum
        self.msgs[msg.id] = msg
        self.visible.append(msg)
        self.n_visible += 1
        return msg

    def expire(self, now: float) -> int:
        """Make messages whose visibility timeout has ended visible again; returns how many."""
        count = 0
        while self.timers and self.timers[0][0] <= now:
            _, gen, mid = heapq.heappop(self.timers)
            msg = self.msgs.get(mid)
            if msg is not None and not msg.visible and msg.gen == gen:
                self._show(msg)
                count += 1
        return count

    def take(self, max_messages: int, visibility_s: int, now: float) -> list[Msg]:
        taken: list[Msg] = []
        while self.visible and len(taken) < max_messages:
            msg = self.visible.popleft()
            if msg.deleted or not msg.visible:
                continue
            if self.dead_letter is not None and msg.receive_count >= self.max_receive_count:
                self.move_to_dead_letter(msg)
                continue
            msg.visible = False
            self.n_visible -= 1
            msg.receive_count += 1
            msg.gen += 1
            msg.receipt = f"{msg.id}.{msg.gen}.{msg.receive_count}"
            heapq.heappush(self.timers, (now + visibility_s, msg.gen, msg.id))
            taken.append(msg)
        return taken

    def find(self, receipt: str) -> tuple[Msg | None, str]:
        """The message a receipt handle names, or None and an error code."""
        mid = receipt.split(".", 1)[0]
        msg = self.msgs.get(mid)
        if msg is not None and msg.receipt == receipt:
            return msg, ""
        if mid in self.deleted_ids:
            return None, "deleted"
        return None, "ReceiptHandleIsInvalid"

    def delete(self, msg: Msg) -> None:
        msg.deleted = True
        if msg.visible:
            self.n_visible -= 1
        del self.msgs[msg.id]
        self.deleted_ids.add(msg.id)

    def move_to_dead_letter(self, msg: Msg) -> None:
        """SQS's redrive: the body moves to the dead-letter queue and leaves this one (not a client's delete)."""
        assert self.dead_letter is not None
        msg.deleted = True
        msg.visible = False
        self.n_visible -= 1
        del self.msgs[msg.id]
        self.dead_letter.send(msg.body)
        self.moved_to_dead_letter += 1

    def change_visibility(self, msg: Msg, timeout_s: int, now: float) -> None:
        msg.gen += 1
        if timeout_s == 0:
            self._show(msg)
        else:
            heapq.heappush(self.timers, (now + timeout_s, msg.gen, msg.id))

    def _show(self, msg: Msg) -> None:
        msg.visible = True
        self.n_visible += 1
        self.visible.append(msg)


# ---------------------------------------------------------------------------------------------------- HTTP


class HttpConnection(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and Content-Length bodies: what botocore (urllib3) and aiobotocore (aiohttp)
    send for JSON protocols. One request at a time per connection (neither client pipelines)."""

    def __init__(self, app: Endpoint, listener: int = 0) -> None:
        self.app = app
        self.listener = listener  # which of the endpoint's ports this connection came in on
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.closing = False
        self.waiter: Waiter | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.app.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        if self.waiter is not None:
            self.app.drop_waiter(self.waiter)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.closing:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buffer[:end]).split(b"\r\n")
            length, target, close = 0, "", False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"x-amz-target":
                    target = value.strip().decode()
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            method, path, _ = lines[0].decode("latin-1").split(" ", 2)
            self.app.dispatch(self, method, path, target, body, close=close)

    def respond(self, status: int, payload: bytes, headers: str = "", *, close: bool = False) -> None:
        if self.closing or self.transport is None:
            return
        reason = "OK" if status == 200 else "Bad Request" if status == 400 else "Error"
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.0\r\n"
            f"x-amzn-RequestId: {self.app.next_request_id()}\r\n{headers}"
            f"Content-Length: {len(payload)}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
        )
        self.transport.write(head.encode() + payload)
        if close:
            self.closing = True
            self.transport.close()


# ---------------------------------------------------------------------------------------------------- the endpoint


class Endpoint:
    def __init__(self, port: int, latency_ms: float, hash_key: str, capacity: WriteCapacity | None = None) -> None:
        self.port = port
        self.latency_s = latency_ms / 1000
        self.table_latency_s = 0.0  # added to DynamoDB's answers only: a slow table (--table-latency-ms)
        self.hash_key = hash_key
        self.capacity = capacity or WriteCapacity()
        self.loop = asyncio.get_running_loop()
        self.queues: dict[str, Queue] = {}
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}
        self.table_keys: dict[str, list[str]] = {}
        self.written_at: dict[str, float] = {}  # key -> time.monotonic() of its first write (bench/freshness.py)
        self.waiters: list[Waiter] = []
        self.conditions: list[tuple[str, float, HttpConnection]] = []
        self.request_ids = itertools.count(1)
        self.connections = 0
        self.armed = False
        self.stats: dict[str, Any] = {"calls": {}}
        self.marks: dict[str, dict[str, float]] = {}
        self.deleted = 0
        self.sqs_ops = {
            "ReceiveMessage": self.receive_message,
            "DeleteMessage": self.delete_message,
            "DeleteMessageBatch": self.delete_message_batch,
            "ChangeMessageVisibility": self.change_message_visibility,
            "ChangeMessageVisibilityBatch": self.change_message_visibility_batch,
            "SendMessage": self.send_message,
            "SendMessageBatch": self.send_message_batch,
            "GetQueueAttributes": self.get_queue_attributes,
            "GetQueueUrl": self.get_queue_url,
            "CreateQueue": self.create_queue,
        }
        self.ddb_ops = {
            "PutItem": self.put_item,
            "BatchExecuteStatement": self.batch_execute_statement,
            "GetItem": self.get_item,
            "Scan": self.scan,
            "DescribeTable": self.describe_table,
            "CreateTable": self.create_table,
        }

    def next_request_id(self) -> str:
        return f"bench-{next(self.request_ids):012d}"

    def count(self, name: str, by: int = 1, conn: HttpConnection | None = None) -> None:
        """Count an event, and also for the listener (port) of `conn` when one is given."""
        self.stats[name] = self.stats.get(name, 0) + by
        if conn is not None:
            self.count_listener(conn, name, by)

    def count_listener(self, conn: HttpConnection, name: str, by: int = 1) -> None:
        mine = self.stats.setdefault("by_listener", {}).setdefault(str(conn.listener), {})
        mine[name] = mine.get(name, 0) + by

    # --- dispatch

    def dispatch(self, conn: HttpConnection, method: str, path: str, target: str, body: bytes, *, close: bool) -> None:
        if path.startswith("/_bench/"):
            self.control(conn, path, body)
            return
        service, _, operation = target.partition(".")
        calls = self.stats["calls"]
        calls[operation] = calls.get(operation, 0) + 1
        self.count_listener(conn, f"call.{operation}")
        if service == "AmazonSQS":
            handler, error_type = self.sqs_ops.get(operation), "com.amazonaws.sqs#"
        elif service == "DynamoDB_20120810":
            handler, error_type = self.ddb_ops.get(operation), "com.amazonaws.dynamodb.v20120810#"
        else:
            handler, error_type = None, ""
        if handler is None:
            unknown = ApiError("UnknownOperationException", f"{method} {path} {target!r} is not supported here")
            self.reply_error(conn, service, error_type, unknown, close=close)
            return
        try:
            result = handler(conn, json.loads(body or b"{}"))
        except ApiError as exc:
            self.reply_error(conn, service, error_type, exc, close=close)
            return
        if result is not None:  # None: a long poll that answers later
            self.reply(conn, service, result, close=close)

    def reply(self, conn: HttpConnection, service: str, result: dict[str, Any], *, close: bool = False) -> None:
        payload = json.dumps(result, separators=(",", ":")).encode()
        headers = f"x-amz-crc32: {zlib.crc32(payload)}\r\n" if service == "DynamoDB_20120810" else ""
        self.later(conn, 200, payload, headers, close, slow=service == "DynamoDB_20120810")

    def reply_error(self, conn: HttpConnection, service: str, prefix: str, exc: ApiError, *, close: bool) -> None:
        self.count(f"error.{exc.code}")
        status, headers = 400, ""
        if service == "AmazonSQS":
            status, query_code = SQS_ERRORS.get(exc.code, (400, exc.code))
            headers = f"x-amzn-query-error: {query_code};Sender\r\n"
        payload = json.dumps({"__type": prefix + exc.code, "message": exc.message, **exc.extra}).encode()
        if service == "DynamoDB_20120810":
            headers += f"x-amz-crc32: {zlib.crc32(payload)}\r\n"
        self.later(conn, status, payload, headers, close, slow=service == "DynamoDB_20120810")

    def later(
        self, conn: HttpConnection, status: int, payload: bytes, headers: str, close: bool, *, slow: bool = False
    ) -> None:
        delay_s = self.latency_s + (self.table_latency_s if slow else 0.0)
        if delay_s > 0:
            self.loop.call_later(delay_s, lambda: conn.respond(status, payload, headers, close=close))
        else:
            conn.respond(status, payload, headers, close=close)

    # --- SQS

    def queue(self, params: dict[str, Any]) -> Queue:
        url = str(params.get("QueueUrl", ""))
        queue = self.queues.get(url.rstrip("/").rsplit("/", 1)[-1])
        if queue is None:
            raise ApiError("QueueDoesNotExist", "The specified queue does not exist.")
        return queue

    def create_queue(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        name = str(params["QueueName"])
        if name not in self.queues:
            visibility = int(params.get("Attributes", {}).get("VisibilityTimeout", 30))
            url = f"http://127.0.0.1:{self.port}/{ACCOUNT}/{name}"
            self.queues[name] = Queue(name, url, visibility)
        return {"QueueUrl": self.queues[name].url}

    def get_queue_url(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        queue = self.queues.get(str(params.get("QueueName")))
        if queue is None:
            raise ApiError("QueueDoesNotExist", "The specified queue does not exist.")
        return {"QueueUrl": queue.url}

    def get_queue_attributes(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        queue = self.queue(params)
        queue.expire(time.monotonic())
        everything = {
            "VisibilityTimeout": queue.visibility_timeout_s,
            "ApproximateNumberOfMessages": queue.n_visible,
            "ApproximateNumberOfMessagesNotVisible": len(queue.msgs) - queue.n_visible,
            "ApproximateNumberOfMessagesDelayed": 0,
            "QueueArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue.name}",
            "ReceiveMessageWaitTimeSeconds": 0,
            "MessageRetentionPeriod": 345_600,
        }
        if queue.dead_letter is not None:
            target = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue.dead_letter.name}"
            policy = {"deadLetterTargetArn": target, "maxReceiveCount": queue.max_receive_count}
            everything["RedrivePolicy"] = json.dumps(policy, separators=(",", ":"))
        wanted = params.get("AttributeNames") or ["All"]
        chosen = everything if "All" in wanted else {k: v for k, v in everything.items() if k in wanted}
        return {"Attributes": {k: str(v) for k, v in chosen.items()}}

    def send_message(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        msg = self.queue(params).send(str(params["MessageBody"]))
        self.serve_waiters()
        return {"MessageId": msg.id, "MD5OfMessageBody": msg.md5}

    def send_message_batch(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        queue, entries = self.queue(params), self.batch_entries(params)
        done = []
        for entry in entries:
            msg = queue.send(str(entry["MessageBody"]))
            done.append({"Id": entry["Id"], "MessageId": msg.id, "MD5OfMessageBody": msg.md5})
        self.serve_waiters()
        return {"Successful": done, "Failed": []}

    def receive_message(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any] | None:
        queue = self.queue(params)
        max_messages = int(params.get("MaxNumberOfMessages", 1))
        if not 1 <= max_messages <= SQS_BATCH_MAX:
            raise ApiError("InvalidParameterValue", f"MaxNumberOfMessages {max_messages} is not in 1..10")
        names = [*params.get("AttributeNames", []), *params.get("MessageSystemAttributeNames", [])]
        waiter = Waiter(
            conn,
            queue,
            max_messages,
            int(params.get("VisibilityTimeout", queue.visibility_timeout_s)),
            frozenset(names),
        )
        if self.armed:
            queue.expire(time.monotonic())
            if queue.n_visible:
                return self.deliver(waiter)  # may answer empty: what was visible went to the dead-letter queue
        wait_s = int(params.get("WaitTimeSeconds", 0))
        if wait_s <= 0:
            self.count("receive.empty")
            return {}
        waiter.timer = self.loop.call_later(wait_s, self.wait_ended, waiter)
        conn.waiter = waiter
        self.waiters.append(waiter)
        self.check_conditions()
        return None

    def deliver(self, waiter: Waiter) -> dict[str, Any]:
        now, queue = time.monotonic(), waiter.queue
        moved_before = queue.moved_to_dead_letter
        msgs = queue.take(waiter.max_messages, waiter.visibility_s, now)
        if queue.moved_to_dead_letter > moved_before:
            self.count("dead_lettered", queue.moved_to_dead_letter - moved_before)
            self.check_drained(queue)
        if not msgs:
            self.count("receive.empty")
            return {}
        if "first_delivery" not in self.marks:
            self.mark("first_delivery")
        self.count("delivered", len(msgs), waiter.conn)
        self.stats["max_receive_count"] = max(self.stats.get("max_receive_count", 0), *(m.receive_count for m in msgs))
        every = "All" in waiter.attributes
        out = []
        for msg in msgs:
            if msg.receive_count > 1:
                self.count("redelivered", conn=waiter.conn)
            attributes = {}
            if every or "ApproximateReceiveCount" in waiter.attributes:
                attributes["ApproximateReceiveCount"] = str(msg.receive_count)
            if every or "SentTimestamp" in waiter.attributes:
                attributes["SentTimestamp"] = str(msg.sent_ms)
            entry = {"MessageId": msg.id, "ReceiptHandle": msg.receipt, "MD5OfBody": msg.md5, "Body": msg.body}
            if attributes:
                entry["Attributes"] = attributes
            out.append(entry)
        return {"Messages": out}

    def wait_ended(self, waiter: Waiter) -> None:
        self.drop_waiter(waiter)
        self.count("receive.empty")
        self.reply(waiter.conn, "AmazonSQS", {})

    def drop_waiter(self, waiter: Waiter) -> None:
        waiter.conn.waiter = None
        if waiter.timer is not None:
            waiter.timer.cancel()
        with contextlib.suppress(ValueError):
            self.waiters.remove(waiter)

    def serve_waiters(self) -> None:
        if not self.armed or not self.waiters:
            return
        for waiter in list(self.waiters):
            if waiter.queue.n_visible:
                result = self.deliver(waiter)
                if result:  # else everything visible was dead-lettered: keep waiting
                    self.drop_waiter(waiter)
                    self.reply(waiter.conn, "AmazonSQS", result)

    async def expire_visibility(self) -> None:
        """Redeliver messages whose visibility timeout ended to receives that are waiting for them."""
        while True:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            if sum(queue.expire(now) for queue in self.queues.values()):
                self.serve_waiters()

    def delete_message(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        queue = self.queue(params)
        problem = self.delete_one(queue, str(params.get("ReceiptHandle", "")), conn)
        if problem:
            raise ApiError(problem, f"The receipt handle {params.get('ReceiptHandle')!r} is not valid.")
        self.after_deletes(queue)
        return {}

    def delete_message_batch(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        queue, entries = self.queue(params), self.batch_entries(params)
        done, failed = [], []
        for entry in entries:
            problem = self.delete_one(queue, str(entry.get("ReceiptHandle", "")), conn)
            if problem:
                failed.append({"Id": entry["Id"], "SenderFault": True, "Code": problem, "Message": "invalid handle"})
            else:
                done.append({"Id": entry["Id"]})
        self.after_deletes(queue)
        return {"Successful": done, "Failed": failed}

    def delete_one(self, queue: Queue, receipt: str, conn: HttpConnection) -> str:
        msg, problem = queue.find(receipt)
        if msg is None:
            if problem == "deleted":  # SQS answers success for a message deleted already; counted here
                self.count("delete.already_deleted", conn=conn)
                return ""
            self.count("delete.invalid_handle", conn=conn)
            return problem
        queue.delete(msg)
        self.deleted += 1
        self.count_listener(conn, "deleted")
        return ""

    def after_deletes(self, queue: Queue) -> None:
        self.check_drained(queue)
        self.check_conditions()

    def check_drained(self, queue: Queue) -> None:
        """The clock stops when the queue holds nothing: every message deleted or dead-lettered."""
        if self.armed and not queue.msgs and "drained" not in self.marks:
            self.mark("drained")

    def change_message_visibility(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        queue = self.queue(params)
        problem = self.change_one(queue, str(params.get("ReceiptHandle", "")), int(params["VisibilityTimeout"]))
        if problem:
            raise ApiError(problem, "The receipt handle is not valid, or the message is not in flight.")
        self.serve_waiters()
        return {}

    def change_message_visibility_batch(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        queue, entries = self.queue(params), self.batch_entries(params)
        done, failed = [], []
        for entry in entries:
            problem = self.change_one(
                queue, str(entry.get("ReceiptHandle", "")), int(entry.get("VisibilityTimeout", 0))
            )
            if problem:
                failed.append({"Id": entry["Id"], "SenderFault": True, "Code": problem, "Message": problem})
            else:
                done.append({"Id": entry["Id"]})
        self.serve_waiters()
        return {"Successful": done, "Failed": failed}

    def change_one(self, queue: Queue, receipt: str, timeout_s: int) -> str:
        msg, _ = queue.find(receipt)
        if msg is None:
            return "ReceiptHandleIsInvalid"
        if msg.visible:
            return "MessageNotInflight"
        self.count("visibility.changed")
        queue.change_visibility(msg, timeout_s, time.monotonic())
        return ""

    @staticmethod
    def batch_entries(params: dict[str, Any]) -> list[dict[str, Any]]:
        entries = list(params.get("Entries", []))
        if not entries:
            raise ApiError("EmptyBatchRequest", "There should be at least one entry in the request.")
        if len(entries) > SQS_BATCH_MAX:
            raise ApiError(
                "TooManyEntriesInBatchRequest", f"Maximum number of entries per request are {SQS_BATCH_MAX}."
            )
        if len({e.get("Id") for e in entries}) != len(entries):
            raise ApiError("BatchEntryIdsNotDistinct", "Two or more batch entries have the same Id.")
        return entries

    # --- DynamoDB

    def table(self, params: dict[str, Any]) -> dict[str, dict[str, Any]]:
        table = self.tables.get(str(params.get("TableName")))
        if table is None:
            raise ApiError("ResourceNotFoundException", "Requested resource not found")
        return table

    def create_table(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        self.tables.setdefault(str(params["TableName"]), {})
        self.table_keys.setdefault(str(params["TableName"]), [])
        return self.describe_table(conn, params) | {"TableDescription": self.describe_table(conn, params)["Table"]}

    def describe_table(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        table, name = self.table(params), str(params["TableName"])
        return {
            "Table": {
                "TableName": name,
                "TableStatus": "ACTIVE",
                "ItemCount": len(table),
                "KeySchema": [{"AttributeName": self.hash_key, "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": self.hash_key, "AttributeType": "S"}],
                "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
                "TableArn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
                "CreationDateTime": 1_700_000_000,
            }
        }

    def key_of(self, item: dict[str, Any]) -> str:
        value = item.get(self.hash_key)
        if not isinstance(value, dict) or not isinstance(value.get("S"), str):
            raise ApiError(
                "ValidationException",
                f"One or more parameter values were invalid: Missing the key {self.hash_key} in the item",
            )
        return str(value["S"])

    def put_item(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        table, item = self.table(params), params.get("Item") or {}
        key = self.key_of(item)
        attribute = self.condition_attribute(params)
        self.throttle(conn, key, str(params["TableName"]))  # before the condition: a throttled put never writes
        old = table.get(key)
        if attribute is not None and old is not None and (attribute == self.hash_key or attribute in old):
            self.count("put.condition_failed", conn=conn)
            extra = {"Item": old} if params.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" else {}
            raise ApiError("ConditionalCheckFailedException", "The conditional request failed", extra)
        if key not in table:
            self.table_keys[str(params["TableName"])].append(key)
            self.written_at[key] = time.monotonic()
        table[key] = item
        self.count("put.written", conn=conn)
        return {}

    def batch_execute_statement(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        """PartiQL INSERTs, 1-25 a call, each answered on its own: written, `DuplicateItem`, or throttled."""
        statements = params.get("Statements") or []
        if not 1 <= len(statements) <= PARTIQL_BATCH_MAX:
            raise ApiError("ValidationException", f"Statements must hold 1 to {PARTIQL_BATCH_MAX} statements")
        parsed = [self.parse_insert(statement) for statement in statements]
        keys = [self.key_of(item) for _, item in parsed]
        if len(set(keys)) != len(keys):
            raise ApiError("ValidationException", "Provided list of item keys contains duplicates")
        return {"Responses": [self.insert(conn, name, item) for name, item in parsed]}

    @staticmethod
    def parse_insert(statement: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(table, item) of `INSERT INTO "<table>" VALUE {'<name>': ?, ...}` with its `Parameters`."""
        match = PARTIQL_INSERT.match(str(statement.get("Statement", "")))
        names = PARTIQL_PLACEHOLDER.findall(match["body"]) if match else []
        values = statement.get("Parameters") or []
        if match is None or len(names) != len(values):
            raise ApiError("ValidationException", f"the bench endpoint does not support {statement!r}")
        return match["table"], dict(zip(names, values, strict=True))

    def insert(self, conn: HttpConnection, name: str, item: dict[str, Any]) -> dict[str, Any]:
        table = self.tables.get(name)
        if table is None:
            return {"Error": {"Code": "ResourceNotFound", "Message": "Requested resource not found"}}
        key = self.key_of(item)
        try:
            self.throttle(conn, key, name)  # before the key check: a throttled statement never writes
        except ApiError as exc:
            return {"TableName": name, "Error": {"Code": "ProvisionedThroughputExceeded", "Message": exc.message}}
        if key in table:
            self.count("put.condition_failed", conn=conn)
            return {"TableName": name, "Error": {"Code": "DuplicateItem", "Message": "Duplicate primary key"}}
        table[key] = item
        self.table_keys[name].append(key)
        self.written_at[key] = time.monotonic()
        self.count("put.written", conn=conn)
        return {"TableName": name}

    @staticmethod
    def condition_attribute(params: dict[str, Any]) -> str | None:
        """The attribute of an `attribute_not_exists(...)` condition, the only one supported; None without one."""
        condition = params.get("ConditionExpression")
        if condition is None:
            return None
        names = params.get("ExpressionAttributeNames") or {}
        inner = str(condition).replace(" ", "")
        if not (inner.startswith("attribute_not_exists(") and inner.endswith(")")):
            raise ApiError("ValidationException", f"the bench endpoint does not support {condition!r}")
        attribute = inner[len("attribute_not_exists(") : -1]
        return str(names.get(attribute, attribute))

    def throttle(self, conn: HttpConnection, key: str, table_name: str) -> None:
        """Raise DynamoDB's throttling error when the table or the key's range has no write unit left."""
        if not self.capacity.limited:
            return
        reasons = self.capacity.admit(key, time.monotonic())
        if not reasons:
            return
        self.count("put.throttled", conn=conn)
        for reason in reasons:
            self.count(f"put.throttled.{reason}")
        resource = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table_name}"
        extra = {"ThrottlingReasons": [{"reason": reason, "resource": resource} for reason in reasons]}
        raise ApiError("ProvisionedThroughputExceededException", THROTTLED_MESSAGES[reasons[0]], extra)

    def get_item(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        item = self.table(params).get(self.key_of(params.get("Key") or {}))
        return {"Item": item} if item is not None else {}

    def scan(self, conn: HttpConnection, params: dict[str, Any]) -> dict[str, Any]:
        table, keys = self.table(params), self.table_keys[str(params["TableName"])]
        limit = int(params.get("Limit", SCAN_PAGE_ITEMS))
        start = 0
        if params.get("ExclusiveStartKey"):
            start = keys.index(self.key_of(params["ExclusiveStartKey"])) + 1
        page = keys[start : start + limit]
        result: dict[str, Any] = {"Items": [table[k] for k in page], "Count": len(page), "ScannedCount": len(page)}
        if start + limit < len(keys):
            result["LastEvaluatedKey"] = {self.hash_key: {"S": page[-1]}}
        return result

    # --- bench control

    def mark(self, name: str) -> None:
        self.marks[name] = {"t": time.monotonic(), "cpu_s": cpu_s(), "wall": time.time()}

    def control(self, conn: HttpConnection, path: str, body: bytes) -> None:
        url = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        command = url.path.removeprefix("/_bench/")
        if command == "stats":
            conn.respond(200, json.dumps(self.snapshot()).encode())
        elif command == "writes":  # CLOCK_MONOTONIC is the machine's: the sender's clock too
            conn.respond(200, json.dumps({"written_at": self.written_at}).encode())
        elif command == "config":
            self.latency_s = float(query.get("latency_ms", self.latency_s * 1000)) / 1000
            conn.respond(200, json.dumps({"latency_ms": self.latency_s * 1000}).encode())
        elif command == "arm":
            gc.collect()
            gc.freeze()  # the pre-filled messages are never garbage: keep the collector off them
            self.stats = {"calls": {}}
            self.deleted = 0
            self.armed = True
            self.capacity.reset(time.monotonic())  # empty buckets: from here at most capacity x time writes pass
            self.mark("armed")
            conn.respond(200, b"{}")
            self.serve_waiters()
        elif command == "wait":
            kind, value = next(iter(query.items()))
            self.conditions.append((kind, float(value), conn))
            self.check_conditions()
        else:
            conn.respond(404, b'{"message":"unknown bench command"}')

    def check_conditions(self) -> None:
        if not self.conditions:
            return
        kept = []
        for kind, value, conn in self.conditions:
            if conn.closing:  # the caller gave up waiting
                continue
            met = (
                (kind == "receivers" and len(self.waiters) >= value)
                or (kind == "deleted" and self.deleted >= value)
                or (kind == "drained" and "drained" in self.marks)
            )
            if met:
                conn.respond(200, json.dumps(self.snapshot()).encode())
            else:
                kept.append((kind, value, conn))
        self.conditions = kept

    def snapshot(self) -> dict[str, Any]:
        queues = {
            name: {
                "visible": q.n_visible,
                "not_visible": len(q.msgs) - q.n_visible,
                "deleted": len(q.deleted_ids),
                "moved_to_dead_letter": q.moved_to_dead_letter,
            }
            for name, q in self.queues.items()
        }
        return {
            **self.stats,
            "deleted": self.deleted,
            "waiting_receives": len(self.waiters),
            "connections": self.connections,
            "queues": queues,
            "items": {name: len(table) for name, table in self.tables.items()},
            "marks": self.marks,
            "cpu_s": cpu_s(),
            "latency_ms": self.latency_s * 1000,
            "capacity": {
                "table_wcu": self.capacity.table_wcu,
                "partition_wcu": self.capacity.partition_wcu,
                "partitions": len(self.capacity.ranges),
                "burst_s": self.capacity.burst_s,
            },
        }


async def serve(args: argparse.Namespace) -> None:
    capacity = WriteCapacity(args.table_wcu, args.partition_wcu, args.partitions, args.burst_s)
    app = Endpoint(args.port, args.latency_ms, args.hash_key, capacity)
    app.table_latency_s = args.table_latency_ms / 1000
    servers = []
    for listener in range(max(1, args.listeners)):
        port = args.port if listener == 0 else 0
        factory = functools.partial(HttpConnection, app, listener)
        servers.append(await app.loop.create_server(factory, "127.0.0.1", port))
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    app.port = ports[0]
    create_queues(app, args)
    for name in args.table:
        app.create_table(None, {"TableName": name})  # type: ignore[arg-type]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        app.loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"port": app.port, "ports": ports}), flush=True)
    async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as tasks:
        for server in servers:
            await stack.enter_async_context(server)
        expiry = tasks.create_task(app.expire_visibility())
        await stop.wait()
        expiry.cancel()


def create_queues(app: Endpoint, args: argparse.Namespace) -> None:
    """The queues, and the dead-letter queue as the redrive target of every one of them."""
    attributes = {"VisibilityTimeout": args.visibility_timeout}
    dead_letter = None
    if args.dead_letter_queue:
        app.create_queue(None, {"QueueName": args.dead_letter_queue, "Attributes": attributes})  # type: ignore[arg-type]
        dead_letter = app.queues[args.dead_letter_queue]
    for name in args.queue:
        app.create_queue(None, {"QueueName": name, "Attributes": attributes})  # type: ignore[arg-type]
        app.queues[name].dead_letter = dead_letter
        app.queues[name].max_receive_count = args.max_receive_count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.endpoint", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--table-latency-ms", type=float, default=0.0, help="added to every DynamoDB answer")
    parser.add_argument("--queue", action="append", default=[], help="a queue to create (repeatable)")
    parser.add_argument("--table", action="append", default=[], help="a table to create (repeatable)")
    parser.add_argument("--hash-key", default="photoId")
    parser.add_argument("--visibility-timeout", type=int, default=30)
    parser.add_argument("--dead-letter-queue", help="create it and make it every queue's redrive target")
    parser.add_argument("--max-receive-count", type=int, default=5, help="the redrive policy's maxReceiveCount")
    parser.add_argument("--table-wcu", type=float, help="the table's write capacity, writes a second (unlimited)")
    parser.add_argument("--partition-wcu", type=float, help="each key range's write capacity (hot-partition mode)")
    parser.add_argument("--partitions", type=int, default=1, help="how many key ranges --partition-wcu applies to")
    parser.add_argument("--burst-s", type=float, default=1.0, help="bucket depth, in seconds of capacity")
    parser.add_argument("--listeners", type=int, default=1, help="serve the same state on this many ports")
    args = parser.parse_args(argv)
    gc.set_threshold(50_000, 20, 100)
    asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
