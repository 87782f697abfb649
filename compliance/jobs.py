"""The RQ job of a scheduled run; the scheduler enqueues it by name, JSON-serialized.

The payload is the policy *name* and the tick: the policy itself (targets, ids) is read from
Redis, as saved by ``bulktag schedule add``, and no credential is ever in it.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

import redis
import redis.asyncio as aioredis
from rq import get_current_job

from compliance import runs
from compliance.execute import run_policy

log = logging.getLogger(__name__)

REDIS_URL_ENV = "BULKTAG_REDIS_URL"  # what `bulktag worker` exports for its job code


def _connections() -> tuple[redis.Redis, aioredis.Redis]:
    job = get_current_job()
    url = os.environ.get(REDIS_URL_ENV)
    if job is not None:
        sync: redis.Redis = job.connection
    elif url:
        sync = redis.Redis.from_url(url)
    else:
        raise RuntimeError(f"{REDIS_URL_ENV} is not set and no RQ job is running")
    if url:
        return sync, aioredis.Redis.from_url(url)
    kwargs = dict(sync.connection_pool.connection_kwargs)
    return sync, aioredis.Redis(**kwargs)


async def run_scheduled(policy: str, tick: str, dry_run: bool = False) -> dict[str, Any]:
    """Run one tick of ``policy``; the job's result is the run record (or why nothing ran)."""
    conn, aconn = _connections()
    try:
        stored = runs.load_policy(conn, policy)
        if stored is None:
            log.warning("policy no longer scheduled", extra={"policy": policy})
            return {"policy": policy, "skipped": "not scheduled"}
        result = await run_policy(
            conn, aconn, stored.policy, datetime.fromisoformat(tick), dry_run=dry_run
        )
    finally:
        await aconn.aclose()
    if result.record is None:  # dry run: report only
        return {
            "policy": policy,
            "dry_run": True,
            "would_tag": sum(1 for _ in result.to_fix()),
        }
    return {"skipped": result.skipped, **result.record.to_json()}
