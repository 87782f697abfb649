"""Producer benchmark: submit 1,000,000 ids, one target and four regions.

Measures wall time, ids/s, the producer's peak RSS and Redis memory per queued resource.
Starts its own private redis-server (never the one on 6379). Each submit runs in a fresh
process (``bulktag submit``) so that its peak RSS is its own.

    .venv/bin/python bench/submit_1m.py [--ids 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from bulktag.embedded_redis import EmbeddedRedis

REGIONS = ["cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen"]


def write_ids(path: Path, count: int) -> None:
    with path.open("w") as f:
        for i in range(count):
            f.write(f"key-hzz{i:017d}\n")


def write_manifest(path: Path, count: int) -> None:
    with path.open("w") as f:
        f.write("resource_id,region\n")
        for i in range(count):
            f.write(f"key-hzz{i:017d},{REGIONS[i % len(REGIONS)]}\n")


def run_submit(url: str, args: list[str]) -> tuple[float, int, dict[str, object]]:
    """(wall seconds, peak RSS bytes, --json result) of one bulktag submit process."""
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(
        [sys.executable, "-m", "bulktag.cli", "submit", *args, "--json", "--redis-url", url],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far; runs go from small to large.
    return wall, max(peak_kib, before) * 1024, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ids", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        conn = redis.Redis.from_url(server.url)
        ids_file, manifest = Path(tmp) / "ids.txt", Path(tmp) / "m.csv"
        write_ids(ids_file, args.ids)
        write_manifest(manifest, args.ids)
        cases = [
            ("one target", ["--provider", "aliyun", "--region", "cn-hangzhou",
                            "--ids", str(ids_file), "--tag", "env=prod", "--id", "one"]),
            ("four regions", ["--provider", "aliyun", "--manifest", str(manifest),
                              "--tag", "env=prod", "--id", "four"]),
        ]  # fmt: skip
        print(f"{args.ids:,} ids; python {sys.version.split()[0]}; {os.cpu_count()} CPUs")
        print("| case | wall s | ids/s | peak RSS MB | Redis bytes/resource | jobs |")
        print("|---|---|---|---|---|---|")
        for name, submit_args in cases:
            conn.flushall()
            base = int(conn.info("memory")["used_memory"])
            wall, rss, result = run_submit(server.url, submit_args)
            used = int(conn.info("memory")["used_memory"]) - base
            print(
                f"| {name} | {wall:.2f} | {args.ids / wall:,.0f} | {rss / 1e6:.0f} | "
                f"{used / args.ids:.1f} | {result['jobs']} |"
            )
        conn.close()


if __name__ == "__main__":
    main()
