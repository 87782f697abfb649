"""Listing a region once when missing ids prove common (worker/existence.py)."""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from rq.job import Job
from rq.serializers import JSONSerializer

from emulator.ids import aliyun_key_id
from emulator.inventory import GenerateSpec, Inventory
from producer.campaign import TargetFields
from tests.worker_harness import (
    assert_counters_equal_records,
    credentials_file,
    emulator,
    outcomes,
    run_workers,
    submit_ids,
)
from worker.existence import ExistenceIndex, missing_ids_cost_enough, partition, small_enough
from worker.limiter import LimitKey, SharedLimiter, set_limit
from worker.reconcile import jobs_key

REGION = "cn-hangzhou"
ALI = TargetFields("aliyun", "emu", REGION, None, "key")


def test_listing_pays_only_when_missing_ids_cost_calls_and_the_region_is_small() -> None:
    # 40 % of batches failing at 6.6 calls each: 2.6 extra calls per batch.
    assert missing_ids_cost_enough(failed_share=0.4, calls_per_failed_batch=6.6)
    # Rare misses, or answers that name the missing id (1 extra call): no listing.
    assert not missing_ids_cost_enough(0.05, 6.6)
    assert not missing_ids_cost_enough(0.4, 1.0)
    # 250 pages against ~1,050 extra calls for 20,000 resources left: list.
    assert small_enough(total_keys=25_000, remaining=20_000, per_call=50, extra_per_batch=2.6)
    # 10,000 pages in a region of 1,000,000 keys: never, even at full cost.
    assert not small_enough(1_000_000, 20_000, 50, 6.6)


def test_partition_keeps_input_order() -> None:
    assert partition(["a", "b", "c", "d"], [True, False, True, False]) == (["a", "c"], ["b", "d"])


def test_after_the_first_chunk_lists_the_region_later_chunks_spend_no_call_on_isolation(
    redis_url: str, tmp_path: Path
) -> None:
    existing, missing, chunk = 1_000, 100, 250
    ids = [aliyun_key_id(REGION, n) for n in range(existing + missing)]
    random.Random(4).shuffle(ids)
    conn = redis.Redis.from_url(redis_url)
    with emulator(Inventory.generated(GenerateSpec("aliyun", REGION, "key", existing))) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "stale", ALI, ids, chunk_size=chunk)
        run_workers(redis_url, creds)  # one worker: chunks run one after the other
        stats = emu.call(emu.emulator.stats.snapshot)
        state = emu.call(lambda: emu.emulator.state("aliyun", REGION, "key", tagged_only=True))
    calls = {(row["action"], row["outcome"]): row["count"] for row in stats["calls"]}
    tag_calls = sum(n for (action, _), n in calls.items() if action == "TagResources")
    # The region was listed once, 100 keys a page.
    assert sum(n for (action, _), n in calls.items() if action == "ListKeys") == existing // 100
    # After the first chunk, listed ids went in full batches (never failing) and the
    # unlisted (missing) ones one call each: exactly this many calls per chunk.
    is_missing = {aliyun_key_id(REGION, n) for n in range(existing, existing + missing)}
    per_chunk = []
    for job_id in sorted(m.decode() for m in conn.smembers(jobs_key("stale"))):
        result = Job.fetch(job_id, connection=conn, serializer=JSONSerializer).return_value()
        per_chunk.append(result["calls"])
    expected_later = []
    for start in range(chunk, len(ids), chunk):
        part = ids[start : start + chunk]
        gone = sum(rid in is_missing for rid in part)
        expected_later.append(math.ceil((len(part) - gone) / 50) + gone)
    assert per_chunk[1:] == expected_later
    assert per_chunk[0] > 5  # the first chunk isolated its missing ids by splitting
    assert sum(per_chunk) == tag_calls
    found = outcomes(conn, "stale")
    assert {rid for rid, o in found.items() if o.status == "not_found"} == is_missing
    assert {rid for rid, o in found.items() if o.status == "tagged"} == set(ids) - is_missing
    assert len(state["resources"]["aliyun"][REGION]["key"]) == existing
    assert_counters_equal_records(conn, "stale")


def test_a_region_too_large_to_list_costs_one_page_for_the_whole_campaign(
    redis_url: str, tmp_path: Path
) -> None:
    ids = [aliyun_key_id(REGION, n) for n in range(200)] + [
        aliyun_key_id(REGION, 30_000 + n) for n in range(20)
    ]
    random.Random(5).shuffle(ids)
    conn = redis.Redis.from_url(redis_url)
    inv = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 20_000))
    with emulator(inv) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "big-region", ALI, ids, chunk_size=100)
        run_workers(redis_url, creds)
        stats = emu.call(emu.emulator.stats.snapshot)
    listed = sum(row["count"] for row in stats["calls"] if row["action"] == "ListKeys")
    assert listed == 1  # the first page's TotalCount said no; later chunks did not ask again
    found = outcomes(conn, "big-region")
    assert sum(o.status == "not_found" for o in found.values()) == 20
    assert sum(o.status == "tagged" for o in found.values()) == 200


def test_while_the_region_is_listed_a_chunks_unsent_batches_wait_for_the_list(
    redis_url: str, tmp_path: Path
) -> None:
    existing, missing = 1_000, 100
    ids = [aliyun_key_id(REGION, n) for n in range(existing + missing)]
    random.Random(6).shuffle(ids)
    conn = redis.Redis.from_url(redis_url)
    inv = Inventory.generated(GenerateSpec("aliyun", REGION, "key", existing))
    with emulator(inv, rate_limits={f"aliyun:{REGION}": 50}) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        set_limit(conn, "aliyun", REGION, 50)
        submit_ids(conn, "one-chunk", ALI, ids, chunk_size=len(ids))
        run_workers(redis_url, creds)
        stats = emu.call(emu.emulator.stats.snapshot)
    calls = {(row["action"], row["outcome"]): row["count"] for row in stats["calls"]}
    assert calls[("ListKeys", "ok")] == existing // 100
    # Searching every failed batch (nearly all 22 hold a missing id) costs ~700 calls. Only
    # the batches in flight when the listing began (8 at most) fail and are searched; the
    # rest wait: 20 full batches of listed ids and one call per unlisted id.
    tag_calls = sum(n for (action, _), n in calls.items() if action == "TagResources")
    assert tag_calls < 20 + missing + 8 * 12
    found = outcomes(conn, "one-chunk")
    assert sum(o.status == "not_found" for o in found.values()) == missing
    assert sum(o.status == "tagged" for o in found.values()) == existing
    assert_counters_equal_records(conn, "one-chunk")


async def test_a_killed_listers_lock_lapses_and_the_waiting_chunk_goes_on(redis_url: str) -> None:
    conn = aioredis.Redis.from_url(redis_url)
    key = LimitKey("aliyun", "emu", REGION)
    index = ExistenceIndex(conn, key, "key")
    # A lister killed mid-listing: its lock is no longer renewed.
    await conn.set(f"{index.key}:building", "dead-lister", px=800)
    told: list[bool] = []

    async def no_page(page: int) -> Any:
        raise AssertionError("the lock is held: this chunk must not list")

    started = time.monotonic()
    built = await index.build(
        no_page, SharedLimiter(conn, key, 10.0), worth=lambda total: True,
        never=lambda total: False, deadline=started + 60, coming=lambda: told.append(True),
    )  # fmt: skip
    assert built is False and told == [True]  # it waited for the other lister's list
    assert time.monotonic() - started < 3  # and not the 10 minutes a lost lock once held
    await conn.aclose()
