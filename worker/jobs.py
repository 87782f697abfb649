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
from providers.catalog import PROVIDERS
from providers.http import new_session
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
    if job is not None and not claim_queue(job):
        _follow_up(job, chunk, ChunkReport(remaining=list(resource_ids)), stepped_aside=True)
        return {"resources": len(resource_ids), "bounced": True}
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
    if job is not None:
        release_queue(job)
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


def _lease_key(queue_name: str) -> str:
    return f"{store.PREFIX}:lease:{queue_name}"


def claim_queue(job: Job) -> bool:
    """Take this region's lease, or say the chunk should step aside.

    Every region's chunks are paced by its shared limiter, so two workers on one region share
    its rate while another region may wait; RQ's round-robin cannot know. The first chunk of a
    region holds a lease (a hint that expires on its own); a second one steps aside, going to
    the back of its queue, only when some other region has queued work and no lease, so that
    no worker ever waits on the lease."""
    conn = job.connection
    ttl_ms = int((job.timeout or 300) * 1000)
    if conn.set(_lease_key(job.origin), job.id, nx=True, px=ttl_ms):
        return True
    # Only other regions' queues count (``bulktag.<provider>.<location>``), not the webhook
    # or compliance queues, whose jobs take no region's rate.
    region_prefixes = tuple(f"bulktag.{provider}." for provider in PROVIDERS)
    others = [
        q.name
        for q in Queue.all(connection=conn)
        if q.name.startswith(region_prefixes) and q.name != job.origin
    ]
    pipe = conn.pipeline(transaction=False)
    for name in others:
        pipe.llen(f"{Queue.redis_queue_namespace_prefix}{name}")
        pipe.exists(_lease_key(name))
    answers = pipe.execute()
    idle_region_with_work = any(
        waiting and not leased for waiting, leased in zip(answers[0::2], answers[1::2], strict=True)
    )
    return not idle_region_with_work


def release_queue(job: Job) -> None:
    key = _lease_key(job.origin)
    if job.connection.get(key) == job.id.encode():
        job.connection.delete(key)


def _follow_up(job: Job, chunk: Chunk, report: ChunkReport, *, stepped_aside: bool = False) -> None:
    """A job for the resources this chunk did not get to: parked (saved, not queued) when
    the target is paused, so that ``bulktag resume`` enqueues it; queued at once when the
    chunk ran out of time or stepped aside for another region (routine: logged at INFO)."""
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
    log.log(
        logging.INFO if stepped_aside else logging.WARNING,
        "chunk stepped aside for an idle region" if stepped_aside else "chunk handed on",
        extra={"campaign": chunk.campaign_id, "job": follow.id, "remaining": len(report.remaining),
               "parked_because": report.paused},
    )  # fmt: skip
