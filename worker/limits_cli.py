"""``bulktag limits``: see and change the shared rate limits while workers run."""

from __future__ import annotations

import argparse
import json

import redis
from rich.console import Console
from rich.table import Table

from bulktag.connections import connect_for
from bulktag.errors import UserError
from bulktag.store import PREFIX
from providers.catalog import PROVIDERS
from worker.limiter import clear_limit, configured_limits, set_limit


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis-url", help="Redis URL (default: $BULKTAG_REDIS_URL or local)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="configured limits and the live adaptive rates")
    show.add_argument("--json", action="store_true", help="print JSON")
    set_ = actions.add_parser(
        "set",
        help="set calls/s for a provider region or project (workers pick it up at once)",
    )
    set_.add_argument("where", metavar="PROVIDER:LOCATION", help="e.g. aliyun:cn-hangzhou")
    set_.add_argument("rate", type=float, help="calls per second, > 0")
    clear = actions.add_parser("clear", help="go back to the provider's published default")
    clear.add_argument("where", metavar="PROVIDER:LOCATION")


def _where(text: str) -> tuple[str, str]:
    provider, sep, location = text.partition(":")
    if not sep or not location:
        raise UserError(f"{text!r}: expected PROVIDER:LOCATION, e.g. aliyun:cn-hangzhou")
    if provider not in PROVIDERS:
        raise UserError(f"unknown provider {provider!r}; use one of: {', '.join(PROVIDERS)}")
    return provider, location


def run(args: argparse.Namespace) -> int:
    conn = connect_for(args.redis_url)
    if args.action == "set":
        provider, location = _where(args.where)
        if not args.rate > 0:
            raise UserError(f"rate must be above 0, got {args.rate:g}")
        set_limit(conn, provider, location, args.rate)
        print(f"{provider}:{location} limited to {args.rate:g} calls/s")
        return 0
    if args.action == "clear":
        provider, location = _where(args.where)
        clear_limit(conn, provider, location)
        default = PROVIDERS[provider].default_rate_per_second
        print(f"{provider}:{location} back to the default {default:g} calls/s")
        return 0
    rows = live_limits(conn)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title="rate limits")
    for column in ("limiter", "configured/s", "current/s", "calls", "throttled"):
        table.add_column(column, justify="left" if column == "limiter" else "right")
    for row in rows:
        table.add_row(
            str(row["limiter"]), f"{row['configured']:g}", f"{row['rate']:.2f}",
            str(row["calls"]), str(row["throttles"]),
        )  # fmt: skip
    Console().print(table)
    return 0


def live_limits(conn: redis.Redis) -> list[dict[str, object]]:
    """One row per limiter key seen in Redis, with its override (if any) and live rate."""
    overrides = configured_limits(conn)
    rows: list[dict[str, object]] = []
    seen: set[str] = set()
    for key in sorted(conn.scan_iter(f"{PREFIX}:limiter:*", count=500)):
        name = bytes(key).decode().removeprefix(f"{PREFIX}:limiter:")
        provider, _profile, location, _group = name.split(":", 3)
        raw: dict[bytes, bytes] = conn.hgetall(key)  # type: ignore[assignment]
        state = {k.decode(): v.decode() for k, v in raw.items()}
        default = PROVIDERS[provider].default_rate_per_second if provider in PROVIDERS else 0.0
        seen.add(f"{provider}:{location}")
        configured = overrides.get(f"{provider}:{location}", default)
        rows.append({
            "limiter": name,
            "configured": configured,
            "rate": float(state.get("rate", configured)),
            "calls": int(state.get("calls", 0)),
            "throttles": int(state.get("throttles", 0)),
        })  # fmt: skip
    for field, rate in overrides.items():
        if field not in seen:
            rows.append({"limiter": field, "configured": rate, "rate": rate, "calls": 0,
                         "throttles": 0})  # fmt: skip
    return rows
