"""After a full campaign, no secret is anywhere in Redis or in the logs."""

from __future__ import annotations

import contextlib
import zlib
from pathlib import Path

import redis

from emulator.ids import aliyun_key_id, huawei_key_id
from emulator.inventory import GenerateSpec, Inventory
from producer.campaign import TargetFields
from tests.worker_harness import (
    ALI_SECRET,
    HW_SK,
    HW_TOKEN,
    PROJECT,
    credentials_file,
    emulator,
    outcomes,
    run_workers,
    submit_ids,
)

WRONG_SECRET = "wrong-secret-Hc5yR8aQ"


def redis_values(conn: redis.Redis) -> list[bytes]:
    """Every value of every key, decompressed where RQ compressed it."""
    found: list[bytes] = []
    for key in conn.scan_iter(count=1000):
        found.append(key)
        kind = conn.type(key).decode()  # type: ignore[union-attr]
        if kind == "string":
            found.append(conn.get(key))  # type: ignore[arg-type]
        elif kind == "hash":
            for field, value in conn.hgetall(key).items():  # type: ignore[union-attr]
                found += [field, value]
        elif kind == "list":
            found += conn.lrange(key, 0, -1)  # type: ignore[operator]
        elif kind == "set":
            found += list(conn.smembers(key))  # type: ignore[arg-type]
        elif kind == "zset":
            found += conn.zrange(key, 0, -1)  # type: ignore[operator]
        elif kind == "stream":
            for _, entry in conn.xrange(key):  # type: ignore[union-attr]
                for field, value in entry.items():
                    found += [field, value]
    expanded = []
    for value in found:
        expanded.append(value)
        with contextlib.suppress(zlib.error):
            expanded.append(zlib.decompress(value))
    return expanded


def test_no_secret_reaches_redis_or_logs(redis_url: str, tmp_path: Path) -> None:
    region = "cn-hangzhou"
    inv = Inventory.generated(
        GenerateSpec("aliyun", region, "key", 120), GenerateSpec("huawei", PROJECT, "key", 6)
    )
    conn = redis.Redis.from_url(redis_url)
    log = tmp_path / "worker.log"
    with emulator(inv) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        with creds.open("a") as f:  # a profile whose secret the emulator refuses
            f.write(
                f'[profile.wrong.aliyun]\naccess_key_id = "emu-id"\n'
                f'access_key_secret = "{WRONG_SECRET}"\nendpoint = "{emu.url}"\n'
            )
        ids = [aliyun_key_id(region, n) for n in range(100)] + ["key-hzz99999999999999999"]
        submit_ids(conn, "s1", TargetFields("aliyun", "emu", region, None, "key"), ids)
        submit_ids(conn, "s2", TargetFields("aliyun", "wrong", region, None, "key"), ids[:10])
        hw_keys = [huawei_key_id(PROJECT, n) for n in range(6)]
        submit_ids(conn, "s3", TargetFields("huawei", "emu", "cn-north-4", PROJECT, "key"),
                   hw_keys[:3])  # fmt: skip
        submit_ids(conn, "s4", TargetFields("huawei", "emutoken", "cn-north-4", PROJECT, "key"),
                   hw_keys[3:])  # fmt: skip
        run_workers(redis_url, creds, log=log)
    assert len(outcomes(conn, "s1")) == 101  # the run really ran
    assert outcomes(conn, "s2") == {}  # auth failure: paused, nothing final
    assert conn.hget("bulktag:campaign:s2:paused", "0")  # ...and the reason is recorded
    logs = log.read_bytes()
    assert b"chunk done" in logs  # the worker did log at DEBUG
    values = redis_values(conn)
    for secret in (ALI_SECRET, HW_SK, HW_TOKEN, WRONG_SECRET):
        assert secret.encode() not in logs, secret
        assert not [v for v in values if secret.encode() in v], secret
