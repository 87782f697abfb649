"""``bulktag dashboard``: serve the monitoring page, its JSON API and /metrics."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket

from aiohttp import web

from bulktag.connections import connect, resolve_redis_url
from bulktag.errors import UserError
from dashboard.app import TOKEN_ENV, create_app

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
TOKEN_MIN_LENGTH = 16


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "dashboard",
        help="web dashboard: queues, workers, campaigns, rate limits; JSON API and /metrics",
        description=(
            "Serve a live dashboard of queues, workers, campaigns and rate limits, its JSON "
            "API under /api/, Prometheus metrics on /metrics and /healthz. Read-only unless "
            f"{TOKEN_ENV} is set: then pause, resume, cancel and retry-failed are POSTs with "
            "'Authorization: Bearer <token>'. Binds loopback unless --host says otherwise."
        ),
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address (default: {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default: {DEFAULT_PORT})"
    )
    parser.add_argument("--redis-url", help="Redis URL (default: $BULKTAG_REDIS_URL or local)")
    parser.set_defaults(run=run)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.port <= 65535:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    token = os.environ.get(TOKEN_ENV) or None
    if token is not None and len(token) < TOKEN_MIN_LENGTH:
        raise UserError(f"{TOKEN_ENV} must be at least {TOKEN_MIN_LENGTH} characters long")
    url = resolve_redis_url(args.redis_url).url
    connect(url).close()  # fail now, with the URL's own message, if Redis does not answer
    try:
        socket.getaddrinfo(args.host, args.port)
    except socket.gaierror as exc:
        raise UserError(f"--host {args.host!r}: {exc.strerror}") from None
    if not _loopback(args.host):
        log.warning(
            "dashboard reachable from other machines; its answers are not encrypted",
            extra={"host": args.host},
        )
    log.info(
        "dashboard started",
        extra={"url": f"http://{args.host}:{args.port}/",
               "actions": "enabled" if token else "read-only"},
    )  # fmt: skip
    try:
        web.run_app(
            create_app(url, token), host=args.host, port=args.port, print=None, access_log=None
        )
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    return 0
