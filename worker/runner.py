"""The RQ worker class bulktag runs: round-robin over every campaign queue, new ones included.

Each (provider, region/project) has its own queue, so that a slow or throttled region never
holds up another; the worker takes one job from each queue in turn (RQ's round-robin
dequeue strategy). A campaign submitted after the worker started may bring new queues: the
worker looks for them after every job and at least every ``REFRESH_S`` seconds when idle.
"""

from __future__ import annotations

import os
from typing import Any

from rq import Queue, Worker
from rq.job import Job
from rq.worker.base import DequeueStrategy

QUEUE_PREFIX = "bulktag."
REFRESH_S = 5
# Every worker the pool starts shares this switch (set by `bulktag worker --queues`).
FIXED_QUEUES_ENV = "BULKTAG_FIXED_QUEUES"


def campaign_queue_names(connection: Any) -> list[str]:
    """Every bulktag queue RQ knows of (RQ keeps the set of queues in Redis)."""
    return sorted(
        q.name for q in Queue.all(connection=connection) if q.name.startswith(QUEUE_PREFIX)
    )


class CampaignWorker(Worker):
    """An RQ ``Worker`` (one forked work horse per job) with queue discovery."""

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
        new = [
            self.queue_class(name, connection=self.connection, serializer=self.serializer)
            for name in fresh
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
        """RQ's dequeue, in slices of REFRESH_S seconds with a queue refresh between them."""
        if timeout is None:  # burst mode: one non-blocking look
            self.refresh_queues()
            return super().dequeue_job_and_maintain_ttl(None, max_idle_time)
        idle = 0
        while True:
            self.refresh_queues()
            wait = min(timeout, REFRESH_S)
            result = super().dequeue_job_and_maintain_ttl(wait, wait)
            if result is not None:
                return result
            idle += wait
            if max_idle_time is not None and idle >= max_idle_time:
                return None
