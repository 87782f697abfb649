"""campaigns / status / report / wait over real campaigns run on the emulator."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from bulktag import campaigns
from bulktag.cli import main
from emulator.ids import aliyun_key_id
from emulator.inventory import GenerateSpec, Inventory
from producer.campaign import TargetFields
from tests.worker_harness import (
    ALI_SECRET,
    credentials_file,
    emulator,
    run_workers,
    submit_ids,
    worker_env,
)

REGION = "cn-hangzhou"
ALI = TargetFields("aliyun", "emu", REGION, None, "key")
BROKEN = TargetFields("aliyun", "broken", "cn-shanghai", None, "key")


@pytest.fixture
def finished(redis_url: str, tmp_path: Path) -> redis.Redis:
    """Campaign "mix": 200 existing ids and 5 missing in one region; another target whose
    credentials are refused (paused, pending)."""
    conn = redis.Redis.from_url(redis_url)
    inv = Inventory.generated(
        GenerateSpec("aliyun", REGION, "key", 200), GenerateSpec("aliyun", "cn-shanghai", "key", 10)
    )
    with emulator(inv) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        with creds.open("a") as f:
            f.write(
                f'[profile.broken.aliyun]\naccess_key_id = "emu-id"\n'
                f'access_key_secret = "not-{ALI_SECRET}"\nendpoint = "{emu.url}"\n'
            )
        ids = [aliyun_key_id(REGION, n) for n in range(205)]
        from producer.campaign import Row
        from producer.submit import SubmitOptions, submit

        rows = [Row("t", i, rid, ALI, (("env", "prod"),)) for i, rid in enumerate(ids, 1)]
        rows += [Row("t", 900 + i, aliyun_key_id("cn-shanghai", i), BROKEN, (("env", "prod"),))
                 for i in range(10)]  # fmt: skip
        submit(rows, SubmitOptions(campaign_id="mix"), conn)
        run_workers(redis_url, creds)
    return conn


def cli(*args: str, redis_url: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "bulktag.cli", *args, "--redis-url", redis_url],
        capture_output=True, text=True, timeout=60, env=worker_env(Path("/nonexistent")),
    )  # fmt: skip
    return proc.returncode, proc.stdout + proc.stderr


def test_status_json_counts_by_status_code_and_shows_the_paused_target(
    finished: redis.Redis, redis_url: str
) -> None:
    code, out = cli("status", "mix", "--json", redis_url=redis_url)
    assert code == 0
    doc = json.loads(out)
    assert doc["state"] == "paused"
    assert (doc["resources"], doc["done"], doc["pending"]) == (215, 205, 10)
    assert doc["by_status"]["tagged"] == 200 and doc["by_status"]["not_found"] == 5
    hz, sh = doc["targets"]
    assert hz["by_error_code"] == {"InvalidResourceId.NotFound": 5} and hz["paused"] is None
    assert sh["pending"] == 10 and "IncompleteSignature" in sh["paused"]
    code, text = cli("status", "mix", redis_url=redis_url)
    assert code == 0 and "PAUSED" in text and "205/215" in text


def test_campaigns_lists_every_campaign(finished: redis.Redis, redis_url: str) -> None:
    code, out = cli("campaigns", "--json", redis_url=redis_url)
    assert code == 0
    assert [(d["campaign_id"], d["state"]) for d in json.loads(out)] == [("mix", "paused")]
    code, out = cli("campaigns", redis_url=redis_url)
    assert code == 0 and "authentication" in out  # why it is paused


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_report_filters_by_status_in_every_format(
    finished: redis.Redis, redis_url: str, tmp_path: Path, fmt: str
) -> None:
    out = tmp_path / f"r.{fmt}"
    code, _ = cli("report", "mix", "--status", "not_found", "--format", fmt, "-o", str(out),
                  redis_url=redis_url)  # fmt: skip
    assert code == 0
    text = out.read_text()
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
    else:
        rows = json.loads(text)
    assert len(rows) == 5
    assert {r["error_code"] for r in rows} == {"InvalidResourceId.NotFound"}
    assert {r["resource_id"] for r in rows} == {aliyun_key_id(REGION, n) for n in range(200, 205)}
    assert {r["location"] for r in rows} == {REGION}


def test_report_rejects_an_unknown_status(finished: redis.Redis, redis_url: str) -> None:
    code, out = cli("report", "mix", "--status", "tagged,bogus", redis_url=redis_url)
    assert code == 2 and "unknown status bogus" in out and "Traceback" not in out


def test_unknown_campaign_is_a_clear_error(redis_url: str) -> None:
    code, out = cli("status", "nope", redis_url=redis_url)
    assert code == 2 and "no campaign 'nope'" in out


def test_wait_exit_status_says_how_it_went(redis_url: str, tmp_path: Path) -> None:
    conn = redis.Redis.from_url(redis_url)
    inv = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 100))
    with emulator(inv, faults={"503": 1.0}) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "ok", ALI, [aliyun_key_id(REGION, n) for n in range(50)])
        assert campaigns.wait(conn, "ok", timeout=0.2, poll=0.1) == campaigns.WAIT_TIMEOUT
        emu.call(lambda: emu.emulator.config.apply({"faults": {}}))
        run_workers(redis_url, creds)
        assert main(["wait", "ok", "--redis-url", redis_url]) == campaigns.WAIT_OK
        emu.call(lambda: emu.emulator.config.apply({"faults": {"503": 1.0}}))
        submit_ids(conn, "bad", ALI, [aliyun_key_id(REGION, n) for n in range(50, 60)])
        os.environ["BULKTAG_RETRY_ATTEMPTS"] = "1"  # fail fast: no retries
        try:
            run_workers(redis_url, creds)
        finally:
            del os.environ["BULKTAG_RETRY_ATTEMPTS"]
        assert main(["wait", "bad", "--redis-url", redis_url]) == campaigns.WAIT_FAILURES


def test_report_of_100k_rows_streams_in_bounded_memory(redis_url: str, tmp_path: Path) -> None:
    conn = redis.Redis.from_url(redis_url)
    from bulktag import store
    from worker.outcomes import Outcome, counts_key, outcomes_key

    store.begin_campaign(conn, "big", "f", 100_000, 0, 1,
                         [{"provider": "aliyun", "profile": "p", "region": REGION,
                           "project": None, "resource_type": "key", "resources": 100_000}],
                         {})  # fmt: skip
    pipe = conn.pipeline(transaction=False)
    for n in range(100_000):
        rid = f"key-hzz{n:017d}"
        pipe.hset(
            outcomes_key("big"),
            f"0|{rid}",
            Outcome(rid, "tagged", None, None, "r", 1, 1.0).payload(),
        )
        if n % 10_000 == 9_999:
            pipe.execute()
    pipe.hset(counts_key("big"), mapping={"done": 100_000, "0:tagged": 100_000})
    pipe.execute()
    out = tmp_path / "big.csv"
    script = (
        "import sys; from bulktag.cli import main; code = main(sys.argv[1:]); "
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; "
        "print('HWM', hwm, file=sys.stderr); sys.exit(code)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "report", "big", "-o", str(out), "--redis-url", redis_url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert sum(1 for _ in out.open()) == 100_001
    peak_mb = int(proc.stderr.split("HWM")[1].split()[0]) / 1024
    assert peak_mb < 120  # the 100,000 rows are ~10 MB of CSV; they are never all in memory


def test_demo_runs_end_to_end_and_stops_what_it_started(redis_url: str, tmp_path: Path) -> None:
    env = {**worker_env(Path("/nonexistent")), "BULKTAG_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "bulktag.cli", "demo", "--resources", "600",
         "--redis-url", redis_url],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "done, 600/600 done" in proc.stdout
    (report,) = tmp_path.glob("demo-*.csv")
    rows = list(csv.DictReader(report.open()))
    assert len(rows) == 600 and {r["status"] for r in rows} == {"tagged", "not_found"}
    left = subprocess.run(["pgrep", "-f", f"worker --redis-url {redis_url}"], capture_output=True)
    assert left.stdout == b""  # the demo's workers are gone


def test_retry_enqueues_only_the_failed_and_they_end_tagged(redis_url: str, tmp_path: Path) -> None:
    from tests.worker_harness import assert_counters_equal_records, outcomes

    conn = redis.Redis.from_url(redis_url)
    inv = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 300))
    ids = [aliyun_key_id(REGION, n) for n in range(303)]  # 3 missing
    with emulator(inv) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "rt", ALI, ids)
        emu.call(lambda: emu.emulator.config.apply({"faults": {"503": 1.0}}))
        os.environ["BULKTAG_RETRY_ATTEMPTS"] = "1"
        try:
            run_workers(redis_url, creds)
        finally:
            del os.environ["BULKTAG_RETRY_ATTEMPTS"]
        assert {o.status for o in outcomes(conn, "rt").values()} == {"failed"}
        emu.call(lambda: emu.emulator.config.apply({"faults": {}}))
        code, out = cli("retry", "rt", redis_url=redis_url)
        assert code == 0 and "303 resources enqueued again" in out
        assert_counters_equal_records(conn, "rt")
        run_workers(redis_url, creds)
    found = outcomes(conn, "rt")
    assert sum(o.status == "tagged" for o in found.values()) == 300
    assert sum(o.status == "not_found" for o in found.values()) == 3
    assert_counters_equal_records(conn, "rt")
    assert main(["wait", "rt", "--redis-url", redis_url]) == campaigns.WAIT_OK
    code, out = cli("retry", "rt", redis_url=redis_url)  # nothing failed any more
    assert code == 0 and "0 resources" in out
    code, out = cli("status", "rt", "--watch", redis_url=redis_url)  # ends: nothing pending
    assert code == 0 and "303/303 done" in out


def test_cancel_in_mid_run_accounts_for_every_resource(redis_url: str, tmp_path: Path) -> None:
    import signal
    import time

    from bulktag import control
    from tests.worker_harness import assert_counters_equal_records, counts, outcomes, start_worker

    conn = redis.Redis.from_url(redis_url)
    inv = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 2000))
    with emulator(inv) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        submit_ids(conn, "cm", ALI, [aliyun_key_id(REGION, n) for n in range(2000)], chunk_size=250)
        conn.hset("bulktag:limits", f"aliyun:{REGION}", 5)
        worker = start_worker(redis_url, creds, burst=False)
        deadline = time.monotonic() + 60
        while counts(conn, "cm").get("done", 0) < 50:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        control.cancel(conn, "cm")
        assert main(["wait", "cm", "--redis-url", redis_url]) == campaigns.WAIT_CANCELLED
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    found = outcomes(conn, "cm")
    assert len(found) == 2000
    statuses = {o.status for o in found.values()}
    assert statuses == {"tagged", "cancelled"}
    assert_counters_equal_records(conn, "cm")


def test_state_changes_are_events_and_the_webhook_gets_the_summary(
    redis_url: str, tmp_path: Path
) -> None:
    import http.server
    import threading

    received: list[dict[str, object]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = redis.Redis.from_url(redis_url)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(aliyun_key_id(REGION, n) for n in range(60)) + "\n")
    inv = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 50))
    try:
        with emulator(inv) as emu:
            creds = credentials_file(tmp_path / "c.toml", emu.url)
            assert main(["submit", "--provider", "aliyun", "--region", REGION, "--profile", "emu",
                         "--ids", str(ids_file), "--tag", "env=prod", "--id", "hook",
                         "--webhook", f"http://127.0.0.1:{server.server_port}/done",
                         "--redis-url", redis_url]) == 0  # fmt: skip
            run_workers(redis_url, creds)
    finally:
        server.shutdown()
    events = [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _, fields in conn.xrange("bulktag:events")  # type: ignore[union-attr]
    ]
    assert [e["event"] for e in events if e["campaign"] == "hook"] == ["queued", "ended"]
    (summary,) = received
    assert summary["campaign_id"] == "hook" and summary["state"] == "done"
    assert summary["by_status"] == {  # type: ignore[comparison-overlap]
        "tagged": 50, "not_found": 10, "invalid": 0, "failed": 0, "cancelled": 0,
    }  # fmt: skip


def test_purge_removes_a_finished_campaign_and_refuses_a_running_one(
    finished: redis.Redis, redis_url: str
) -> None:
    code, out = cli("purge", "mix", redis_url=redis_url)
    assert code == 2 and "is paused" in out
    code, out = cli("purge", "--older-than", "0", redis_url=redis_url)
    assert code == 0 and "mix" not in out  # only finished campaigns expire
    code, out = cli("purge", "mix", "--force", redis_url=redis_url)
    assert code == 0 and "purged" in out
    leftovers = [k for k in finished.keys("*") if b"mix" in k]
    assert leftovers == []
    assert campaigns.campaign_ids(finished) == []


def test_pause_resume_cancel_commands_change_the_state(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    submit_ids(conn, "ctl", ALI, [aliyun_key_id(REGION, n) for n in range(10)])
    assert cli("pause", "ctl", redis_url=redis_url)[0] == 0
    assert campaigns.status(conn, "ctl")["state"] == "paused"
    assert cli("resume", "ctl", redis_url=redis_url)[0] == 0
    assert campaigns.status(conn, "ctl")["state"] == "queued"
    assert cli("cancel", "ctl", redis_url=redis_url)[0] == 0
    assert campaigns.status(conn, "ctl")["state"] == "cancelled"
    code, out = cli("resume", "ctl", redis_url=redis_url)
    assert code == 2 and "cancelled; it cannot be resumed" in out
    code, out = cli("pause", "nope", redis_url=redis_url)
    assert code == 2 and "no campaign 'nope'" in out
