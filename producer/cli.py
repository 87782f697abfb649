"""``bulktag submit``: read, validate and enqueue a campaign."""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Iterator
from dataclasses import replace

import redis
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bulktag.connections import connect_for, resolve_redis_url
from bulktag.errors import UserError
from producer.campaign import TargetFields
from producer.inputs import (
    Item,
    load_campaign_file,
    read_id_list,
    read_manifest,
    read_source,
    with_default_tags,
)
from producer.submit import SubmitOptions, SubmitResult, rate_for, submit
from providers.catalog import PROVIDERS
from worker.limiter import configured_limits

EPILOG = """\
examples:
  bulktag submit --provider aliyun --region cn-hangzhou --resource-type key \\
      --ids keys.txt --tag env=prod --tag owner=team-a
  bulktag submit --provider huawei --region cn-north-4 --project 0123456789abcdef0123456789abcdef \\
      --manifest keys.csv            # columns: resource_id,tag:env,tag:owner
  bulktag submit --campaign retag.yaml --id retag-2026-11 --dry-run

Ids files hold one id per line ('#' comments, blank lines ignored); '-' reads stdin; .gz
files are read transparently. In a CSV manifest an empty tag cell leaves that tag unset.
Nothing is written unless the whole input is valid; re-running a submit with the same --id
and input enqueues nothing twice (resume an interrupted submit this way).
"""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    source = parser.add_argument_group("input (exactly one)")
    source.add_argument("--ids", metavar="FILE", help="file of resource ids, one per line")
    source.add_argument(
        "--manifest", metavar="FILE",
        help="CSV (header resource_id,[region,project,...],tag:KEY...) or .jsonl rows",
    )  # fmt: skip
    source.add_argument(
        "--campaign", metavar="FILE", help="campaign file (YAML, TOML or JSON) with targets"
    )
    target = parser.add_argument_group("target (defaults for rows that do not say)")
    target.add_argument("--provider", choices=sorted(PROVIDERS), help="cloud provider")
    target.add_argument("--profile", help="credentials profile name (default: default)")
    target.add_argument("--region", help="region id, e.g. cn-hangzhou or cn-north-4")
    target.add_argument("--project", help="Huawei project id (32 hex characters)")
    target.add_argument(
        "--resource-type", choices=["key", "secret"], help="resource type (default: key)"
    )
    parser.add_argument(
        "--tag", action="append", default=[], metavar="KEY=VALUE",
        help="tag to add (repeatable); split at the first '='",
    )  # fmt: skip
    parser.add_argument("--id", dest="campaign_id", help="campaign id (default: generated)")
    parser.add_argument(
        "--chunk-size", type=int, metavar="N",
        help="resources per job, rounded up to a multiple of the provider's batch "
        "(default: 50 calls' worth: 2500 Alibaba ids, 50 Huawei keys)",
    )  # fmt: skip
    parser.add_argument(
        "--dry-run", action="store_true",
        help="validate and print the plan (resources, groups, calls, duration); write nothing",
    )  # fmt: skip
    parser.add_argument(
        "--webhook", metavar="URL",
        help="POST a JSON summary of the campaign here when it ends (retried)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--redis-url", help="Redis URL (default: $BULKTAG_REDIS_URL or local)")


def _parse_tags(values: list[str]) -> tuple[tuple[str, str], ...]:
    tags = []
    for value in values:
        key, sep, tag_value = value.partition("=")
        if not sep:
            raise UserError(f"--tag {value!r}: expected KEY=VALUE")
        tags.append((key, tag_value))
    return tuple(tags)


