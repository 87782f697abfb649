"""The ``bulktag`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

import redis

from bulktag import __version__, campaigns_cli, control, demo, logs
from bulktag.connections import connect_for
from bulktag.errors import UserError
from compliance import cli as compliance_cli
from dashboard import cli as dashboard_cli
from emulator import cli as emulator_cli
from producer import cli as producer_cli
from providers.credentials import CredentialsError
from worker import cli as worker_cli
from worker import limits_cli

log = logging.getLogger("bulktag")

Runner = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulktag",
        description=(
            "Tag Alibaba Cloud and Huawei Cloud KMS keys and secrets in bulk: a producer "
            "validates and enqueues campaigns in Redis, workers tag within each region's "
            "rate limit and record an outcome for every resource."
        ),
    )
    parser.add_argument("--version", action="version", version=f"bulktag {__version__}")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log verbosity (default: INFO)",
    )  # fmt: skip
    parser.add_argument(
        "--log-format", default="text", choices=["text", "json"],
        help="log lines as key=value text or as JSON objects (default: text)",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    emulator = commands.add_parser(
        "emulator",
        help="run a local stand-in for the Alibaba and Huawei KMS tag APIs",
        description=(
            "Serve the Alibaba Cloud KMS and Huawei Cloud KMS tag APIs on loopback, with an "
            "inventory of keys and secrets, signature checks, rate limits and fault "
            "injection. Use it to rehearse a campaign or to run the tests and benchmarks."
        ),
    )
    emulator_cli.configure_parser(emulator)
    emulator.set_defaults(run=emulator_cli.run)

    submit = commands.add_parser(
        "submit",
        help="validate a tagging campaign and enqueue it",
        description=(
            "Validate a tagging campaign against the provider's rules and enqueue it for the "
            "workers. All or nothing: any problem is reported (with file and line) and "
            "nothing is written."
        ),
    )
    producer_cli.configure_parser(submit)
    submit.set_defaults(run=producer_cli.run)

    worker = commands.add_parser(
        "worker",
        help="run workers that tag what the campaigns queued",
        description=(
            "Run RQ workers over the campaign queues (one per provider region or project, "
            "taken round-robin). Every worker on every machine shares each region's rate "
            "limit through Redis. SIGTERM or Ctrl-C stops after the current jobs."
        ),
    )
    worker_cli.configure_parser(worker)
    worker.set_defaults(run=worker_cli.run)

    limits = commands.add_parser(
        "limits",
        help="show or change the shared per-region rate limits",
        description=(
            "Show the rate limits the workers share, with the live adaptive rate, or change "
            "one; running workers follow a change at once."
        ),
    )
    limits_cli.configure_parser(limits)
    limits.set_defaults(run=limits_cli.run)

    campaigns_cli.add_commands(commands)
    compliance_cli.add_commands(commands)
    dashboard_cli.add_commands(commands)

    demo_parser = commands.add_parser(
        "demo",
        help="see the whole product work: emulator, workers, a 20,000-resource campaign",
        description=(
            "Run everything on this machine: Redis (the local one if it answers, otherwise an "
            "embedded one), the provider emulator, a worker per region, and a sample campaign of "
            "about 20,000 resources in three Alibaba regions and two Huawei projects, with "
            "live progress, a summary and a report file. Stops everything at the end or on "
            "Ctrl-C."
        ),
    )
    demo.configure_parser(demo_parser)
    demo_parser.set_defaults(run=demo.run)

    for name, action, text in (
        ("pause", control.pause, "stop starting calls for a campaign until it is resumed"),
        ("resume", control.resume,
         "continue a paused campaign, or targets paused after an authentication failure "
         "(fix the credentials first)"),
        ("cancel", control.cancel,
         "stop a campaign for good; what is not done yet is recorded as cancelled"),
    ):  # fmt: skip
        sub = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        sub.add_argument("campaign_id", metavar="ID", help="campaign id")
        sub.add_argument("--redis-url", help="Redis URL (default: $BULKTAG_REDIS_URL or local)")
        sub.set_defaults(run=_control_runner(action))
    return parser


def _control_runner(action: Callable[[redis.Redis, str], str]) -> Runner:
    def run(args: argparse.Namespace) -> int:
        conn = connect_for(args.redis_url)
        print(f"{args.campaign_id}: {action(conn, args.campaign_id)}")
        return 0

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    run: Runner = args.run
    try:
        return run(args)
    except (UserError, CredentialsError) as exc:
        print(f"bulktag {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
