"""``bulktag emulator``: serve the emulator until interrupted.

:func:`configure_parser` adds the options to a (sub)parser and :func:`run` serves. Option
values are strings to argparse and are checked by :func:`run`, so that a bad one is refused
with exit status 2 and exactly one line on stderr (no usage block, never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import math
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from emulator.config import FAULT_KINDS, PROVIDERS, ConfigError, Credentials, EmulatorConfig
from emulator.inventory import GenerateSpec, Inventory, InventoryError, check_location, rules_of
from emulator.server import EmulatorServer

log = logging.getLogger("emulator")

DEFAULT_PORT = 8500
_UNLIMITED = ("off", "none", "unlimited")
T = TypeVar("T")


class UsageError(Exception):
    """An option value or combination the emulator cannot start with."""


# --- option value parsers ---------------------------------------------------------------------


def parse_generate(text: str) -> GenerateSpec:
    parts = text.split(":")
    if len(parts) != 4:
        raise UsageError("use PROVIDER:LOCATION:TYPE:COUNT, e.g. aliyun:cn-hangzhou:key:10000")
    provider, location, resource_type, count_text = parts
    count = _whole(count_text)
    if count is None:
        raise UsageError("COUNT must be a whole number >= 0")
    try:
        check_location(provider, location, resource_type)
    except InventoryError as exc:
        raise UsageError(str(exc)) from None
    return GenerateSpec(provider, location, resource_type, count)


def parse_rate_limit(text: str) -> tuple[str, float | None]:
    target, eq, value = text.partition("=")
    if not eq or not target or not value:
        raise UsageError(
            "use PROVIDER[:LOCATION]=QPS, e.g. aliyun=10 or aliyun:cn-hangzhou=5 "
            "(QPS 'off' for no limit)"
        )
    provider, _, location = target.partition(":")
    if provider not in PROVIDERS:
        raise UsageError(f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
    if location:
        rules = rules_of(provider)
        problems = (
            rules.check_region(location) if provider == "aliyun" else rules.check_project(location)
        )
        if problems:
            raise UsageError(problems[0].message)
    if value.lower() in _UNLIMITED:
        return target, None
    qps = _float(value)
    if qps is None or qps <= 0:
        raise UsageError("QPS must be a number above 0 (or 'off' for no limit)")
    return target, qps


def parse_fault(text: str) -> tuple[str, float]:
    kind, eq, value = text.partition("=")
    if not eq or kind not in FAULT_KINDS:
        raise UsageError(
            f"use KIND=RATE with KIND one of {', '.join(FAULT_KINDS)}, e.g. 503=0.05 or timeout=1%"
        )
    percent = value.endswith("%")
    rate = _float(value[:-1] if percent else value)
    if rate is not None and percent:
        rate /= 100.0
    if rate is None or not 0.0 <= rate <= 1.0:
        raise UsageError("RATE must be a probability from 0 to 1 (or a percentage like 5%)")
    return kind, rate


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _whole(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def parse_non_negative(text: str) -> float:
    value = _float(text)
    if value is None or value < 0:
        raise UsageError("must be a number >= 0")
    return value


def parse_burst(text: str) -> float:
    value = _float(text)
    if value is None or value < 1:
        raise UsageError("must be a number >= 1")
    return value


def parse_port(text: str) -> int:
    port = _whole(text)
    if port is None or port > 65535:
        raise UsageError("must be a port number from 0 to 65535")
    return port


def parse_region(text: str) -> str:
    problems = rules_of("aliyun").check_region(text)
    if problems:
        raise UsageError(problems[0].message)
    return text


def parse_seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError("must be a whole number") from None


def parse_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise UsageError("no such file")
    return path


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser``."""
    listen = parser.add_argument_group("listening")
    listen.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1). Anything but a loopback address "
        "needs --allow-remote: the emulator accepts well-known test credentials.",
    )
    listen.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --host to be a non-loopback address, reachable from other machines",
    )
    listen.add_argument(
        "--port",
        default=str(DEFAULT_PORT),
        help=f"TCP port (default: {DEFAULT_PORT}; 0 picks a free one, logged at start-up)",
    )
    listen.add_argument(
        "--access-log",
        action="store_true",
        help="log every request (off by default: it slows benchmarks down)",
    )

    inventory = parser.add_argument_group("inventory")
    inventory.add_argument(
        "--inventory",
        metavar="FILE",
        help="JSON file of keys and secrets per region/project and their tags "
        "(format: emulator/inventory.py)",
    )
    inventory.add_argument(
        "--generate",
        action="append",
        default=[],
        metavar="PROVIDER:LOCATION:TYPE:COUNT",
        help="create COUNT resources with predictable ids, e.g. aliyun:cn-hangzhou:key:10000 or "
        "huawei:<32-hex project id>:key:5000; types: aliyun key|secret, huawei key. Repeatable",
    )
    inventory.add_argument(
        "--credentials",
        metavar="FILE",
        help="JSON or TOML (*.toml) file with the accepted credentials, replacing the test "
        'defaults: {"aliyun": {AK_ID: SECRET}, "huawei": {AK: SK}, "huawei_tokens": [TOKEN]}. '
        "Default: aliyun testid/testsecret, huawei testak/testsk, token test-token",
    )

    behaviour = parser.add_argument_group("behaviour")
    behaviour.add_argument(
        "--rate-limit",
        action="append",
        default=[],
        metavar="PROVIDER[:LOCATION]=QPS",
        help="calls per second before answering 429: per provider (applies to each region or "
        "project separately) or for one region/project. Repeatable; default: no limit. The "
        "published limits are about aliyun=10..30 and huawei=20",
    )
    behaviour.add_argument(
        "--burst",
        metavar="N",
        help="calls allowed at once before the rate limit bites (default: one second's worth)",
    )
    behaviour.add_argument(
        "--latency-ms",
        default="0",
        metavar="MS",
        help="added to every provider call (default: 0)",
    )
    behaviour.add_argument(
        "--jitter-ms",
        default="0",
        metavar="MS",
        help="random extra latency, uniform from 0 to MS (default: 0)",
    )
    behaviour.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=RATE",
        help="inject a fault into that share of calls: 500, 502, 503, 504 (that HTTP error), "
        "timeout (hang, then 504) or reset (drop the connection); RATE 0..1 or a percentage. "
        "Repeatable; the rates must add up to 1 at most",
    )
    behaviour.add_argument(
        "--timeout-delay",
        default="30",
        metavar="SECONDS",
        help="how long a 'timeout' fault hangs (default: 30)",
    )
    behaviour.add_argument(
        "--name-missing-id",
        action="store_true",
        help="name the missing id in Alibaba's InvalidResourceId.NotFound message (the real "
        "service's documented message does not)",
    )
    behaviour.add_argument(
        "--aliyun-default-region",
        default="cn-hangzhou",
        metavar="REGION",
        help="region of Alibaba calls that name none (the SDK's ListKeys and ListSecrets send "
        "no RegionId: the real service knows it from its endpoint); default: cn-hangzhou",
    )
    behaviour.add_argument(
        "--seed",
        metavar="N",
        help="seed for faults and jitter, to repeat a run exactly",
    )


