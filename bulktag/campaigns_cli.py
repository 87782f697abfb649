"""``bulktag campaigns | status | report | wait``: where campaigns stand, and their outcomes."""

from __future__ import annotations

import argparse
import json
import sys
import time

import redis
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from bulktag import campaigns
from bulktag.connections import connect_for
from bulktag.errors import UserError
from worker.outcomes import FINAL_STATUSES


def _conn(args: argparse.Namespace) -> redis.Redis:
    return connect_for(args.redis_url)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def redis_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--redis-url", help="Redis URL (default: $BULKTAG_REDIS_URL or local)")

    p = commands.add_parser("campaigns", help="every campaign with its state and progress")
    p.add_argument("--json", action="store_true", help="print JSON")
    redis_option(p)
    p.set_defaults(run=run_campaigns)

    p = commands.add_parser(
        "status",
        help="progress of one campaign per target, outcomes by status and error code",
        description="Progress of one campaign. --json prints the document described in "
        "README.md (stable field names, for scripts and compliance jobs).",
    )
    p.add_argument("campaign_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument("--watch", action="store_true", help="live progress bars until it ends")
    redis_option(p)
    p.set_defaults(run=run_status)

    p = commands.add_parser(
        "report",
        help="per-resource outcomes as CSV, JSONL or JSON (streamed)",
        description="Per-resource outcomes, streamed out of Redis: resource_id, provider, "
        "location (region or project), resource_type, status, error_code, error_message, "
        "request_id, attempts, finished_at.",
    )
    p.add_argument("campaign_id", metavar="ID")
    p.add_argument(
        "--status", help=f"only these statuses, comma-separated ({', '.join(FINAL_STATUSES)})"
    )
    p.add_argument("--format", choices=["csv", "jsonl", "json"], default="csv")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    redis_option(p)
    p.set_defaults(run=run_report)

    p = commands.add_parser(
        "retry",
        help="enqueue again the resources that ended failed (or other statuses)",
        description="Enqueue again the resources whose outcome has one of the given statuses "
        "(default: failed). not_found is retried only when asked: --status not_found.",
    )
    p.add_argument("campaign_id", metavar="ID")
    p.add_argument("--status", default="failed", help="comma-separated (default: failed)")
    redis_option(p)
    p.set_defaults(run=run_retry)

    p = commands.add_parser(
        "purge",
        help="delete finished campaigns: records, outcomes and their RQ jobs",
        description="Delete a finished campaign, or with --older-than every finished "
        "campaign created before then (run it from cron as the retention policy).",
    )
    p.add_argument("campaign_id", metavar="ID", nargs="?")
    p.add_argument("--older-than", metavar="DAYS", type=float,
                   help="purge every done or cancelled campaign older than this")  # fmt: skip
    p.add_argument("--force", action="store_true", help="purge even if not finished")
    redis_option(p)
    p.set_defaults(run=run_purge)

    p = commands.add_parser(
        "wait",
        help="wait until a campaign ends; the exit status says how it went",
        description="Wait until the campaign ends. Exit status: 0 every resource tagged or "
        "not found; 1 some failed or invalid; 4 cancelled; 124 --timeout reached.",
    )
    p.add_argument("campaign_id", metavar="ID")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="give up after this long")
    redis_option(p)
    p.set_defaults(run=run_wait)


def run_campaigns(args: argparse.Namespace) -> int:
    conn = _conn(args)
    docs = [campaigns.status(conn, cid) for cid in campaigns.campaign_ids(conn)]
    if args.json:
        print(json.dumps(docs, indent=2))
        return 0
    table = Table(title="campaigns")
    for column in ("id", "state", "done", "resources", "tagged", "not found", "failed", "why"):
        table.add_column(
            column, justify="right" if column not in ("id", "state", "why") else "left"
        )
    for d in docs:
        s = d["by_status"]
        why = "; ".join(f"{t['provider']}:{t['project'] or t['region']}: {t['paused']}"
                        for t in d["targets"] if t["paused"])  # fmt: skip
        table.add_row(
            d["campaign_id"], d["state"], f"{d['done']:,}", f"{d['resources']:,}",
            f"{s['tagged']:,}", f"{s['not_found']:,}", f"{s['failed'] + s['invalid']:,}", why,
        )  # fmt: skip
    console = Console()
    if not console.is_terminal:  # piped: never wrap a reason across lines
        console = Console(width=240)
    console.print(table)
    return 0


def run_status(args: argparse.Namespace) -> int:
    conn = _conn(args)
    doc = campaigns.status(conn, args.campaign_id)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    if not args.watch:
        sys.stdout.write(campaigns.report_text(doc))
        return 0
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"), TimeRemainingColumn(),
    ) as progress:  # fmt: skip
        tasks = [
            progress.add_task(
                f"{t['provider']}:{t['project'] or t['region']}", total=t["resources"]
            )
            for t in doc["targets"]
        ]
        while True:
            doc = campaigns.status(conn, args.campaign_id)
            for task, t in zip(tasks, doc["targets"], strict=True):
                progress.update(task, completed=t["done"])
            if doc["pending"] == 0 or doc["state"] in ("cancelled",):
                break
            time.sleep(1)
    sys.stdout.write(campaigns.report_text(doc))
    return 0


def _statuses(text: str) -> frozenset[str]:
    statuses = frozenset(s.strip() for s in text.split(","))
    unknown = statuses - set(FINAL_STATUSES)
    if unknown:
        raise UserError(
            f"unknown status {', '.join(sorted(unknown))}; use {', '.join(FINAL_STATUSES)}"
        )
    return statuses


def run_retry(args: argparse.Namespace) -> int:
    resources, jobs = campaigns.retry(_conn(args), args.campaign_id, _statuses(args.status))
    print(f"{args.campaign_id}: {resources:,} resources enqueued again in {jobs} jobs")
    return 0


def run_report(args: argparse.Namespace) -> int:
    conn = _conn(args)
    statuses = _statuses(args.status) if args.status else None
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            rows = campaigns.write_report(conn, args.campaign_id, out, args.format, statuses)
        print(f"{rows:,} rows written to {args.output}", file=sys.stderr)
    else:
        campaigns.write_report(conn, args.campaign_id, sys.stdout, args.format, statuses)
    return 0


def run_purge(args: argparse.Namespace) -> int:
    if (args.campaign_id is None) == (args.older_than is None):
        raise UserError("give a campaign ID or --older-than DAYS (one of them)")
    conn = _conn(args)
    targets = (
        [args.campaign_id] if args.campaign_id else campaigns.expired(conn, args.older_than * 86400)
    )
    for campaign_id in targets:
        jobs = campaigns.purge(conn, campaign_id, args.force)
        print(f"{campaign_id}: purged ({jobs} jobs)")
    return 0


def run_wait(args: argparse.Namespace) -> int:
    return campaigns.wait(_conn(args), args.campaign_id, args.timeout)
