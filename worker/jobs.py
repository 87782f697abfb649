"""The RQ job functions. The producer enqueues them by name (``worker.jobs.tag_chunk``)."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from rq import Queue, Retry, get_current_job
from rq.job import Job
from rq.serializers import JSONSerializer

from bulktag import store
from bulktag.connections import OUTAGE_BACKOFF_BASE_S, OUTAGE_BACKOFF_CAP_S, OUTAGE_RETRIES
from producer.campaign import Target
from producer.submit import JOB_RETRIES, TAG_JOB
from providers.http import new_session
from worker import lease
from worker.control import parked_key
from worker.engine import Chunk, ChunkReport, ChunkRunner, make_key_lister, make_tag_call
from worker.reconcile import jobs_key

log = logging.getLogger(__name__)

REDIS_URL_ENV = "BULKTAG_REDIS_URL"
# A chunk stops starting calls this long before RQ would kill it, and hands on the rest.
DEADLINE_MARGIN_S = 30
REDIS_CONNECTIONS = 4


def _async_redis(sync: redis.Redis | None) -> aioredis.Redis:
    """An asyncio client for the Redis this job came from (the worker exports its URL)."""
    url = os.environ.get(REDIS_URL_ENV)
    # A few connections, shared by every call of the chunk: with one per concurrent call, a
    # chunk opened dozens, and connecting cost more than the calls (profile in
    # docs/benchmarks.md).
    # Ride out a Redis outage or restart as the worker's own client does.
    retry = AsyncRetry(
        ExponentialWithJitterBackoff(base=OUTAGE_BACKOFF_BASE_S, cap=OUTAGE_BACKOFF_CAP_S),
        OUTAGE_RETRIES,
    )
    if url:
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=REDIS_CONNECTIONS, timeout=None, retry=retry
        )
    elif sync is not None:
        kwargs = {**sync.connection_pool.connection_kwargs, "retry": retry}
        pool = aioredis.BlockingConnectionPool(
            max_connections=REDIS_CONNECTIONS, timeout=None, **kwargs
        )
    else:
        raise RuntimeError(f"{REDIS_URL_ENV} is not set and no RQ job is running")
    return aioredis.Redis.from_pool(pool)


async def tag_chunk(
    campaign_id: str,
    target: dict[str, Any],
    tags: list[list[str]],
    resource_ids: list[str],
    target_no: int = 0,
) -> dict[str, Any]:
    """Tag one chunk of a campaign; the return value is the job's result (a summary)."""
    job = get_current_job()
    chunk = Chunk(
        campaign_id,
        target_no,
        Target.from_json(target),
        tuple((k, v) for k, v in tags),
        tuple(resource_ids),
    )
    conn = _async_redis(job.connection if job else None)
    started = time.monotonic()
    deadline = None
    if job is not None and job.timeout and job.timeout > 0:
        deadline = started + max(job.timeout - DEADLINE_MARGIN_S, job.timeout / 2)
    try:
        async with new_session() as session:
            runner = ChunkRunner(
                chunk, conn, make_tag_call(chunk.target, session), deadline=deadline,
                list_page=make_key_lister(chunk.target, session),
            )  # fmt: skip
            report = await runner.run()
    finally:
        await conn.aclose()
        if job is not None:  # the worker took the lease before forking (worker/runner.py)
            lease.release(job)
    if job is not None:
        if report.remaining:
            _follow_up(job, chunk, report)
        store.finish_if_complete(job.connection, campaign_id)
    summary = {
        "resources": len(resource_ids),
        "recorded": report.recorded,
        "skipped": report.skipped,
        "calls": report.calls,
        "throttled": report.throttled,
        "handed_on": len(report.remaining),
        "paused": report.paused,
        "cancelled": report.cancelled,
        "seconds": round(time.monotonic() - started, 3),
    }
    log.info("chunk done", extra={"campaign": campaign_id, "job": job.id if job else None,
                                  **summary})  # fmt: skip
    return summary


def _follow_up(job: Job, chunk: Chunk, report: ChunkReport) -> None:
    """A job for the resources this chunk did not get to: parked (saved, not queued) when
    the target is paused, so that ``bulktag resume`` enqueues it; queued at once when the
    chunk ran out of time."""
    base = job.meta.get("chunk", job.id)
    follow = Job.create(
        TAG_JOB,
        kwargs={**job.kwargs, "resource_ids": report.remaining},
        connection=job.connection,
        serializer=JSONSerializer,
        id=f"{base}-{'parked' if report.paused else 'more'}-{int(time.time() * 1000)}",
        meta={"chunk": base},
        origin=job.origin,
        description=job.description,
        timeout=int(job.timeout) if job.timeout else None,
        result_ttl=job.result_ttl,
        failure_ttl=job.failure_ttl,
        retry=Retry(max=JOB_RETRIES),
    )
    job.connection.sadd(jobs_key(chunk.campaign_id), follow.id)
    if report.paused:
        follow.save()
        job.connection.sadd(parked_key(chunk.campaign_id), follow.id)
    else:
        Queue(job.origin, connection=job.connection, serializer=JSONSerializer).enqueue_job(follow)
    log.warning(
        "chunk handed on",
        extra={"campaign": chunk.campaign_id, "job": follow.id, "remaining": len(report.remaining),
               "parked_because": report.paused},
    )  # fmt: skip
