"""Screenshot of the dashboard during the demo campaign, for the README (docs/dashboard.png).

    .venv/bin/python bench/dashboard_screenshot.py [--out docs/dashboard.png] [--after 25]

Runs what `bulktag demo` runs (a private Redis, the emulator with the demo inventory and the
providers' rate limits, a worker per target, the 20,000-resource campaign), plus
`bulktag dashboard`, and photographs the page in headless Chromium (/usr/bin/chromium)
once the campaign has run for ``--after`` seconds. Everything it started is stopped at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from bulktag.connections import connect
from bulktag.demo import demo_blocks, demo_emulator, plan_for
from bulktag.embedded_redis import EmbeddedRedis
from producer.submit import SubmitOptions, submit
from worker.cli import spawn, stop

log = logging.getLogger("dashboard_screenshot")
TOKEN = "screenshot-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/dashboard.png"))
    parser.add_argument("--after", type=float, default=25.0, help="seconds of campaign first")
    parser.add_argument("--resources", type=int, default=20_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    plan = plan_for(args.resources)
    with (
        tempfile.TemporaryDirectory(prefix="bulktag-shot-") as tmp,
        EmbeddedRedis(Path(tmp) / "redis") as server,
        demo_emulator(plan) as emulator,
    ):
        creds = Path(tmp) / "credentials.toml"
        creds.write_text(
            f'[profile.demo.aliyun]\naccess_key_id = "testid"\naccess_key_secret = "testsecret"\n'
            f'endpoint = "{emulator.url}"\n'
            f'[profile.demo.huawei]\nak = "testak"\nsk = "testsk"\nendpoint = "{emulator.url}"\n'
        )
        conn = connect(server.url)
        port = free_port()
        board = subprocess.Popen(
            [sys.executable, "-m", "bulktag.cli", "--log-level", "WARNING", "dashboard",
             "--port", str(port), "--redis-url", server.url],
            env={**os.environ, "BULKTAG_DASHBOARD_TOKEN": TOKEN},
        )  # fmt: skip
        workers = spawn(server.url, len(plan), str(creds))  # one per target, as the demo
        try:
            campaign_id = "demo-2026-11-retag"
            blocks = demo_blocks(plan)
            submit(blocks, SubmitOptions(campaign_id=campaign_id), conn)
            url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"{url}/healthz", timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            time.sleep(args.after)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                problems: list[str] = []
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.goto(f"{url}/#campaign={campaign_id}")
                page.wait_for_selector("#outcomes tbody tr[data-resource]")
                page.fill("#token", TOKEN)
                page.click("#token-save")
                time.sleep(6)  # a few refreshes: rates have a slope
                log.info("on the page: %s done, %s", page.inner_text("#detail-done"),
                         page.inner_text("#detail-rate"))  # fmt: skip
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
            for problem in problems:
                log.warning("console error: %s", problem)
            log.info("saved %s", args.out)
        finally:
            stop([*workers, board])


if __name__ == "__main__":
    main()
