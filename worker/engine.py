"""Running one chunk: batches through the shared limiter, retries, isolation, outcomes.

Inside a chunk the calls run concurrently on one event loop and one aiohttp session, as many
at once as the shared rate limit allows (each call first reserves its slot). Every resource
of the chunk ends with exactly one recorded outcome, except when the chunk stops early:

- cancelled: the resources not yet done are recorded ``cancelled``;
- paused (by the operator, or after an authentication failure): they stay pending and are
  handed back (``ChunkReport.remaining``) to be parked and resumed later.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
import redis.asyncio as aioredis

from bulktag.store import campaign_key
from producer.campaign import Target
from providers import credentials
from providers.aliyun.client import AliyunKmsClient
from providers.batching import tag_slices
from providers.catalog import PROVIDERS
from providers.huawei.client import HuaweiKmsClient
from providers.results import CallResult, Outcome
from providers.rules import Tag
from worker import outcomes as oc
from worker.callstats import CallCounter
from worker.control import Controls
from worker.existence import (
    FAILED_BATCHES_TO_DECIDE,
    ISOLATION_CALLS_PER_BATCH,
    ExistenceIndex,
    missing_ids_cost_enough,
    partition,
    small_enough,
)
from worker.isolation import isolate, named_missing_id
from worker.limiter import LimitKey, SharedLimiter
from worker.listing import ALIYUN_PAGE_SIZE, KeyPage
from worker.retry import RetryPolicy

log = logging.getLogger(__name__)

TagCall = Callable[[Sequence[str], Sequence[Tag]], Awaitable[CallResult]]

# Concurrent calls per chunk. Little's law: 30 calls/s x 0.25 s per call = 7.5 in flight
# (performance.md §3.5); each one is also a connection the chunk opens, and on the ceiling
# benchmark 8 beat 16 and 32 (docs/benchmarks.md).
MAX_IN_FLIGHT = 8


@dataclass(frozen=True)
class Chunk:
    campaign_id: str
    target_no: int
    target: Target
    tags: tuple[Tag, ...]
    resource_ids: tuple[str, ...]


@dataclass
class ChunkReport:
    calls: int = 0
    throttled: int = 0
    recorded: int = 0
    skipped: int = 0
    remaining: list[str] = field(default_factory=list)
    paused: str | None = None  # why, when the remaining resources wait for a resume
    cancelled: bool = False


class _Stop(Exception):
    """A control (pause/cancel) stopped the call before it was made."""


# What a call is, for waiting on a region's list: a batch's first call, a search for a
# failed batch's missing id, or neither (single ids, batches planned by a list).
WaitKind = Literal["batch", "search"] | None


class _ListingUnderWay(Exception):
    """A batch call was about to go out while the region is being listed: the listing will
    say which of its ids exist, so the batch waits for it instead of risking a failure that
    costs ~6.6 calls to settle (existence.py)."""


def make_tag_call(target: Target, session: aiohttp.ClientSession) -> TagCall:
    """The provider call that adds ``tags`` to ``ids`` (one Alibaba batch, one Huawei key)."""
    if target.provider == "aliyun":
        aliyun = AliyunKmsClient(session, credentials.load_aliyun(target.profile), target.region)

        async def aliyun_call(ids: Sequence[str], tags: Sequence[Tag]) -> CallResult:
            return await aliyun.tag_resources(target.resource_type, ids, tags)

        return aliyun_call
    assert target.project is not None
    huawei = HuaweiKmsClient(
        session, credentials.load_huawei(target.profile), target.project, target.region
    )

    async def huawei_call(ids: Sequence[str], tags: Sequence[Tag]) -> CallResult:
        (key_id,) = ids
        return await huawei.tag_key(key_id, tags)

    return huawei_call


def make_key_lister(target: Target, session: aiohttp.ClientSession) -> KeyPage | None:
    """``ListKeys`` pages for the existence index; only Alibaba keys have batches to spare."""
    if target.provider != "aliyun" or target.resource_type != "key":
        return None
    aliyun = AliyunKmsClient(session, credentials.load_aliyun(target.profile), target.region)

    async def list_page(page: int) -> tuple[CallResult, list[str], int]:
        return await aliyun.list_keys(page, ALIYUN_PAGE_SIZE)

    return list_page


class ChunkRunner:
    def __init__(
        self,
        chunk: Chunk,
        conn: aioredis.Redis,
        tag_call: TagCall,
        policy: RetryPolicy | None = None,
        deadline: float | None = None,
        list_page: KeyPage | None = None,
    ) -> None:
        self.chunk = chunk
        # Monotonic time after which no new call starts (the job's own timeout is near).
        self.deadline = deadline
        self.rules = PROVIDERS[chunk.target.provider]
        self.tag_call = tag_call
        self.policy = policy or RetryPolicy.from_env()
        target = chunk.target
        limit_key = LimitKey(target.provider, target.profile, target.location)
        self.limiter = SharedLimiter(conn, limit_key, self.rules.default_rate_per_second)
        self.list_page = list_page
        self.index = ExistenceIndex(conn, limit_key, target.resource_type) if list_page else None
        self._batches = self._failed_batches = 0
        self._isolated_batches = self._isolation_calls = 0
        # Before any search has ended: 1 call per failed batch whose answer names the
        # missing id, else generalized binary splitting's 6.6 for one missing id in 50.
        self._guessed_isolation_calls = 0.0
        self._listing: asyncio.Task[None] | None = None
        self._list_coming = False  # the listing decided to list (or another chunk lists)
        self.conn = conn
        self.store = oc.OutcomeStore(conn, chunk.campaign_id)
        self.call_counter = CallCounter(target.provider, target.location)
        self.controls = Controls(conn, chunk.campaign_id, chunk.target_no)
        self.report = ChunkReport()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def run(self) -> ChunkReport:
        chunk = self.chunk
        pending = await self.store.pending(chunk.target_no, chunk.resource_ids)
        self.report.skipped = len(chunk.resource_ids) - len(pending)
        verdict = await self.controls.verdict(fresh=True)
        if verdict.go and pending:
            tasks = [
                asyncio.create_task(self._batch(list(ids), list(tags)))
                for ids, tags in await self._plan_batches(pending)
            ]
            await asyncio.gather(*tasks)
            # Fewer failures than usual suffice at the end: the next chunks may benefit.
            self._consider_listing(min_failed=1)
            if self._listing is not None:
                await self._listing
            verdict = await self.controls.verdict(fresh=True)
        await self.store.flush()
        await self._write_call_counts()
        left = await self.store.pending(chunk.target_no, pending)
        if left and verdict.cancelled:
            now = time.time()
            await self.store.record(
                chunk.target_no,
                [oc.Outcome(rid, oc.CANCELLED, None, None, None, 0, now) for rid in left],
            )
            await self.store.flush()
            self.report.cancelled = True
        elif left:
            # Paused: park them until resume. Otherwise the deadline came: go on in a new job.
            self.report.remaining = left
            self.report.paused = verdict.paused
        self.report.recorded = self.store.recorded
        return self.report

    async def _plan_batches(self, ids: list[str]) -> list[tuple[Sequence[str], Sequence[Tag]]]:
        parts = await self._split_by_listing(ids) or [ids]
        return [batch for part in parts for batch in self._id_batches(part)]

    async def _split_by_listing(self, ids: list[str]) -> list[list[str]] | None:
        """Once the region is listed (existence.py): the listed ids together and every other
        one alone; None when there is no list or nothing to split."""
        if self.index is None or len(ids) < 2:
            return None
        listed = await self.index.lookup(ids)
        if listed is None or all(listed):
            return None
        found, other = partition(ids, listed)
        return ([found] if found else []) + [[rid] for rid in other]

    async def _maybe_list_region(self) -> None:
        assert self.index is not None and self.list_page is not None
        if await self.index.decided():
            return
        chunk = self.chunk
        pipe = self.conn.pipeline(transaction=False)
        pipe.hget(campaign_key(chunk.campaign_id), "targets")
        pipe.hmget(
            oc.counts_key(chunk.campaign_id),
            [f"{chunk.target_no}:{status}" for status in oc.FINAL_STATUSES],
        )
        raw_targets, counts = await pipe.execute()
        targets = json.loads(raw_targets or "[]")
        if chunk.target_no >= len(targets):
            return
        remaining = int(targets[chunk.target_no]["resources"]) - sum(int(c or 0) for c in counts)
        share = self._failed_batches / max(self._batches, 1)
        # What a failed batch costs to settle: what it has cost here, else the guess.
        extra = (
            self._isolation_calls / self._isolated_batches
            if self._isolated_batches
            else self._guessed_isolation_calls / max(self._failed_batches, 1)
        )
        if not missing_ids_cost_enough(share, extra):
            return
        per_call = self.rules.max_resources_per_call
        built = await self.index.build(
            self.list_page, self.limiter,
            worth=lambda total: small_enough(total, remaining, per_call, share * extra),
            # Too large even if every batch failed at full cost: no chunk need ask again.
            never=lambda total: not small_enough(total, remaining, per_call,
                                                 ISOLATION_CALLS_PER_BATCH),
            deadline=self.deadline, coming=self._list_is_coming,
        )  # fmt: skip
        if built:
            log.info(
                "region listed: missing ids are common",
                extra={"campaign": chunk.campaign_id, "target": chunk.target.label,
                       "failed_batch_share": round(share, 3), "remaining": remaining},
            )  # fmt: skip

    def _id_batches(self, ids: list[str]) -> list[tuple[Sequence[str], Sequence[Tag]]]:
        # Alibaba takes up to 20 tags a call; a resource with more tags needs several calls,
        # which the batch runs in turn (see _batch), so split only the ids here.
        per_call = self.rules.max_resources_per_call
        return [(ids[i : i + per_call], self.chunk.tags) for i in range(0, len(ids), per_call)]

    async def _batch(self, ids: list[str], tags: list[Tag]) -> None:
        """Tag one provider batch of ids with every tag, and record each id's outcome.

        Once this chunk has met missing ids, a batch first asks whether the region has been
        listed since the chunk began (another chunk may have listed it): if so, its
        unlisted ids go one by one instead of failing the whole batch. While the region is
        being listed, the batch waits for the list and is planned again (_waits_for_list)."""
        while True:
            parts = await self._split_by_listing(ids) if self._failed_batches else None
            try:
                if parts is not None:
                    # Planned by the list: these never wait for one.
                    await asyncio.gather(*(self._tag_batch(p, tags, planned=True) for p in parts))
                else:
                    await self._tag_batch(ids, tags)
                return
            except _ListingUnderWay:
                assert self._listing is not None
                await asyncio.shield(self._listing)

    async def _tag_batch(self, ids: list[str], tags: list[Tag], planned: bool = False) -> None:
        settled: dict[str, tuple[CallResult, int]] = {}
        todo = ids
        for tag_slice in tag_slices(self.rules, tags):
            if not todo:
                break
            try:
                results = await self._settle(todo, list(tag_slice), planned)
            except _Stop:
                return  # the ids stay pending; the chunk hands them back
            for rid, (result, attempts) in results.items():
                if not result.ok or rid not in settled:
                    settled[rid] = (result, attempts)
            todo = [rid for rid in todo if results[rid][0].ok]
        now = time.time()
        await self.store.record(
            self.chunk.target_no,
            [_final(rid, result, attempts, now) for rid, (result, attempts) in settled.items()],
        )

    async def _settle(
        self, ids: list[str], tags: list[Tag], planned: bool
    ) -> dict[str, tuple[CallResult, int]]:
        result, attempts = await self._call(ids, tags, None if planned else "batch")
        if len(ids) > 1:
            self._batches += 1
        if result.outcome is not Outcome.NOT_FOUND or len(ids) == 1:
            return {rid: (result, attempts) for rid in ids}
        self._failed_batches += 1
        self._guessed_isolation_calls += (
            1.0 if named_missing_id(result.message, ids) else ISOLATION_CALLS_PER_BATCH
        )
        # Decide early: batches not sent yet can wait for a list (_ListingUnderWay).
        self._consider_listing()
        tries: dict[str, int] = {}

        async def probe(group: Sequence[str]) -> CallResult:
            answer, n = await self._call(group, tags, None if planned else "search")
            for rid in group:
                tries[rid] = tries.get(rid, attempts) + n
            return answer

        found = await isolate(ids, result, probe)
        self._isolated_batches += 1
        self._isolation_calls += found.calls
        return {rid: (found.results[rid], tries.get(rid, attempts)) for rid in ids}

    def _list_is_coming(self) -> None:
        self._list_coming = True

    def _waits_for_list(self, ids: Sequence[str], kind: WaitKind) -> bool:
        """A batch not sent yet waits while the listing decides and lists. A search for a
        failed batch's missing id goes on while it decides (what it learnt would be lost if
        no list came) and waits once a list is coming (the list says the same for less)."""
        if kind is None or len(ids) < 2 or self._listing is None or self._listing.done():
            return False
        return kind == "batch" or self._list_coming

    def _consider_listing(self, min_failed: int = FAILED_BATCHES_TO_DECIDE) -> None:
        """Decide once whether to list the region, as soon as enough batches failed."""
        if self.index is not None and self._listing is None and self._failed_batches >= min_failed:
            self._listing = asyncio.create_task(self._maybe_list_region())

    async def _write_call_counts(self) -> None:
        """Calls and throttles per second, for the dashboard and /metrics."""
        pipe = self.conn.pipeline(transaction=False)
        self.call_counter.drain_into(pipe)
        await pipe.execute()

    async def _check_go(self) -> None:
        verdict = await self.controls.verdict()
        if not verdict.go or (self.deadline is not None and time.monotonic() >= self.deadline):
            raise _Stop

    async def _call(
        self, ids: Sequence[str], tags: Sequence[Tag], kind: WaitKind = None
    ) -> tuple[CallResult, int]:
        """One logical call with retries; raises _Stop when a control says stop, and
        _ListingUnderWay when the call should wait for the region's list."""
        attempt = failures = throttles = 0
        while True:
            await self._check_go()
            async with self._slots:
                if attempt == 0 and self._waits_for_list(ids, kind):
                    raise _ListingUnderWay
                await self.limiter.acquire()
                # The wait for a slot may have been long: look again before calling.
                await self._check_go()
                result = await self.tag_call(ids, tags)
            self.report.calls += 1
            attempt += 1
            self.call_counter.add(result.outcome is Outcome.THROTTLED)
            if self.call_counter.due():
                await self._write_call_counts()
            if result.outcome is Outcome.AUTH:
                await self.controls.pause_target(
                    f"authentication failed: {result.code}: {result.message}", result.code
                )
                log.error(
                    "target paused: authentication failed",
                    extra={"campaign": self.chunk.campaign_id, "target": self.chunk.target.label,
                           "code": result.code, "request_id": result.request_id},
                )  # fmt: skip
                raise _Stop
            if result.outcome is Outcome.THROTTLED:
                throttles += 1
                self.report.throttled += 1
                await self.limiter.throttled()
            elif not result.ok:
                failures += 1
            if not result.ok:
                log.debug(
                    "call answered",
                    extra={"campaign": self.chunk.campaign_id, "outcome": str(result.outcome),
                           "code": result.code, "attempt": attempt, "ids": len(ids)},
                )  # fmt: skip
            if self.policy.gives_up(result.outcome, failures, throttles):
                if result.outcome is Outcome.INVALID:
                    log.error(
                        "provider refused input that passed validation",
                        extra={"campaign": self.chunk.campaign_id, "code": result.code,
                               "message": result.message},
                    )  # fmt: skip
                return result, attempt
            await asyncio.sleep(self.policy.delay(max(failures, throttles)))


_STATUS = {Outcome.OK: oc.TAGGED, Outcome.NOT_FOUND: oc.NOT_FOUND, Outcome.INVALID: oc.INVALID}


def _final(rid: str, result: CallResult, attempts: int, now: float) -> oc.Outcome:
    """Anything neither tagged, missing nor invalid (retries exhausted, disabled key...) is
    failed, with the provider's last code."""
    status = _STATUS.get(result.outcome, oc.FAILED)
    return oc.Outcome(rid, status, result.code, result.message, result.request_id, attempts, now)
