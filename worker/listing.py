"""Listing calls through a shared limiter, and a region's Alibaba key ids page by page.

Both the workers (worker/existence.py: which keys a region holds) and compliance discovery
list through here, so that listing is paced by the same limiter as tagging and retried the
same way.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

from providers.results import CallResult, Outcome
from worker.limiter import SharedLimiter
from worker.retry import RetryPolicy

T = TypeVar("T")

ALIYUN_PAGE_SIZE = 100  # ListKeys / ListSecrets PageSize maximum (providers.md §2.6)
# Calls in flight per target; the limiter paces them, this only bounds the waiting ones.
IN_FLIGHT = 8
# The workers' backoff; listing spends one budget of attempts on throttles and faults alike.
POLICY = RetryPolicy()

# One page of key ids and the total count (``AliyunKmsClient.list_keys``).
KeyPage = Callable[[int], Awaitable[tuple[CallResult, list[str], int]]]


class ListingFailed(Exception):
    """A listing call failed for good (authentication, permission, retries spent)."""

    def __init__(self, action: str, result: CallResult) -> None:
        self.action = action
        self.result = result
        super().__init__(f"{action}: {result.code or result.outcome}: {result.message or ''}")


def check(action: str, result: CallResult) -> None:
    if not result.ok:
        raise ListingFailed(action, result)


class LimitedCaller:
    """One target's calls: a limiter slot each, a bound on those in flight, retries."""

    def __init__(self, limiter: SharedLimiter) -> None:
        self._limiter = limiter
        self._slots = asyncio.Semaphore(IN_FLIGHT)
        self.calls = 0

    async def __call__(
        self, action: str, send: Callable[[], Awaitable[tuple[CallResult, T]]]
    ) -> tuple[CallResult, T]:
        async with self._slots:
            for attempt in range(POLICY.max_attempts):
                await self._limiter.acquire()
                self.calls += 1
                result, value = await send()
                if result.outcome is Outcome.THROTTLED:
                    await self._limiter.throttled()
                if not result.outcome.retryable or attempt == POLICY.max_attempts - 1:
                    return result, value
                # The provider's own hint wins.
                await asyncio.sleep(result.retry_after or POLICY.delay(attempt))
            raise AssertionError("unreachable")


async def aliyun_key_ids(
    list_page: KeyPage, call: LimitedCaller, wanted: Callable[[int], bool] | None = None
) -> list[str] | None:
    """Every key id; None when ``wanted(total)``, asked after the first page, says stop."""

    def page(number: int) -> Callable[[], Awaitable[tuple[CallResult, tuple[list[str], int]]]]:
        async def send() -> tuple[CallResult, tuple[list[str], int]]:
            result, keys, total = await list_page(number)
            return result, (keys, total)

        return send

    result, (first, total) = await call("ListKeys", page(1))
    check("ListKeys", result)
    if wanted is not None and not wanted(total):
        return None
    pages = math.ceil(total / ALIYUN_PAGE_SIZE)
    # TotalCount from the first page lets the other pages be fetched concurrently.
    rest = await asyncio.gather(*(call("ListKeys", page(n)) for n in range(2, pages + 1)))
    ids = list(first)
    for result, (keys, _) in rest:
        check("ListKeys", result)
        ids += keys
    # A key created or deleted while paging shifts the pages: never report one twice.
    return list(dict.fromkeys(ids))
