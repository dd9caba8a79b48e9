"""Batched inserts: puts made in one event-loop turn go to DynamoDB together, as one `BatchExecuteStatement`
of at most 25 PartiQL `INSERT`s, which costs a worker about one request per ten records instead of one each.

An `INSERT` writes only when no item has the key; otherwise its statement alone answers `DuplicateItem` and
nothing is overwritten. Answers are per statement, so each record keeps its own outcome: `submit` returns None
for an insert, the statement's `Error` for an item that exists (the store confirms whose it is), and raises a
`ClientError` carrying the API's own error code for anything else, so `service.aws.errors.classify` and the
intake limiter treat a refused statement exactly like a refused `PutItem`. Two statements on one item never
share a call: `BatchWriteItem` refuses such a batch whole, and `BatchExecuteStatement`
does not document what it does with one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from service.ingest.items import Item

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import BatchStatementRequestTypeDef

BATCH_MAX = 25
EXISTS = frozenset({"DuplicateItem", "ConditionalCheckFailed"})
_API_CODES = {  # a statement's error code -> (the code the same refusal of a PutItem carries, HTTP status)
    "ThrottlingError": ("ThrottlingException", 400),
    "ProvisionedThroughputExceeded": ("ProvisionedThroughputExceededException", 400),
    "RequestLimitExceeded": ("RequestLimitExceeded", 400),
    "ResourceNotFound": ("ResourceNotFoundException", 400),
    "AccessDenied": ("AccessDeniedException", 400),
    "ValidationError": ("ValidationException", 400),
    "TransactionConflict": ("TransactionConflictException", 400),
    "ItemCollectionSizeLimitExceeded": ("ItemCollectionSizeLimitExceededException", 400),
    "InternalServerError": ("InternalServerError", 500),
}
Pending = tuple[Item, asyncio.Future[dict[str, Any]]]


class BatchInserts:
    """Coalesces single inserts made in one event-loop turn into calls of at most 25 statements."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table
        self._pending: list[Pending] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> dict[str, Any] | None:
        """None once inserted; the statement's `Error` if the key exists. Raises `ClientError` otherwise."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._pending) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        elif len(self._pending) >= BATCH_MAX:
            self._flush()
        error: dict[str, Any] | None = (await future).get("Error")
        if error is None or error.get("Code") in EXISTS:
            return error
        raise statement_error(error)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for batch in distinct_batches(pending):
            task = asyncio.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[Pending]) -> None:
        try:
            response = await self._client.batch_execute_statement(
                Statements=[statement(self._table, item) for item, _ in batch]
            )
            answers = statement_answers(response, len(batch))
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)


def statement_answers(response: object, count: int) -> list[dict[str, Any]]:
    """The answer of each of `count` statements, by position. A statement that the response leaves unanswered
    (`Responses` short, missing, or an entry that is not an answer) gets an `InternalServerError` of its own:
    its record fails like a put refused by a server error, and it is retried with its message."""
    responses = response.get("Responses") if isinstance(response, dict) else None
    given = responses if isinstance(responses, list) else []
    return [_answer(given[index] if index < len(given) else None) for index in range(count)]


def _answer(entry: object) -> dict[str, Any]:
    if isinstance(entry, dict):
        error = entry.get("Error")
        if error is None or (isinstance(error, dict) and isinstance(error.get("Code", ""), str)):
            return dict(entry)
    why = "no answer" if entry is None else "an answer that is not one"
    return {"Error": {"Code": "InternalServerError", "Message": f"BatchExecuteStatement gave this statement {why}"}}


def distinct_batches(pending: list[Pending]) -> list[list[Pending]]:
    """At most 25 entries a batch, and no photoId twice in one (a later copy goes to a later batch)."""
    batches: list[tuple[set[str], list[Pending]]] = []
    for entry in pending:
        key = entry[0]["photoId"]["S"]
        batch = next((b for b in batches if key not in b[0] and len(b[1]) < BATCH_MAX), None)
        if batch is None:
            batch = (set(), [])
            batches.append(batch)
        batch[0].add(key)
        batch[1].append(entry)
    return [entries for _, entries in batches]


def statement(table: str, item: Item) -> BatchStatementRequestTypeDef:
    """`INSERT INTO "<table>" VALUE {'photoId': ?, ...}`: values travel as typed parameters, never as text."""
    names = ", ".join(f"'{name}': ?" for name in item)
    return {
        "Statement": f'INSERT INTO "{table}" VALUE {{{names}}}',
        "Parameters": list(item.values()),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }


def statement_error(error: dict[str, Any]) -> ClientError:
    """A statement's refusal as the `ClientError` a `PutItem` refused for the same reason would raise."""
    code = str(error.get("Code", "Unknown"))
    api_code, status = _API_CODES.get(code, (code, 400))
    response: Any = {
        "Error": {"Code": api_code, "Message": str(error.get("Message", "")), "StatementCode": code},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "BatchExecuteStatement")
