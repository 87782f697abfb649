"""The chaos test, longer (issue 9): SIGKILL random workers and work horses for minutes.

    .venv/bin/python bench/chaos_soak.py                       # 202,000 resources, kill every 3 s
    .venv/bin/python bench/chaos_soak.py --per-region 100000 --every 2 --workers 6

Same campaign shape and end checks as ``tests/test_chaos.py`` (every resource exactly one
outcome, counters equal records, every existing resource tagged in the emulator, no missing
id created), with optional Redis crashes on top (``--redis-crash-every``).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_chaos import (
    REGIONS,
    Campaign,
    restart_after,
    signal_pid,
    stack,
    start_workers,
)
from tests.worker_harness import children, start_worker
from worker.cli import stop
from worker.limiter import set_limit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--per-region", type=int, default=50_000, help="existing keys per region")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--rate", type=float, default=60, help="calls/s per region")
    p.add_argument("--every", type=float, default=3, help="seconds between kills")
    p.add_argument("--redis-crash-every", type=float, default=0, help="0: never")
    args = p.parse_args()
    rng = random.Random(1)
    campaign = Campaign("soak", args.per_region)
    with tempfile.TemporaryDirectory() as tmp, stack(Path(tmp), campaign, latency_ms=5) as (
        server, conn, emu, creds,
    ):  # fmt: skip
        for region in REGIONS:
            set_limit(conn, "aliyun", region, args.rate)
        workers = start_workers(server.url, creds, Path(tmp), args.workers)
        started = time.monotonic()
        kills = crashes = 0
        last_crash = started
        try:
            campaign.submit(conn)
            while campaign.done(conn) < campaign.total:
                time.sleep(args.every)
                crash_due = time.monotonic() - last_crash > args.redis_crash_every
                if args.redis_crash_every and crash_due:
                    server = restart_after(server, 1)
                    crashes += 1
                    last_crash = time.monotonic()
                    continue
                victim = rng.choice([w for w in workers if w.poll() is None])
                target = rng.choice([victim.pid, *children(victim.pid)])
                signal_pid(target)
                kills += 1
                if target == victim.pid:
                    victim.wait(timeout=10)
                    log = Path(tmp) / f"w{len(workers)}.log"
                    workers.append(start_worker(server.url, creds, burst=False, log=log))
                print(f"{time.monotonic() - started:6.1f} s  {campaign.done(conn):,}/"
                      f"{campaign.total:,} done, {kills} kills, {crashes} Redis crashes",
                      flush=True)  # fmt: skip
            campaign.check(conn, emu)
        finally:
            stop(workers)
            server.stop()
    print(f"soak passed: {campaign.total:,} resources in {time.monotonic() - started:.0f} s, "
          f"{kills} SIGKILLs, {crashes} Redis crashes; every resource exactly one outcome, "
          "counters equal records, every existing resource tagged")  # fmt: skip


if __name__ == "__main__":
    main()
