"""The dashboard in headless Chromium (Debian's /usr/bin/chromium driven by Playwright), served
by a real `bulktag dashboard` process over a campaign that real workers run on the emulator."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from bulktag import control
from dashboard.app import TOKEN_ENV
from emulator.ids import aliyun_key_id
from emulator.inventory import GenerateSpec, Inventory
from producer.campaign import TargetFields
from tests.worker_harness import (
    credentials_file,
    emulator,
    start_worker,
    submit_ids,
    worker_env,
)
from worker.control import Controls
from worker.limiter import set_limit
from worker.outcomes import Outcome, OutcomeStore, outcomes_key

CHROMIUM = Path("/usr/bin/chromium")
# CI installs chromium (.ci/run): there a missing browser is a failure, never a skip.
if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

TOKEN = "browser-token-Vb8nR2kT5yQ1"
REGION = "cn-hangzhou"
ALI = TargetFields("aliyun", "emu", REGION, None, "key")
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def dashboard(redis_url: str) -> Iterator[str]:
    """A `bulktag dashboard` process with actions enabled; yields its URL."""
    port = free_port()
    env = {**worker_env(Path("/nonexistent")), TOKEN_ENV: TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulktag.cli", "dashboard", "--port", str(port),
         "--redis-url", redis_url],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(proc.stderr.read().decode() if proc.stderr else "") from None
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield b
        b.close()


def done_on_page(page: object) -> int:
    text = page.inner_text("#detail-done")  # type: ignore[attr-defined]
    return int(text.split("/")[0].replace(",", "").strip())


def wait_for(predicate: object, timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_live_campaign_progress_moves_search_finds_an_id_and_the_token_pauses_and_resumes(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, dashboard: str, browser: object
) -> None:
    ids = [aliyun_key_id(REGION, n) for n in range(6000)]
    inventory = Inventory.generated(GenerateSpec("aliyun", REGION, "key", 6000))
    with emulator(inventory) as emu:
        creds = credentials_file(tmp_path / "c.toml", emu.url)
        # 2 calls/s of 50 ids: about a minute of work, so there is time to watch it move.
        set_limit(redis_client, "aliyun", REGION, 2)
        submit_ids(redis_client, "live", ALI, ids, chunk_size=500)
        worker = start_worker(redis_url, creds, log=tmp_path / "worker.log", burst=False)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})  # type: ignore[attr-defined]
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(dashboard)
            page.wait_for_selector('#campaigns tr[data-campaign="live"]')
            page.click('#campaigns tr[data-campaign="live"]')
            page.wait_for_selector("#detail-done")

            # Progress moves without a reload.
            wait_for(lambda: done_on_page(page) > 0, what="first outcomes")
            first = done_on_page(page)
            wait_for(lambda: done_on_page(page) >= first + 100, what="progress to move")
            assert page.inner_text("#detail-state") == "running"
            assert page.inner_text("#queues tbody").count("bulktag.aliyun.cn-hangzhou") == 1
            wait_for(lambda: "busy" in page.inner_text("#workers tbody"), what="a busy worker")
            assert "cn-hangzhou" in page.inner_text("#limits tbody")

            # Search one resource id that has an outcome.
            field = next(iter(redis_client.hscan(outcomes_key("live"), 0, count=10)[1]))
            wanted = field.decode().split("|", 1)[1]
            page.fill("#outcome-search", wanted)
            page.press("#outcome-search", "Enter")
            rows = page.locator("#outcomes tbody tr")
            wait_for(
                lambda: rows.count() == 1 and rows.first.get_attribute("data-resource") == wanted,
                what="the searched id alone in the table",
            )
            assert "tagged" in page.inner_text("#outcomes tbody")

            # Actions stay disabled until the token is given; then pause, confirmed in page.
            assert page.is_disabled('#actions button[data-action="pause"]')
            page.fill("#token", TOKEN)
            page.click("#token-save")
            assert page.input_value("#token") == ""  # the token is never shown back
            page.click('#actions button[data-action="pause"]')
            assert page.is_visible("#confirm")
            page.click("#confirm-yes")
            wait_for(lambda: page.inner_text("#detail-state") == "paused", what="paused")
            assert redis_client.hget("bulktag:campaign:live", "state") == b"paused"
            # Calls already in flight (and outcomes a worker still buffers) land; then the
            # progress shown stops: three seconds without a change within fifteen.
            held, deadline = done_on_page(page), time.monotonic() + 15
            while True:
                time.sleep(3.0)
                now = done_on_page(page)
                if now == held:
                    break
                assert time.monotonic() < deadline, "workers kept tagging while paused"
                held = now

            page.click('#actions button[data-action="resume"]')
            page.click("#confirm-yes")
            wait_for(lambda: page.inner_text("#detail-state") == "running", what="running")
            wait_for(lambda: done_on_page(page) > held, what="progress after resume")
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            assert errors == []
        finally:
            control.cancel(redis_client, "live")
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()


async def _inject(redis_url: str) -> None:
    conn = aioredis.Redis.from_url(redis_url)
    try:
        store = OutcomeStore(conn, "xss")
        await store.record(0, [
            Outcome(XSS, "failed", "<b>Code</b>", XSS, "<i>req</i>", 1, time.time()),
            Outcome(aliyun_key_id(REGION, 1), "tagged", None, None, "req", 1, time.time()),
        ])  # fmt: skip
        flush = getattr(store, "flush", None)  # a buffering store writes on flush
        if flush is not None:
            await flush()
        await Controls(conn, "xss", 0).pause_target(f"authentication failed: {XSS}", "X")
    finally:
        await conn.aclose()


def test_strings_from_providers_and_users_are_shown_as_text_never_run(
    redis_url: str, redis_client: redis.Redis, dashboard: str, browser: object
) -> None:
    submit_ids(redis_client, "xss", ALI, [aliyun_key_id(REGION, n) for n in range(3)])
    # Playwright's sync API holds an event loop in this thread: write from another one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _inject(redis_url)).result()
    # Without the Content-Security-Policy: the escaping alone must keep the payload inert.
    page = browser.new_page(bypass_csp=True)  # type: ignore[attr-defined]
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{dashboard}/#campaign=xss")
    page.wait_for_selector("#outcomes tbody tr[data-resource]")
    rows = page.inner_text("#outcomes tbody")
    assert XSS in rows and "<b>Code</b>" in rows and "<i>req</i>" in rows
    markup = "#outcomes tbody img, #outcomes tbody script, #outcomes tbody b"
    assert page.locator(markup).count() == 0
    assert XSS in page.inner_text("#targets tbody")  # the paused reason
    assert XSS in page.inner_text("#campaigns tbody")
    page.fill("#outcome-search", XSS)
    page.press("#outcome-search", "Enter")
    page.wait_for_function("document.querySelectorAll('#outcomes tbody tr').length === 1")
    assert page.evaluate("window.__xss") is None and dialogs == []
    assert re.search(r"\bfailed\b", page.inner_text("#outcomes tbody"))
