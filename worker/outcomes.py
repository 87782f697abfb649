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

_RECORD = """
local outcomes, counts = KEYS[1], KEYS[2]
local t = ARGV[1]
local recorded = 0
for i = 3, #ARGV, 4 do
  local rid, status, code, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('HSETNX', outcomes, t .. '|' .. rid, payload) == 1 then
    recorded = recorded + 1
    redis.call('HINCRBY', counts, t .. ':' .. status, 1)
    redis.call('HINCRBY', counts, 'all:' .. status, 1)
    if code ~= '' then
      redis.call('HINCRBY', counts, t .. ':code:' .. code, 1)
    end
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


class OutcomeStore:
    def __init__(self, conn: aioredis.Redis, campaign_id: str) -> None:
        self._conn = conn
        self._keys = [outcomes_key(campaign_id), counts_key(campaign_id)]
        self._script = conn.register_script(_RECORD)

    async def record(self, target_no: int, outcomes: Iterable[Outcome]) -> int:
        """Store final outcomes; returns how many were new (the rest already existed)."""
        args: list[str | int] = [target_no, PROGRESS_CHANNEL]
        for o in outcomes:
            args += [o.resource_id, o.status, o.code or "", o.payload()]
        if len(args) == 2:
            return 0
        return int(await self._script(keys=self._keys, args=args))

    async def pending(self, target_no: int, resource_ids: Sequence[str]) -> list[str]:
        """The ids that have no outcome yet (a re-run skips the others)."""
        if not resource_ids:
            return []
        fields = [f"{target_no}|{rid}" for rid in resource_ids]
        existing = await self._conn.hmget(self._keys[0], fields)
        return [rid for rid, value in zip(resource_ids, existing, strict=True) if value is None]
