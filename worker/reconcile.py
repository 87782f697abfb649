"""Finding chunk jobs that a killed worker took off a queue but never started.

An RQ worker listening on several queues pops a job with a plain list pop; if it is killed
in the few milliseconds before it marks the job started, the job is in no queue and no
registry, and nothing in RQ would ever run it (rq/queue.py ``dequeue_any``; reproduced
while building this). Every chunk job's id is kept per campaign, so a reconciler can see a
job that says "queued" but sits in no queue, and enqueue it again.

A live worker passes through that state too, for milliseconds; a job is re-enqueued only
when it was seen lost on two passes ``INTERVAL_S`` apart. Running a chunk twice is harmless
anyway: outcomes already recorded are skipped and tagging is idempotent.
"""

from __future__ import annotations

import logging
import threading

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from bulktag import store

log = logging.getLogger(__name__)

INTERVAL_S = 30.0
LOCK_KEY = f"{store.PREFIX}:reconcile:lock"


def jobs_key(campaign_id: str) -> str:
    return f"{store.campaign_key(campaign_id)}:jobs"


def lost_jobs(conn: redis.Redis, campaign_id: str) -> set[str]:
    """Jobs of the campaign that are queued in name only."""
    job_ids = sorted(m.decode() for m in conn.smembers(jobs_key(campaign_id)))  # type: ignore[union-attr]
    pipe = conn.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hmget(Job.key_for(job_id), ["status", "origin"])
    queued = [
        (job_id, origin.decode())
        for job_id, (status, origin) in zip(job_ids, pipe.execute(), strict=True)
        if status == b"queued" and origin
    ]
    for job_id, origin in queued:
        queue_key = f"{Queue.redis_queue_namespace_prefix}{origin}"
        pipe.lpos(queue_key, job_id)
        pipe.lpos(f"{queue_key}:intermediate", job_id)
    answers = pipe.execute()
    return {
        job_id
        for (job_id, _), in_queue, in_flight in zip(
            queued, answers[0::2], answers[1::2], strict=True
        )
        if in_queue is None and in_flight is None
    }


class Reconciler:
    """Checks every active campaign every INTERVAL_S; one process at a time does it."""

    def __init__(self, conn: redis.Redis) -> None:
        self.conn = conn
        self._suspects: set[str] = set()
        self._stop = threading.Event()

    def run_once(self) -> int:
        if not self.conn.set(LOCK_KEY, "1", nx=True, ex=int(INTERVAL_S * 0.8)):
            return 0
        suspects: set[str] = set()
        campaigns: list[bytes] = self.conn.zrange(store.CAMPAIGNS, 0, -1)  # type: ignore[assignment]
        for raw in campaigns:
            campaign_id = raw.decode()
            state = self.conn.hget(store.campaign_key(campaign_id), "state")
            if state in (store.DONE.encode(), None):
                continue
            suspects |= lost_jobs(self.conn, campaign_id)
        again = suspects & self._suspects
        self._suspects = suspects - again
        for job_id in sorted(again):
            try:
                job = Job.fetch(job_id, connection=self.conn, serializer=JSONSerializer)
            except NoSuchJobError:
                continue
            Queue(job.origin, connection=self.conn, serializer=JSONSerializer).enqueue_job(job)
            log.warning("lost chunk enqueued again", extra={"job": job_id})
        return len(again)

    def run_forever(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            try:
                self.run_once()
            except redis.RedisError as exc:
                log.warning("reconcile pass skipped", extra={"error": str(exc)})

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="bulktag-reconcile", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
