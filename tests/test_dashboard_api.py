"""The dashboard's JSON API, /metrics and /healthz over real HTTP (aiohttp's test server) and
the test's private Redis; campaigns are submitted by the producer and their outcomes written
by the workers' own outcome store, limiter and controls."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue

from dashboard.app import create_app
from emulator.ids import aliyun_key_id
from producer.campaign import Row, TargetFields
from producer.submit import SubmitOptions, submit
from tests.worker_harness import worker_env
from worker import callstats
from worker.control import Controls
from worker.limiter import LimitKey, SharedLimiter, set_limit
from worker.outcomes import Outcome, OutcomeStore

TOKEN = "dashboard-token-Hq3vX9pL2wR7"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HZ = TargetFields("aliyun", "emu", "cn-hangzhou", None, "key")
SH = TargetFields("aliyun", "emu", "cn-shanghai", None, "key")


def hz_ids(n: int) -> list[str]:
    return [aliyun_key_id("cn-hangzhou", i) for i in range(n)]


def submit_two_targets(conn: redis.Redis, cid: str, hz: int, sh: int, chunk: int = 50) -> None:
    rows = [Row("t", i, rid, HZ, (("env", "prod"),)) for i, rid in enumerate(hz_ids(hz), 1)]
    rows += [Row("t", 10_000 + i, aliyun_key_id("cn-shanghai", i), SH, (("env", "prod"),))
             for i in range(sh)]  # fmt: skip
    submit(rows, SubmitOptions(campaign_id=cid, chunk_size=chunk), conn)


async def record(redis_url: str, cid: str, target: int, outcomes: list[Outcome]) -> None:
    conn = aioredis.Redis.from_url(redis_url)
    try:
        store = OutcomeStore(conn, cid)
        for i in range(0, len(outcomes), 500):
            await store.record(target, outcomes[i : i + 500])
        # The store may buffer outcomes until a flush (worker/outcomes.py): write them now.
        flush = getattr(store, "flush", None)
        if flush is not None:
            await flush()
    finally:
        await conn.aclose()


def tagged(ids: list[str]) -> list[Outcome]:
    return [Outcome(rid, "tagged", None, None, "req-1", 1, time.time()) for rid in ids]


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient[object, object]]:
    async with TestClient(TestServer(create_app(redis_url, TOKEN))) as c:
        yield c


@pytest.fixture
async def readonly(redis_url: str) -> AsyncIterator[TestClient[object, object]]:
    async with TestClient(TestServer(create_app(redis_url, None))) as c:
        yield c


async def get(client: TestClient[object, object], path: str, status: int = 200) -> object:
    answer = await client.get(path)
    assert answer.status == status, await answer.text()
    return await answer.json()


async def test_queues_show_depth_age_of_the_oldest_job_and_registry_counts(
    client: TestClient[object, object], redis_client: redis.Redis
) -> None:
    submit_two_targets(redis_client, "q1", hz=300, sh=0, chunk=50)
    queue = Queue("bulktag.aliyun.cn-hangzhou", connection=redis_client)
    redis_client.zadd(queue.failed_job_registry.key, {"some-job": time.time() + 3600})
    await asyncio.sleep(1.1)
    rows = await get(client, "/api/queues")
    assert isinstance(rows, list)
    (row,) = [r for r in rows if r["name"] == "bulktag.aliyun.cn-hangzhou"]
    assert row["depth"] == 6 and row["failed"] == 1 and row["started"] == 0
    assert 1.0 <= row["oldest_age_s"] < 60


async def test_campaign_detail_has_progress_per_target_codes_and_why_a_target_is_paused(
    client: TestClient[object, object], redis_client: redis.Redis, redis_url: str
) -> None:
    submit_two_targets(redis_client, "mix", hz=100, sh=10)
    missing = [Outcome(rid, "not_found", "InvalidResourceId.NotFound", "gone", "r", 2, 1.0)
               for rid in hz_ids(100)[90:]]  # fmt: skip
    await record(redis_url, "mix", 0, tagged(hz_ids(90)) + missing)
    aconn = aioredis.Redis.from_url(redis_url)
    await Controls(aconn, "mix", 1).pause_target("authentication failed: Forbidden", "Forbidden")
    await aconn.aclose()

    doc = await get(client, "/api/campaigns/mix")
    assert isinstance(doc, dict)
    assert (doc["state"], doc["resources"], doc["done"], doc["pending"]) == ("paused", 110, 100, 10)
    hz, sh = doc["targets"]
    assert hz["by_status"]["tagged"] == 90 and hz["by_status"]["not_found"] == 10
    assert hz["by_error_code"] == {"InvalidResourceId.NotFound": 10}
    assert hz["paused"] is None and hz["pending"] == 0
    assert sh["paused"] == "authentication failed: Forbidden" and sh["eta_s"] is None
    listed = await get(client, "/api/campaigns")
    assert isinstance(listed, list) and [c["campaign_id"] for c in listed] == ["mix"]


async def test_rate_and_eta_come_from_the_progress_seen_between_reads(
    client: TestClient[object, object], redis_client: redis.Redis, redis_url: str
) -> None:
    submit_two_targets(redis_client, "r1", hz=1000, sh=0)
    await record(redis_url, "r1", 0, tagged(hz_ids(100)))
    await get(client, "/api/campaigns/r1")
    await asyncio.sleep(2.0)
    await record(redis_url, "r1", 0, tagged(hz_ids(300)[100:]))
    doc = await get(client, "/api/campaigns/r1")
    assert isinstance(doc, dict)
    # 200 more in a little over 2 s: about 100/s, 700 left: about 7 s.
    assert 60 < doc["rate_per_second_now"] <= 100
    assert 6 < doc["eta_s"] < 12
    assert doc["targets"][0]["rate_per_second_now"] == doc["rate_per_second_now"]


async def test_outcome_pages_walk_through_every_outcome_with_the_hscan_cursor(
    client: TestClient[object, object], redis_client: redis.Redis, redis_url: str
) -> None:
    ids = hz_ids(2000)
    submit_two_targets(redis_client, "big", hz=2000, sh=0, chunk=500)
    await record(redis_url, "big", 0, tagged(ids))
    seen: list[str] = []
    cursor, pages = 0, 0
    while True:
        page = await get(client, f"/api/campaigns/big/outcomes?limit=100&cursor={cursor}")
        assert isinstance(page, dict)
        assert len(page["rows"]) <= 250  # whole HSCAN buckets: a little over the limit at most
        seen += [r["resource_id"] for r in page["rows"]]
        pages += 1
        cursor = page["cursor"]
        if cursor == 0:
            break
    assert set(seen) == set(ids) and pages >= 8
    row = page["rows"][-1]
    assert row["provider"] == "aliyun" and row["location"] == "cn-hangzhou"
    assert row["status"] == "tagged" and row["request_id"] == "req-1"


async def test_status_filter_finds_the_few_failed_among_thousands(
    client: TestClient[object, object], redis_client: redis.Redis, redis_url: str
) -> None:
    ids = hz_ids(3000)
    submit_two_targets(redis_client, "few", hz=3000, sh=0, chunk=500)
    failed = set(ids[::500])
    await record(redis_url, "few", 0, [
        Outcome(rid, "failed", "Forbidden.KeyDisabled", "disabled", "r", 1, 1.0)
        if rid in failed else Outcome(rid, "tagged") for rid in ids
    ])  # fmt: skip
    found: list[dict[str, object]] = []
    cursor = 0
    while True:
        page = await get(client, f"/api/campaigns/few/outcomes?status=failed&cursor={cursor}")
        assert isinstance(page, dict)
        found += page["rows"]
        cursor = page["cursor"]
        if cursor == 0:
            break
    assert {r["resource_id"] for r in found} == failed and len(found) == len(failed)
    assert {r["error_code"] for r in found} == {"Forbidden.KeyDisabled"}


async def test_search_shows_the_exact_id_then_ids_starting_with_it_and_globs_are_literal(
    client: TestClient[object, object], redis_client: redis.Redis, redis_url: str
) -> None:
    ids = hz_ids(1500)
    submit_two_targets(redis_client, "s1", hz=1500, sh=0, chunk=500)
    await record(redis_url, "s1", 0, tagged(ids))
    wanted = ids[1234]
    page = await get(client, f"/api/campaigns/s1/outcomes?q={wanted}&limit=1")
    assert isinstance(page, dict) and page["rows"][0]["resource_id"] == wanted
    prefix = wanted[:-1]
    rows: list[str] = []
    cursor = 0
    while True:
        page = await get(client, f"/api/campaigns/s1/outcomes?q={prefix}&cursor={cursor}")
        assert isinstance(page, dict)
        rows += [r["resource_id"] for r in page["rows"]]
        cursor = page["cursor"]
        if cursor == 0:
            break
    assert sorted(rows) == sorted(i for i in ids if i.startswith(prefix))
    star = await get(client, "/api/campaigns/s1/outcomes?q=*")
    assert isinstance(star, dict) and star["rows"] == [] and star["cursor"] == 0


async def test_bad_parameters_are_400_and_unknown_campaigns_404(
    client: TestClient[object, object], redis_client: redis.Redis
) -> None:
    submit_two_targets(redis_client, "p1", hz=10, sh=0)
    bad = ("cursor=-1", "cursor=x", "limit=0", "limit=501", "status=bogus", "q=" + "a" * 300)
    for query in bad:
        answer = await client.get(f"/api/campaigns/p1/outcomes?{query}")
        assert answer.status == 400, query
        assert "error" in await answer.json()
    await get(client, "/api/campaigns/nope", status=404)
    await get(client, "/api/campaigns/nope/outcomes", status=404)
    await get(client, "/api/campaigns/%3Cscript%3E", status=404)


async def test_actions_need_a_configured_token_and_the_right_bearer(
    client: TestClient[object, object],
    readonly: TestClient[object, object],
    redis_client: redis.Redis,
) -> None:
    submit_two_targets(redis_client, "a1", hz=10, sh=0)
    answer = await readonly.post("/api/campaigns/a1/pause", headers=AUTH)
    assert answer.status == 403 and "read-only" in (await answer.json())["error"]
    for header in ({}, {"Authorization": "Bearer wrong-token-000000"}, {"Authorization": TOKEN}):
        answer = await client.post("/api/campaigns/a1/pause", headers=header)
        assert answer.status == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    assert redis_client.hget("bulktag:campaign:a1", "state") == b"queued"
    answer = await client.get("/api/campaigns/a1/pause")
    assert answer.status == 405  # actions are POST only


async def test_pause_resume_cancel_with_the_token_change_the_campaign(
    client: TestClient[object, object], redis_client: redis.Redis
) -> None:
    submit_two_targets(redis_client, "a2", hz=10, sh=0)
    answer = await client.post("/api/campaigns/a2/pause", headers=AUTH)
    assert answer.status == 200 and (await answer.json())["ok"] is True
    assert (await get(client, "/api/campaigns/a2"))["state"] == "paused"  # type: ignore[index]
    await client.post("/api/campaigns/a2/resume", headers=AUTH)
    assert (await get(client, "/api/campaigns/a2"))["state"] == "queued"  # type: ignore[index]
    await client.post("/api/campaigns/a2/cancel", headers=AUTH)
    assert (await get(client, "/api/campaigns/a2"))["state"] == "cancelled"  # type: ignore[index]
    answer = await client.post("/api/campaigns/a2/resume", headers=AUTH)
    assert answer.status == 409 and "cancelled" in (await answer.json())["error"]
    answer = await client.post("/api/campaigns/a2/explode", headers=AUTH)
    assert answer.status == 404


async def test_retry_failed_enqueues_the_failed_resources_again(
    client: TestClient[object, object], redis_client: redis.Redis, redis_url: str
) -> None:
    submit_two_targets(redis_client, "a3", hz=20, sh=0)
    ids = hz_ids(20)
    failed = [Outcome(rid, "failed", "Throttling", "slow down") for rid in ids[18:]]
    await record(redis_url, "a3", 0, [*tagged(ids[:18]), *failed])
    queue = Queue("bulktag.aliyun.cn-hangzhou", connection=redis_client)
    before = queue.count
    answer = await client.post("/api/campaigns/a3/retry", headers=AUTH)
    assert answer.status == 200
    assert (await answer.json())["message"] == "2 failed resources enqueued again in 1 jobs"
    doc = await get(client, "/api/campaigns/a3")
    assert isinstance(doc, dict) and doc["by_status"]["failed"] == 0 and doc["pending"] == 2
    assert queue.count == before + 1


async def test_json_is_never_cached_the_page_sets_a_strict_csp_and_no_token_leaks(
    client: TestClient[object, object], redis_client: redis.Redis
) -> None:
    for path in ("/api/overview", "/api/config", "/api/queues", "/api/workers", "/api/limits",
                 "/api/campaigns", "/healthz", "/metrics"):  # fmt: skip
        answer = await client.get(path)
        assert answer.status == 200, path
        assert answer.headers["Cache-Control"] == "no-store", path
        assert TOKEN not in await answer.text()
    assert (await client.get("/api/campaigns/none")).headers["Cache-Control"] == "no-store"
    page = await client.get("/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    script = await (await client.get("/static/app.js")).text()
    assert ".innerHTML" not in script and "insertAdjacentHTML" not in script
    assert (await get(client, "/api/config")) == {
        "actions": True, "refresh_ms": 1500,
        "statuses": ["tagged", "not_found", "invalid", "failed", "cancelled"],
    }  # fmt: skip


async def test_limits_show_the_configured_adaptive_rate_calls_and_throttles(
    client: TestClient[object, object], redis_client: redis.Redis, redis_url: str
) -> None:
    set_limit(redis_client, "aliyun", "cn-hangzhou", 25)
    aconn = aioredis.Redis.from_url(redis_url)
    # Burst 1: the calls waited for slots, so the throttle cuts the rate.
    limiter = SharedLimiter(aconn, LimitKey("aliyun", "emu", "cn-hangzhou"), 10, burst=1)
    for _ in range(3):
        await limiter.acquire()
    await limiter.throttled()
    await aconn.aclose()
    now = time.time()
    for ago in range(1, 6):
        callstats.record(redis_client, "aliyun", "cn-hangzhou", 20, 1 if ago == 3 else 0, now - ago)
    rows = await get(client, "/api/limits")
    assert isinstance(rows, list)
    (row,) = [r for r in rows if r["location"] == "cn-hangzhou"]
    assert row["configured"] == 25 and row["overridden"] is True and row["profiles"] == ["emu"]
    assert 17.0 <= row["rate"] < 25  # cut by 30 % and climbing back
    assert (row["calls_total"], row["throttles_total"]) == (3, 1)
    assert row["source"] == "workers" and row["calls_per_s"] == 10.0  # 100 calls over 10 s
    assert row["throttled_recent"] == 1 and row["calls_recent"] == 100
    assert len(row["series"]) == 60 and row["series"][-1] == 20


async def test_limits_fall_back_to_the_limiter_totals_as_they_move(
    client: TestClient[object, object], redis_url: str
) -> None:
    aconn = aioredis.Redis.from_url(redis_url)
    limiter = SharedLimiter(aconn, LimitKey("huawei", "emu", "p1"), 1000, burst=100)
    await limiter.acquire()
    first = await get(client, "/api/limits")
    assert isinstance(first, list) and first[0]["calls_per_s"] is None  # one read: no slope yet
    await asyncio.sleep(2.0)
    for _ in range(40):
        await limiter.acquire()
    await limiter.throttled()
    await aconn.aclose()
    (row,) = await get(client, "/api/limits")  # type: ignore[misc]
    assert row["source"] == "limiter" and 14 < row["calls_per_s"] <= 20
    assert row["throttled_recent"] == 1 and row["configured"] == 20


async def test_metrics_export_queues_outcomes_limiters_and_workers(
    client: TestClient[object, object], redis_client: redis.Redis, redis_url: str
) -> None:
    submit_two_targets(redis_client, "m1", hz=100, sh=0, chunk=50)
    await record(redis_url, "m1", 0, tagged(hz_ids(40)))
    aconn = aioredis.Redis.from_url(redis_url)
    await SharedLimiter(aconn, LimitKey("aliyun", "emu", "cn-hangzhou"), 10).acquire()
    await aconn.aclose()
    answer = await client.get("/metrics")
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(await answer.text())
        for s in family.samples
    }
    q = (("queue", "bulktag.aliyun.cn-hangzhou"),)
    assert samples[("bulktag_queue_depth", q)] == 2
    assert ("bulktag_queue_oldest_job_age_seconds", q) in samples
    assert samples[("bulktag_campaign_outcomes", (("campaign", "m1"), ("status", "tagged")))] == 40
    assert samples[("bulktag_campaign_resources", (("campaign", "m1"),))] == 100
    where = (("location", "cn-hangzhou"), ("provider", "aliyun"))
    assert samples[("bulktag_provider_calls_total", where)] == 1
    assert samples[("bulktag_provider_throttled_total", where)] == 0
    assert samples[("bulktag_limiter_configured_rate", where)] == 10
    assert samples[("bulktag_workers", (("state", "busy"),))] == 0


async def test_healthz_says_whether_redis_answers(client: TestClient[object, object]) -> None:
    assert await get(client, "/healthz") == {"ok": True}
    async with TestClient(TestServer(create_app("redis://127.0.0.1:1/0"))) as down:
        answer = await down.get("/healthz")
        assert answer.status == 503 and (await answer.json())["ok"] is False


def test_callstats_windows_count_recent_calls_and_throttles(redis_client: redis.Redis) -> None:
    now = 1_700_000_000.5
    pipe = redis_client.pipeline()
    callstats.record(pipe, "aliyun", "cn-beijing", 8, 0, now - 1)
    callstats.record(pipe, "aliyun", "cn-beijing", 12, 2, now - 2)
    callstats.record(pipe, "aliyun", "cn-beijing", 5, 1, now - 200)
    callstats.record(pipe, "aliyun", "cn-beijing", 99, 9, now - 400)  # outside the window
    callstats.record(pipe, "aliyun", "cn-beijing", 7, 0, now)  # the unfinished second
    pipe.execute()
    window = callstats.read(redis_client, now)[("aliyun", "cn-beijing")]
    assert window.calls_per_s == 2.0 and window.calls == 25 and window.throttled == 3
    assert window.series[-2:] == (12, 8)
    assert redis_client.ttl(callstats.bucket_key("aliyun", "cn-beijing", int(now) // 60)) > 0


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "70000"], {}, "--port must be between 1 and 65535"),
        ([], {"BULKTAG_DASHBOARD_TOKEN": "short"}, "at least 16 characters"),
        (["--redis-url", "redis://127.0.0.1:1/0"], {}, "cannot reach Redis"),
    ],
)
def test_bad_dashboard_options_exit_2_with_a_clear_message(
    args: list[str], env: dict[str, str], message: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bulktag.cli", "dashboard", *args],
        capture_output=True, text=True, timeout=30,
        env={**worker_env(Path("/nonexistent")), **env},
    )  # fmt: skip
    assert proc.returncode == 2 and message in proc.stderr
