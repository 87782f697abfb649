"""Token buckets per (provider, location): the providers' per-region / per-project QPS limits.

Alibaba throttles per account and region, Huawei per user and project (providers.md §2.4,
§3.5); one bucket per (provider, location) models both, since the emulator's callers are
one account. Time is the event loop's monotonic clock. The limit is looked up on every call,
so a change to :class:`~emulator.config.EmulatorConfig` applies at once; tokens already in a
bucket survive a change (clamped to the new capacity).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from emulator.config import EmulatorConfig, RateLimit


def loop_time() -> float:
    return asyncio.get_running_loop().time()


class TokenBucket:
    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.rate = limit.qps
        self.capacity = limit.burst
        self.tokens = limit.burst  # a fresh bucket starts full
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def reshape(self, limit: RateLimit, now: float) -> None:
        """Adopt a new rate and capacity, keeping the tokens earned at the old rate."""
        self._refill(now)
        self.rate = limit.qps
        self.capacity = limit.burst
        self.tokens = min(self.tokens, self.capacity)

    def try_take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Throttle:
    """Admits or refuses each call against its (provider, location) bucket."""

    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] = loop_time) -> None:
        self._config = config
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def admit(self, provider: str, location: str) -> RateLimit | None:
        """None if the call may proceed; else the limit it ran into."""
        limit = self._config.rate_limit(provider, location)
        if limit is None:
            return None
        now = self._clock()
        key = (provider, location)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(limit, now)
        elif bucket.rate != limit.qps or bucket.capacity != limit.burst:
            bucket.reshape(limit, now)
        return None if bucket.try_take(now) else limit

    def reset(self) -> None:
        """Forget all buckets (they refill to full on the next call)."""
        self._buckets.clear()
