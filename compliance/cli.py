"""``bulktag schedule add|list|remove|run-now``, ``bulktag scheduler``, ``bulktag compliance``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

import redis
import redis.asyncio as aioredis

from bulktag.connections import connect, resolve_redis_url
from bulktag.errors import UserError
from compliance import runs
from compliance.execute import RunResult, run_policy
from compliance.policy import POLICY_NAME, Policy, load_policy
from compliance.schedule import ComplianceScheduler, next_tick

log = logging.getLogger(__name__)


def add_commands(commands: Any) -> None:
    """Register the commands on ``bulktag``'s subparsers."""
    schedule = commands.add_parser(
        "schedule",
        help="scheduled compliance policies: add, list, remove, run now",
        description=(
            "Compliance policies say which tags every key or secret of some accounts must "
            "carry, and when to check. Each run discovers the resources (within the shared "
            "rate limits), submits a campaign for the non-compliant ones only, and records "
            "the run; `bulktag scheduler` runs them on time."
        ),
    )
    actions = schedule.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="validate a policy file (YAML or TOML) and schedule it",
        description="Validate a policy file and schedule it (replacing a policy of the same "
        "name). Nothing is written if it has a problem.",
    )  # fmt: skip
    add.add_argument("policy_file", metavar="POLICY_FILE")
    add.add_argument(
        "--dry-run", action="store_true",
        help="scheduled runs only discover: they tag and record nothing (each RQ job's "
        "result says what it would have tagged)",
    )  # fmt: skip
    _redis(add)
    add.set_defaults(run=_add)
    listing = actions.add_parser("list", help="the scheduled policies and their next runs")
    listing.add_argument("--json", action="store_true", help="print JSON")
    _redis(listing)
    listing.set_defaults(run=_list)
    remove = actions.add_parser("remove", help="unschedule a policy (its history stays)")
    remove.add_argument("name", metavar="NAME")
    _redis(remove)
    remove.set_defaults(run=_remove)
    now = actions.add_parser(
        "run-now", help="run a policy now, in this process",
        description="Run a scheduled policy (by name) or a policy file now, in this process: "
        "discover, submit a campaign for the non-compliant resources, record the run. The "
        "workers do the tagging.",
    )  # fmt: skip
    now.add_argument("policy", metavar="NAME|POLICY_FILE")
    now.add_argument("--dry-run", action="store_true",
                     help="list what would be tagged; tag nothing, record nothing")  # fmt: skip
    _redis(now)
    now.set_defaults(run=_run_now)

    scheduler = commands.add_parser(
        "scheduler",
        help="run the compliance scheduler (RQ's cron scheduler)",
        description=(
            "Enqueue each scheduled policy's runs on time, for the workers (queue "
            "bulktag.compliance). Run two on different machines for availability: each tick "
            "still runs once. SIGTERM or Ctrl-C stops it."
        ),
    )
    _redis(scheduler)
    scheduler.set_defaults(run=_scheduler)

    compliance = commands.add_parser(
        "compliance", help="compliance run history and drift",
        description="Look at what compliance runs found and fixed.",
    )  # fmt: skip
    sub = compliance.add_subparsers(dest="action", metavar="ACTION", required=True)
    report = sub.add_parser(
        "report", help="a policy's runs, and its drift since the previous run",
        description="The history of a policy's runs (found, compliant, fixed, not found, "
        "failed) and the drift of the latest run: what became non-compliant since the "
        "previous one.",
    )  # fmt: skip
    report.add_argument("policy", metavar="POLICY", help="policy name (or its policy file)")
    report.add_argument("--last", type=int, default=20, metavar="N", help="runs shown (20)")
    report.add_argument("--json", action="store_true", help="print JSON")
    _redis(report)
    report.set_defaults(run=_report)


