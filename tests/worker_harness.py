"""Shared pieces for end-to-end tests: an emulator in a thread, credentials profiles pointing
at it, and `bulktag worker` processes (real RQ workers) against the test Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from emulator.config import Credentials, EmulatorConfig
from emulator.inventory import Inventory
from emulator.server import ThreadedEmulatorServer
from producer.campaign import Row, TargetFields
from producer.submit import SubmitOptions, SubmitResult, submit
from worker.outcomes import Outcome, counts_key, outcomes_key

PROJECT = "0123456789abcdef0123456789abcdef"
ALI_SECRET = "ali-secret-Zq8vT1mXr0"
HW_SK = "hw-sk-Lw4pC9nBy2"
HW_TOKEN = "hw-token-Ue7kD3sJq5"


@contextmanager
def emulator(inventory: Inventory, **config: Any) -> Iterator[ThreadedEmulatorServer]:
    credentials = Credentials(
        aliyun={"emu-id": ALI_SECRET}, huawei={"emu-ak": HW_SK}, huawei_tokens=frozenset({HW_TOKEN})
    )
    with ThreadedEmulatorServer(EmulatorConfig(credentials=credentials, **config), inventory) as s:
        yield s


def credentials_file(path: Path, url: str) -> Path:
    path.write_text(
        f'[profile.emu.aliyun]\naccess_key_id = "emu-id"\naccess_key_secret = "{ALI_SECRET}"\n'
        f'endpoint = "{url}"\n'
        f'[profile.emu.huawei]\nak = "emu-ak"\nsk = "{HW_SK}"\nendpoint = "{url}"\n'
        f'[profile.emutoken.huawei]\nauth_token = "{HW_TOKEN}"\nendpoint = "{url}"\n'
    )
    return path


def worker_env(creds: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["BULKTAG_CREDENTIALS_FILE"] = str(creds)
    for var in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "HUAWEICLOUD_SDK_AK", "BULKTAG_REDIS_URL"):
        env.pop(var, None)
    return env


def start_worker(redis_url: str, creds: Path, *extra: str, log: Path | None = None,
                 burst: bool = True) -> subprocess.Popen[bytes]:  # fmt: skip
    args = [sys.executable, "-m", "bulktag.cli", "--log-level", "DEBUG", "worker",
            "--redis-url", redis_url, *extra]  # fmt: skip
    if burst:
        args.append("--burst")
    out = log.open("ab") if log else subprocess.DEVNULL
    return subprocess.Popen(args, env=worker_env(creds), stdout=out, stderr=subprocess.STDOUT)


def run_workers(redis_url: str, creds: Path, *extra: str, log: Path | None = None) -> None:
    proc = start_worker(redis_url, creds, *extra, log=log)
    try:
        assert proc.wait(timeout=100) == 0
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(log.read_text()[-4000:] if log else "worker did not finish") from None


def submit_ids(
    conn: redis.Redis,
    campaign_id: str,
    fields: TargetFields,
    ids: list[str],
    tags: tuple[tuple[str, str], ...] = (("env", "prod"),),
    chunk_size: int | None = None,
) -> SubmitResult:
    rows = [Row("test", i, rid, fields, tags) for i, rid in enumerate(ids, start=1)]
    return submit(rows, SubmitOptions(campaign_id=campaign_id, chunk_size=chunk_size), conn)


def outcomes(conn: redis.Redis, campaign_id: str) -> dict[str, Outcome]:
    raw: dict[bytes, bytes] = conn.hgetall(outcomes_key(campaign_id))  # type: ignore[assignment]
    found = {}
    for field, payload in raw.items():
        _, rid = field.decode().split("|", 1)
        found[rid] = Outcome.from_payload(rid, payload)
    return found


def counts(conn: redis.Redis, campaign_id: str) -> dict[str, int]:
    raw: dict[bytes, bytes] = conn.hgetall(counts_key(campaign_id))  # type: ignore[assignment]
    return {k.decode(): int(v) for k, v in raw.items()}


def assert_counters_equal_records(conn: redis.Redis, campaign_id: str) -> None:
    records = outcomes(conn, campaign_id)
    tally = counts(conn, campaign_id)
    by_status: dict[str, int] = {}
    for o in records.values():
        by_status[o.status] = by_status.get(o.status, 0) + 1
    assert tally.get("done", 0) == len(records)
    assert {k[4:]: v for k, v in tally.items() if k.startswith("all:") and v} == by_status


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (a worker's work horse), from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found
