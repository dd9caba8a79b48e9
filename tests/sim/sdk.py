"""The AWS SDK as the product sees it, over the simulated services: an aioboto3-like `Session` whose clients
take the calls service/aws/ makes and answer with AWS's shapes and botocore's exceptions.

Each call goes through `_call`: botocore standard mode's retries (attempts from the client's config; a paced
write's throttle goes back to the caller once `service.aws.retries` registered its handler) around `_attempt`,
which draws the call's fault, waits the request's latency, applies the call to the service at one virtual
instant, and waits the response's. A process that has crashed gets no answer: its call never returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, Protocol, TypeVar

from botocore.model import ServiceId

from service.aws.retries import PACED_OPERATIONS
from tests.sim import errors

T = TypeVar("T")
SERVICE_IDS = {"sqs": "SQS", "dynamodb": "DynamoDB", "s3": "S3"}


class Process(Protocol):
    name: str
    slot: int
    alive: bool
    delivered: Counter[str]  # what the services answered this process, and it heard
    puts_in_flight: int
    owed: set[str]  # photos it wrote, but heard of only as a failed condition: each must count as settled
    peak_puts: int

    def crash(self) -> None: ...


class _Events:
    def __init__(self) -> None:
        self.registered: list[str] = []

    def register(self, event: str, handler: object, unique_id: str | None = None) -> None:
        self.registered.append(event)

    def unregister(self, event: str, handler: object = None, unique_id: str | None = None) -> None:
        return None


class SimClient:
    """The parts of an aiobotocore client that service/aws/ touches, and the retry loop."""

    def __init__(self, service: str, world: Any, process: Process, config: Any) -> None:
        self.service, self.world, self.process = service, world, process
        self.exceptions = errors.exceptions(service)
        retries = dict(getattr(config, "retries", None) or {"mode": "standard"})
        self.meta = SimpleNamespace(
            config=SimpleNamespace(retries=retries, read_timeout=getattr(config, "read_timeout", 60)),
            events=_Events(),
            service_model=SimpleNamespace(service_id=ServiceId(SERVICE_IDS[service])),
        )
        self._ruleset_resolver = None
        self._attempts = int(retries.get("total_max_attempts", 3))

    async def __aenter__(self) -> SimClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def _call(self, operation: str, effect: Callable[[], Awaitable[T]]) -> T:
        paced = operation in PACED_OPERATIONS and any(e.startswith("needs-retry") for e in self.meta.events.registered)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(operation, effect)
            except Exception as exc:
                if attempt >= self._attempts or not errors.retryable(exc, paced=paced):
                    raise
            await asyncio.sleep(self.world.rng.random() * min(20.0, 2.0 ** (attempt - 1)))

    async def _attempt(self, operation: str, effect: Callable[[], Awaitable[T]]) -> T:
        world, process, service = self.world, self.process, self.service
        fault = world.faults.draw(service, operation, world.clock.now)
        crash = world.faults.crash_point(process.slot)
        await asyncio.sleep(world.faults.latency(service))
        if crash == "before":
            process.crash()
        await _alive(process)
        if fault:
            world.history.add(process.name, f"fault.{fault}", service, operation)
        if fault in ("throttle", "error", "cut"):
            raise self._refusal(operation, fault)
        if fault == "timeout":  # the request went out: it may have taken effect, but no answer comes
            if world.rng.random() < 0.5:
                with contextlib.suppress(Exception):
                    await effect()
            await asyncio.sleep(self.meta.config.read_timeout)
            raise errors.read_timeout(service)
        result = await effect()  # the call takes effect here, whatever the caller hears of it
        if crash == "after":
            process.crash()
        if fault == "lost":
            raise errors.connection_closed(service)
        if fault == "error_after":
            raise self._refusal(operation, "error")
        await asyncio.sleep(world.faults.latency(service))
        await _alive(process)
        return result

    def _refusal(self, operation: str, fault: str) -> Exception:
        if fault == "cut":
            return errors.connection_closed(self.service)
        if fault == "error":
            code = {"sqs": "InternalError", "dynamodb": "InternalServerError", "s3": "InternalError"}[self.service]
            return errors.client_error(self.service, operation, code, 500)
        if self.service == "dynamodb":
            reasons = [{"reason": "TableWriteKeyRangeThroughputExceeded", "resource": self.world.table.arn}]
            return errors.client_error(self.service, operation, "ThrottlingException", ThrottlingReasons=reasons)
        return errors.client_error(self.service, operation, "RequestThrottled")


async def _alive(process: Process) -> None:
    """Return if the process lives; a crashed one waits here until its tasks are dropped."""
    if not process.alive:
        await asyncio.get_running_loop().create_future()


class Session:
    """`aioboto3.Session` for one simulated process: `client(name, config=...)` is an async context manager."""

    def __init__(self, world: Any, process: Process) -> None:
        self._world, self._process = world, process

    def client(self, service_name: str, config: Any = None, **_: Any) -> SimClient:
        from tests.sim.clients import CLIENTS

        return CLIENTS[service_name](service_name, self._world, self._process, config)
