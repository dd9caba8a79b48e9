"""The embedded AWS endpoint for `demo` and `local`: a moto server on 127.0.0.1, with this process's SDK pointed at it.

It is a real HTTP endpoint. This process's AWS SDK is pointed at it through `AWS_ENDPOINT_URL`, so the worker
reaches it exactly as it reaches AWS. moto comes with the optional extra `local` and is imported only here,
only when the endpoint starts. `embedded` provisions the stack on it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

INSTALL_HINT = "pip install 'photo-ingest[local]'"
HOST = "127.0.0.1"
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}  # moto accepts any
# Variables that would send the SDK elsewhere than the embedded endpoint, or to a real account.
_CONFLICTING = (
    *("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"),
    *(f"AWS_ENDPOINT_URL_{service}" for service in ("S3", "SQS", "DYNAMODB")),
)


def available() -> bool:
    try:
        import moto.server  # noqa: F401, PLC0415 - moto is the optional extra `local`
    except ImportError:
        return False
    return True


def install_hint(command: str) -> str:
    """The one line `demo` and `local` print when moto is missing."""
    return f"photo-ingest {command} needs moto, from the extra `local`: {INSTALL_HINT}"


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will bind it
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


@contextmanager
def running(port: int = 0) -> Iterator[str]:
    """moto on 127.0.0.1, with this process's AWS SDK pointed at it; yields the endpoint. `port` 0 picks a free
    one. Any other port must be free (check `port_is_free` first): on a busy port moto's server thread dies
    before it reports ready, and `ThreadedMotoServer.start` would wait for it forever."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - moto is the optional extra `local`

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request on stderr
    serialize_sqs_deletes()
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    try:
        host, bound_port = server.get_host_and_port()
        endpoint = f"http://{host}:{bound_port}"
        with _sdk_pointed_at(endpoint):
            yield endpoint
    finally:
        server.stop()


def serialize_sqs_deletes() -> None:
    """moto's SQS deletes a message by rebuilding its queue's message list without a lock, so two deletes at once
    (the worker sends a DeleteMessageBatch per receive, and moto serves each request on its own thread) can each
    put back the message the other removed: it is delivered again after both deletes succeeded. SQS itself may
    deliver a deleted message again only rarely (the worker then finds its item and deletes it again); a local
    run should not make it routine. Each delete now holds the queue's own lock, as moto's sends do. Idempotent."""
    from moto.sqs.models import Queue  # noqa: PLC0415 - moto is the optional extra `local`

    original: Any = Queue.delete_message
    if getattr(original, "serialized", False):
        return

    def delete_message(queue: Any, receipt_handle: str) -> None:
        with queue._messages_lock:  # the lock moto's own sends take
            original(queue, receipt_handle)

    delete_message.serialized = True  # type: ignore[attr-defined]
    Queue.delete_message = delete_message  # type: ignore[method-assign,assignment]


@contextmanager
def _sdk_pointed_at(endpoint: str) -> Iterator[None]:
    saved = dict(os.environ)
    for name in _CONFLICTING:
        os.environ.pop(name, None)
    os.environ.update(CREDENTIALS, AWS_ENDPOINT_URL=endpoint, AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