# --- from options to a running emulator ------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """The command line, checked and converted."""

    host: str
    port: int
    access_log: bool
    config: EmulatorConfig
    inventory: Inventory


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _each(option: str, values: list[str], parse: Callable[[str], T]) -> list[T]:
    return [_one(option, value, parse) for value in values]


def _one(option: str, value: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(value)
    except UsageError as exc:
        raise UsageError(f"{option} {value!r}: {exc}") from None


def options(args: argparse.Namespace) -> Options:
    """Check every option; UsageError (ConfigError, InventoryError) names the bad one."""
    if not args.allow_remote and not _is_loopback(args.host):
        raise UsageError(
            f"--host {args.host} is not a loopback address; the emulator accepts "
            "well-known test credentials, so add --allow-remote if you mean it"
        )
    rate_limits: dict[str, float] = {}
    for target, qps in _each("--rate-limit", args.rate_limit, parse_rate_limit):
        if qps is None:
            rate_limits.pop(target, None)
        else:
            rate_limits[target] = qps
    credentials = Credentials()
    if args.credentials is not None:
        credentials = Credentials.load(_one("--credentials", args.credentials, parse_file))
    config = EmulatorConfig(
        credentials=credentials,
        rate_limits=rate_limits,
        burst=_one("--burst", args.burst, parse_burst) if args.burst is not None else None,
        latency_ms=_one("--latency-ms", args.latency_ms, parse_non_negative),
        jitter_ms=_one("--jitter-ms", args.jitter_ms, parse_non_negative),
        faults=dict(_each("--fault", args.fault, parse_fault)),
        timeout_delay=_one("--timeout-delay", args.timeout_delay, parse_non_negative),
        name_missing_id=args.name_missing_id,
        seed=_one("--seed", args.seed, parse_seed) if args.seed is not None else None,
        aliyun_default_region=_one(
            "--aliyun-default-region", args.aliyun_default_region, parse_region
        ),
    )
    inventory = Inventory()
    if args.inventory is not None:
        inventory = Inventory.load(_one("--inventory", args.inventory, parse_file))
    for spec in _each("--generate", args.generate, parse_generate):
        inventory.generate(spec.provider, spec.location, spec.resource_type, spec.count)
    return Options(
        host=args.host,
        port=_one("--port", args.port, parse_port),
        access_log=args.access_log,
        config=config,
        inventory=inventory,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM: 0 after a clean stop, 2 for an unusable option (one line
    on stderr), 1 if the port cannot be listened on."""
    try:
        checked = options(args)
    except (UsageError, ConfigError, InventoryError) as exc:
        sys.stderr.write(f"bulktag emulator: error: {exc}\n")
        return 2
    try:
        return asyncio.run(_serve(checked))
    except KeyboardInterrupt:
        return 0


async def _serve(checked: Options) -> int:
    config, inventory = checked.config, checked.inventory
    server = EmulatorServer(
        config, inventory, host=checked.host, port=checked.port, access_log=checked.access_log
    )
    try:
        await server.start()
    except OSError as exc:
        sys.stderr.write(
            f"bulktag emulator: error: cannot listen on {checked.host}:{checked.port}: "
            f"{exc.strerror or exc}\n"
        )
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not the main thread (or not Unix): Ctrl-C then arrives as KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    sets = inventory.summary()
    log.info(
        f"emulator listening on {server.url}",
        extra={
            "resources": sum(s["count"] for s in sets),
            "locations": len(sets),
            "rate_limits": ",".join(f"{k}={v:g}" for k, v in config.rate_limits.items()) or "none",
        },
    )
    if not sets:
        log.warning("the inventory is empty: every key will be 'not found' (use --generate)")
    try:
        await stop.wait()
    finally:
        log.info("emulator stopping", extra={"calls": server.emulator.stats.count()})
        await server.stop()
    return 0
