"""Worker benchmarks (issue 4): rate-limit use, throughput ceiling, NotFound isolation cost.

Each scenario starts a private redis-server, the emulator (`bulktag emulator`, its own
process) and `bulktag worker --burst` processes, submits a campaign through the producer's
Python API, and reads the emulator's own counters at the end.

    .venv/bin/python bench/worker_bench.py limits     # 4 regions x 20/s, 4 workers, 200k
    .venv/bin/python bench/worker_bench.py ceiling    # no limits, 2 workers, 1M resources
    .venv/bin/python bench/worker_bench.py notfound   # calls per 1,000 with 1 % missing
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis

from bulktag import store
from bulktag.embedded_redis import EmbeddedRedis
from emulator.ids import aliyun_key_id
from producer.campaign import IdBlock, TargetFields
from producer.submit import SubmitOptions, submit
from worker.cli import spawn
from worker.limiter import set_limit
from worker.outcomes import counts_key

REGIONS = ["cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_emulator(port: int, args: list[str]) -> subprocess.Popen[bytes]:
    """``bulktag emulator`` in its own process, once it answers on ``port``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulktag.cli", "--log-level", "WARNING", "emulator",
         "--port", str(port), *args],
    )  # fmt: skip
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/health", timeout=5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the emulator did not start")


class Stack:
    """Redis, the emulator and a credentials profile, for one scenario."""

    def __init__(self, tmp: Path, emulator_args: list[str]) -> None:
        self.tmp = tmp
        self.redis = EmbeddedRedis(tmp / "redis")
        self.port = free_port()
        self.emulator_args = emulator_args
        self.creds = tmp / "credentials.toml"
        self.creds.write_text(
            '[profile.bench.aliyun]\naccess_key_id = "testid"\n'
            f'access_key_secret = "testsecret"\nendpoint = "http://127.0.0.1:{self.port}"\n'
        )

    def __enter__(self) -> Stack:
        self.url = self.redis.start()
        self.emulator = start_emulator(self.port, self.emulator_args)
        return self

    def __exit__(self, *exc: object) -> None:
        self.emulator.terminate()
        self.emulator.wait()
        self.redis.stop()

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return json.loads(r.read())

    def start_workers(self, processes: int) -> list[subprocess.Popen[bytes]]:
        """Long-running workers, as in production: they wait for campaigns."""
        workers = spawn(self.url, processes, str(self.creds))
        conn = redis.Redis.from_url(self.url)
        while len(conn.keys("rq:worker:*")) < processes:
            time.sleep(0.1)
        return workers

    def run_workers(self, processes: int) -> float:
        started = time.perf_counter()
        for w in spawn(self.url, processes, str(self.creds), burst=True):
            w.wait()
        return time.perf_counter() - started


def submit_blocks(url: str, campaign: str, per_region: dict[str, list[str]]) -> None:
    items = [
        IdBlock(region, TargetFields("aliyun", "bench", region, None, "key"),
                (("env", "prod"),), ids, list(range(1, len(ids) + 1)))
        for region, ids in per_region.items()
    ]  # fmt: skip
    submit(items, SubmitOptions(campaign_id=campaign), redis.Redis.from_url(url))


def done(url: str, campaign: str) -> int:
    return int(redis.Redis.from_url(url).hget(counts_key(campaign), "done") or 0)


