"""One rate limit per (provider, profile, region/project, API group), shared through Redis.

Every worker process on every machine asks the same Lua script for a slot; the script runs
GCRA on Redis's own clock (``TIME``) and answers how long to wait, so callers never poll and
machines' clocks never matter (performance.md §1.2, §1.5: window counters burst at window
edges, per-process limiters cannot share a quota). One round trip per call.

The rate is adaptive (AIMD, performance.md §2.4-2.6): a throttling answer multiplies the
shared rate by ``DECREASE`` (at most once per ``DECREASE_COOLDOWN``, since many calls in
flight are throttled together) and spends the burst. The first throttling answer after
``FORGIVE_AFTER_S`` without one, while calls went out without waiting for slots (burst
unspent), spends the burst but keeps the rate: the provider's bucket was smaller than ours,
or shared, which says nothing of its rate. The rate
recovers additively, ``RECOVERY`` of the configured rate per second, never above the
configured rate. The configured rate comes from the provider's published quota unless
``bulktag limits set`` overrides it; the script reads the override on every call, so a
change takes effect without restarting workers.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from bulktag.store import PREFIX

# Operator overrides: field "<provider>:<location>" -> calls per second.
LIMITS_KEY = f"{PREFIX}:limits"
DECREASE = 0.7  # botocore's CUBIC beta (performance.md §2.1)
DECREASE_COOLDOWN_S = 1.0
# A throttle during a burst keeps the rate only if none came for this long (see the script).
FORGIVE_AFTER_S = 10.0
RECOVERY = 0.05  # of the configured rate, per second
MIN_RATE = 0.2
# How many calls may go at once after the limit was not fully used (GCRA's burst), in
# seconds of the current rate. Providers state their quotas per second (Alibaba's "QPS Limit
# Exceeded", Huawei's "limit:XX,time:1 second", providers.md §2.3, §3.5), and the emulator
# models them as a bucket of one second, as botocore's adaptive mode and aiolimiter size
# theirs (performance.md §1.3, §2.1). 0.8 s of it, not 1: the first calls of a campaign open
# connections and arrive later than the paced calls after them, which reuse them, so the
# provider sees the start compressed; with 0.9 s, 1 run in 3 of the base scenario was
# throttled once at the start (bench/compare.py), with 0.8 s none in 6. The burst starts a
# campaign most of a second sooner and gives back the slots lost while RQ starts a region's
# next chunk; once calls wait for slots, they are evenly paced at the rate.
BURST_S = 0.8
# See SharedLimiter: slots reserved per round trip at high rates.
RESERVE_AHEAD_S = 0.025
MAX_RESERVED = 8

_SCRIPT = """
local state, limits = KEYS[1], KEYS[2]
local field, default_rate, fixed_burst = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local op, decrease, cooldown = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local recovery, min_rate = tonumber(ARGV[7]), tonumber(ARGV[8])
local burst_s, forgive_after = tonumber(ARGV[10]), tonumber(ARGV[11])

-- calls that may go at once: a test's fixed number, or burst_s of the current rate
local function burst_at(r)
  if fixed_burst > 0 then return fixed_burst end
  return math.max(1, math.floor(r * burst_s))
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local configured = tonumber(redis.call('HGET', limits, field)) or default_rate
local s = redis.call('HMGET', state, 'tat', 'rate', 'updated', 'decreased')
local tat = tonumber(s[1]) or now
local rate = tonumber(s[2]) or configured
local updated = tonumber(s[3]) or now
local decreased = tonumber(s[4]) or 0

-- additive recovery since the last update, capped by the configured rate
rate = math.min(configured, rate + recovery * configured * (now - updated) / 1000000)
if rate < min_rate then rate = min_rate end

if op == 'throttled' then
  redis.call('HINCRBY', state, 'throttles', 1)
  if now - decreased >= cooldown then
    local interval = 1000000 / rate
    -- The first throttle after a quiet spell, with burst left unspent (more than two slots:
    -- calls did not wait for slots), says the provider's bucket is smaller than ours (or
    -- shared), not its rate. Any later one cuts: callers that never wait for slots but
    -- still get throttled are above the provider's rate.
    local unspent = (burst_at(rate) - 1) * interval - (tat - now)
    if now - decreased < forgive_after or unspent <= 2 * interval then
      rate = math.max(min_rate, rate * decrease)
    end
    decreased = now
    -- the provider's bucket is empty: no burst until it has refilled
    tat = math.max(tat, now + burst_at(rate) * 1000000 / rate)
  end
  redis.call('HSET', state, 'tat', tat, 'rate', tostring(rate), 'updated', now,
             'decreased', decreased)
  redis.call('PEXPIRE', state, 3600000)
  return {0, tostring(rate), tostring(configured)}
end

