"""The AWS clients, built once per process and closed by the caller's `AsyncExitStack`.

Region, credentials and endpoints come from the SDK's own chain (`AWS_REGION`, the ECS task role,
`AWS_ENDPOINT_URL[_SQS|_DYNAMODB|_S3]`).

Retries are pinned here rather than inherited, since the AWS SDKs' defaults change in late 2026
(docs/throughput.md, "The SDK's retries"): botocore's `standard` mode (`legacy`, botocore 1.40's default, does
not retry DynamoDB's `RequestLimitExceeded`), 3 attempts in all for SQS and S3, and 2 for DynamoDB: one SDK
retry covers a dropped connection or a 500. A throttled write is not retried by the SDK at all (retries.py): it
reaches the worker's write pace and limiter at once, which slow down and retry the put in process. `AWS_RETRY_MODE` and
`AWS_MAX_ATTEMPTS` still override both; the connect and read timeouts below are fixed.
"""

from __future__ import annotations

import os
import platform
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import aioboto3
import botocore
from aiobotocore.config import AioConfig

from service import __version__
from service.aws.pipeline import trim
from service.aws.retries import leave_write_throttles_to_caller

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_s3 import S3Client
    from types_aiobotocore_sqs import SQSClient

CONNECT_TIMEOUT_S = 5
MAX_ATTEMPTS = 3  # botocore `standard` mode's own default, pinned
DYNAMODB_MAX_ATTEMPTS = 2
DYNAMODB_READ_TIMEOUT_S = 10
LONG_POLL_MARGIN_S = 10  # a 20 s long poll needs a read timeout above 20 s
# botocore rebuilds its default User-Agent twice for every request, about 10% of the worker's CPU per message
# (docs/performance.md, "What the tuning bought"); this one is built once.
USER_AGENT = f"photo-ingest/{__version__} botocore/{botocore.__version__} python/{platform.python_version()}"


def make_session() -> aioboto3.Session:
    """The SDK's credential and region chain, plus `AWS_REGION`, which botocore 1.40 itself ignores
    (it reads only `AWS_DEFAULT_REGION`); ECS sets both."""
    return aioboto3.Session(region_name=os.environ.get("AWS_REGION") or None)


def client_config(max_pool_connections: int, read_timeout_s: float, *, max_attempts: int = MAX_ATTEMPTS) -> AioConfig:
    retries: dict[str, Any] = {"mode": os.environ.get("AWS_RETRY_MODE") or "standard"}
    if not os.environ.get("AWS_MAX_ATTEMPTS"):  # botocore reads it itself when this dict has no attempts
        retries["total_max_attempts"] = max_attempts
    return AioConfig(
        retries=retries,
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=read_timeout_s,
        max_pool_connections=max_pool_connections,
        tcp_keepalive=True,
        user_agent=USER_AGENT,
        parameter_validation=False,  # our requests have fixed, typed shapes; AWS validates them anyway (-5% CPU)
    )


async def open_sqs(stack: AsyncExitStack, session: aioboto3.Session, pool: int, wait_s: int) -> SQSClient:
    config = client_config(pool, wait_s + LONG_POLL_MARGIN_S)
    client: SQSClient = await stack.enter_async_context(session.client("sqs", config=config))
    trim(client)
    return client


async def open_dynamodb(stack: AsyncExitStack, session: aioboto3.Session, pool: int) -> DynamoDBClient:
    config = client_config(pool, DYNAMODB_READ_TIMEOUT_S, max_attempts=DYNAMODB_MAX_ATTEMPTS)
    client: DynamoDBClient = await stack.enter_async_context(session.client("dynamodb", config=config))
    trim(client)
    leave_write_throttles_to_caller(client)
    return client


async def open_s3(stack: AsyncExitStack, session: aioboto3.Session, pool: int) -> S3Client:
    config = client_config(pool, DYNAMODB_READ_TIMEOUT_S)
    client: S3Client = await stack.enter_async_context(session.client("s3", config=config))
    return client
