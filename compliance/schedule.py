"""Scheduling compliance runs on RQ's own cron scheduler, with JSON jobs and one run per tick.

RQ's ``CronScheduler`` (rq/cron.py) keeps the clock: it computes each cron job's next time,
sleeps until it, enqueues, registers itself and heartbeats in Redis so that ``rq`` tools see
it. Two things in it do not fit bulktag, and each is changed at the one place RQ allows:

- ``CronJob.enqueue`` builds ``Queue(queue_name, connection=connection)``: the default
  serializer, pickle, which bulktag workers refuse (they run with ``JSONSerializer``).
  :class:`PolicyCronJob` overrides ``enqueue`` to use a JSON queue and the job by name
  (``compliance.jobs.run_scheduled``), keeping RQ's bookkeeping (job history, cron job
  registry). The alternatives are worse: ``Queue.enqueue_at`` needs a worker running RQ's
  scheduler and re-implementing cron to enqueue the next tick; a home-made loop is the
  thing the issue rules out.
- Every scheduler process enqueues every due job: two schedulers (for availability) would
  run a policy twice. The tick itself is deterministic (a cron time, not "now"), so
  ``enqueue`` first takes ``SET NX`` on ``bulktag:compliance:tick:<policy>:<tick>``; only
  the winner enqueues, with the deterministic job id ``compliance-<policy>-<tick>``. The run
  record is also claimed with HSETNX by the job (``runs.claim_run``), so a retried job never
  runs a tick twice either. (A scheduler killed between the SET and the enqueue loses that
  one tick; the next tick runs normally.)

Also: cron fields are read in the policy's time zone (RQ uses the machine's local zone, and
two machines may differ), and policies live in Redis, so :class:`ComplianceScheduler`
reloads them when ``bulktag schedule add/remove`` changes them. A tick missed while no
scheduler ran is not made up for (RQ's behaviour).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import redis
from croniter import croniter
from rq import Queue, Retry, cron_job_registry
from rq.cron import CronJob, CronScheduler
from rq.defaults import DEFAULT_CRON_JOB_HISTORY_LIMIT, DEFAULT_CRON_JOB_HISTORY_TTL
from rq.serializers import JSONSerializer
from rq.utils import now

from compliance import runs
from compliance.policy import Policy

log = logging.getLogger(__name__)

QUEUE = "bulktag.compliance"
RUN_JOB = "compliance.jobs.run_scheduled"
CRON_NAME_PREFIX = "bulktag-compliance:"
# Discovery of a large account at 10 calls/s takes a while; the job itself only discovers
# and submits (the workers tag), so an hour covers about 3.6 million Alibaba keys' listing.
JOB_TIMEOUT = 4 * 3600
RESULT_TTL = 7 * 24 * 3600
TICK_CLAIM_TTL = 7 * 24 * 3600
# How often a running scheduler looks for added or removed policies (RQ sleeps up to 60 s).
RELOAD_S = 2.0


def tick_key(policy: str, stamp: str) -> str:
    return f"{runs.PREFIX}:tick:{policy}:{stamp}"


def job_id_for(policy: str, stamp: str) -> str:
    return f"compliance-{policy}-{stamp}"


def next_tick(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first cron time strictly after ``after``, read in ``timezone``, in UTC."""
    local = after.astimezone(ZoneInfo(timezone))
    found: datetime = croniter(schedule, local).get_next(datetime)
    return found.astimezone(UTC)


def enqueue_run(
    conn: redis.Redis, policy: str, tick: datetime, *, dry_run: bool = False, pipeline: Any = None
) -> Any:
    """The JSON job for one run of ``policy`` at ``tick`` (no claim: callers decide)."""
    queue = Queue(QUEUE, connection=conn, serializer=JSONSerializer)
    stamp = runs.tick_stamp(tick)
    return queue.enqueue(
        RUN_JOB,
        kwargs={"policy": policy, "tick": tick.astimezone(UTC).isoformat(), "dry_run": dry_run},
        job_id=job_id_for(policy, stamp),
        description=f"compliance run {policy} {stamp}",
        job_timeout=JOB_TIMEOUT,
        result_ttl=RESULT_TTL,
        # A run that raised released its claim (execute.run_policy), so a retry of the same
        # job makes the tick's one run. (A work horse killed outright leaves its run
        # "discovering"; the retry then skips the tick rather than risk running it twice.)
        retry=Retry(max=2),
        pipeline=pipeline,
    )