def limits(args: argparse.Namespace) -> None:
    per_region = args.resources // len(REGIONS)
    emulator_args: list[str] = []
    for r in REGIONS:
        emulator_args += ["--generate", f"aliyun:{r}:key:{per_region}"]
        emulator_args += ["--rate-limit", f"aliyun:{r}={args.rate:g}"]
    with tempfile.TemporaryDirectory() as tmp, Stack(Path(tmp), emulator_args) as stack:
        conn = redis.Redis.from_url(stack.url)
        for region in REGIONS:
            set_limit(conn, "aliyun", region, args.rate)
        workers = stack.start_workers(args.workers)
        started = time.perf_counter()
        submit_blocks(stack.url, "limits", {
            r: [aliyun_key_id(r, n) for n in range(per_region)] for r in REGIONS
        })  # fmt: skip
        while done(stack.url, "limits") < per_region * len(REGIONS):
            time.sleep(0.05)
        wall = time.perf_counter() - started
        stats = stack.get("/_emulator/stats")
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait()
    calls = stats["total"]
    by_region: dict[str, int] = {}
    for row in stats["calls"]:
        if row["outcome"] == "ok":
            by_region[row["location"]] = by_region.get(row["location"], 0) + row["count"]
    print(f"limits: {args.resources:,} resources, {len(REGIONS)} regions at {args.rate:g}/s, "
          f"{args.workers} workers already running; wall = submit to last outcome")  # fmt: skip
    windows = {w["location"]: w["last"] - w["first"] for w in stats["windows"]}
    print("| region | ok calls | calls/s, campaign | / limit | calls/s, while called | / limit |")
    print("|---|---|---|---|---|---|")
    for region in REGIONS:
        rate = by_region[region] / wall
        # n calls spaced at the limit span (n - 1) intervals
        busy = (by_region[region] - 1) / windows[region]
        print(f"| {region} | {by_region[region]} | {rate:.2f} | {rate / args.rate:.3f} | "
              f"{busy:.2f} | {busy / args.rate:.3f} |")  # fmt: skip
    print(f"wall {wall:.1f} s; calls {calls}; throttled {stats['throttled']} "
          f"({100 * stats['throttled'] / calls:.3f} %)")  # fmt: skip


def ceiling(args: argparse.Namespace) -> None:
    region = REGIONS[0]
    with (
        tempfile.TemporaryDirectory() as tmp,
        Stack(Path(tmp), ["--generate", f"aliyun:{region}:key:{args.resources}"]) as stack,
    ):
        set_limit(redis.Redis.from_url(stack.url), "aliyun", region, 1_000_000)
        submit_blocks(stack.url, "ceiling", {
            region: [aliyun_key_id(region, n) for n in range(args.resources)]
        })  # fmt: skip
        wall = stack.run_workers(args.workers)
        stats = stack.get("/_emulator/stats")
        assert done(stack.url, "ceiling") == args.resources
    print(f"ceiling: {args.resources:,} resources, {args.workers} workers, no limits: "
          f"{wall:.1f} s, {args.resources / wall:,.0f} resources/s, "
          f"{stats['total'] / wall:,.0f} calls/s")  # fmt: skip


def notfound(args: argparse.Namespace) -> None:
    region = REGIONS[0]
    rng = random.Random(3)
    present = [aliyun_key_id(region, n) for n in range(args.resources)]
    missing = [aliyun_key_id(region, args.resources + n) for n in range(args.resources // 100)]
    ids = present + missing
    rng.shuffle(ids)
    for name, extra in (("generic message", []), ("message names the id", ["--name-missing-id"])):
        with (
            tempfile.TemporaryDirectory() as tmp,
            Stack(
                Path(tmp), ["--generate", f"aliyun:{region}:key:{args.resources}", *extra]
            ) as stack,
        ):
            set_limit(redis.Redis.from_url(stack.url), "aliyun", region, 1_000_000)
            submit_blocks(stack.url, "nf", {region: ids})
            stack.run_workers(args.workers)
            stats = stack.get("/_emulator/stats")
            record = store.load_campaign(redis.Redis.from_url(stack.url), "nf")
            assert record is not None and done(stack.url, "nf") == len(ids)
        print(f"notfound ({name}): {len(ids):,} resources, {len(missing)} missing: "
              f"{stats['total']} calls, {1000 * stats['total'] / len(ids):.1f} per 1,000 "
              f"(optimum {1000 / 50:.0f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="scenario", required=True)
    p = sub.add_parser("limits")
    p.add_argument("--resources", type=int, default=200_000)
    p.add_argument("--rate", type=float, default=20)
    p.add_argument("--workers", type=int, default=4)
    p = sub.add_parser("ceiling")
    p.add_argument("--resources", type=int, default=1_000_000)
    p.add_argument("--workers", type=int, default=2)
    p = sub.add_parser("notfound")
    p.add_argument("--resources", type=int, default=50_000)
    p.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    {"limits": limits, "ceiling": ceiling, "notfound": notfound}[args.scenario](args)


if __name__ == "__main__":
    main()
