"""The worker end to end: real RQ workers, the test Redis, the emulator over HTTP."""

from __future__ import annotations

from pathlib import Path

import redis

from emulator.ids import aliyun_key_id, huawei_key_id
from emulator.inventory import GenerateSpec, Inventory
from producer.campaign import TargetFields
from tests.worker_harness import (
    PROJECT,
    assert_counters_equal_records,
    credentials_file,
    emulator,
    outcomes,
    run_workers,
    submit_ids,
)

REGION = "cn-hangzhou"
ALI = TargetFields("aliyun", "emu", REGION, None, "key")
HW = TargetFields("huawei", "emu", "cn-north-4", PROJECT, "key")


def test_alibaba_campaign_uses_the_fewest_calls_and_tags_everything(
    redis_url: str, tmp_path: Path
) -> None:
    inv = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 200))
    tags = tuple((f"k{i}", f"v{i}") for i in range(25))  # 25 tags: two calls per id batch
    ids = [aliyun_key_id(REGION, n) for n in range(120)]
    conn = redis.Redis.from_url(redis_url)
    with emulator(inv) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "exact", ALI, ids, tags)
        run_workers(redis_url, creds)
        stats = emu.call(emu.emulator.stats.snapshot)
        state = emu.call(lambda: emu.emulator.state("aliyun", REGION, "key", ids=ids))
    # 120 ids -> 3 batches (50, 50, 20) x 2 tag slices (20 + 5) = 6 calls, none wasted.
    assert stats["total"] == 6
    assert all(t == dict(tags) for t in state["resources"]["aliyun"][REGION]["key"].values())
    found = outcomes(conn, "exact")
    assert set(found) == set(ids) and {o.status for o in found.values()} == {"tagged"}
    assert_counters_equal_records(conn, "exact")


def test_missing_ids_end_not_found_and_every_existing_one_is_tagged(
    redis_url: str, tmp_path: Path
) -> None:
    inv = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 300))
    present = [aliyun_key_id(REGION, n) for n in range(300)]
    missing = [aliyun_key_id(REGION, n) for n in (300, 301, 302, 999)]
    ids = present[:100] + missing[:2] + present[100:] + missing[2:]
    conn = redis.Redis.from_url(redis_url)
    with emulator(inv) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "nf", ALI, ids)
        run_workers(redis_url, creds)
        state = emu.call(lambda: emu.emulator.state("aliyun", REGION, "key", tagged_only=True))
        stats = emu.call(emu.emulator.stats.snapshot)
    tagged = state["resources"]["aliyun"][REGION]["key"]
    assert set(tagged) == set(present)
    found = outcomes(conn, "nf")
    assert {r for r, o in found.items() if o.status == "not_found"} == set(missing)
    assert all(found[r].code == "InvalidResourceId.NotFound" for r in missing)
    assert {found[r].status for r in present} == {"tagged"}
    assert_counters_equal_records(conn, "nf")
    # 304 ids = 7 batches; at most 4 of them hold a missing id, each costing ~8 calls.
    assert stats["total"] <= 7 + 4 * 9


def test_huawei_keys_get_one_call_each_with_token_or_aksk(redis_url: str, tmp_path: Path) -> None:
    inv = Inventory.generated(GenerateSpec("huawei", PROJECT, "key", 10))
    keys = [huawei_key_id(PROJECT, n) for n in range(10)]
    conn = redis.Redis.from_url(redis_url)
    with emulator(inv) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "hw1", HW, keys[:5], (("env", "prod"),))
        token = TargetFields("huawei", "emutoken", "cn-north-4", PROJECT, "key")
        submit_ids(conn, "hw2", token, keys[5:], (("env", "prod"), ("owner", "a")))
        run_workers(redis_url, creds)
        stats = emu.call(emu.emulator.stats.snapshot)
        state = emu.call(lambda: emu.emulator.state("huawei", PROJECT, "key"))
    assert stats["total"] == 10
    tags = state["resources"]["huawei"][PROJECT]["key"]
    assert all(tags[k] == {"env": "prod"} for k in keys[:5])
    assert all(tags[k] == {"env": "prod", "owner": "a"} for k in keys[5:])
    assert {o.status for o in outcomes(conn, "hw2").values()} == {"tagged"}
