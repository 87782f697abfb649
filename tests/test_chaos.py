"""Chaos: workers SIGKILLed at random, Redis crashing and staying away, a hostile provider.

Each test runs a whole campaign (four regions, 1 % of the ids missing) through real
``bulktag worker`` processes, a private Redis with AOF (``appendfsync everysec``) and the
emulator, and ends with the same checks: every resource has exactly one outcome, counters
equal the records, every existing resource carries its tags in the emulator, and no missing
id was created. ``bench/chaos_soak.py`` runs the worker-killing one for longer.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from bulktag.connections import connect
from bulktag.embedded_redis import EmbeddedRedis
from emulator.ids import aliyun_key_id
from emulator.inventory import GenerateSpec, Inventory
from emulator.server import ThreadedEmulatorServer
from producer.campaign import IdBlock, TargetFields
from producer.submit import SubmitOptions, submit
from tests.worker_harness import (
    assert_counters_equal_records,
    children,
    counts,
    outcomes,
    start_worker,
)
from worker.cli import stop
from worker.limiter import set_limit

REGIONS = ["cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen"]
TAGS = (("env", "prod"), ("owner", "chaos"))


class Campaign:
    """Ids per region: ``existing`` that the emulator holds, then 1 % that it does not."""

    def __init__(self, campaign_id: str, existing: int) -> None:
        self.id = campaign_id
        self.existing = existing
        missing = max(1, existing // 100)
        rng = random.Random(campaign_id)
        self.ids: dict[str, list[str]] = {}
        for region in REGIONS:
            ids = [aliyun_key_id(region, n) for n in range(existing + missing)]
            rng.shuffle(ids)
            self.ids[region] = ids
        self.total = sum(len(v) for v in self.ids.values())

    def inventory(self) -> Inventory:
        return Inventory.generated(
            *(GenerateSpec("aliyun", region, "key", self.existing) for region in REGIONS)
        )

    def submit(self, conn: redis.Redis) -> None:
        items = [
            IdBlock(region, TargetFields("aliyun", "emu", region, None, "key"), TAGS, ids,
                    list(range(1, len(ids) + 1)))
            for region, ids in self.ids.items()
        ]  # fmt: skip
        submit(items, SubmitOptions(campaign_id=self.id), conn)

    def done(self, conn: redis.Redis) -> int:
        return counts(conn, self.id).get("done", 0)

    def wait_done(self, conn: redis.Redis, timeout: float, logs: Path) -> None:
        deadline = time.monotonic() + timeout
        while self.done(conn) < self.total:
            if time.monotonic() > deadline:
                tails = "\n".join(p.read_text()[-1500:] for p in sorted(logs.glob("w*.log")))
                raise AssertionError(f"{self.done(conn)}/{self.total} done\n{tails}")
            time.sleep(0.2)

    def check(self, conn: redis.Redis, emu: ThreadedEmulatorServer) -> None:
        found = outcomes(conn, self.id)
        assert len(found) == self.total  # one field per resource: exactly one outcome each
        for region, ids in self.ids.items():
            state = emu.call(lambda r=region: emu.emulator.state("aliyun", r, "key"))
            table = state["resources"]["aliyun"][region]["key"]
            # Nothing was created: the emulator still holds exactly the existing keys...
            assert len(table) == self.existing
            # ...each recorded tagged and carrying the campaign's tags; the rest are the
            # missing ids, recorded not_found.
            wrong = {
                rid: (found[rid].status, found[rid].code)
                for rid in ids
                if found[rid].status != ("tagged" if rid in table else "not_found")
            }
            assert not wrong, f"{len(wrong)} wrong outcomes, e.g. {list(wrong.items())[:3]}"
            assert all(tags == dict(TAGS) for tags in table.values())
        assert_counters_equal_records(conn, self.id)


@contextmanager
def stack(tmp_path: Path, campaign: Campaign, **emulator_config: object) -> Iterator[
    tuple[EmbeddedRedis, redis.Redis, ThreadedEmulatorServer, Path]
]:  # fmt: skip
    """A private Redis with AOF, the emulator, and a credentials profile for it."""
    from tests.worker_harness import credentials_file, emulator

    server = EmbeddedRedis(tmp_path / "redis", appendonly=True)
    url = server.start()
    conn = connect(url)  # retries through outages, as the CLI's clients do
    try:
        with emulator(campaign.inventory(), **emulator_config) as emu:  # type: ignore[arg-type]
            yield server, conn, emu, credentials_file(tmp_path / "c.toml", emu.url)
    finally:
        server.stop()


def start_workers(url: str, creds: Path, tmp_path: Path, n: int) -> list[subprocess.Popen[bytes]]:
    return [start_worker(url, creds, burst=False, log=tmp_path / f"w{i}.log") for i in range(n)]


def restart_after(server: EmbeddedRedis, seconds: float) -> EmbeddedRedis:
    """Crash Redis (SIGKILL: the last second of writes may be lost), keep it away for
    ``seconds``, start it again on the same port from its AOF."""
    server.kill()
    time.sleep(seconds)
    again = EmbeddedRedis(server.data_dir, port=server.port, appendonly=True)
    again.start()
    return again


@pytest.mark.timeout(240)
def test_workers_sigkilled_at_random_lose_and_double_count_nothing(tmp_path: Path) -> None:
    campaign = Campaign("monkey", 12_500)  # 50,500 resources
    rng = random.Random(11)
    with stack(tmp_path, campaign, latency_ms=5) as (server, conn, emu, creds):
        for region in REGIONS:
            set_limit(conn, "aliyun", region, 60)
        workers = start_workers(server.url, creds, tmp_path, 4)
        try:
            campaign.submit(conn)
            kills = 0
            # A random worker process (the worker or its work horse) every 2 s while the
            # campaign runs, and a new worker in its place, as a supervisor would start.
            while campaign.done(conn) < campaign.total * 0.8 and kills < 8:
                time.sleep(2)
                live = [w for w in workers if w.poll() is None]
                victim = rng.choice(live)
                pids = [victim.pid, *children(victim.pid)]
                target = rng.choice(pids)
                signal_pid(target)
                if target == victim.pid:
                    victim.wait(timeout=10)
                    workers.append(start_worker(server.url, creds, burst=False,
                                                log=tmp_path / f"w{len(workers)}.log"))  # fmt: skip
                kills += 1
            assert kills >= 3
            campaign.wait_done(conn, 200, tmp_path)
        finally:
            stop(workers)
        campaign.check(conn, emu)


def signal_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it finished on its own a moment ago
        os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("away_s", "existing", "workers", "rate"),
    [(2, 2_000, 4, 20), (30, 1_000, 2, 10)],
    ids=["crash-and-restart", "unreachable-30s"],
)
def test_redis_crashing_mid_campaign_loses_nothing_and_workers_carry_on(
    tmp_path: Path, away_s: float, existing: int, workers: int, rate: float
) -> None:
    """Redis is SIGKILLed a quarter of the way through (losing up to a second of writes),
    stays away ``away_s`` seconds, and comes back from its AOF."""
    campaign = Campaign(f"redis-away-{away_s}", existing)
    with stack(tmp_path, campaign, latency_ms=5) as (server, conn, emu, creds):
        for region in REGIONS:
            set_limit(conn, "aliyun", region, rate)
        procs = start_workers(server.url, creds, tmp_path, workers)
        try:
            campaign.submit(conn)
            while campaign.done(conn) < campaign.total // 4:
                time.sleep(0.1)
            server = restart_after(server, away_s)
            # Neither crashed nor exited (no crash loop): they waited for Redis.
            assert all(w.poll() is None for w in procs)
            campaign.wait_done(conn, 150, tmp_path)
            campaign.check(conn, emu)
        finally:
            stop(procs)
            server.stop()


@pytest.mark.timeout(180)
def test_a_hostile_provider_still_ends_with_every_existing_resource_tagged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10 % 5xx, 2 % timeouts, 2 % connection resets, and a throttling storm: the provider's
    true limit is a third of what bulktag is told."""
    monkeypatch.setenv("BULKTAG_RETRY_BASE_MS", "50")
    campaign = Campaign("hostile", 1_000)
    faults = {"500": 0.05, "503": 0.05, "timeout": 0.02, "reset": 0.02}
    with stack(
        tmp_path, campaign, faults=faults, timeout_delay=0.5, seed=5,
        rate_limits={"aliyun": 5}, burst=1,
    ) as (server, conn, emu, creds):  # fmt: skip
        for region in REGIONS:
            set_limit(conn, "aliyun", region, 15)
        workers = start_workers(server.url, creds, tmp_path, 4)
        try:
            campaign.submit(conn)
            campaign.wait_done(conn, 150, tmp_path)
        finally:
            stop(workers)
        stats = emu.call(emu.emulator.stats.snapshot)
        assert stats["throttled"] > 0 and stats["faults"] > 0
        campaign.check(conn, emu)