class PolicyCronJob(CronJob):
    """RQ's ``CronJob`` for one policy: JSON job, policy time zone, one enqueue per tick."""

    def __init__(self, policy: Policy, dry_run: bool, scheduler_name: str) -> None:
        # Read by get_next_enqueue_time, which CronJob.__init__ already calls.
        self.policy = policy
        self.dry_run = dry_run
        self.scheduler_name = scheduler_name
        self.fingerprint = json.dumps([policy.to_json(), dry_run], sort_keys=True)
        super().__init__(
            queue_name=QUEUE,
            func_name=RUN_JOB,
            kwargs={"policy": policy.name, "dry_run": dry_run},
            cron=policy.schedule,
            job_timeout=JOB_TIMEOUT,
            result_ttl=RESULT_TTL,
            name=CRON_NAME_PREFIX + policy.name,
        )

    def get_next_enqueue_time(self) -> datetime:
        base = self.latest_enqueue_time or now()
        return next_tick(self.policy.schedule, self.policy.timezone, base)

    def enqueue(self, connection: redis.Redis) -> Any:
        tick = self.next_enqueue_time
        assert tick is not None  # a cron job always has its next time
        stamp = runs.tick_stamp(tick)
        claimed = connection.set(
            tick_key(self.policy.name, stamp), self.scheduler_name, nx=True, ex=TICK_CLAIM_TTL
        )
        if not claimed:
            log.info("tick taken by another scheduler",
                     extra={"policy": self.policy.name, "tick": stamp})  # fmt: skip
            return None
        with connection.pipeline() as pipe:
            job = enqueue_run(connection, self.policy.name, tick, dry_run=self.dry_run,
                              pipeline=pipe)  # fmt: skip
            # RQ's own bookkeeping of what a cron job spawned (as CronJob.enqueue does).
            stamp_s = tick.timestamp()
            pipe.zadd(self.job_history_key, {job.id: stamp_s})
            pipe.zremrangebyrank(self.job_history_key, 0, -(DEFAULT_CRON_JOB_HISTORY_LIMIT + 1))
            pipe.expire(self.job_history_key, DEFAULT_CRON_JOB_HISTORY_TTL)
            cron_job_registry.add(self.name, pipe, enqueue_timestamp=stamp_s)
            pipe.execute()
        log.info("compliance run enqueued",
                 extra={"policy": self.policy.name, "tick": stamp, "job": job.id})  # fmt: skip
        return job


class ComplianceScheduler(CronScheduler):
    """RQ's ``CronScheduler`` whose cron jobs are the policies scheduled in Redis."""

    def __init__(self, connection: redis.Redis, name: str = "") -> None:
        super().__init__(connection=connection, name=name)
        self._version: int | None = None

    def sync(self) -> bool:
        """Reload the policies if ``bulktag schedule`` changed them; whether anything did.
        An unchanged policy keeps its cron job (and so its next tick)."""
        current = runs.version(self.connection)
        if current == self._version:
            return False
        self._version = current
        kept = {job.name: job for job in self._cron_jobs if isinstance(job, PolicyCronJob)}
        fresh: list[CronJob] = []
        for stored in runs.policies(self.connection):
            job = PolicyCronJob(stored.policy, stored.dry_run, self.name)
            old = kept.get(job.name)
            fresh.append(old if old is not None and old.fingerprint == job.fingerprint else job)
        self._cron_jobs = fresh
        log.info("policies loaded", extra={"policies": [j.name for j in fresh]})
        self.save()
        return True

    def enqueue_jobs(self) -> list[Any]:
        self.sync()
        return list(super().enqueue_jobs())

    def calculate_sleep_interval(self) -> float:
        return float(min(super().calculate_sleep_interval(), RELOAD_S))
