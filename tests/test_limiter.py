"""The shared GCRA limiter on a real Redis: pacing across processes, AIMD, live overrides."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import redis
import redis.asyncio as aioredis

from worker.limiter import DECREASE, DECREASE_COOLDOWN_S, LimitKey, SharedLimiter, set_limit

KEY = LimitKey("aliyun", "default", "cn-hangzhou")

_CHILD = """
import asyncio, json, sys, time
import redis.asyncio as aioredis
from worker.limiter import LimitKey, SharedLimiter

async def main(url, n, rate):
    conn = aioredis.Redis.from_url(url)
    limiter = SharedLimiter(conn, LimitKey("aliyun", "default", "cn-hangzhou"), rate, burst=1)
    stamps = []
    async def one():
        await limiter.acquire()
        stamps.append(time.time())
    await asyncio.gather(*(one() for _ in range(n)))
    await conn.aclose()
    print(json.dumps(stamps))

asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""


def max_in_window(stamps: list[float], window: float) -> int:
    stamps = sorted(stamps)
    best, j = 0, 0
    for i, t in enumerate(stamps):
        while stamps[j] < t - window + 1e-9:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_two_processes_share_one_rate(redis_url: str) -> None:
    rate, per_process = 40.0, 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, redis_url, str(per_process), str(rate)],
            stdout=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    stamps: list[float] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        stamps += json.loads(out)
    stamps.sort()
    span = stamps[-1] - stamps[0]
    # 80 grants at 40/s are 79 intervals of 25 ms: about 1.975 s, evenly paced.
    assert span >= (2 * per_process - 1) / rate * 0.95
    assert max_in_window(stamps, 1.0) <= rate + 1
    assert max_in_window(stamps, 0.1) <= 5


async def test_burst_lets_that_many_calls_go_at_once_then_paces(redis_url: str) -> None:
    conn = aioredis.Redis.from_url(redis_url)
    limiter = SharedLimiter(conn, KEY, 10.0, burst=4)
    waits = [(await limiter._run("acquire")).wait_s for _ in range(6)]
    assert waits[:4] == [0, 0, 0, 0]
    assert 0.09 <= waits[4] <= 0.11 and 0.19 <= waits[5] <= 0.21
    await conn.aclose()


async def test_default_burst_is_eight_tenths_of_a_second_of_the_rate(redis_url: str) -> None:
    conn = aioredis.Redis.from_url(redis_url)
    limiter = SharedLimiter(conn, KEY, 20.0)
    waits = [(await limiter._run("acquire")).wait_s for _ in range(18)]
    assert waits[:16] == [0] * 16  # 0.8 s of 20 calls/s
    assert 0.04 <= waits[16] <= 0.06 and 0.09 <= waits[17] <= 0.11
    await conn.aclose()


async def test_a_throttle_during_a_burst_spends_the_burst_and_keeps_the_rate(
    redis_url: str,
) -> None:
    conn = aioredis.Redis.from_url(redis_url)
    limiter = SharedLimiter(conn, KEY, 20.0)
    await limiter._run("acquire")  # 15 more could go at once
    grant = await limiter.throttled()  # the provider's bucket is smaller than ours
    assert grant.rate == 20.0
    waits = [(await limiter._run("acquire")).wait_s for _ in range(3)]
    for n, wait in enumerate(waits, start=1):  # paced from now on, no burst
        assert abs(wait - n / 20.0) < 0.01
    await asyncio.sleep(DECREASE_COOLDOWN_S + 0.3)
    # Throttled again although calls still do not wait for slots: above the provider's
    # rate, not its bucket. This one cuts.
    assert (await limiter.throttled()).rate < 20.0 * DECREASE + 0.2
    await conn.aclose()


async def saturate(limiter: SharedLimiter, calls: int = 20) -> None:
    """Reserve slots until callers would wait: the burst is spent."""
    for _ in range(calls):
        await limiter._run("acquire")


