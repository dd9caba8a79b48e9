"""The operations service/aws/ calls, per service, answered by the simulated SQS, DynamoDB and S3 with the
shapes the real APIs return. What a call did is applied in its `effect`, at one virtual instant; what the
product heard is counted in `process.delivered` only once it really heard it (a response that is lost, or that
reaches a crashed process, counts nothing), for the accounting invariant."""

from __future__ import annotations

from typing import Any

from tests.sim import errors
from tests.sim.sdk import SimClient
from tests.sim.sqs import SimMessage


class SqsClient(SimClient):
    async def receive_message(
        self, *, QueueUrl: str, MaxNumberOfMessages: int = 1, WaitTimeSeconds: int = 0, **kw: Any
    ) -> dict[str, Any]:
        queue, who = self.world.queue(QueueUrl), self.process.name

        async def effect() -> dict[str, Any]:
            taken = await queue.receive(MaxNumberOfMessages, WaitTimeSeconds, kw.get("VisibilityTimeout"), who)
            return {"Messages": [self._shape(m) for m in taken]} if taken else {}

        return await self._call("ReceiveMessage", effect)

    def _shape(self, message: SimMessage) -> dict[str, Any]:
        sent_ms = int((self.world.clock.wall() - (self.world.clock.now - message.sent_at)) * 1000)
        attributes = {"ApproximateReceiveCount": str(message.receives), "SentTimestamp": str(sent_ms)}
        return {
            "MessageId": message.id,
            "ReceiptHandle": message.handle,
            "Body": message.body,
            "Attributes": attributes,
        }

    async def get_queue_attributes(self, *, QueueUrl: str, **_: Any) -> dict[str, Any]:
        queue = self.world.queue(QueueUrl)

        async def effect() -> dict[str, Any]:
            return {"Attributes": {"VisibilityTimeout": str(queue.visibility_s)}}

        return await self._call("GetQueueAttributes", effect)

    async def send_message(self, *, QueueUrl: str, MessageBody: str, **kw: Any) -> dict[str, Any]:
        queue, who = self.world.queue(QueueUrl), self.process.name

        async def effect() -> dict[str, Any]:
            return {"MessageId": queue.send(MessageBody, who, kw.get("MessageAttributes")).id}

        answer = await self._call("SendMessage", effect)
        self.process.delivered["sent"] += 1
        return answer

    async def delete_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        queue = self.world.queue(QueueUrl)
        answer = await self._batch(
            "DeleteMessageBatch", Entries, lambda e: queue.delete(e["ReceiptHandle"], self.process.name)
        )
        self.process.delivered["deleted"] += len(answer["Successful"])
        return answer

    async def change_message_visibility_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        queue, who = self.world.queue(QueueUrl), self.process.name
        return await self._batch(
            "ChangeMessageVisibilityBatch",
            Entries,
            lambda e: queue.change_visibility(e["ReceiptHandle"], int(e["VisibilityTimeout"]), who),
        )

    async def _batch(self, operation: str, entries: list[dict[str, Any]], act: Any) -> dict[str, Any]:
        async def effect() -> dict[str, Any]:
            successful, failed = [], []
            for entry in entries:
                if self.world.faults.entry_fails(self.world.clock.now):
                    failed.append({"Id": entry["Id"], "Code": "InternalError", "SenderFault": False})
                elif code := act(entry):
                    failed.append({"Id": entry["Id"], "Code": code, "SenderFault": True})
                else:
                    successful.append({"Id": entry["Id"]})
            return {"Successful": successful, "Failed": failed}

        return await self._call(operation, effect)


class DynamoDBClient(SimClient):
    async def put_item(self, *, TableName: str, Item: dict[str, Any], **kw: Any) -> dict[str, Any]:
        table, who = self.world.table, self.process.name
        inserted = False

        async def effect() -> dict[str, Any]:
            nonlocal inserted
            old = table.put(Item, kw.get("ConditionExpression"), who)
            if old is None:
                inserted = True
                return {}
            extra = {"Item": old} if kw.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" else {}
            raise errors.client_error("dynamodb", "PutItem", "ConditionalCheckFailedException", **extra)

        self.process.puts_in_flight += 1  # the bound MAX_IN_FLIGHT_RECORDS puts on the process
        self.process.peak_puts = max(self.process.peak_puts, self.process.puts_in_flight)
        try:
            answer = await self._call("PutItem", effect)
        except self.exceptions.ConditionalCheckFailedException:
            if inserted:  # an SDK retry after a lost response: the failed condition is the process's own write
                self.process.owed.add(Item["photoId"]["S"])
            raise
        finally:
            self.process.puts_in_flight -= 1
        self.process.delivered["inserted"] += 1
        return answer

    async def batch_execute_statement(self, *, Statements: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        table, who, faults, clock = self.world.table, self.process.name, self.world.faults, self.world.clock

        async def effect() -> dict[str, Any]:
            answers = []
            for statement in Statements:
                if faults.draw("dynamodb", "PutItem", clock.now) == "throttle":
                    answers.append({"Error": {"Code": "ThrottlingError", "Message": "Throughput exceeds the limit"}})
                else:
                    answers.append(table.insert(statement, who, with_old=self.world.rng.random() < 0.5))
            return {"Responses": answers}

        answer = await self._call("BatchExecuteStatement", effect)
        self.process.delivered["inserted"] += sum(1 for a in answer["Responses"] if "Error" not in a)
        return answer

    async def get_item(self, *, TableName: str, Key: dict[str, Any], **_: Any) -> dict[str, Any]:
        table = self.world.table

        async def effect() -> dict[str, Any]:
            item = table.items.get(Key["photoId"]["S"])
            return {"Item": item} if item is not None else {}

        return await self._call("GetItem", effect)


class S3Client(SimClient):
    async def head_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        objects = self.world.objects

        async def effect() -> dict[str, Any]:
            head = objects.head(Bucket, Key)
            if head is None:
                raise errors.client_error("s3", "HeadObject", "404", 404)
            return head

        return await self._call("HeadObject", effect)


CLIENTS: dict[str, type[SimClient]] = {"sqs": SqsClient, "dynamodb": DynamoDBClient, "s3": S3Client}
