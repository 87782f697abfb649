"""Dashboard API answer times with a million outcomes and 10,000 queued jobs.

    .venv/bin/python bench/dashboard_api.py [--resources 1000000] [--chunk 100] [-n 30]

A private Redis gets: one campaign of ``--resources`` ids submitted by the producer in chunks
of ``--chunk`` (10,000 queued jobs by default) with an outcome recorded for every one of them
(97 % tagged, 1 % each not_found, invalid and failed; written straight into the outcome hash
and counters with the layout of worker/outcomes.py, a pipeline being far quicker than running
the workers), 30 small campaigns, three limiters with per-second call counters, and two idle
`bulktag worker` processes. Then a `bulktag dashboard` process answers each request ``-n``
times over one keep-alive connection; the figures are wall times seen by the client.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from bulktag.embedded_redis import EmbeddedRedis
from emulator.ids import aliyun_key_id
from producer.campaign import IdBlock, TargetFields
from producer.submit import SubmitOptions, submit
from worker import callstats
from worker.limiter import set_limit
from worker.outcomes import Outcome, counts_key, outcomes_key

REGIONS = ("cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen")
MIX = (
    ("tagged", None, 0.97),
    ("not_found", "InvalidResourceId.NotFound", 0.01),
    ("invalid", "InvalidParameter.TagValue", 0.01),
    ("failed", "Forbidden.KeyDisabled", 0.01),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(conn: redis.Redis, resources: int, chunk: int) -> list[str]:
    per_region = resources // len(REGIONS)
    blocks = []
    ids_by_target: list[list[str]] = []
    for region in REGIONS:
        ids = [aliyun_key_id(region, n) for n in range(per_region)]
        ids_by_target.append(ids)
        blocks.append(IdBlock("bench", TargetFields("aliyun", "bench", region, None, "key"),
                              (("env", "prod"),), ids, list(range(1, per_region + 1))))  # fmt: skip
    started = time.monotonic()
    submit(blocks, SubmitOptions(campaign_id="big", chunk_size=chunk), conn)
    print(f"submitted {resources:,} ids in {time.monotonic() - started:.1f} s", flush=True)
    started = time.monotonic()
    rng = random.Random(6)
    weights = [w for _, _, w in MIX]
    for target, ids in enumerate(ids_by_target):
        for i in range(0, len(ids), 10_000):
            fields: dict[str, str] = {}
            tally: dict[str, int] = {}
            for rid in ids[i : i + 10_000]:
                status, code, _ = rng.choices(MIX, weights)[0]
                message = None if code is None else f"{code}: the provider said no"
                fields[f"{target}|{rid}"] = Outcome(
                    rid, status, code, message, "0D5E-REQ", 1, time.time()
                ).payload()
                for key in (f"{target}:{status}", f"all:{status}", "done") + (
                    (f"{target}:code:{code}",) if code else ()
                ):
                    tally[key] = tally.get(key, 0) + 1
            pipe = conn.pipeline(transaction=False)
            pipe.hset(outcomes_key("big"), mapping=fields)  # type: ignore[arg-type]
            for key, n in tally.items():
                pipe.hincrby(counts_key("big"), key, n)
            pipe.execute()
    print(f"recorded {resources:,} outcomes in {time.monotonic() - started:.1f} s", flush=True)
    for n in range(30):
        ids = [aliyun_key_id("cn-qingdao", n * 100 + k) for k in range(100)]
        block = IdBlock("bench", TargetFields("aliyun", "bench", "cn-qingdao", None, "key"),
                        (("env", "prod"),), ids, list(range(1, 101)))  # fmt: skip
        submit([block], SubmitOptions(campaign_id=f"small-{n:02d}", chunk_size=100), conn)
    now = time.time()
    for region in REGIONS[:3]:
        set_limit(conn, "aliyun", region, 20)
        state = {"rate": 14.0, "updated": int(now * 1e6), "calls": 5000, "throttles": 3}
        conn.hset(f"bulktag:limiter:aliyun:bench:{region}:write", mapping=state)
        for ago in range(1, 300):
            callstats.record(conn, "aliyun", region, 20, 1 if ago % 100 == 0 else 0, now - ago)
    return ids_by_target[0]


def measure(conn: http.client.HTTPConnection, path: str, n: int) -> tuple[list[float], int]:
    times = []
    size = 0
    for _ in range(n):
        started = time.perf_counter()
        conn.request("GET", path)
        answer = conn.getresponse()
        body = answer.read()
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status == 200, (path, answer.status, body[:200])
        size = len(body)
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resources", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("-n", type=int, default=30, help="requests per endpoint")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bulktag-dash-") as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as server,
    ):
        conn = redis.Redis.from_url(server.url)
        first_ids = seed(conn, args.resources, args.chunk)
        queued = sum(conn.llen(k) for k in conn.scan_iter("rq:queue:bulktag.*"))  # type: ignore[misc]
        print(f"queued jobs: {queued:,}; outcomes: {conn.hlen(outcomes_key('big')):,}")
        env = {**os.environ, "BULKTAG_CREDENTIALS_FILE": "/nonexistent"}
        idle_worker = [sys.executable, "-m", "bulktag.cli", "--log-level", "WARNING", "worker",
                       "--redis-url", server.url, "--queues", "bulktag.idle"]  # fmt: skip
        workers = [subprocess.Popen(idle_worker, env=env) for _ in range(2)]
        port = free_port()
        board = subprocess.Popen(
            [sys.executable, "-m", "bulktag.cli", "--log-level", "WARNING", "dashboard",
             "--port", str(port), "--redis-url", server.url], env=env,
        )  # fmt: skip
        try:
            http_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for _ in range(100):
                try:
                    measure(http_conn, "/healthz", 1)
                    break
                except (OSError, http.client.HTTPException):
                    http_conn.close()
                    time.sleep(0.2)
            time.sleep(2)  # the workers register
            middle = json.loads(_get(http_conn, "/api/campaigns/big/outcomes?limit=50"))["cursor"]
            for _ in range(20):
                middle = json.loads(
                    _get(http_conn, f"/api/campaigns/big/outcomes?limit=50&cursor={middle}")
                )["cursor"]
            paths = [
                "/healthz", "/api/config", "/api/overview", "/api/queues", "/api/workers",
                "/api/limits", "/api/campaigns", "/api/campaigns/big",
                "/api/campaigns/big/outcomes?limit=50",
                f"/api/campaigns/big/outcomes?limit=50&cursor={middle}",
                "/api/campaigns/big/outcomes?limit=50&status=failed",
                "/api/campaigns/big/outcomes?limit=50&status=cancelled",
                f"/api/campaigns/big/outcomes?q={first_ids[123_456 % len(first_ids)]}",
                f"/api/campaigns/big/outcomes?q={first_ids[4242][:-2]}",
                "/metrics",
            ]  # fmt: skip
            print("\n| request | median ms | p95 ms | max ms | answer bytes |")
            print("|---|---:|---:|---:|---:|")
            worst = 0.0
            for path in paths:
                times, size = measure(http_conn, path, args.n)
                p95 = statistics.quantiles(times, n=20)[-1]
                worst = max(worst, max(times))
                shown = path.replace(first_ids[123_456 % len(first_ids)], "<exact id>")
                shown = shown.replace(first_ids[4242][:-2], "<id prefix>")
                shown = shown.replace(str(middle), "<cursor>")
                print(f"| `{shown}` | {statistics.median(times):.1f} | {p95:.1f} | "
                      f"{max(times):.1f} | {size:,} |")  # fmt: skip
            print(f"\nslowest answer: {worst:.1f} ms")
        finally:
            for proc in [*workers, board]:
                proc.send_signal(signal.SIGTERM)
            for proc in [*workers, board]:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _get(conn: http.client.HTTPConnection, path: str) -> bytes:
    conn.request("GET", path)
    return conn.getresponse().read()


if __name__ == "__main__":
    main()
