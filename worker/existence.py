"""Which keys a region really holds: listed once, when missing ids prove common.

Alibaba answers a batch holding one missing id with ``InvalidResourceId.NotFound`` for the
whole batch, and finding that id costs about 6.6 more calls (worker/isolation.py). When a
campaign's ids come from a stale inventory, those calls dominate: 1 % missing costs 87 calls
per 1,000 resources instead of 20 (docs/benchmarks.md). ``ListKeys`` names 100 keys a call,
so once a target has shown missing ids and its remaining resources are many compared with
the region's keys, one chunk lists the region, and every chunk of every worker then sends
listed ids in full batches and unlisted ones one by one (which also settles a key created
after the listing). Batches not yet sent wait for the list meanwhile (engine.py), so the
listing takes the region's slots: 1 % missing then costs 40 calls per 1,000. The list is a
hint, shared through Redis and expiring; every outcome still comes from a TagResources
answer.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis

from bulktag.store import PREFIX
from worker.limiter import LimitKey, SharedLimiter
from worker.listing import ALIYUN_PAGE_SIZE, KeyPage, LimitedCaller, ListingFailed, aliyun_key_ids

# Generalized binary splitting for one missing id in 50 (docs/benchmarks.md, calls spent on
# missing ids).
ISOLATION_CALLS_PER_BATCH = 6.6
INDEX_TTL_S = 3600
DECLINED_TTL_S = 600
# A chunk decides as soon as this many of its batches have failed on a missing id, so that
# its unsent batches, and the region's other chunks, wait for the list instead of failing.
FAILED_BATCHES_TO_DECIDE = 2
# The listing lock lapses this long after its holder stopped renewing it (killed).
LOCK_TTL_MS = 10_000
_PROLONG = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# How often a chunk looks whether another chunk's listing of its region is done.
WAIT_POLL_S = 0.2
# Never a key id: keeps the set in existence when a region holds no key at all.
_SENTINEL = ""


def missing_ids_cost_enough(failed_share: float, calls_per_failed_batch: float) -> bool:
    """Whether missing ids cost enough extra calls per batch for a listing to have a chance:
    not when they are rare, nor when answers name the missing id (one extra call each)."""
    return failed_share * calls_per_failed_batch >= 0.5


def small_enough(total_keys: int, remaining: int, per_call: int, extra_per_batch: float) -> bool:
    """Whether listing the region (``total_keys / 100`` calls) costs at most half of what
    ``extra_per_batch`` extra calls for each batch of the ``remaining`` resources would."""
    return (
        math.ceil(max(total_keys, 1) / ALIYUN_PAGE_SIZE)
        <= remaining / per_call * extra_per_batch / 2
    )


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
        """Whether each id was listed; None when there is no list. One round trip: the
        sentinel, always in a list, says whether there is one."""
        if not ids:
            return None
        present, *answers = await self._conn.smismember(self.key, [_SENTINEL, *ids])
        return [bool(a) for a in answers] if present else None

    async def decided(self) -> bool:
        """Listed already, or found not worth listing a short while ago."""
        return bool(await self._conn.exists(self.key, self._declined))

    @property
    def _declined(self) -> str:
        return f"{self.key}:declined"

    async def build(
        self,
        list_page: KeyPage,
        limiter: SharedLimiter,
        worth: Callable[[int], bool],
        never: Callable[[int], bool],
        deadline: float | None,
        coming: Callable[[], None] = lambda: None,
    ) -> bool:
        """List every key through the shared limiter, or wait while another chunk does, unless
        the first page's total says it does not pay: ``never(total)`` is remembered for
        ``DECLINED_TTL_S``, ``worth(total)`` (from this chunk's evidence) is not. ``coming()``
        is called once a list is on its way (this chunk pages, or another one does). The list
        appears whole or not at all."""
        lock = f"{self.key}:building"
        token = secrets.token_hex(8)
        if not await self._conn.set(lock, token, nx=True, px=LOCK_TTL_MS):
            coming()
            await self._wait_while_listed_elsewhere(lock, deadline)
            return False
        keeper = asyncio.create_task(self._keep_lock(lock, token))
        declined: list[int] = []

        def wanted(total: int) -> bool:
            if never(total):
                declined.append(total)
            go = not declined and worth(total)
            if go:
                coming()
            return go

        budget = None if deadline is None else deadline - time.monotonic()
        try:
            ids = await asyncio.wait_for(
                aliyun_key_ids(list_page, LimitedCaller(limiter), wanted), budget
            )
            if declined:
                # Chunks that see missing ids later need not pay a page to learn it.
                await self._conn.set(self._declined, declined[0], ex=DECLINED_TTL_S)
            if ids is None:
                return False
            # One transaction: chunks see no list or the whole of it.
            pipe = self._conn.pipeline(transaction=True)
            pipe.delete(self.key)
            pipe.sadd(self.key, _SENTINEL, *ids)
            pipe.expire(self.key, INDEX_TTL_S)
            await pipe.execute()
            return True
        except (TimeoutError, ListingFailed):
            return False
        finally:
            keeper.cancel()
            await self._conn.eval(_RELEASE, 1, lock, token)

    async def _keep_lock(self, lock: str, token: str) -> None:
        """Hold the lock while listing: a killed lister's lock lapses within LOCK_TTL_MS,
        and the chunks waiting on it go on."""
        while True:
            await asyncio.sleep(LOCK_TTL_MS / 3000)
            await self._conn.eval(_PROLONG, 1, lock, token, LOCK_TTL_MS)

    async def _wait_while_listed_elsewhere(self, lock: str, deadline: float | None) -> None:
        """Another chunk lists the region: its list will settle this chunk's batches too."""
        while await self._conn.exists(lock):
            if deadline is not None and time.monotonic() >= deadline:
                return
            await asyncio.sleep(WAIT_POLL_S)
