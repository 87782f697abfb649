"""The region lease (worker.jobs.claim_queue) on a real Redis: a second chunk of a busy region
steps aside only for another region that waits with no worker on it."""

from __future__ import annotations

import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from worker.jobs import claim_queue, release_queue

HANGZHOU = "bulktag.aliyun.cn-hangzhou"


def _job(conn: redis.Redis, queue: str) -> Job:
    q = Queue(queue, connection=conn, serializer=JSONSerializer)
    return q.enqueue("worker.jobs.tag_chunk", "c", {}, [], [])


def test_second_chunk_of_a_region_steps_aside_for_an_idle_region_only(
    redis_client: redis.Redis,
) -> None:
    first, second = _job(redis_client, HANGZHOU), _job(redis_client, HANGZHOU)
    redis_client.delete(f"rq:queue:{HANGZHOU}")  # both taken by workers
    assert claim_queue(first)
    # Nothing else waits: the second chunk shares the region's rate.
    assert claim_queue(second)
    # Webhook and compliance jobs take no region's rate: no reason to step aside.
    _job(redis_client, "bulktag.notify")
    _job(redis_client, "bulktag.compliance")
    assert claim_queue(second)
    # Another region waits with no worker: step aside for it.
    _job(redis_client, "bulktag.huawei.0123456789abcdef0123456789abcdef")
    assert not claim_queue(second)
    release_queue(first)
    assert claim_queue(second)
