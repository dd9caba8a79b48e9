"""The Lambda runtime: the same core as the worker, behind an SQS event source mapping, acknowledged through
partial batch responses (`batchItemFailures`). `service.aws_lambda.handler` is the function's handler."""

from service.aws_lambda.entry import close, handler

__all__ = ["close", "handler"]
