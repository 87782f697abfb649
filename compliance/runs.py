"""Policies, run records, history and drift in Redis (beside the campaigns, same prefix).

- ``bulktag:compliance:policies``            set of scheduled policy names
- ``bulktag:compliance:policy:<name>``       hash: ``policy`` (validated JSON), ``dry_run``,
                                             ``added_at``
- ``bulktag:compliance:version``             bumped on every add/remove: schedulers reload
- ``bulktag:compliance:runs:<name>``         sorted set: run id -> tick (epoch seconds)
- ``bulktag:compliance:run:<run id>``        hash: the run record (counts, state, campaign)
- ``bulktag:compliance:run:<run id>:findings``  hash: ``<target key>|<id>`` -> problems
- ``bulktag:compliance:run:<run id>:drift``     hash: the findings that are drift

A run's id is ``<policy>-<tick>`` and its campaign has the same id, so one tick can only
ever make one run and one campaign. Nothing here holds a secret: policies name profiles.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from bulktag import campaigns, store
from bulktag.errors import UserError
from compliance.policy import Policy
from worker.outcomes import TAGGED, Outcome, outcomes_key

PREFIX = f"{store.PREFIX}:compliance"
POLICIES = f"{PREFIX}:policies"
VERSION = f"{PREFIX}:version"
# Runs kept per policy; older ones (and their findings) are dropped when a run is recorded.
HISTORY = 200

# Run states
DISCOVERING = "discovering"
SUBMITTED = "submitted"  # a campaign is fixing the findings
DONE = "done"
FAILED = "failed"  # discovery failed for every target


def policy_key(name: str) -> str:
    return f"{PREFIX}:policy:{name}"


def runs_key(name: str) -> str:
    return f"{PREFIX}:runs:{name}"


def run_key(run_id: str) -> str:
    return f"{PREFIX}:run:{run_id}"


def tick_stamp(tick: datetime) -> str:
    """``20261125T020000Z``: a tick in run ids, campaign ids and RQ job ids."""
    return tick.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def run_id_for(policy: str, tick: datetime) -> str:
    return f"{policy}-{tick_stamp(tick)}"


# --- policies ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    policy: Policy
    dry_run: bool
    added_at: float


def save_policy(conn: redis.Redis, policy: Policy, dry_run: bool) -> None:
    pipe = conn.pipeline(transaction=True)
    pipe.hset(
        policy_key(policy.name),
        mapping={
            "policy": json.dumps(policy.to_json()),
            "dry_run": int(dry_run),
            "added_at": time.time(),
        },
    )
    pipe.sadd(POLICIES, policy.name)
    pipe.incr(VERSION)
    pipe.execute()


def remove_policy(conn: redis.Redis, name: str) -> bool:
    """Unschedule a policy; its run history stays (``compliance report`` still shows it)."""
    pipe = conn.pipeline(transaction=True)
    pipe.delete(policy_key(name))
    pipe.srem(POLICIES, name)
    pipe.incr(VERSION)
    deleted, _, _ = pipe.execute()
    return bool(deleted)


def load_policy(conn: redis.Redis, name: str) -> StoredPolicy | None:
    raw: dict[bytes, bytes] = conn.hgetall(policy_key(name))  # type: ignore[assignment]
    if not raw:
        return None
    return StoredPolicy(
        Policy.from_json(json.loads(raw[b"policy"])),
        raw.get(b"dry_run", b"0") == b"1",
        float(raw.get(b"added_at", b"0")),
    )


def policies(conn: redis.Redis) -> list[StoredPolicy]:
    members: set[bytes] = conn.smembers(POLICIES)  # type: ignore[assignment]
    names = sorted(n.decode() for n in members)
    found = [load_policy(conn, name) for name in names]
    return [p for p in found if p is not None]


def version(conn: redis.Redis) -> int:
    raw = conn.get(VERSION)
    return int(raw) if raw else 0


# --- runs -------------------------------------------------------------------------------


@dataclass
class RunRecord:
    run_id: str
    policy: str
    tick: float
    state: str = DISCOVERING
    started_at: float = 0.0
    finished_at: float | None = None
    found: int = 0
    compliant: int = 0
    noncompliant: int = 0
    unfixable: int = 0
    submitted: int = 0
    # Filled in from the campaign once it ends (not_found also counts what discovery missed).
    fixed: int = 0
    not_found: int = 0
    failed: int = 0
    pending: int = 0
    drift: int | None = None  # None: no previous run to compare with
    campaign_id: str | None = None
    calls: int = 0
    errors: list[str] = field(default_factory=list)

    def to_hash(self) -> dict[str, str]:
        return {k: json.dumps(v) for k, v in asdict(self).items()}

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes]) -> RunRecord:
        data = {k.decode(): json.loads(v) for k, v in raw.items()}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_run(conn: redis.Redis, run_id: str) -> RunRecord | None:
    raw: dict[bytes, bytes] = conn.hgetall(run_key(run_id))  # type: ignore[assignment]
    return RunRecord.from_hash(raw) if raw else None


def save_run(conn: redis.Redis, record: RunRecord) -> None:
    conn.hset(run_key(record.run_id), mapping=record.to_hash())  # type: ignore[arg-type]


def claim_run(conn: redis.Redis, record: RunRecord) -> bool:
    """Start a run, unless this tick already has one (a retried job, a second scheduler):
    the record's first field is written with HSETNX, atomically."""
    if not conn.hsetnx(run_key(record.run_id), "run_id", json.dumps(record.run_id)):
        return False
    pipe = conn.pipeline(transaction=True)
    pipe.hset(run_key(record.run_id), mapping=record.to_hash())  # type: ignore[arg-type]
    pipe.zadd(runs_key(record.policy), {record.run_id: record.tick})
    pipe.execute()
    return True


