"""Where Redis is: ``--redis-url``, ``BULKTAG_REDIS_URL``, the default, or an embedded one.

An explicit URL is always used as given (a failure to reach it is an error, never a silent
fallback). Only when no URL is given and nothing answers at the default address may a
command that needs a server (``bulktag demo``) start a private Redis, with its files under
the data directory (``BULKTAG_DATA_DIR``, default ``~/.local/share/bulktag``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from bulktag.embedded_redis import EmbeddedRedis
from bulktag.errors import UserError

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

# A client that has once reached Redis rides out an outage or a restart: each command is
# retried on connection errors with jittered exponential backoff (0.25 s doubling, at most
# 4 s apart) for about ninety seconds before the error reaches the caller. Workers and
# producers neither crash nor lose work while Redis restarts. Everything they write is safe
# to write twice: outcomes go through HSETNX, limiter slots and counters only err on the
# slow side, and RQ moves a job through lists it recovers from (docs/operations.md).
OUTAGE_RETRIES = 25
OUTAGE_BACKOFF_BASE_S = 0.25
OUTAGE_BACKOFF_CAP_S = 4.0


def outage_retry() -> Retry:
    return Retry(
        ExponentialWithJitterBackoff(base=OUTAGE_BACKOFF_BASE_S, cap=OUTAGE_BACKOFF_CAP_S),
        OUTAGE_RETRIES,
    )


@dataclass(frozen=True)
class RedisTarget:
    url: str
    explicit: bool
    embedded: bool = False


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("BULKTAG_DATA_DIR"):
        return Path(env["BULKTAG_DATA_DIR"])
    return Path.home() / ".local" / "share" / "bulktag"


def resolve_redis_url(
    explicit: str | None, environ: Mapping[str, str] | None = None
) -> RedisTarget:
    env = os.environ if environ is None else environ
    if explicit:
        return RedisTarget(explicit, explicit=True)
    if env.get("BULKTAG_REDIS_URL"):
        return RedisTarget(env["BULKTAG_REDIS_URL"], explicit=True)
    return RedisTarget(DEFAULT_REDIS_URL, explicit=False)


def answers(url: str, timeout: float = 0.5) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, redis.AuthenticationError, OSError):
        return False
    finally:
        client.close()


def redacted_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages: a Redis URL may carry
    the password (``redis://:PASSWORD@host``), and error output ends up in logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return "<unparsable Redis URL>"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def connect(url: str) -> redis.Redis:
    """A client for ``url`` that answered a PING; a user error naming the URL otherwise.

    The first PING is not retried, so that a wrong address fails at once; the client
    returned retries through outages (``outage_retry``)."""
    try:
        conn = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0))
    except ValueError as exc:  # a scheme other than redis://, rediss://, unix://; a bad option
        raise UserError(f"bad Redis URL {redacted_url(url)}: {exc}") from None
    try:
        conn.ping()
    except redis.AuthenticationError as exc:
        conn.close()
        # Without a password Redis answers a HELLO/NOAUTH message that does not say "password".
        given = "password" in conn.connection_pool.connection_kwargs
        hint = "wrong password" if given else "a password is needed: redis://:PASSWORD@host"
        raise UserError(f"cannot reach Redis at {redacted_url(url)}: {hint} ({exc})") from None
    except redis.RedisError as exc:
        conn.close()
        raise UserError(f"cannot reach Redis at {redacted_url(url)}: {exc}") from None
    conn.close()
    return redis.Redis.from_url(url, retry=outage_retry())


def connect_for(explicit: str | None) -> redis.Redis:
    """``connect`` to ``--redis-url``, else ``BULKTAG_REDIS_URL``, else the default."""
    return connect(resolve_redis_url(explicit).url)


@contextmanager
def redis_for_command(
    explicit: str | None,
    *,
    allow_embedded: bool,
    force_embedded: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Iterator[RedisTarget]:
    """Yield the Redis to use; start (and afterwards stop) an embedded one if allowed."""
    target = resolve_redis_url(explicit, environ)
    if not force_embedded and (target.explicit or not allow_embedded or answers(target.url)):
        yield target
        return
    with EmbeddedRedis(data_dir(environ) / "redis", appendonly=True) as server:
        yield RedisTarget(server.url, explicit=False, embedded=True)