async def test_throttling_cuts_the_shared_rate_once_per_cooldown(redis_url: str) -> None:
    conn = aioredis.Redis.from_url(redis_url)
    limiter = SharedLimiter(conn, KEY, 20.0)
    await saturate(limiter)
    first = await limiter.throttled()
    second = await limiter.throttled()  # same burst of throttles: no second cut
    assert abs(first.rate - 20.0 * DECREASE) < 0.05
    assert abs(second.rate - first.rate) < 0.2
    other_worker = SharedLimiter(conn, KEY, 20.0)
    assert (await other_worker.peek()).rate < 20.0 * DECREASE + 0.2
    await conn.aclose()


async def test_rate_recovers_additively_up_to_the_configured_rate(redis_url: str) -> None:
    conn = aioredis.Redis.from_url(redis_url)
    limiter = SharedLimiter(conn, KEY, 20.0)
    await saturate(limiter)
    low = await limiter.throttled()
    await asyncio.sleep(1.0)
    later = await limiter.peek()
    # RECOVERY is 5 % of the configured rate per second: +1/s here.
    assert low.rate + 0.8 <= later.rate <= low.rate + 1.5
    await conn.aclose()


async def test_operator_override_takes_effect_without_restart(redis_url: str) -> None:
    conn = aioredis.Redis.from_url(redis_url)
    limiter = SharedLimiter(conn, KEY, 10.0, burst=1)
    assert (await limiter.peek()).configured == 10.0
    set_limit(redis.Redis.from_url(redis_url), "aliyun", "cn-hangzhou", 25)
    grant = await limiter.acquire()
    assert grant.configured == 25.0
    start = time.monotonic()
    for _ in range(26):
        await limiter.acquire()
    assert 0.9 <= time.monotonic() - start <= 1.5  # 26 grants at 25/s
    await conn.aclose()


async def test_limits_are_separate_per_region(redis_url: str) -> None:
    conn = aioredis.Redis.from_url(redis_url)
    a = SharedLimiter(conn, KEY, 5.0)
    b = SharedLimiter(conn, LimitKey("aliyun", "default", "cn-shanghai"), 5.0)
    for _ in range(3):
        await a.acquire()
    start = time.monotonic()
    await b.acquire()
    assert time.monotonic() - start < 0.05
    await conn.aclose()


def _script_calls(conn: redis.Redis) -> int:
    stats: dict[str, dict[str, int]] = conn.info("commandstats")  # type: ignore[assignment]
    return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "eval"))


async def test_one_round_trip_per_call_at_published_quotas(redis_url: str) -> None:
    conn = aioredis.Redis.from_url(redis_url)
    limiter = SharedLimiter(conn, KEY, 40.0)
    await limiter.peek()  # loads the script
    sync = redis.Redis.from_url(redis_url)
    sync.config_resetstat()
    for _ in range(10):
        await limiter.acquire()
    assert _script_calls(sync) == 10
    await conn.aclose()


async def test_high_rates_reserve_several_slots_per_round_trip_and_keep_the_pace(
    redis_url: str,
) -> None:
    conn = aioredis.Redis.from_url(redis_url)
    limiter = SharedLimiter(conn, KEY, 400.0, burst=1)
    await limiter.peek()  # loads the script
    sync = redis.Redis.from_url(redis_url)
    sync.config_resetstat()

    async def caller() -> None:  # as a chunk runs: 8 calls in flight
        for _ in range(25):
            await limiter.acquire()

    start = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(8)))
    elapsed = time.monotonic() - start
    # 400/s x 25 ms = 10 slots a reservation, capped at 8: 25 round trips for 200 calls
    # (plus the first, which reserves one).
    assert _script_calls(sync) <= 200 / 8 + 2
    assert elapsed >= 199 / 400 * 0.95  # still paced: 199 intervals of 2.5 ms
    calls = sync.hget(KEY.state_key, "calls")
    assert calls is not None and int(calls) >= 200
    await conn.aclose()