if op == 'peek' then
  return {0, tostring(rate), tostring(configured)}
end

local interval = 1000000 / rate
local burst = burst_at(rate)
local n = tonumber(ARGV[9]) or 1
if tat < now then tat = now end
-- n slots, one interval apart; the first is (tat - now) - (burst - 1) * interval away
redis.call('HSET', state, 'tat', tat + n * interval, 'rate', tostring(rate), 'updated', now,
           'decreased', decreased)
redis.call('HINCRBY', state, 'calls', n)
redis.call('PEXPIRE', state, math.floor((tat + n * interval - now) / 1000) + 3600000)
return {math.floor(tat - now - (burst - 1) * interval), tostring(rate), tostring(configured),
        tostring(interval)}
"""


@dataclass(frozen=True, slots=True)
class LimitKey:
    provider: str
    profile: str
    location: str
    group: str = "write"

    @property
    def state_key(self) -> str:
        return f"{PREFIX}:limiter:{self.provider}:{self.profile}:{self.location}:{self.group}"

    @property
    def override_field(self) -> str:
        return f"{self.provider}:{self.location}"


@dataclass(frozen=True, slots=True)
class Grant:
    wait_s: float
    rate: float
    configured: float


class SharedLimiter:
    """Reserve a slot, then sleep exactly as long as the script says.

    At high rates a round trip per call costs more than the call itself, so the limiter then
    reserves several consecutive slots in one round trip (``RESERVE_AHEAD_S`` worth of its
    rate, at most ``MAX_RESERVED``) and hands them out locally. Below 80 calls/s, which
    covers every published provider quota, that is one slot: exactly one reservation per
    call. Slots reserved and not used when a chunk ends are lost, at most
    ``RESERVE_AHEAD_S`` of the rate per chunk."""

    def __init__(
        self,
        conn: aioredis.Redis,
        key: LimitKey,
        default_rate: float,
        burst: int | None = None,
    ) -> None:
        self._conn = conn
        self.key = key
        self._default_rate = default_rate
        self._burst = burst or 0  # 0: BURST_S of the current rate, decided in the script
        self._script = conn.register_script(_SCRIPT)
        self._reserved: deque[float] = deque()  # monotonic times of slots reserved here
        self._grant: Grant | None = None
        self._reserving = asyncio.Lock()

    async def _call(self, op: str, count: int = 1) -> list[Any]:
        reply: list[Any] = await self._script(
            keys=[self.key.state_key, LIMITS_KEY],
            args=[
                self.key.override_field, self._default_rate, self._burst, op, DECREASE,
                int(DECREASE_COOLDOWN_S * 1_000_000), RECOVERY, MIN_RATE, count, BURST_S,
                int(FORGIVE_AFTER_S * 1_000_000),
            ],
        )  # fmt: skip
        return reply

    async def _run(self, op: str) -> Grant:
        first_us, rate, configured, *_ = await self._call(op)
        return Grant(max(0, int(first_us)) / 1_000_000, float(rate), float(configured))

    async def _reserve(self) -> None:
        count = 1
        if self._grant is not None:
            count = max(1, min(MAX_RESERVED, int(self._grant.rate * RESERVE_AHEAD_S)))
        first_us, rate, configured, interval_us = await self._call("acquire", count)
        now = time.monotonic()
        first, interval = int(first_us) / 1_000_000, float(interval_us) / 1_000_000
        self._reserved.extend(now + max(0.0, first + i * interval) for i in range(count))
        self._grant = Grant(max(0.0, first), float(rate), float(configured))

    async def acquire(self) -> Grant:
        # One reservation at a time: callers that find no slot left wait for the one under
        # way instead of each making its own round trip.
        async with self._reserving:
            if not self._reserved:
                await self._reserve()
            slot = self._reserved.popleft()
        wait = slot - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        assert self._grant is not None
        return Grant(max(0.0, wait), self._grant.rate, self._grant.configured)

    async def throttled(self) -> Grant:
        """The provider throttled a call: every worker sharing this key slows down, this
        one at once (its reserved slots were at the old rate)."""
        self._reserved.clear()
        return await self._run("throttled")

    async def peek(self) -> Grant:
        return await self._run("peek")


def set_limit(conn: redis.Redis, provider: str, location: str, rate: float) -> None:
    conn.hset(LIMITS_KEY, f"{provider}:{location}", rate)


def clear_limit(conn: redis.Redis, provider: str, location: str) -> None:
    conn.hdel(LIMITS_KEY, f"{provider}:{location}")


def configured_limits(conn: redis.Redis) -> dict[str, float]:
    raw: dict[bytes, bytes] = conn.hgetall(LIMITS_KEY)  # type: ignore[assignment]
    return {k.decode(): float(v) for k, v in raw.items()}
