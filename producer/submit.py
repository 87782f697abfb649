"""Submitting a campaign: validate everything, then (and only then) enqueue it through RQ.

The Python API for programs (scheduled compliance jobs) is :func:`submit`; the CLI calls
the same function.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis
from rq import Queue, Retry
from rq.job import Job
from rq.serializers import JSONSerializer

from bulktag import store
from bulktag.errors import UserError
from producer.campaign import IdBlock, Target
from producer.inputs import Item, Problem
from producer.plan import Group, Spool, TargetPlan, summarize
from producer.validate import RowChecker, check_block
from providers.batching import round_chunk_size
from providers.catalog import PROVIDERS
from worker.limiter import configured_limits

log = logging.getLogger(__name__)

# Problems listed in full; beyond this only the count is reported.
MAX_REPORTED_PROBLEMS = 50
# The worker's entry point, by name: the producer never imports worker code.
TAG_JOB = "worker.jobs.tag_chunk"
# Default job size in provider calls. Between two chunks of one region the limiter's slots go
# unused for the time RQ takes to start the next job (fork, ~20 Redis round trips:
# performance.md §3.2; about 0.1-0.2 s), so longer chunks use a limit better: 50 calls (2.5 s
# at 20/s) measured 0.83 -> see docs/benchmarks.md. Shorter chunks re-run less after a crash.
CALLS_PER_JOB = 50
MAX_CALLS_PER_JOB = 400
JOB_SECONDS = 2.5
# Finished chunks are kept as long as a campaign is (they hold the tags `bulktag retry` reuses).
RESULT_TTL = 30 * 24 * 3600
FAILURE_TTL = 7 * 24 * 3600
ENQUEUE_BATCH = 50
JOB_RETRIES = 3


class ValidationFailed(UserError):
    """Every problem found in the input; nothing was written."""

    def __init__(self, problems: list[Problem], total: int) -> None:
        self.problems = problems
        self.total = total
        lines = [str(p) for p in problems]
        if total > len(problems):
            lines.append(f"... and {total - len(problems)} more problems")
        super().__init__(
            f"{total} problem{'s' if total != 1 else ''} in the input; nothing was submitted:\n"
            + "\n".join(lines)
        )


@dataclass
class SubmitOptions:
    campaign_id: str | None = None
    chunk_size: int | None = None
    dry_run: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    on_read: Callable[[int], None] | None = None
    on_enqueued: Callable[[int, int], None] | None = None


@dataclass(frozen=True)
class SubmitResult:
    campaign_id: str
    resources: int
    duplicates: int
    jobs_total: int
    jobs_enqueued: int
    plans: list[TargetPlan]
    dry_run: bool


def new_campaign_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def rate_for(target: Target, overrides: Mapping[str, float]) -> float:
    """The calls/s a target's workers will keep to: the operator's override
    (``bulktag limits set``) or the provider's published quota."""
    default = PROVIDERS[target.provider].default_rate_per_second
    return overrides.get(f"{target.provider}:{target.location}", default)


def calls_per_job(rate: float) -> int:
    """A chunk should last a few seconds at its region's rate, so that RQ's own cost per job
    (28 ms with the forking worker, docs/benchmarks.md) stays near 1 %: 50 calls at the
    providers' published quotas, up to 400 where an operator allowed far more."""
    return int(min(MAX_CALLS_PER_JOB, max(CALLS_PER_JOB, rate * JOB_SECONDS)))


def chunk_size_for(target: Target, requested: int | None, rate: float | None = None) -> int:
    rules = PROVIDERS[target.provider]
    if requested is None:
        calls = calls_per_job(rate or rules.default_rate_per_second)
        requested = rules.max_resources_per_call * calls
    return round_chunk_size(rules, requested)


