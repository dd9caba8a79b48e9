"""The Lambda runtime's settings: the worker's `Settings`, with `QUEUE_URL` optional and a deadline margin.

The event source mapping receives and deletes, so the function never calls its own queue: each event names the
queue it came from (`eventSourceARN`), and `QUEUE_URL` is not required here. The worker's polling, visibility,
shutdown and health settings are read and ignored. `photo-ingest run` still requires `QUEUE_URL`: it loads
`Settings`, not this class.
"""

from __future__ import annotations

from pydantic import Field

from service.config import Settings

LAMBDA_MAX_TIMEOUT_MS = 900_000  # a function runs for at most 15 minutes


class LambdaSettings(Settings):
    queue_url: str = ""  # unused: the event source mapping, not the function, calls the queue

    # No put starts, and unfinished ones are cut, once less than this is left of the invocation; their messages
    # are reported as failures. It covers what follows the cut: cancelling, the log lines, the EMF line and the
    # response, at the slowest CPU share Lambda gives (128 MB is 1/14 of a vCPU). docs/lambda.md, "Settings".
    lambda_deadline_margin_ms: int = Field(2_000, ge=0, le=LAMBDA_MAX_TIMEOUT_MS)
