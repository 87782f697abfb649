"""The region lease (worker.lease) on a real Redis: a second chunk of a busy region steps aside
only for another region that waits with no worker on it, and only for one its worker can take."""

from __future__ import annotations

import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from worker.lease import claim, lease_key, release, unleased_first
from worker.runner import CampaignWorker

HANGZHOU = "bulktag.aliyun.cn-hangzhou"
SHANGHAI = "bulktag.aliyun.cn-shanghai"
HUAWEI = "bulktag.huawei.0123456789abcdef0123456789abcdef"
EVERY_QUEUE = [HANGZHOU, SHANGHAI, HUAWEI, "bulktag.notify", "bulktag.compliance"]


def _job(conn: redis.Redis, queue: str) -> Job:
    q = Queue(queue, connection=conn, serializer=JSONSerializer)
    return q.enqueue("worker.jobs.tag_chunk", "c", {}, [], [])


def test_second_chunk_of_a_region_steps_aside_for_an_idle_region_only(
    redis_client: redis.Redis,
) -> None:
    first, second = _job(redis_client, HANGZHOU), _job(redis_client, HANGZHOU)
    redis_client.delete(f"rq:queue:{HANGZHOU}")  # both taken by workers
    assert claim(first, EVERY_QUEUE)
    assert claim(first, EVERY_QUEUE)  # the holder keeps it
    # Nothing else waits: the second chunk shares the region's rate.
    assert claim(second, EVERY_QUEUE)
    # Webhook and compliance jobs take no region's rate: no reason to step aside.
    _job(redis_client, "bulktag.notify")
    _job(redis_client, "bulktag.compliance")
    assert claim(second, EVERY_QUEUE)
    # Another region waits with no worker: step aside for it, if this worker listens there.
    _job(redis_client, HUAWEI)
    assert not claim(second, EVERY_QUEUE)
    assert claim(second, [HANGZHOU, SHANGHAI])
    release(first)
    assert claim(second, EVERY_QUEUE)


def test_a_worker_looks_at_regions_nobody_holds_first(redis_client: redis.Redis) -> None:
    names = [HANGZHOU, SHANGHAI, "bulktag.notify", "bulktag.aliyun.cn-beijing"]
    queues = [Queue(n, connection=redis_client) for n in names]
    assert unleased_first(redis_client, queues) == queues  # nothing held: order kept
    assert claim(_job(redis_client, HANGZHOU), names)
    ordered = [q.name for q in unleased_first(redis_client, queues)]
    assert ordered == [SHANGHAI, "bulktag.notify", "bulktag.aliyun.cn-beijing", HANGZHOU]


def test_worker_puts_a_held_regions_chunk_back_and_takes_the_idle_region(
    redis_client: redis.Redis,
) -> None:
    held = _job(redis_client, HANGZHOU)
    redis_client.delete(f"rq:queue:{HANGZHOU}")
    assert claim(held, EVERY_QUEUE)  # another worker runs Hangzhou
    waiting, idle = _job(redis_client, HANGZHOU), _job(redis_client, SHANGHAI)
    queues = [Queue(n, connection=redis_client, serializer=JSONSerializer)
              for n in (HANGZHOU, SHANGHAI)]  # fmt: skip
    worker = CampaignWorker(queues, connection=redis_client, serializer=JSONSerializer)
    # A race: the worker popped Hangzhou's chunk just as another worker took the lease.
    assert redis_client.lpop(f"rq:queue:{HANGZHOU}") == waiting.id.encode()
    assert not worker._takes_region(waiting, queues[0])
    assert redis_client.lrange(f"rq:queue:{HANGZHOU}", 0, -1) == [waiting.id.encode()]
    # Its next look starts with the region nobody holds.
    taken = worker.dequeue_job_and_maintain_ttl(None)
    assert taken is not None and taken[0].id == idle.id
    assert worker._takes_region(*taken)
    assert redis_client.get(lease_key(SHANGHAI)) == idle.id.encode()