def submit(
    items: Iterable[Item],
    options: SubmitOptions,
    connection: redis.Redis | None = None,
) -> SubmitResult:
    """Validate ``items`` all-or-nothing; unless ``dry_run``, enqueue them on ``connection``."""
    campaign_id = options.campaign_id or new_campaign_id()
    if not store.CAMPAIGN_ID.fullmatch(campaign_id):
        raise UserError(
            f"campaign id {campaign_id!r}: use 1 to 64 letters, digits, '_' or '-' "
            "(what RQ allows in job ids)"
        )
    if connection is None and not options.dry_run:
        raise ValueError("a Redis connection is needed unless dry_run")
    with Spool() as spool:
        reader = _Reader(spool, options.on_read)
        reader.read(items)
        groups = spool.groups()
        plans = summarize(groups)
        rates = configured_limits(connection) if connection is not None else {}
        result = SubmitResult(
            campaign_id, spool.unique_resources(), spool.duplicates,
            sum(_job_count(g, options.chunk_size, rates) for g in groups), 0, plans,
            options.dry_run,
        )  # fmt: skip
        if options.dry_run:
            return result
        assert connection is not None
        fingerprint = reader.fingerprint
        existing = store.load_campaign(connection, campaign_id)
        if existing is not None and existing.fingerprint != fingerprint:
            raise UserError(
                f"campaign {campaign_id!r} already exists with different resources or tags; "
                "choose another --id"
            )
        store.begin_campaign(
            connection, campaign_id, fingerprint, result.resources, result.duplicates,
            result.jobs_total, [_target_json(p) for p in plans], options.options,
        )  # fmt: skip
        enqueued = _enqueue(connection, campaign_id, spool, groups, options)
        store.mark_queued(connection, campaign_id)
    log.info(
        "campaign submitted",
        extra={"campaign": campaign_id, "resources": result.resources, "jobs": enqueued},
    )
    return SubmitResult(
        campaign_id, result.resources, result.duplicates, result.jobs_total, enqueued, plans,
        False,
    )  # fmt: skip


class _Reader:
    """Pass one: validate every item, spool the valid ones, and fingerprint the input.

    The fingerprint covers every accepted (target, tags, id) in input order, so re-running
    the same submit matches and anything else under the same campaign id is refused; it is
    computed on the way, without a second pass over a million ids.
    """

    def __init__(self, spool: Spool, on_read: Callable[[int], None] | None) -> None:
        self.spool = spool
        self.on_read = on_read
        self.problems: list[Problem] = []
        self.total = 0
        self.seen = 0
        self._reported: set[tuple[str, str | None]] = set()
        self._digest = hashlib.sha256()
        self._keyed: tuple[object, object] = (None, None)
        self._key_text: dict[tuple[Target, tuple[tuple[str, str], ...]], bytes] = {}

    def note(self, problem: Problem, once: bool = False) -> None:
        """Record a problem; ``once`` reports a block-level problem (bad tag set...) once."""
        if once:
            key = (problem.message, problem.code)
            if key in self._reported:
                return
            self._reported.add(key)
        self.total += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(problem)

    def _key(self, target: Target, tags: tuple[tuple[str, str], ...]) -> None:
        if self._keyed[0] is target and self._keyed[1] is tags:
            return
        self._keyed = (target, tags)
        text = self._key_text.get((target, tags))
        if text is None:
            text = json.dumps([target.to_json(), tags]).encode()
            self._key_text[(target, tags)] = text
        self._digest.update(text)

    def read(self, items: Iterable[Item]) -> None:
        checker = RowChecker()
        next_report = 10_000
        for item in items:
            if isinstance(item, IdBlock):
                self.seen += len(item.ids)
                target, ids, lines, problems = check_block(item)
                for problem in problems:
                    self.note(problem, once=problem.code != "InvalidParameter.ResourceId")
                if target is not None and ids and not self.total:
                    self._key(target, item.tags)
                    self._digest.update("\n".join(ids).encode())
                    self.spool.add_block(target, item.tags, ids, item.source, lines)
            elif isinstance(item, Problem):
                self.seen += 1
                self.note(item)
            else:
                self.seen += 1
                target, problems = checker.check(item)
                for problem in problems:
                    self.note(problem)
                if target is not None and not self.total:
                    self._key(target, item.tags)
                    self._digest.update(item.resource_id.encode() + b"\n")
                    self.spool.add(target, item.resource_id, item.tags, item.source, item.line)
            if self.on_read is not None and self.seen >= next_report:
                self.on_read(self.seen)
                next_report = self.seen + 10_000
        if self.on_read is not None:
            self.on_read(self.seen)
        if not self.total:
            for problem in self.spool.finish():
                self.note(problem)
        if self.total:
            raise ValidationFailed(self.problems, self.total)
        if self.spool.rows == 0:
            raise UserError("no resources in the input (empty, or only comments and blank lines)")

    @property
    def fingerprint(self) -> str:
        return self._digest.hexdigest()


