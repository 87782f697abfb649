"""Which keys a region really holds: listed once, when missing ids prove common.

Alibaba answers a batch holding one missing id with ``InvalidResourceId.NotFound`` for the
whole batch, and finding that id costs about 6.6 more calls (worker/isolation.py). When a
campaign's ids come from a stale inventory, those calls dominate: 1 % missing costs 87 calls
per 1,000 resources instead of 20 (docs/benchmarks.md). ``ListKeys`` names 100 keys a call,
so once a target has shown missing ids and its remaining resources are many compared with
the region's keys, one chunk lists the region, and every chunk of every worker then sends
listed ids in full batches and unlisted ones one by one (which also settles a key created
after the listing). The list is a hint, shared through Redis and expiring; every outcome
still comes from a TagResources answer.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as aioredis

from bulktag.store import PREFIX
from providers.results import CallResult, Outcome
from worker.limiter import LimitKey, SharedLimiter

# providers.md §2.6: ListKeys PageSize 1-100.
PAGE_SIZE = 100
# Generalized binary splitting for one missing id in 50 (docs/benchmarks.md, calls spent on
# missing ids).
ISOLATION_CALLS_PER_BATCH = 6.6
INDEX_TTL_S = 3600
DECLINED_TTL_S = 600
# A chunk decides as soon as this many of its batches have failed on a missing id, and lists
# while it goes on tagging, so that the region's other chunks benefit early.
FAILED_BATCHES_TO_DECIDE = 2
# Never a key id: keeps the set in existence when a region holds no key at all.
_SENTINEL = ""

ListPage = Callable[[int], Awaitable[tuple[CallResult, list[str], int]]]


def worth_listing(
    total_keys: int, remaining: int, extra_calls_per_batch: float, per_call: int
) -> bool:
    """Whether listing the region (``total_keys / 100`` calls) is expected to cost less than
    half of what finding missing ids among the ``remaining`` resources would, at
    ``extra_calls_per_batch`` (the share of failing batches times what one costs to settle,
    about 6.6 calls when the answer names no id)."""
    listing = math.ceil(max(total_keys, 1) / PAGE_SIZE)
    return listing < remaining / per_call * extra_calls_per_batch / 2


def partition(ids: Sequence[str], listed: Sequence[bool]) -> tuple[list[str], list[str]]:
    """(listed ids, unlisted ids), each in input order."""
    found = [rid for rid, hit in zip(ids, listed, strict=True) if hit]
    other = [rid for rid, hit in zip(ids, listed, strict=True) if not hit]
    return found, other


class ExistenceIndex:
    def __init__(self, conn: aioredis.Redis, key: LimitKey, resource_type: str) -> None:
        self._conn = conn
        self.key = f"{PREFIX}:existing:{key.provider}:{key.profile}:{key.location}:{resource_type}"

    async def lookup(self, ids: Sequence[str]) -> list[bool] | None:
        """Whether each id was listed; None when there is no list."""
        if not ids or not await self._conn.exists(self.key):
            return None
        answers = await self._conn.smismember(self.key, list(ids))
        return [bool(a) for a in answers]

    async def decided(self) -> bool:
        """Listed already, or found not worth listing a short while ago."""
        return bool(await self._conn.exists(self.key, self._declined))

    @property
    def _declined(self) -> str:
        return f"{self.key}:declined"

    async def build(
        self,
        list_page: ListPage,
        limiter: SharedLimiter,
        worth: Callable[[int], bool],
        deadline: float | None,
    ) -> bool:
        """List every key through the shared limiter, if no one else is and ``worth(total)``
        says so after the first page; the list appears whole or not at all."""
        lock, staging = f"{self.key}:building", f"{self.key}:staging"
        if not await self._conn.set(lock, "1", nx=True, ex=600):
            return False
        try:
            await self._conn.delete(staging)
            await self._conn.sadd(staging, _SENTINEL)
            page, throttles = 1, 0
            while True:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                await limiter.acquire()
                result, keys, total = await list_page(page)
                if result.outcome is Outcome.THROTTLED and throttles < 10:
                    throttles += 1
                    await limiter.throttled()
                    await asyncio.sleep(0.2 * throttles)
                    continue
                if not result.ok:
                    return False
                if page == 1 and not worth(total):
                    # Chunks that see missing ids later need not pay a page to learn it.
                    await self._conn.set(self._declined, total, ex=DECLINED_TTL_S)
                    return False
                if keys:
                    await self._conn.sadd(staging, *keys)
                if not keys or page * PAGE_SIZE >= total:
                    break
                page += 1
            pipe = self._conn.pipeline(transaction=True)
            pipe.rename(staging, self.key)
            pipe.expire(self.key, INDEX_TTL_S)
            await pipe.execute()
            return True
        finally:
            await self._conn.delete(staging, lock)
