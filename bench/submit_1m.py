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
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from bulktag.embedded_redis import EmbeddedRedis

REGIONS = ["cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen"]


def random_ids(count: int, seed: int = 1) -> list[str]:
    """Real key ids look random (key-hzz62f1cb66fa42qo1234); sequential ones would compress
    far better in Redis than real ones do."""
    rng = random.Random(seed)
    alphabet = string.ascii_lowercase + string.digits
    return ["key-" + "".join(rng.choices(alphabet, k=20)) for _ in range(count)]


def write_ids(path: Path, ids: list[str]) -> None:
    path.write_text("\n".join(ids) + "\n")


def write_manifest(path: Path, ids: list[str]) -> None:
    with path.open("w") as f:
        f.write("resource_id,region\n")
        for i, rid in enumerate(ids):
            f.write(f"{rid},{REGIONS[i % len(REGIONS)]}\n")


def write_campaign(directory: Path, ids: list[str]) -> Path:
    """Four targets, one id file per region."""
    targets = []
    for n, region in enumerate(REGIONS):
        name = f"{region}.txt"
        write_ids(directory / name, ids[n :: len(REGIONS)])
        targets.append({"provider": "aliyun", "region": region, "resource_type": "key",
                        "ids_file": name, "tags": {"env": "prod"}})  # fmt: skip
    path = directory / "campaign.json"
    path.write_text(json.dumps({"targets": targets}))
    return path


def run_submit(url: str, args: list[str]) -> tuple[float, int, dict[str, object]]:
    """(wall seconds, peak RSS bytes, --json result) of one bulktag submit process."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURED, "submit", *args, "--json", "--redis-url", url],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    peak_kib = int(proc.stderr.strip().splitlines()[-1])
    return wall, peak_kib * 1024, json.loads(proc.stdout)


# The child reports its own peak RSS from /proc (VmHWM, in KiB): getrusage's maxrss survives
# exec on Linux, so it would include the pages the child shared with this large parent.
_MEASURED = """
import sys
from bulktag.cli import main
code = main(sys.argv[1:])
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(hwm, file=sys.stderr)
sys.exit(code)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ids", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis(Path(tmp) / "redis") as server:
        conn = redis.Redis.from_url(server.url)
        ids = random_ids(args.ids)
        ids_file, manifest = Path(tmp) / "ids.txt", Path(tmp) / "m.csv"
        write_ids(ids_file, ids)
        write_manifest(manifest, ids)
        campaign = write_campaign(Path(tmp), ids)
        del ids
        cases = [
            ("one target, id list", ["--provider", "aliyun", "--region", "cn-hangzhou",
                                     "--ids", str(ids_file), "--tag", "env=prod", "--id", "one"]),
            ("four regions, campaign file", ["--campaign", str(campaign), "--id", "four"]),
            ("four regions, CSV manifest", ["--provider", "aliyun", "--manifest", str(manifest),
                                            "--tag", "env=prod", "--id", "csv"]),
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
