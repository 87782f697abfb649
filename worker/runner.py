"""The RQ worker class bulktag runs: round-robin over every campaign queue, new ones included.

Each (provider, region/project) has its own queue, so that a slow or throttled region never
holds up another; the worker takes one job from each queue in turn (RQ's round-robin
dequeue strategy). A campaign submitted after the worker started may bring new queues: the
worker looks for them after every job and every ``REFRESH_S`` seconds when idle.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from rq import Queue, Worker
from rq.job import Job
from rq.worker.base import DequeueStrategy

from worker import lease

QUEUE_PREFIX = "bulktag."
# An idle worker blocks on its queues this long, then looks for new ones: a new campaign
# waits on average half of it for its first call (at 20 calls/s, 0.1 s is 2 calls). Each
# look is a BLPOP, a heartbeat, an SMEMBERS and an MGET of the region leases: 100 idle
# workers make ~4,000 light commands/s, a few percent of what one Redis core serves.
REFRESH_S = 0.1
# Every worker the pool starts shares this switch (set by `bulktag worker --queues`).
FIXED_QUEUES_ENV = "BULKTAG_FIXED_QUEUES"


def campaign_queue_names(connection: Any) -> list[str]:
    """Every bulktag queue RQ knows of (RQ keeps the set of queues in Redis)."""
    return sorted(
        q.name for q in Queue.all(connection=connection) if q.name.startswith(QUEUE_PREFIX)
    )


# Crash recovery (RQ 3.0, read in rq/worker/base.py and rq/registry.py): a job whose whole
# worker died stays in the StartedJobRegistry until its heartbeat lease expires; then a
# maintenance pass re-queues it (jobs carry Retry(max=...)). RQ's defaults (lease +60 s,
# maintenance every 600 s, idle workers blocking 405 s) make that 1.5 to 12 minutes; these make
# it about 20-35 s. bench/rq_overhead.py and docs/benchmarks.md have the measurements.
JOB_MONITORING_INTERVAL = 5
MAINTENANCE_INTERVAL = 10
WORKER_TTL = 30
LEASE_MARGIN = 15


def use_fast_event_loop() -> None:
    """RQ runs each coroutine job with ``asyncio.run``, which takes its loop from the event
    loop policy: with uvloop's policy every job's loop is uvloop. It halves the event loop's
    share of a work horse's CPU (docs/benchmarks.md, ceiling); without uvloop (not on
    every platform) jobs run on the standard loop."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


class CampaignWorker(Worker):
    """An RQ ``Worker`` (one forked work horse per job) with queue discovery and quick
    recovery of chunks whose worker was killed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("job_monitoring_interval", JOB_MONITORING_INTERVAL)
        kwargs.setdefault("maintenance_interval", MAINTENANCE_INTERVAL)
        kwargs.setdefault("worker_ttl", WORKER_TTL)
        super().__init__(*args, **kwargs)
        use_fast_event_loop()
        # Workers started together would all take their first job from the same queue and
        # then move through the queues in step, two workers sharing one region's limit while
        # another region waits. Each worker starts at a random place in the rotation.
        shift = random.randrange(len(self._ordered_queues)) if self._ordered_queues else 0
        self._ordered_queues = self._ordered_queues[shift:] + self._ordered_queues[:shift]

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """RQ adds 60 s to every lease; a shorter margin gets a dead worker's chunk re-run
        sooner. The parent heartbeats every JOB_MONITORING_INTERVAL, well inside it."""
        interval = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            return int(min(job.timeout - working_time, interval)) + LEASE_MARGIN
        return int(interval) + LEASE_MARGIN

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        # RQ clears the in-flight copy of a job only when the worker listens on exactly one
        # queue; ours gains queues while running, and a stale copy would be re-run by
        # maintenance a minute after the job finished. Always clear it.
        super().prepare_job_execution(job, True)

    def work(self, *args: Any, **kwargs: Any) -> bool:
        kwargs.setdefault("dequeue_strategy", DequeueStrategy.ROUND_ROBIN)
        return bool(super().work(*args, **kwargs))

    @property
    def discovers_queues(self) -> bool:
        return os.environ.get(FIXED_QUEUES_ENV) != "1"

    def refresh_queues(self) -> None:
        if not self.discovers_queues:
            return
        known = {q.name for q in self.queues}
        fresh = [name for name in campaign_queue_names(self.connection) if name not in known]
        if not fresh:
            return
        # A campaign's regions appear together, and every worker would start on the first
        # one: each takes them from a random place instead (as in __init__).
        shift = random.randrange(len(fresh))
        new = [
            self.queue_class(name, connection=self.connection, serializer=self.serializer)
            for name in fresh[shift:] + fresh[:shift]
        ]
        self.queues = [*self.queues, *new]
        self._ordered_queues = [*self._ordered_queues, *new]
        self.log.info("Worker %s: now also listening on %s", self.name, ", ".join(fresh))

    def reorder_queues(self, reference_queue: Queue) -> None:
        super().reorder_queues(reference_queue)
        self.refresh_queues()

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """RQ's dequeue, in slices of REFRESH_S seconds with a queue refresh between them,
        regions no chunk holds first, and a chunk of a held region put back when another
        region waits for a worker (worker/lease.py)."""
        idle = 0.0
        while True:
            self.refresh_queues()
            self._ordered_queues = lease.unleased_first(self.connection, self._ordered_queues)
            # None (burst mode): one non-blocking look. RQ annotates whole seconds, but
            # hands them to BLPOP, which takes fractions.
            wait = None if timeout is None else min(timeout, REFRESH_S)
            result = super().dequeue_job_and_maintain_ttl(wait, wait)  # type: ignore[arg-type]
            if result is not None:
                if self._takes_region(*result):
                    return result
                continue
            if wait is None:
                return None
            idle += wait
            if max_idle_time is not None and idle >= max_idle_time:
                return None

    def _takes_region(self, job: Job, queue: Queue) -> bool:
        # By the queue, not job.func_name: that would deserialize the job here, outside the
        # work horse that fails a job it cannot read (tests/test_security.py).
        if not queue.name.startswith(lease.REGION_PREFIXES) or lease.claim(job, self.queue_names()):
            return True
        # Before the fork: a step aside costs two commands, not a work horse.
        queue.push_job_id(job.id, at_front=True)
        self.log.info("Worker %s: %s is worked, another region waits: %s put back",
                      self.name, queue.name, job.id)  # fmt: skip
        return False