def release_run(conn: redis.Redis, record: RunRecord) -> None:
    """Forget a run that could not start (so that the job's retry may claim it again)."""
    pipe = conn.pipeline(transaction=True)
    pipe.delete(run_key(record.run_id))
    pipe.zrem(runs_key(record.policy), record.run_id)
    pipe.execute()


def run_ids(conn: redis.Redis, policy: str, last: int | None = None) -> list[str]:
    """Run ids of a policy, oldest first (only the ``last`` ones if given)."""
    start = -last if last else 0
    found: list[bytes] = conn.zrange(runs_key(policy), start, -1)  # type: ignore[assignment]
    return [r.decode() for r in found]


def previous_run(conn: redis.Redis, policy: str, tick: float) -> str | None:
    found: list[bytes] = conn.zrevrangebyscore(  # type: ignore[assignment]
        runs_key(policy), f"({tick}", "-inf", start=0, num=1
    )
    return found[0].decode() if found else None


def save_findings(
    conn: redis.Redis, run_id: str, findings: Mapping[str, str], drift: Mapping[str, str]
) -> None:
    for suffix, values in (("findings", findings), ("drift", drift)):
        items = list(values.items())
        for i in range(0, len(items), 1000):
            conn.hset(f"{run_key(run_id)}:{suffix}", mapping=dict(items[i : i + 1000]))


def findings(conn: redis.Redis, run_id: str, kind: str = "findings") -> dict[str, str]:
    raw: dict[bytes, bytes] = {}
    for k, v in conn.hscan_iter(f"{run_key(run_id)}:{kind}", count=1000):
        raw[k] = v
    return {k.decode(): v.decode() for k, v in raw.items()}


def trim_history(conn: redis.Redis, policy: str) -> None:
    old: list[bytes] = conn.zrange(runs_key(policy), 0, -(HISTORY + 1))  # type: ignore[assignment]
    for raw in old:
        rid = raw.decode()
        conn.delete(run_key(rid), f"{run_key(rid)}:findings", f"{run_key(rid)}:drift")
        conn.zrem(runs_key(policy), rid)


# --- what a run's campaign did ----------------------------------------------------------


def _target_numbers(doc: Mapping[str, Any]) -> dict[str, int]:
    """Campaign target number by policy target key (``provider:location:type``)."""
    numbers = {}
    for t in doc["targets"]:
        location = t.get("project") or t["region"]
        numbers[f"{t['provider']}:{location}:{t['resource_type']}"] = int(t["target"])
    return numbers


def refresh(conn: redis.Redis, record: RunRecord) -> RunRecord:
    """Take the campaign's outcome into the record once the campaign has ended."""
    if record.state != SUBMITTED or record.campaign_id is None:
        return record
    try:
        doc = campaigns.status(conn, record.campaign_id)
    except UserError:  # purged: the counts stay as they were last seen
        return record
    by_status = doc["by_status"]
    record.fixed = by_status.get("tagged", 0)
    record.pending = doc["pending"]
    record.failed = sum(by_status.get(s, 0) for s in ("failed", "invalid", "cancelled"))
    raw = conn.hget(run_key(record.run_id), "discovery_not_found")
    base_not_found = json.loads(raw or "0")
    record.not_found = base_not_found + by_status.get("not_found", 0)
    if doc["state"] in (store.DONE, store.CANCELLED):
        record.state = DONE
        record.finished_at = record.finished_at or time.time()
    save_run(conn, record)
    return record


def still_open(conn: redis.Redis, run_id: str) -> set[str]:
    """The findings of a run that its campaign did not fix: everything without a ``tagged``
    outcome (not yet done, failed, not fixable, or no campaign at all)."""
    open_now = set(findings(conn, run_id))
    record = load_run(conn, run_id)
    if record is None or record.campaign_id is None or not open_now:
        return open_now
    try:
        numbers = _target_numbers(campaigns.status(conn, record.campaign_id))
    except UserError:
        return open_now
    fields: list[tuple[str, str]] = []
    for key in open_now:
        target_key, _, rid = key.partition("|")
        no = numbers.get(target_key)
        if no is not None:
            fields.append((key, f"{no}|{rid}"))
    for i in range(0, len(fields), 1000):
        batch = fields[i : i + 1000]
        payloads = conn.hmget(outcomes_key(record.campaign_id), [f for _, f in batch])
        for (key, field_name), payload in zip(batch, payloads, strict=True):
            rid = field_name.partition("|")[2]
            if payload is not None and Outcome.from_payload(rid, payload).status == TAGGED:
                open_now.discard(key)
    return open_now


def history(conn: redis.Redis, policy: str, last: int | None = None) -> list[RunRecord]:
    records = [load_run(conn, rid) for rid in run_ids(conn, policy, last)]
    return [refresh(conn, r) for r in records if r is not None]


def set_discovery_not_found(conn: redis.Redis, run_id: str, count: int) -> None:
    conn.hset(run_key(run_id), "discovery_not_found", json.dumps(count))


def runs_with_drift(records: Iterable[RunRecord]) -> list[RunRecord]:
    return [r for r in records if r.drift]
