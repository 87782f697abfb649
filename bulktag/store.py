"""Campaign records in Redis: the keys, and the few operations every component shares.

Layout (all under the ``bulktag:`` prefix, beside RQ's own ``rq:`` keys):

- ``bulktag:campaigns``               sorted set: campaign id -> creation time
- ``bulktag:campaign:<id>``           hash: state, fingerprint, totals, targets (JSON)

No secret is ever stored here: targets name a credentials *profile*, never a key.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import redis

PREFIX = "bulktag"
CAMPAIGNS = f"{PREFIX}:campaigns"
CAMPAIGN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

SUBMITTING = "submitting"
QUEUED = "queued"
DONE = "done"
CANCELLED = "cancelled"
PAUSED = "paused"


def campaign_key(campaign_id: str) -> str:
    return f"{PREFIX}:campaign:{campaign_id}"


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    campaign_id: str
    state: str
    fingerprint: str
    created_at: float
    resources: int
    duplicates: int
    jobs: int
    targets: list[dict[str, Any]]

    @classmethod
    def from_hash(cls, campaign_id: str, data: dict[bytes, bytes]) -> CampaignRecord:
        def text(name: str) -> str:
            return data.get(name.encode(), b"").decode()

        return cls(
            campaign_id=campaign_id,
            state=text("state"),
            fingerprint=text("fingerprint"),
            created_at=float(text("created_at") or 0),
            resources=int(text("resources") or 0),
            duplicates=int(text("duplicates") or 0),
            jobs=int(text("jobs") or 0),
            targets=json.loads(text("targets") or "[]"),
        )


def load_campaign(conn: redis.Redis, campaign_id: str) -> CampaignRecord | None:
    data: dict[bytes, bytes] = conn.hgetall(campaign_key(campaign_id))  # type: ignore[assignment]
    if not data:
        return None
    return CampaignRecord.from_hash(campaign_id, data)


def begin_campaign(
    conn: redis.Redis,
    campaign_id: str,
    fingerprint: str,
    resources: int,
    duplicates: int,
    jobs: int,
    targets: list[dict[str, Any]],
    options: dict[str, Any],
) -> None:
    """Record a campaign as submitting (idempotent: totals are set, never incremented)."""
    now = time.time()
    pipe = conn.pipeline(transaction=True)
    pipe.hsetnx(campaign_key(campaign_id), "created_at", now)
    pipe.hsetnx(campaign_key(campaign_id), "state", SUBMITTING)
    pipe.hset(
        campaign_key(campaign_id),
        mapping={
            "fingerprint": fingerprint,
            "resources": resources,
            "duplicates": duplicates,
            "jobs": jobs,
            "targets": json.dumps(targets),
            "options": json.dumps(options),
            "updated_at": now,
        },
    )
    pipe.zadd(CAMPAIGNS, {campaign_id: now}, nx=True)
    pipe.execute()


def mark_queued(conn: redis.Redis, campaign_id: str) -> None:
    """All jobs are in the queues. Only a submitting campaign moves to queued."""
    key = campaign_key(campaign_id)
    if conn.hget(key, "state") == SUBMITTING.encode():
        conn.hset(key, mapping={"state": QUEUED, "updated_at": time.time()})
        from bulktag.notify import emit

        emit(conn, campaign_id, "queued")
        # Workers may have finished every resource while jobs were still being enqueued.
        finish_if_complete(conn, campaign_id)


def finish_if_complete(conn: redis.Redis, campaign_id: str) -> bool:
    """Mark the campaign done once every resource has an outcome (idempotent)."""
    key = campaign_key(campaign_id)
    resources, state = conn.hmget(key, ["resources", "state"])
    done = conn.hget(f"{key}:counts", "done")
    if resources is None or done is None or int(done) < int(resources):
        return False
    # A cancelled campaign stays cancelled; one still submitting is finished by mark_queued.
    if state == SUBMITTING.encode():
        return True
    if state != CANCELLED.encode() and state != DONE.encode():
        conn.hset(key, mapping={"state": DONE, "finished_at": time.time()})
    from bulktag.notify import campaign_ended

    campaign_ended(conn, campaign_id, CANCELLED if state == CANCELLED.encode() else DONE)
    return True