def _items(args: argparse.Namespace) -> tuple[Iterator[Item], str | None, dict[str, str]]:
    given = [name for name in ("ids", "manifest", "campaign") if getattr(args, name)]
    if len(given) != 1:
        raise UserError("give exactly one of --ids, --manifest or --campaign")
    defaults = TargetFields(
        args.provider, args.profile, args.region, args.project, args.resource_type
    )
    tags = _parse_tags(args.tag)
    if args.ids:
        return read_id_list(args.ids, defaults, tags), None, {}
    if args.manifest:
        items = read_manifest(args.manifest, defaults)
        if tags:
            items = with_default_tags(items, tags)
        return items, None, {}
    campaign = load_campaign_file(args.campaign)
    sources = [replace(s, fields=s.fields.over(defaults), tags=s.tags or tags)
               for s in campaign.sources]  # fmt: skip
    options = {k: str(v) for k, v in campaign.options.items()}
    items = itertools.chain.from_iterable(read_source(s) for s in sources)
    return items, campaign.campaign_id, options


def run(args: argparse.Namespace) -> int:
    items, file_id, options = _items(args)
    console = Console(stderr=True)
    interactive = console.is_terminal and not args.json
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,}"),
        TimeElapsedColumn(), console=console, disable=not interactive, transient=True,
    ) as progress:  # fmt: skip
        reading = progress.add_task("validating", total=None)
        enqueueing = progress.add_task("enqueueing jobs", total=None, visible=False)

        def on_read(n: int) -> None:
            progress.update(reading, completed=n)

        def on_enqueued(done: int, _fresh: int) -> None:
            progress.update(enqueueing, completed=done, visible=True)

        submit_options = SubmitOptions(
            campaign_id=args.campaign_id or file_id,
            chunk_size=args.chunk_size,
            dry_run=args.dry_run,
            options={**options, **({"webhook": args.webhook} if args.webhook else {})},
            on_read=on_read,
            on_enqueued=on_enqueued,
        )
        connection = None if args.dry_run else connect_for(args.redis_url)
        result = submit(items, submit_options, connection)
    _report(result, args.json, _configured_rates(args.redis_url))
    return 0


def _configured_rates(redis_url: str | None) -> dict[str, float]:
    """Operators' overrides (``bulktag limits set``), read-only; none if Redis is away."""
    conn = redis.Redis.from_url(
        resolve_redis_url(redis_url).url, socket_connect_timeout=0.5, socket_timeout=0.5
    )
    try:
        return configured_limits(conn)
    except redis.RedisError:
        return {}
    finally:
        conn.close()


def _report(result: SubmitResult, as_json: bool, rates: dict[str, float]) -> None:
    if as_json:
        print(json.dumps(_result_json(result, rates), indent=2))
        return
    console = Console()
    table = Table(title=f"campaign {result.campaign_id}" + (" (dry run)" if result.dry_run else ""))
    table.add_column("target")
    table.add_column("queue")
    for column in ("resources", "groups", "API calls", "duration at the rate limit"):
        table.add_column(column, justify="right")
    for plan in result.plans:
        rate = rate_for(plan.target, rates)
        table.add_row(
            plan.target.label, plan.target.queue_name, f"{plan.resources:,}", str(plan.groups),
            f"{plan.calls:,}", f"{plan.seconds_at(rate):,.0f} s at {rate:g}/s",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"{result.resources:,} resources, {result.duplicates:,} duplicate ids collapsed, "
        f"{result.jobs_total:,} jobs"
        + ("" if result.dry_run else f" ({result.jobs_enqueued:,} newly enqueued)")
    )


def _result_json(result: SubmitResult, rates: dict[str, float]) -> dict[str, object]:
    return {
        "campaign_id": result.campaign_id,
        "dry_run": result.dry_run,
        "resources": result.resources,
        "duplicates": result.duplicates,
        "jobs": result.jobs_total,
        "jobs_enqueued": result.jobs_enqueued,
        "targets": [
            {**p.target.to_json(), "queue": p.target.queue_name, "resources": p.resources,
             "groups": p.groups, "calls": p.calls, "rate_per_second": rate_for(p.target, rates),
             "expected_seconds": round(p.seconds_at(rate_for(p.target, rates)), 1)}
            for p in result.plans
        ],
    }  # fmt: skip
