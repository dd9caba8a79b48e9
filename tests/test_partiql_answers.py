"""WRITE_MODE=batch when `BatchExecuteStatement` answers fewer statements than it was sent, none, or entries that
are not answers: exactly the statements without an answer fail (as a server error would fail them), the rest
keep their own outcome, no caller waits without a bound, and no slot of the limiter is left held.

The client is a stub at the store's boundary: no emulator can be made to answer short.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from service.aws.errors import ErrorKind
from service.aws.table import PhotoStore
from service.ingest.events import ObjectRecord
from service.ingest.limiter import Limiter
from service.ingest.outcomes import Disposition, Outcome
from service.ingest.settle import Ingest
from service.metrics import Metrics

RECORDS = 5
HANG_GUARD_S = 30  # only a hang reaches it: a settlement that never comes


class ShortAnswers:
    """A DynamoDB client whose `BatchExecuteStatement` answers with the `Responses` it is given."""

    def __init__(self, responses: object) -> None:
        self._responses = responses
        self.calls: list[int] = []

    async def batch_execute_statement(self, Statements: list[dict[str, Any]]) -> dict[str, Any]:  # AWS spells it so
        self.calls.append(len(Statements))
        return {} if self._responses is None else {"Responses": self._responses}


def records() -> list[ObjectRecord]:
    return [ObjectRecord("beetroot-raw", f"photos-raw/{n}.jpg", "ObjectCreated:Put") for n in range(RECORDS)]


@pytest.mark.parametrize(
    ("responses", "answered"),
    [
        ([{}, {}], 2),  # short: two answers for five statements
        ([], 0),  # an empty list
        (None, 0),  # no `Responses` at all
        ("not a list", 0),
        ([{}, "not an answer", {"Error": "not a dict"}, None, {}], {0, 4}),  # malformed entries among good ones
    ],
    ids=["short", "empty", "missing", "not-a-list", "malformed-entries"],
)
async def test_statements_without_an_answer_fail_and_release_their_slots(
    responses: object, answered: int | set[int]
) -> None:
    client = ShortAnswers(responses)
    limiter = Limiter(RECORDS, floor=RECORDS)
    ingest = Ingest(PhotoStore(client, "Photos", "batch"), "photos-raw/", Metrics(), limiter=limiter)  # type: ignore[arg-type]

    settlement = await asyncio.wait_for(ingest.settle(records()), HANG_GUARD_S)

    good = set(range(answered)) if isinstance(answered, int) else answered
    outcomes = [record.outcome for record in settlement.records]
    assert outcomes == [Outcome.INSERTED if n in good else Outcome.FAILED for n in range(RECORDS)]
    assert {record.kind for record in settlement.records if record.outcome is Outcome.FAILED} <= {ErrorKind.UNAVAILABLE}
    assert all("gave this statement" in r.error for r in settlement.records if r.outcome is Outcome.FAILED)
    assert settlement.disposition is Disposition.RELEASE  # the message is retried, not lost or quarantined
    assert client.calls == [RECORDS]  # one call, no retry loop of its own
    assert limiter.in_use == 0
