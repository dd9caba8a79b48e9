"""Known defects, planted one at a time into the real code to prove that the simulator catches them.

The hook: `planted(name)` is a context manager that monkeypatches one product function for the length of a
run (`python -m tests.sim --plant NAME` does the same from the command line); nothing in the product knows.
`tests/test_sim.py` asserts that each is caught within the CI seed budget.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

from botocore.exceptions import ClientError

from service.aws import queue, table
from service.ingest import settle
from service.ingest.outcomes import Disposition, PutOutcome
from service.worker import worker


def _delete_before_put() -> Any:
    process = worker.Worker._process

    async def planted(self: Any, message: Any, *rest: Any) -> None:  # rest: what else `_process` takes (its span)
        await self._disposal.apply(message, Disposition.DELETE, "")
        await process(self, message, *rest)

    return mock.patch.object(worker.Worker, "_process", planted)


def _condition_as_duplicate() -> Any:
    return mock.patch.object(table, "_same_object", return_value=PutOutcome.DUPLICATE)


def _ignore_failed_deletes() -> Any:
    delete_batch = queue.Queue._delete_batch

    async def planted(self: Any, entries: Any) -> set[str]:
        await delete_batch(self, entries)
        return set()

    return mock.patch.object(queue.Queue, "_delete_batch", planted)


def _double_release() -> Any:
    async def planted(self: Any, record: Any, *rest: Any) -> Any:  # rest: the deadline, and what else `_put` takes
        try:
            return await self._put(record, *rest)
        finally:
            self._limiter.release()
            self._limiter.release()

    return mock.patch.object(settle.Ingest, "_put_in_slot", planted)


def _lost_response_failed() -> Any:
    """The retry of a put whose response was lost finds the put's own item: counted failed, message released."""
    same_object = table._same_object

    def planted(old: object, new: Any) -> PutOutcome:
        if old == new:
            raise ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "PutItem")
        return same_object(old, new)

    return mock.patch.object(table, "_same_object", planted)


DEFECTS: dict[str, Callable[[], Any]] = {
    "delete-before-put": _delete_before_put,
    "condition-as-duplicate": _condition_as_duplicate,
    "ignore-failed-deletes": _ignore_failed_deletes,
    "double-release": _double_release,
    "lost-response-failed": _lost_response_failed,
}


@contextlib.contextmanager
def planted(name: str | None) -> Iterator[None]:
    if name is None:
        yield
        return
    with DEFECTS[name]():
        yield
