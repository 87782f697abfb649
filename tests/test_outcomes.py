"""Outcome records and their counters on a real Redis: buffered, grouped, never counted twice."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis

from worker import outcomes as oc


def _counts(conn: redis.Redis, campaign: str) -> dict[str, int]:
    raw: dict[bytes, bytes] = conn.hgetall(oc.counts_key(campaign))  # type: ignore[assignment]
    return {k.decode(): int(v) for k, v in raw.items()}


async def test_outcomes_wait_in_the_buffer_until_flushed_then_count_once(redis_url: str) -> None:
    conn = aioredis.Redis.from_url(redis_url)
    sync = redis.Redis.from_url(redis_url)
    store = oc.OutcomeStore(conn, "c1")
    await store.record(0, [oc.Outcome(f"k{i}", oc.TAGGED, None, None, "req-1", 1, 1.5)
                           for i in range(3)])  # fmt: skip
    await store.record(0, [oc.Outcome("k3", oc.NOT_FOUND, "Forbidden.KeyNotFound", "gone",
                                      "req-2", 2, 1.6)])  # fmt: skip
    assert sync.hlen(oc.outcomes_key("c1")) == 0
    assert await store.flush() == 4
    assert _counts(sync, "c1") == {
        "0:tagged": 3, "all:tagged": 3, "0:not_found": 1, "all:not_found": 1,
        "0:code:Forbidden.KeyNotFound": 1, "done": 4,
    }  # fmt: skip
    missing = oc.Outcome.from_payload("k3", sync.hget(oc.outcomes_key("c1"), "0|k3") or b"")
    assert missing == oc.Outcome("k3", oc.NOT_FOUND, "Forbidden.KeyNotFound", "gone", "req-2",
                                 2, 1.6)  # fmt: skip

    # A chunk that runs again records nothing twice, whatever it saw this time.
    again = oc.OutcomeStore(conn, "c1")
    await again.record(0, [oc.Outcome(f"k{i}", oc.FAILED, "X", None, None, 1, 2.0)
                           for i in range(5)])  # fmt: skip
    assert await again.flush() == 1 and again.recorded == 1
    assert _counts(sync, "c1")["done"] == 5 and _counts(sync, "c1")["all:tagged"] == 3
    await conn.aclose()


async def test_a_full_or_old_buffer_is_written_without_waiting_for_the_chunk(
    redis_url: str,
) -> None:
    conn = aioredis.Redis.from_url(redis_url)
    sync = redis.Redis.from_url(redis_url)
    store = oc.OutcomeStore(conn, "c2")
    await store.record(0, [oc.Outcome(f"k{i}", oc.TAGGED) for i in range(oc.FLUSH_RESOURCES)])
    assert sync.hlen(oc.outcomes_key("c2")) == oc.FLUSH_RESOURCES
    await store.record(0, [oc.Outcome("late-1", oc.TAGGED)])
    await asyncio.sleep(oc.FLUSH_AFTER_S + 0.05)
    await store.record(0, [oc.Outcome("late-2", oc.TAGGED)])
    assert sync.hlen(oc.outcomes_key("c2")) == oc.FLUSH_RESOURCES + 2
    await conn.aclose()
