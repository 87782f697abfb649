"""``bulktag demo``: the whole product in one command, on a machine with nothing else.

Redis (the one reachable, or an embedded one), the emulator with an inventory in three
Alibaba regions and two Huawei projects (some submitted ids do not exist) and the
providers' rate limits, two worker processes, a campaign, live progress, a summary and a
report file. Everything it started is stopped at the end or on Ctrl-C.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from bulktag import campaigns
from bulktag.connections import connect, data_dir, redacted_url, redis_for_command
from emulator.config import EmulatorConfig
from emulator.ids import aliyun_key_id, huawei_key_id
from emulator.inventory import GenerateSpec, Inventory
from emulator.server import ThreadedEmulatorServer
from producer.campaign import IdBlock, TargetFields
from producer.submit import SubmitOptions, new_campaign_id, submit
from providers.catalog import PROVIDERS
from worker.cli import spawn, stop

ALIYUN_REGIONS = ("cn-hangzhou", "cn-shanghai", "cn-beijing")
HUAWEI_PROJECTS = ("0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210")
MISSING_SHARE = 0.01


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--resources", type=int, default=20_000,
        help="resources in the sample campaign (default: 20000)",
    )  # fmt: skip
    parser.add_argument(
        "--redis-url",
        help="Redis to use (default: $BULKTAG_REDIS_URL, or the local one if it answers, "
        "else an embedded Redis under $BULKTAG_DATA_DIR)",
    )
    parser.add_argument(
        "--embedded-redis", action="store_true",
        help="always start a private Redis for the demo, even if one answers locally",
    )  # fmt: skip
    # One per target: a chunk holds its worker while it waits for its region's slots.
    targets = len(ALIYUN_REGIONS) + len(HUAWEI_PROJECTS)
    parser.add_argument(
        "--workers", type=int, default=targets,
        help=f"worker processes (default: {targets}, one per region or project)",
    )  # fmt: skip


def plan_for(total: int) -> dict[tuple[str, str, str], tuple[int, int]]:
    """(provider, region, project) -> (existing, submitted). Huawei tags one key per call,
    so it gets a small share to keep the demo short."""
    huawei_each = max(1, total // 50)
    aliyun_each = max(1, (total - huawei_each * len(HUAWEI_PROJECTS)) // len(ALIYUN_REGIONS))
    plan = {}
    for region in ALIYUN_REGIONS:
        plan[("aliyun", region, "")] = (aliyun_each - int(aliyun_each * MISSING_SHARE), aliyun_each)
    for project in HUAWEI_PROJECTS:
        plan[("huawei", "cn-north-4", project)] = (huawei_each, huawei_each)
    return plan


def demo_blocks(plan: dict[tuple[str, str, str], tuple[int, int]]) -> list[IdBlock]:
    """The demo campaign's input: every planned id of every target, tagged alike."""
    return [
        IdBlock(
            "demo",
            TargetFields(p, "demo", region, project or None, "key"),
            (("env", "demo"), ("owner", "bulktag")),
            [aliyun_key_id(region, n) if p == "aliyun" else huawei_key_id(project, n)
             for n in range(submitted)],
            list(range(1, submitted + 1)),
        )
        for (p, region, project), (_, submitted) in plan.items()
    ]  # fmt: skip


def demo_emulator(plan: dict[tuple[str, str, str], tuple[int, int]]) -> ThreadedEmulatorServer:
    """The emulator with the demo's inventory and the providers' published rate limits."""
    inventory = Inventory.generated(*(
        GenerateSpec(p, project or region, "key", existing)
        for (p, region, project), (existing, _) in plan.items()
    ))  # fmt: skip
    limits = {p: rules.default_rate_per_second for p, rules in PROVIDERS.items()}
    return ThreadedEmulatorServer(EmulatorConfig(rate_limits=limits), inventory)


def run(args: argparse.Namespace) -> int:
    console = Console()
    plan = plan_for(args.resources)
    workers: list[subprocess.Popen[bytes]] = []
    with (
        redis_for_command(
            args.redis_url, allow_embedded=True, force_embedded=args.embedded_redis
        ) as target,
        demo_emulator(plan) as emulator,
        tempfile.TemporaryDirectory(prefix="bulktag-demo-") as tmp,
    ):
        conn = connect(target.url)
        where = "embedded Redis" if target.embedded else redacted_url(target.url)
        console.print(f"[bold]bulktag demo[/]: Redis {where}; emulator {emulator.url}")
        creds = Path(tmp) / "credentials.toml"
        creds.write_text(
            f'[profile.demo.aliyun]\naccess_key_id = "testid"\naccess_key_secret = "testsecret"\n'
            f'endpoint = "{emulator.url}"\n'
            f'[profile.demo.huawei]\nak = "testak"\nsk = "testsk"\nendpoint = "{emulator.url}"\n'
        )
        try:
            workers = spawn(target.url, args.workers, str(creds))
            campaign_id = "demo-" + new_campaign_id()
            blocks = demo_blocks(plan)
            result = submit(blocks, SubmitOptions(campaign_id=campaign_id), conn)
            console.print(
                f"submitted campaign [bold]{campaign_id}[/]: {result.resources:,} resources, "
                f"{result.jobs_total} jobs; about 1 % of the ids do not exist"
            )
            _watch(console, conn, campaign_id)
            report = data_dir() / f"{campaign_id}.csv"
            report.parent.mkdir(parents=True, exist_ok=True)
            with report.open("w", newline="") as out:
                campaigns.write_report(conn, campaign_id, out)
            doc = campaigns.status(conn, campaign_id)
            console.print(campaigns.report_text(doc), end="")
            stats = emulator.call(emulator.emulator.stats.snapshot)
            console.print(
                f"provider calls: {stats['total']:,} ({stats['throttled']} throttled); "
                f"per-resource report: {report}"
            )
            if not target.embedded:
                console.print(
                    f"see it again: bulktag status {campaign_id} --redis-url {target.url}"
                )
        finally:
            stop(workers)
    return 0


def _watch(console: Console, conn: redis.Redis, campaign_id: str) -> None:
    doc = campaigns.status(conn, campaign_id)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"), TimeRemainingColumn(),
        console=console,
    ) as progress:  # fmt: skip
        tasks = [
            progress.add_task(
                f"{t['provider']}:{t['project'] or t['region']}", total=t["resources"]
            )
            for t in doc["targets"]
        ]
        while doc["pending"] > 0:
            time.sleep(0.5)
            doc = campaigns.status(conn, campaign_id)
            for task, t in zip(tasks, doc["targets"], strict=True):
                progress.update(task, completed=t["done"])