def _job_count(group: Group, requested: int | None, rates: Mapping[str, float]) -> int:
    return math.ceil(
        group.size / chunk_size_for(group.target, requested, rate_for(group.target, rates))
    )


def _target_json(plan: TargetPlan) -> dict[str, Any]:
    return {
        **plan.target.to_json(),
        "queue": plan.target.queue_name,
        "resources": plan.resources,
        "calls": plan.calls,
    }


def job_timeout(calls: int, rate: float) -> int:
    """Seconds RQ gives a chunk: ten times its time at the default rate, at least 5 minutes,
    since the shared adaptive limiter may slow it down. The chunk itself stops issuing calls
    before this and hands its remaining resources to a new job."""
    return int(max(300, 10 * calls / rate))


def job_id(campaign_id: str, group: Group, chunk_no: int) -> str:
    """Deterministic: the same campaign and input always give the same job ids."""
    return f"bulktag-{campaign_id}-{group.key}-{chunk_no:06d}"


def chunk_job(
    campaign_id: str,
    target_no: int,
    target: Target,
    tags: tuple[tuple[str, str], ...],
    ids: list[str],
    job_id: str,
    label: str,
    rate: float | None = None,
) -> Any:
    """The RQ job data of one chunk (``Queue.prepare_data``), for ``enqueue_many``."""
    rules = PROVIDERS[target.provider]
    calls = math.ceil(len(ids) / rules.max_resources_per_call)
    return Queue.prepare_data(
        TAG_JOB,
        kwargs={
            "campaign_id": campaign_id,
            "target_no": target_no,
            "target": target.to_json(),
            "tags": [list(t) for t in tags],
            "resource_ids": ids,
        },
        job_id=job_id,
        # Short on purpose: RQ's default description repeats every argument.
        description=f"{campaign_id} {target.provider}:{target.location} {label}",
        timeout=job_timeout(calls, rate or rules.default_rate_per_second),
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        # A chunk whose worker died is re-run (outcomes already recorded are skipped, so
        # nothing is counted twice).
        retry=Retry(max=JOB_RETRIES),
    )


def _enqueue(
    connection: redis.Redis,
    campaign_id: str,
    spool: Spool,
    groups: list[Group],
    options: SubmitOptions,
) -> int:
    """Enqueue every chunk, taking the groups in turn (a few chunks each), so that every
    region has work from the first second instead of the last region waiting for the
    others' chunks to be enqueued."""
    queues: dict[str, Queue] = {}
    enqueued = done = 0
    target_numbers = {plan.target: no for no, plan in enumerate(summarize(groups))}

    def flush(queue: Queue, batch: list[Any]) -> None:
        nonlocal enqueued
        check = connection.pipeline(transaction=False)
        for data in batch:
            check.exists(Job.key_for(data.job_id))
        fresh = [d for d, exists in zip(batch, check.execute(), strict=True) if not exists]
        if fresh:
            pipe = connection.pipeline()
            queue.enqueue_many(fresh, pipeline=pipe)
            # Every chunk's id, so that a reconciler can find one a killed worker lost.
            pipe.sadd(f"{store.campaign_key(campaign_id)}:jobs", *(d.job_id for d in fresh))
            pipe.execute()
        enqueued += len(fresh)

    rates = configured_limits(connection)

    def chunks(group: Group) -> Iterator[Any]:
        target = group.target
        rate = rate_for(target, rates)
        size = chunk_size_for(target, options.chunk_size, rate)
        for chunk_no, ids in enumerate(spool.ids(group, size)):
            yield chunk_job(
                campaign_id, target_numbers[target], target, group.tags, ids,
                job_id(campaign_id, group, chunk_no), f"#{chunk_no}", rate,
            )  # fmt: skip

    active = [(group, chunks(group)) for group in groups]
    # One chunk per region first: workers can start on every region while the rest is queued.
    take = 1
    while active:
        still = []
        for group, source in active:
            name = group.target.queue_name
            queue = queues.get(name)
            if queue is None:
                queue = queues[name] = Queue(name, connection=connection, serializer=JSONSerializer)
            batch = list(itertools.islice(source, take))
            if batch:
                flush(queue, batch)
                done += len(batch)
                still.append((group, source))
        active, take = still, ENQUEUE_BATCH
        if options.on_enqueued is not None:
            options.on_enqueued(done, enqueued)
    return enqueued
