"""Per-resource outcomes and their counters, written together in one Lua call.

- ``bulktag:campaign:<id>:outcomes``  hash: ``<target_no>|<resource_id>`` -> JSON record
- ``bulktag:campaign:<id>:counts``    hash: ``<target_no>:<status>``, ``<target_no>:code:<code>``,
  ``all:<status>``, ``done``

A record is written with HSETNX and the counters move only when it was new, inside the same
script: a chunk that runs again (after a crash, a retry, a resume) can never count a
resource twice, and counters always equal the records.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis

from bulktag.store import campaign_key

TAGGED = "tagged"
NOT_FOUND = "not_found"
INVALID = "invalid"
FAILED = "failed"
CANCELLED = "cancelled"
FINAL_STATUSES = (TAGGED, NOT_FOUND, INVALID, FAILED, CANCELLED)

PROGRESS_CHANNEL = "bulktag:progress"

# ARGV[3] is a JSON list of groups, {status, code, payload, {resource ids}}: the resources of
# one call share one answer, so each payload is encoded once and each counter moves once per
# group, not once per resource (ceiling benchmark in docs/benchmarks.md).
_RECORD = """
local outcomes, counts = KEYS[1], KEYS[2]
local t = ARGV[1]
local recorded = 0
for _, group in ipairs(cjson.decode(ARGV[3])) do
  local status, code, payload, rids = group[1], group[2], group[3], group[4]
  local n = 0
  for _, rid in ipairs(rids) do
    n = n + redis.call('HSETNX', outcomes, t .. '|' .. rid, payload)
  end
  if n > 0 then
    redis.call('HINCRBY', counts, t .. ':' .. status, n)
    redis.call('HINCRBY', counts, 'all:' .. status, n)
    if code ~= '' then
      redis.call('HINCRBY', counts, t .. ':code:' .. code, n)
    end
    recorded = recorded + n
  end
end
if recorded > 0 then
  redis.call('HINCRBY', counts, 'done', recorded)
  redis.call('PUBLISH', ARGV[2], t .. ' ' .. recorded)
end
return recorded
"""


# Undo outcomes (for a retry), with their counters, only if each still has the status the
# caller saw: counters stay equal to the records.
_FORGET = """
local outcomes, counts = KEYS[1], KEYS[2]
local t = ARGV[1]
local forgotten = 0
for i = 2, #ARGV, 3 do
  local rid, status, code = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local field = t .. '|' .. rid
  local payload = redis.call('HGET', outcomes, field)
  if payload and cjson.decode(payload)[1] == status then
    redis.call('HDEL', outcomes, field)
    redis.call('HINCRBY', counts, t .. ':' .. status, -1)
    redis.call('HINCRBY', counts, 'all:' .. status, -1)
    if code ~= '' then
      redis.call('HINCRBY', counts, t .. ':code:' .. code, -1)
    end
    redis.call('HINCRBY', counts, 'done', -1)
    forgotten = forgotten + 1
  end
end
return forgotten
"""


def forget(conn: redis.Redis, campaign_id: str, target_no: int, items: list[Outcome]) -> int:
    """Remove these outcomes and their counts (they will be done again)."""
    args: list[str | int] = [target_no]
    for o in items:
        args += [o.resource_id, o.status, o.code or ""]
    script = conn.register_script(_FORGET)
    return int(script(keys=[outcomes_key(campaign_id), counts_key(campaign_id)], args=args))


def outcomes_key(campaign_id: str) -> str:
    return f"{campaign_key(campaign_id)}:outcomes"


def counts_key(campaign_id: str) -> str:
    return f"{campaign_key(campaign_id)}:counts"


@dataclass(frozen=True, slots=True)
class Outcome:
    resource_id: str
    status: str
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    attempts: int = 1
    finished_at: float = 0.0

    def payload(self) -> str:
        # Compact positional form: a million of these must stay small in Redis.
        return json.dumps(
            [self.status, self.code, self.message, self.request_id, self.attempts,
             round(self.finished_at or time.time(), 3)],
            separators=(",", ":"),
        )  # fmt: skip

    @classmethod
    def from_payload(cls, resource_id: str, payload: bytes | str) -> Outcome:
        status, code, message, request_id, attempts, finished_at = json.loads(payload)
        return cls(resource_id, status, code, message, request_id, attempts, finished_at)


# Outcomes wait in the chunk's memory until this many are ready or the oldest is this old,
# then go to Redis in one script call. A chunk killed before a flush loses nothing it may
# not: its resources have no outcome yet, so the re-run tags them again (tagging is
# idempotent) and records them once.
FLUSH_RESOURCES = 1000
FLUSH_AFTER_S = 0.5

_GroupKey = tuple[str, str | None, str | None, str | None, int, float]


class OutcomeStore:
    """Buffers one chunk's final outcomes and writes them in batches; ``recorded`` counts the
    ones that were new (the others already had an outcome)."""

    def __init__(self, conn: aioredis.Redis, campaign_id: str) -> None:
        self._conn = conn
        self._keys = [outcomes_key(campaign_id), counts_key(campaign_id)]
        self._script = conn.register_script(_RECORD)
        self._buffer: dict[int, dict[_GroupKey, list[str]]] = {}
        self._buffered = 0
        self._oldest = 0.0
        self.recorded = 0

    async def record(self, target_no: int, outcomes: Iterable[Outcome]) -> None:
        """Queue final outcomes for writing; written at once when the buffer is due."""
        groups = self._buffer.setdefault(target_no, {})
        for o in outcomes:
            key = (o.status, o.code, o.message, o.request_id, o.attempts, o.finished_at)
            groups.setdefault(key, []).append(o.resource_id)
            if not self._buffered:
                self._oldest = time.monotonic()
            self._buffered += 1
        if self._buffered >= FLUSH_RESOURCES or (
            self._buffered and time.monotonic() - self._oldest >= FLUSH_AFTER_S
        ):
            await self.flush()

    async def flush(self) -> int:
        """Write everything buffered; returns how many outcomes were new."""
        buffer, self._buffer, self._buffered = self._buffer, {}, 0
        new = 0
        for target_no, groups in buffer.items():
            encoded = json.dumps(
                [[key[0], key[1] or "", Outcome(rids[0], *key).payload(), rids]
                 for key, rids in groups.items()],
                separators=(",", ":"),
            )  # fmt: skip
            new += int(
                await self._script(keys=self._keys, args=[target_no, PROGRESS_CHANNEL, encoded])
            )
        self.recorded += new
        return new

    async def pending(self, target_no: int, resource_ids: Sequence[str]) -> list[str]:
        """The ids that have no outcome yet (a re-run skips the others)."""
        if not resource_ids:
            return []
        fields = [f"{target_no}|{rid}" for rid in resource_ids]
        existing = await self._conn.hmget(self._keys[0], fields)
        return [rid for rid, value in zip(resource_ids, existing, strict=True) if value is None]
