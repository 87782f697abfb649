"""Provider calls and throttled answers per second, per (provider, region/project).

The limiter's own counters (``calls``, ``throttles`` in its state hash) only grow, and they
vanish with the state key after an idle hour, so "calls per second now" and "throttled in the
last five minutes" cannot be read from them. Workers add one cheap bucket per second here:

- ``bulktag:calls:<provider>:<location>:<minute>``  hash: ``c:<second>`` calls,
  ``t:<second>`` throttled answers (epoch seconds); each key expires after ``KEEP_S``
- ``bulktag:calls:locations``                       set of ``<provider>:<location>`` seen

Seconds come from the recording machine's clock: machines a second apart only move a count to
the neighbouring bucket, which no figure read here depends on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from bulktag.store import PREFIX

LOCATIONS_KEY = f"{PREFIX}:calls:locations"
KEEP_S = 11 * 60  # ten whole minutes are always readable
RECENT_S = 10  # "calls/s now" is the mean over this many finished seconds
WINDOW_S = 5 * 60  # "throttled in the last minutes"


class _Commands(Protocol):
    """A sync client or pipeline, or an asyncio pipeline (its commands only queue)."""

    def hincrby(self, name: str, key: str, amount: int = 1) -> Any: ...
    def expire(self, name: str, time: int) -> Any: ...
    def sadd(self, name: str, *values: str) -> Any: ...


def bucket_key(provider: str, location: str, minute: int) -> str:
    return f"{PREFIX}:calls:{provider}:{location}:{minute}"


def record(
    conn_or_pipeline: _Commands,
    provider: str,
    location: str,
    calls: int,
    throttled: int,
    now: float | None = None,
) -> None:
    """Count ``calls`` answered (``throttled`` of them throttling) in the current second.

    On a pipeline the commands are only queued: execute it (an asyncio pipeline with
    ``await pipe.execute()``). Four commands, one round trip when pipelined."""
    second = int(time.time() if now is None else now)
    key = bucket_key(provider, location, second // 60)
    if calls:
        conn_or_pipeline.hincrby(key, f"c:{second}", calls)
    if throttled:
        conn_or_pipeline.hincrby(key, f"t:{second}", throttled)
    conn_or_pipeline.expire(key, KEEP_S)
    conn_or_pipeline.sadd(LOCATIONS_KEY, f"{provider}:{location}")


class CallCounter:
    """One chunk's calls per second, counted in memory and written at most once a second
    (``due``), so that counting costs no round trip per call."""

    def __init__(self, provider: str, location: str) -> None:
        self.provider = provider
        self.location = location
        self._counts: dict[int, list[int]] = {}
        self._written = time.monotonic()

    def add(self, throttled: bool) -> None:
        counts = self._counts.setdefault(int(time.time()), [0, 0])
        counts[0] += 1
        counts[1] += throttled

    def due(self) -> bool:
        return bool(self._counts) and time.monotonic() - self._written >= 1.0

    def drain_into(self, pipeline: _Commands) -> None:
        """Queue every second counted so far on ``pipeline`` and start afresh."""
        for second, (calls, throttled) in self._counts.items():
            record(pipeline, self.provider, self.location, calls, throttled, now=second)
        self._counts = {}
        self._written = time.monotonic()


@dataclass(frozen=True, slots=True)
class CallWindow:
    provider: str
    location: str
    calls_per_s: float  # mean over the last RECENT_S finished seconds
    calls: int  # in the last WINDOW_S seconds
    throttled: int  # in the last WINDOW_S seconds
    # Calls per second for each of the last 60 finished seconds, oldest first.
    series: tuple[int, ...]


def read(conn: redis.Redis, now: float | None = None) -> dict[tuple[str, str], CallWindow]:
    """Every location's recent figures, in one round trip (plus one for the location set)."""
    now_s = int(time.time() if now is None else now)
    raw: set[bytes] = conn.smembers(LOCATIONS_KEY)  # type: ignore[assignment]
    places = sorted(tuple(m.decode().split(":", 1)) for m in raw)
    minutes = range((now_s - WINDOW_S) // 60, now_s // 60 + 1)
    pipe = conn.pipeline(transaction=False)
    for provider, location in places:
        for minute in minutes:
            pipe.hgetall(bucket_key(provider, location, minute))
    answers = iter(pipe.execute())
    found: dict[tuple[str, str], CallWindow] = {}
    for provider, location in places:
        calls: dict[int, int] = {}
        throttled: dict[int, int] = {}
        for _ in minutes:
            for field, value in next(answers).items():
                kind, _, second = field.decode().partition(":")
                (calls if kind == "c" else throttled)[int(second)] = int(value)
        # The current second is still being counted: every figure stops before it.
        start = now_s - WINDOW_S
        recent = sum(calls.get(s, 0) for s in range(now_s - RECENT_S, now_s))
        found[(provider, location)] = CallWindow(
            provider=provider,
            location=location,
            calls_per_s=round(recent / RECENT_S, 2),
            calls=sum(v for s, v in calls.items() if start <= s < now_s),
            throttled=sum(v for s, v in throttled.items() if start <= s < now_s),
            series=tuple(calls.get(s, 0) for s in range(now_s - 60, now_s)),
        )
    return found
