"""Campaign controls the worker honours between calls: cancel, pause (campaign or target).

- campaign hash field ``state``: ``cancelled`` or ``paused`` stop new calls
- ``bulktag:campaign:<id>:paused``  hash: target number -> why that target is paused
- ``bulktag:campaign:<id>:parked``  set: ids of jobs holding a paused target's remaining work

Reading these costs a round trip, so a chunk looks at most every ``POLL_S`` seconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from bulktag.notify import EVENTS, STREAM_MAXLEN
from bulktag.store import campaign_key

POLL_S = 0.5
CANCELLED = "cancelled"
PAUSED = "paused"


def paused_key(campaign_id: str) -> str:
    return f"{campaign_key(campaign_id)}:paused"


def parked_key(campaign_id: str) -> str:
    return f"{campaign_key(campaign_id)}:parked"


@dataclass(frozen=True, slots=True)
class Verdict:
    cancelled: bool = False
    paused: str | None = None  # why, when paused

    @property
    def go(self) -> bool:
        return not self.cancelled and self.paused is None


class Controls:
    def __init__(self, conn: aioredis.Redis, campaign_id: str, target_no: int) -> None:
        self._conn = conn
        self._campaign = campaign_id
        self._target_no = target_no
        self._checked = 0.0
        self._verdict = Verdict()

    async def verdict(self, fresh: bool = False) -> Verdict:
        now = time.monotonic()
        if fresh or now - self._checked >= POLL_S or not self._verdict.go:
            self._checked = now
            state, reason = await self._read()
            if state == CANCELLED:
                self._verdict = Verdict(cancelled=True)
            elif state == PAUSED:
                self._verdict = Verdict(paused="campaign paused by operator")
            elif reason is not None:
                self._verdict = Verdict(paused=reason)
            else:
                self._verdict = Verdict()
        return self._verdict

    async def _read(self) -> tuple[str | None, str | None]:
        pipe = self._conn.pipeline(transaction=False)
        pipe.hget(campaign_key(self._campaign), "state")
        pipe.hget(paused_key(self._campaign), str(self._target_no))
        state, reason = await pipe.execute()
        text = json.loads(reason)["reason"] if reason else None
        return (state.decode() if state else None), text

    async def pause_target(self, reason: str, code: str | None) -> None:
        """Pause this target for everyone (first writer wins: its reason is kept)."""
        record = json.dumps({"reason": reason, "code": code, "at": time.time()})
        if await self._conn.hsetnx(paused_key(self._campaign), str(self._target_no), record):
            await self._conn.xadd(
                EVENTS,
                {"campaign": self._campaign, "event": "target_paused",
                 "target": str(self._target_no), "reason": reason, "at": f"{time.time():.3f}"},
                maxlen=STREAM_MAXLEN, approximate=True,
            )  # fmt: skip
        self._verdict = Verdict(paused=reason)
