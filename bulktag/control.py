"""Operator controls on a running campaign: pause, resume, cancel.

Workers look at these between calls (``worker/control.py``). A paused target's unfinished
resources are kept as parked jobs; resuming enqueues them again. Cancelling lets every
remaining job run without calling the provider, recording ``cancelled`` for what is left, so
that every resource still ends with exactly one outcome.
"""

from __future__ import annotations

import time

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from bulktag import store
from bulktag.errors import UserError
from bulktag.notify import emit
from worker.control import parked_key, paused_key


def _existing(conn: redis.Redis, campaign_id: str) -> store.CampaignRecord:
    record = store.load_campaign(conn, campaign_id)
    if record is None:
        raise UserError(f"no campaign {campaign_id!r} in this Redis")
    return record


def pause(conn: redis.Redis, campaign_id: str) -> str:
    record = _existing(conn, campaign_id)
    if record.state in (store.DONE, store.CANCELLED):
        raise UserError(f"campaign {campaign_id!r} is {record.state}; nothing to pause")
    conn.hset(
        store.campaign_key(campaign_id),
        mapping={"state": store.PAUSED, "paused_at": time.time()},
    )
    emit(conn, campaign_id, "paused", reason="operator")
    return "paused: workers stop starting calls for it; `bulktag resume` continues"


def resume(conn: redis.Redis, campaign_id: str) -> str:
    """Clear every pause (operator's, and targets paused after auth failures) and enqueue the
    parked jobs."""
    record = _existing(conn, campaign_id)
    if record.state == store.CANCELLED:
        raise UserError(f"campaign {campaign_id!r} is cancelled; it cannot be resumed")
    key = store.campaign_key(campaign_id)
    if record.state == store.PAUSED:
        conn.hset(key, mapping={"state": store.QUEUED, "resumed_at": time.time()})
    conn.delete(paused_key(campaign_id))
    emit(conn, campaign_id, "resumed")
    return f"resumed; {release_parked(conn, campaign_id)} parked jobs enqueued again"


def cancel(conn: redis.Redis, campaign_id: str) -> str:
    record = _existing(conn, campaign_id)
    if record.state == store.DONE:
        raise UserError(f"campaign {campaign_id!r} is already done")
    conn.hset(
        store.campaign_key(campaign_id),
        mapping={"state": store.CANCELLED, "cancelled_at": time.time()},
    )
    emit(conn, campaign_id, "cancelled")
    # Parked jobs run too: they record "cancelled" for their resources without any call.
    released = release_parked(conn, campaign_id)
    return f"cancelled; remaining resources will be recorded as cancelled ({released} parked)"


def release_parked(conn: redis.Redis, campaign_id: str) -> int:
    released = 0
    while True:
        job_id = conn.spop(parked_key(campaign_id))
        if not isinstance(job_id, bytes):
            return released
        try:
            job = Job.fetch(job_id.decode(), connection=conn, serializer=JSONSerializer)
        except NoSuchJobError:
            continue
        Queue(job.origin, connection=conn, serializer=JSONSerializer).enqueue_job(job)
        released += 1
