"""The freshness benchmark's producer: `SendMessage` at a steady rate, each message's send time kept.

Message i is due at `start + i / rate`. A scheduler hands due messages to a pool of keep-alive connections, each
of which sends one `SendMessage` (the SQS JSON protocol, as the SDKs speak it) and reads its answer. The pool is
sized so that the round trip never holds the rate back: `rate x RTT` requests in flight, with room to spare.

The time kept is `time.monotonic()` just before the request is written: the endpoint enqueues the message when
the request arrives (its injected latency delays only the answer), and records each item's first write on the
same clock (CLOCK_MONOTONIC is the machine's, not the process's).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass, field

TARGET = "AmazonSQS.SendMessage"
MIN_CONNECTIONS = 4


@dataclass
class Sent:
    """What the producer did: each message's send time by index, and how late it ran behind its schedule."""

    at: dict[int, float] = field(default_factory=dict)
    max_late_s: float = 0.0
    started: float = 0.0
    finished: float = 0.0

    @property
    def rate(self) -> float:
        span = self.finished - self.started
        return len(self.at) / span if span > 0 else 0.0


def connections_for(rate: float, rtt_s: float) -> int:
    """Requests in flight at `rate` with answers `rtt_s` late (Little's law), doubled, at least MIN_CONNECTIONS."""
    return max(MIN_CONNECTIONS, math.ceil(2 * rate * max(rtt_s, 0.001)) + 1)


def request(port: int, queue_url: str, body: str) -> bytes:
    payload = json.dumps({"QueueUrl": queue_url, "MessageBody": body}).encode()
    head = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-amz-json-1.0\r\n"
        f"X-Amz-Target: {TARGET}\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def _answer(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length)
    if status != b"200":
        raise RuntimeError(f"SendMessage answered {status.decode()}: {body[:300]!r}")


async def send_steady(port: int, queue_url: str, bodies: list[str], rate: float, rtt_s: float) -> Sent:
    """Send `bodies` at `rate` a second; returns each one's send time (by index)."""
    sent = Sent()
    due: asyncio.Queue[int | None] = asyncio.Queue()
    pool = connections_for(rate, rtt_s)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (index := await due.get()) is not None:
                sent.at[index] = time.monotonic()
                writer.write(request(port, queue_url, bodies[index]))
                await _answer(reader)
        finally:
            writer.close()

    async with asyncio.TaskGroup() as group:
        for _ in range(pool):
            group.create_task(connection())
        sent.started = start = time.monotonic()
        for index in range(len(bodies)):
            wait_s = start + index / rate - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)  # the schedule itself, not a wait for a condition
            sent.max_late_s = max(sent.max_late_s, -wait_s)
            due.put_nowait(index)
        for _ in range(pool):
            due.put_nowait(None)
    sent.finished = max(sent.at.values(), default=start)
    return sent
