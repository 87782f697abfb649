"""The worker under pressure: shared limits, throttling, faults, auth, controls, SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis

from bulktag import control, store
from emulator.ids import aliyun_key_id
from emulator.inventory import GenerateSpec, Inventory
from producer.campaign import TargetFields
from tests.worker_harness import (
    ALI_SECRET,
    assert_counters_equal_records,
    children,
    counts,
    credentials_file,
    emulator,
    outcomes,
    run_workers,
    start_worker,
    submit_ids,
)
from worker import callstats
from worker.engine import MAX_IN_FLIGHT
from worker.limiter import LimitKey

REGION = "cn-hangzhou"
ALI = TargetFields("aliyun", "emu", REGION, None, "key")


def inventory(n: int = 2000) -> Inventory:
    return Inventory.generated(GenerateSpec("aliyun", REGION, "key", n))


def ids(n: int) -> list[str]:
    return [aliyun_key_id(REGION, i) for i in range(n)]


def limiter_state(conn: redis.Redis) -> dict[str, str]:
    key = LimitKey("aliyun", "emu", REGION).state_key
    return {k.decode(): v.decode() for k, v in conn.hgetall(key).items()}  # type: ignore[union-attr]


def test_two_worker_processes_share_one_limit(redis_url: str, tmp_path: Path) -> None:
    conn = redis.Redis.from_url(redis_url)
    # The emulator throttles past 10 calls/s (one second of burst); bulktag's default for an
    # Alibaba region is 10/s too. 40 calls from two processes must take about 4 s, unthrottled.
    with emulator(inventory(), rate_limits={f"aliyun:{REGION}": 10}) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "shared", ALI, ids(2000), chunk_size=50)
        started = time.monotonic()
        workers = [start_worker(redis_url, creds) for _ in range(2)]
        assert [w.wait(timeout=120) for w in workers] == [0, 0]
        elapsed = time.monotonic() - started
        stats = emu.call(emu.emulator.stats.snapshot)
    assert stats["total"] == 40
    assert stats["throttled"] == 0
    assert elapsed >= 2.9  # paced: 40 calls at 10/s after a burst of 9, not all at once
    assert {o.status for o in outcomes(conn, "shared").values()} == {"tagged"}


def test_throttling_lowers_the_shared_rate_and_everything_still_gets_tagged(
    redis_url: str, tmp_path: Path
) -> None:
    conn = redis.Redis.from_url(redis_url)
    # The provider's true limit (4/s) is below what bulktag is configured with (10/s).
    with emulator(inventory(), rate_limits={f"aliyun:{REGION}": 4}, burst=1) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "aimd", ALI, ids(1500), chunk_size=50)
        run_workers(redis_url, creds)
        stats = emu.call(emu.emulator.stats.snapshot)
    state = limiter_state(conn)
    assert stats["throttled"] > 0
    assert int(state["throttles"]) == stats["throttled"]
    assert float(state["rate"]) < 10  # backed off (it recovers additively; see test_limiter)
    # How few throttled answers backing off leaves in the long run is measured, not asserted:
    # these 30 calls are all transient (steady state: the adaptive scenario of
    # bench/compare.py, 193 throttled of 2,193 calls, docs/benchmarks.md).
    # The per-second counters the dashboard reads add up to what the emulator answered.
    window = callstats.read(conn, now=time.time() + 1)[("aliyun", REGION)]
    assert (window.calls, window.throttled) == (stats["total"], stats["throttled"])
    found = outcomes(conn, "aimd")
    assert len(found) == 1500 and {o.status for o in found.values()} == {"tagged"}


def test_transient_faults_are_retried_until_tagged(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULKTAG_RETRY_BASE_MS", "20")
    conn = redis.Redis.from_url(redis_url)
    with emulator(inventory(), faults={"503": 0.3, "reset": 0.1}, seed=7) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "retry", ALI, ids(1000))
        run_workers(redis_url, creds)
        stats = emu.call(emu.emulator.stats.snapshot)
    found = outcomes(conn, "retry")
    assert {o.status for o in found.values()} == {"tagged"}
    assert max(o.attempts for o in found.values()) > 1
    assert stats["faults"] > 0
    assert_counters_equal_records(conn, "retry")


def test_exhausted_retries_end_failed_with_the_last_code(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BULKTAG_RETRY_BASE_MS", "10")
    monkeypatch.setenv("BULKTAG_RETRY_ATTEMPTS", "3")
    conn = redis.Redis.from_url(redis_url)
    with emulator(inventory(), faults={"503": 1.0}) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "exhaust", ALI, ids(60))
        run_workers(redis_url, creds)
    found = outcomes(conn, "exhaust")
    assert {(o.status, o.code, o.attempts) for o in found.values()} == {
        ("failed", "ServiceUnavailableTemporary", 3)
    }
    assert counts(conn, "exhaust")["0:code:ServiceUnavailableTemporary"] == 60
    assert store.load_campaign(conn, "exhaust").state == "done"  # type: ignore[union-attr]


def test_auth_failure_pauses_the_target_and_resume_finishes_it(
    redis_url: str, tmp_path: Path
) -> None:
    conn = redis.Redis.from_url(redis_url)
    with emulator(inventory(3000)) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        good = creds.read_text()
        creds.write_text(good.replace(ALI_SECRET, "not-the-secret"))
        submit_ids(conn, "auth", ALI, ids(3000), chunk_size=1000)  # 3 chunks
        run_workers(redis_url, creds, log=tmp_path / "w1.log")
        calls_while_broken = emu.call(emu.emulator.stats.snapshot)["total"]
        assert outcomes(conn, "auth") == {}  # pending, not failed
        reason = conn.hget("bulktag:campaign:auth:paused", "0")
        assert reason is not None and b"IncompleteSignature" in reason
        # Few calls were burnt: the first chunk stops at its first refusal, with at most its
        # calls in flight already sent (the limiter's burst lets them all go at once), and
        # the later chunks see the target paused.
        assert calls_while_broken <= MAX_IN_FLIGHT + 2
        creds.write_text(good)  # the operator fixes the credentials...
        assert "3 parked jobs" in control.resume(conn, "auth")  # ...and resumes
        run_workers(redis_url, creds, log=tmp_path / "w2.log")
    found = outcomes(conn, "auth")
    assert len(found) == 3000 and {o.status for o in found.values()} == {"tagged"}
    assert_counters_equal_records(conn, "auth")
    assert store.load_campaign(conn, "auth").state == "done"  # type: ignore[union-attr]


def test_pause_parks_work_and_resume_continues_it(redis_url: str, tmp_path: Path) -> None:
    conn = redis.Redis.from_url(redis_url)
    with emulator(inventory()) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "pz", ALI, ids(500), chunk_size=100)
        control.pause(conn, "pz")
        run_workers(redis_url, creds)
        assert emu.call(emu.emulator.stats.snapshot)["total"] == 0
        assert conn.scard("bulktag:campaign:pz:parked") == 5
        control.resume(conn, "pz")
        run_workers(redis_url, creds)
    assert len(outcomes(conn, "pz")) == 500


def test_cancel_records_cancelled_for_what_is_left(redis_url: str, tmp_path: Path) -> None:
    conn = redis.Redis.from_url(redis_url)
    with emulator(inventory()) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "cx", ALI, ids(400), chunk_size=100)
        control.cancel(conn, "cx")
        run_workers(redis_url, creds)
        assert emu.call(emu.emulator.stats.snapshot)["total"] == 0
    found = outcomes(conn, "cx")
    assert len(found) == 400 and {o.status for o in found.values()} == {"cancelled"}
    assert_counters_equal_records(conn, "cx")


def test_sigkill_mid_chunk_then_restart_loses_and_double_counts_nothing(
    redis_url: str, tmp_path: Path
) -> None:
    conn = redis.Redis.from_url(redis_url)
    total = 1000
    with emulator(inventory(), latency_ms=20) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "kill", ALI, ids(total), chunk_size=500)  # 2 chunks of 10 calls
        # 2 calls/s: a chunk takes about 5 s, so the kill lands inside one.
        redis.Redis.from_url(redis_url).hset("bulktag:limits", f"aliyun:{REGION}", 2)
        first = start_worker(redis_url, creds, burst=False)
        deadline = time.monotonic() + 60
        while counts(conn, "kill").get("done", 0) < 100:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        for pid in [*children(first.pid), first.pid]:  # the work horse and its parent
            os.kill(pid, signal.SIGKILL)
        first.wait(timeout=10)
        done_at_kill = counts(conn, "kill")["done"]
        assert 0 < done_at_kill < total
        conn.hset("bulktag:limits", f"aliyun:{REGION}", 50)
        second = start_worker(redis_url, creds, burst=False, log=tmp_path / "w2.log")
        try:
            deadline = time.monotonic() + 120
            while store.load_campaign(conn, "kill").state != "done":  # type: ignore[union-attr]
                assert time.monotonic() < deadline, (tmp_path / "w2.log").read_text()[-3000:]
                time.sleep(0.5)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        state = emu.call(lambda: emu.emulator.state("aliyun", REGION, "key", tagged_only=True))
    found = outcomes(conn, "kill")
    assert len(found) == total and {o.status for o in found.values()} == {"tagged"}
    assert_counters_equal_records(conn, "kill")
    assert len(state["resources"]["aliyun"][REGION]["key"]) == total


def test_a_chunk_lost_between_pop_and_start_is_enqueued_again(
    redis_url: str, tmp_path: Path
) -> None:
    from rq import Queue

    from worker.reconcile import LOCK_KEY, Reconciler

    conn = redis.Redis.from_url(redis_url)
    with emulator(inventory()) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "lost", ALI, ids(300), chunk_size=100)
        queue = Queue("bulktag.aliyun.cn-hangzhou", connection=conn)
        # What a worker killed right after its pop leaves: the job says queued, in no list.
        lost = conn.lpop(queue.key)
        assert lost is not None and queue.count == 2
        reconciler = Reconciler(conn)
        assert reconciler.run_once() == 0  # first sighting: could be a live worker's pop
        conn.delete(LOCK_KEY)
        assert reconciler.run_once() == 1  # still lost a pass later: enqueue it again
        assert lost.decode() in queue.job_ids
        run_workers(redis_url, creds)
    assert len(outcomes(conn, "lost")) == 300


def test_sigterm_finishes_the_running_chunk_and_leaves_the_rest_queued(
    redis_url: str, tmp_path: Path
) -> None:
    conn = redis.Redis.from_url(redis_url)
    with emulator(inventory()) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "term", ALI, ids(1000), chunk_size=500)  # 2 chunks of 10 calls
        conn.hset("bulktag:limits", f"aliyun:{REGION}", 4)  # a chunk takes about 2.5 s
        worker = start_worker(redis_url, creds, burst=False)
        deadline = time.monotonic() + 60
        while counts(conn, "term").get("done", 0) == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        assert counts(conn, "term")["done"] == 500  # the running chunk, whole
        run_workers(redis_url, creds)
    assert len(outcomes(conn, "term")) == 1000
    assert_counters_equal_records(conn, "term")
