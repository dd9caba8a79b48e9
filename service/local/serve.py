"""`photo-ingest local`: the real worker on the embedded AWS stack, long-running, for your own uploads.

The same stack and worker as `demo`, on a fixed port, with the worker's own log lines; Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from service import process
from service.config import Settings
from service.local import endpoint as moto_endpoint
from service.local import stack as embedded
from service.local.endpoint import REGION
from service.local.stack import BUCKET, RAW_PREFIX
from service.logs import configure_logging
from service.worker.worker import run_worker


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `local`; its handler returns the exit code."""
    summary = "run the worker on an embedded AWS stack (moto) until Ctrl-C, for your own uploads"
    local = process.add_command(commands, "local", summary, ["LOG_LEVEL", "LOG_FORMAT"], _cmd_local)
    local.add_argument(
        "--port",
        type=process.bounded(int, 0, 65_535),
        default=5000,
        help="the endpoint's port on 127.0.0.1 (default: 5000)",
    )


def _cmd_local(args: argparse.Namespace) -> int:
    if not moto_endpoint.available():
        print(moto_endpoint.install_hint("local"), file=sys.stderr)
        return process.EXIT_USAGE
    process.check_aws_environment()  # the stack's clients are made before the settings are loaded
    if not moto_endpoint.port_is_free(args.port):
        raise process.ConfigurationError(
            f"--port {args.port}: {moto_endpoint.HOST}:{args.port} is in use; choose another"
        )
    with moto_endpoint.running(args.port) as endpoint:
        return asyncio.run(_serve_local(endpoint))


async def _serve_local(endpoint: str) -> int:
    stop = asyncio.Event()
    process.install_stop_handlers(stop)
    async with embedded.open_stack(endpoint) as stack:
        settings = process.load_settings(Settings, **stack.settings_overrides(), metrics_enabled=False)
        configure_logging(settings.log_level, settings.log_format)
        print(_instructions(endpoint), flush=True)
        await run_worker(settings, stop)
    return process.EXIT_OK


def _instructions(endpoint: str) -> str:
    key, table, aws = f"{RAW_PREFIX}my-photo.jpg", embedded.TABLE, f"aws --endpoint-url {endpoint}"
    keys = 'aws_access_key_id="local", aws_secret_access_key="local"'
    return f"""
photo-ingest local: the worker runs on an embedded AWS stack (moto) until Ctrl-C.
   endpoint {endpoint}  (region {REGION}; any access key works)
   bucket s3://{BUCKET} (uploads under {RAW_PREFIX} are ingested), table {table}, queue {embedded.QUEUE}

Upload a photo, then look at the table, with the AWS CLI:
   export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION={REGION}
   {aws} s3 cp my-photo.jpg "s3://{BUCKET}/{key}"
   {aws} dynamodb scan --table-name {table}

Or with Python (boto3):
   import boto3
   aws = dict(endpoint_url="{endpoint}", region_name="{REGION}", {keys})
   boto3.client("s3", **aws).upload_file("my-photo.jpg", "{BUCKET}", "{key}")
   print(boto3.client("dynamodb", **aws).scan(TableName="{table}")["Items"])
"""
