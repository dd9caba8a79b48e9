"""The one place that turns the shared settings into the core every runtime uses (issue 18, "One core").

    IngestSettings ─▶ open_ingest ─▶ DynamoDB client (pool from the limiter's ceiling)
                                      └─▶ PhotoStore(PHOTOS_TABLE, WRITE_MODE)
                                            └─▶ VerifiedStore(+ an S3 client) when VERIFY_OBJECTS
                                                  └─▶ Ingest(RAW_PREFIX, trust(): ALLOWED_*, MAX_RECORDS_PER_MESSAGE)

The worker (`run_worker`), the Lambda runtime (`LambdaRuntime._open`) and direct backfill (`job._run`) call it;
none builds its own store, so a shared setting cannot mean one thing in one runtime and another elsewhere
(`tests/test_settings_matrix.py` checks that it does not). `session` is the seam for simulated AWS clients.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from service.aws.clients import make_session, open_dynamodb, open_s3
from service.aws.objects import VerifiedStore
from service.aws.table import PhotoStore
from service.config import IngestSettings
from service.ingest.limiter import Limiter
from service.ingest.settle import Ingest, PutWatcher, Store
from service.metrics import Metrics

if TYPE_CHECKING:
    import aioboto3

SPARE_CONNECTIONS = 4  # beyond one per slot: the GetItem that confirms a duplicate in batch mode, a retry


async def open_ingest(
    stack: AsyncExitStack,
    settings: IngestSettings,
    metrics: Metrics,
    limiter: Limiter,
    *,
    session: aioboto3.Session | None = None,
    watcher: PutWatcher | None = None,
) -> Ingest:
    """The `Ingest` of these settings, its clients closed with `stack`; its puts run in `limiter`'s slots."""
    session = session or make_session()
    pool = limiter.ceiling + SPARE_CONNECTIONS
    dynamodb = await open_dynamodb(stack, session, pool)
    table = PhotoStore(dynamodb, settings.photos_table, settings.write_mode)
    store: Store = table
    if settings.verify_objects:  # an S3 client only when it is asked for
        store = VerifiedStore(table, await open_s3(stack, session, pool))
    return Ingest(store, settings.raw_prefix, metrics, watcher, limiter=limiter, trust=settings.trust())
