"""The region lease: at most one chunk per region while another region waits for a worker.

Every region's chunks are paced by its shared limiter, so two workers on one region share its
rate while another region may wait; RQ's round-robin cannot know. The first chunk of a region
holds a lease (a hint that expires on its own). A worker looks at regions nobody holds first
(:func:`unleased_first`). A chunk that still lands on a held region goes back to the front of
its queue before its work horse is forked, but only when a region the worker listens on has
queued work and no lease (:func:`claim`), so that no worker ever waits on the lease.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

import redis
from rq import Queue
from rq.job import Job

from bulktag.store import PREFIX
from providers.catalog import PROVIDERS

# Only these queues (``bulktag.<provider>.<location>``) take a region's rate, not the
# webhook or compliance queues.
REGION_PREFIXES = tuple(f"bulktag.{provider}." for provider in PROVIDERS)

Q = TypeVar("Q", bound=Queue)


def lease_key(queue_name: str) -> str:
    return f"{PREFIX}:lease:{queue_name}"


def claim(job: Job, alternatives: Iterable[str]) -> bool:
    """Take the lease of the job's region, or say the worker should take one of
    ``alternatives`` (the queues it listens on) instead: one that has queued work and no
    lease. The job already holding the lease (taken again after a restart) keeps it."""
    conn = job.connection
    key = lease_key(job.origin)
    ttl_ms = int((job.timeout or 300) * 1000)
    if conn.set(key, job.id, nx=True, px=ttl_ms) or conn.get(key) == job.id.encode():
        return True
    others = [n for n in alternatives if n.startswith(REGION_PREFIXES) and n != job.origin]
    pipe = conn.pipeline(transaction=False)
    for name in others:
        pipe.llen(f"{Queue.redis_queue_namespace_prefix}{name}")
        pipe.exists(lease_key(name))
    answers = pipe.execute()
    idle_region_with_work = any(
        waiting and not leased for waiting, leased in zip(answers[0::2], answers[1::2], strict=True)
    )
    return not idle_region_with_work


def release(job: Job) -> None:
    key = lease_key(job.origin)
    if job.connection.get(key) == job.id.encode():
        job.connection.delete(key)


def unleased_first(conn: redis.Redis, queues: Sequence[Q]) -> list[Q]:
    """``queues`` in the same order, but regions no chunk holds before those one does: a
    worker then starts on a region nobody works instead of stepping aside after the fork
    (one round trip)."""
    regions = [q for q in queues if q.name.startswith(REGION_PREFIXES)]
    if len(regions) < 2:
        return list(queues)
    held = {q.name for q, leased in zip(regions, conn.mget([lease_key(q.name) for q in regions]),
                                        strict=True) if leased}  # fmt: skip
    return sorted(queues, key=lambda q: q.name in held)