def _redis(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", help="Redis URL (default: $BULKTAG_REDIS_URL or local)")


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# --- schedule --------------------------------------------------------------------------


def _add(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy_file)  # every problem raises before Redis is touched
    conn = connect(resolve_redis_url(args.redis_url).url)
    runs.save_policy(conn, policy, args.dry_run)
    tick = next_tick(policy.schedule, policy.timezone, datetime.now(UTC))
    print(
        f"scheduled {policy.name}: {policy.schedule} ({policy.timezone}), "
        f"{len(policy.targets)} target(s); next run {_iso(tick.timestamp())}"
        + (" (dry runs)" if args.dry_run else "")
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    conn = connect(resolve_redis_url(args.redis_url).url)
    rows: list[dict[str, Any]] = []
    for stored in runs.policies(conn):
        p = stored.policy
        last = runs.run_ids(conn, p.name, 1)
        rows.append({
            "name": p.name,
            "schedule": p.schedule,
            "timezone": p.timezone,
            "targets": [t.key for t in p.targets],
            "required_tags": [r.to_json() for r in p.rules],
            "dry_run": stored.dry_run,
            "next_run": next_tick(p.schedule, p.timezone, datetime.now(UTC)).isoformat(),
            "last_run": last[0] if last else None,
        })  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no scheduled policies")
        return 0
    for row in rows:
        print(
            f"{row['name']:<24} {row['schedule']:<18} {row['timezone']:<14} "
            f"next {row['next_run']}  last {row['last_run'] or '-'}"
            f"{'  (dry runs)' if row['dry_run'] else ''}\n"
            f"    {len(row['targets'])} target(s): {', '.join(row['targets'])}"
        )
    return 0


def _remove(args: argparse.Namespace) -> int:
    conn = connect(resolve_redis_url(args.redis_url).url)
    if not runs.remove_policy(conn, args.name):
        raise UserError(f"no scheduled policy {args.name!r}")
    print(f"removed {args.name} (its run history is kept)")
    return 0


def _resolve_policy(conn: redis.Redis, given: str) -> Policy:
    """A policy file if ``given`` is one, otherwise a scheduled policy's name."""
    if os.path.exists(given) or given == "-":
        return load_policy(given)
    stored = runs.load_policy(conn, given) if POLICY_NAME.fullmatch(given) else None
    if stored is None:
        raise UserError(f"{given}: neither a policy file nor a scheduled policy name")
    return stored.policy


def _run_now(args: argparse.Namespace) -> int:
    url = resolve_redis_url(args.redis_url).url
    conn = connect(url)
    policy = _resolve_policy(conn, args.policy)

    async def go() -> RunResult:
        aconn = aioredis.Redis.from_url(url)
        try:
            return await run_policy(conn, aconn, policy, dry_run=args.dry_run)
        finally:
            await aconn.aclose()

    result = asyncio.run(go())
    print_run(result, sys.stdout)
    failed = [t for t in result.targets if t.discovery.error]
    return 1 if failed else 0


def print_run(result: RunResult, out: Any) -> None:
    for t in result.targets:
        d, ev = t.discovery, t.evaluation
        state = f"error: {d.error}" if d.error else (
            f"{ev.found} found, {ev.compliant} compliant, {len(ev.findings)} non-compliant"
            + (f", {len(ev.not_found)} not found" if ev.not_found else "")
        )  # fmt: skip
        print(f"{t.target.key} (profile {t.target.target.profile}): {state}; {d.calls} calls",
              file=out)  # fmt: skip
    if result.record is None:
        would = list(result.to_fix())
        for target, finding in would:
            tags = ",".join(f"{k}={v}" for k, v in finding.fix)
            print(f"would tag {target.key} {finding.resource_id} {tags}  "
                  f"({'; '.join(finding.problems)})", file=out)  # fmt: skip
        for t in result.targets:
            for finding in t.evaluation.unfixable:
                print(f"cannot fix {t.target.key} {finding.resource_id}  "
                      f"({'; '.join(finding.problems)}; no default)", file=out)  # fmt: skip
        print(f"dry run: {len(would)} resource(s) would be tagged; nothing was changed", file=out)
        return
    record = result.record
    if result.skipped:
        print(f"run {record.run_id} already made for this tick", file=out)
        return
    drift = "no previous run" if record.drift is None else f"{record.drift} drifted"
    print(
        f"run {record.run_id}: {record.noncompliant} non-compliant ({drift}), "
        f"{record.submitted} submitted"
        + (f" as campaign {record.campaign_id}" if record.campaign_id else "")
        + (f"; {record.unfixable} cannot be fixed (no default)" if record.unfixable else ""),
        file=out,
    )


def _scheduler(args: argparse.Namespace) -> int:
    conn = connect(resolve_redis_url(args.redis_url).url)
    scheduler = ComplianceScheduler(conn)
    scheduler.start()  # type: ignore[no-untyped-call]
    return 0


# --- report ----------------------------------------------------------------------------


def report_document(conn: redis.Redis, policy: str, last: int) -> dict[str, Any]:
    records = runs.history(conn, policy, last)
    if not records and runs.load_policy(conn, policy) is None:
        raise UserError(f"no compliance runs of policy {policy!r}")
    latest = records[-1] if records else None
    drift = runs.findings(conn, latest.run_id, "drift") if latest else {}
    return {
        "policy": policy,
        "runs": [r.to_json() for r in records],
        "drift": {
            "run_id": latest.run_id if latest else None,
            "compared_with_previous": latest is not None and latest.drift is not None,
            "resources": [
                {
                    "target": key.partition("|")[0],
                    "resource_id": key.partition("|")[2],
                    "problems": problems,
                }
                for key, problems in sorted(drift.items())
            ],
        },
    }


def _report(args: argparse.Namespace) -> int:
    conn = connect(resolve_redis_url(args.redis_url).url)
    name = args.policy
    if os.path.exists(name):
        name = load_policy(name).name
    doc = report_document(conn, name, args.last)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"policy {name}: {len(doc['runs'])} run(s)")
    header = ("run", "state", "found", "compliant", "non-compl.", "fixed", "not found",
              "failed", "pending", "drift")  # fmt: skip
    print(f"{header[0]:<40} {header[1]:<11}" + "".join(f"{h:>11}" for h in header[2:]))
    for r in doc["runs"]:
        values = (r["found"], r["compliant"], r["noncompliant"], r["fixed"], r["not_found"],
                  r["failed"], r["pending"], "-" if r["drift"] is None else r["drift"])  # fmt: skip
        print(f"{r['run_id']:<40} {r['state']:<11}" + "".join(f"{v:>11}" for v in values))
        for error in r["errors"]:
            print(f"    error: {error}")
    drift = doc["drift"]
    if drift["run_id"] is None:
        return 0
    if not drift["compared_with_previous"]:
        print(f"\ndrift: {drift['run_id']} is the first run; nothing to compare with")
        return 0
    print(f"\ndrift in {drift['run_id']}: {len(drift['resources'])} resource(s) became "
          "non-compliant since the previous run")  # fmt: skip
    for item in drift["resources"]:
        print(f"  {item['target']} {item['resource_id']}: {item['problems']}")
    return 0
