"""What the dashboard shows, read from Redis: queues, workers, rate limits, campaigns, outcomes.

Plain synchronous reads on a ``redis.Redis`` client. RQ's Queue, registry and Worker classes
and ``bulktag.campaigns`` are synchronous, and re-implementing them on ``redis.asyncio`` would
copy their key layouts; the web app runs these functions in threads instead. Every function
costs a bounded number of round trips, whatever the size of a campaign: a million outcomes are
counted from the workers' counters, and a page of them is a few bounded HSCAN calls.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis
from rq import Queue, Worker
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.utils import utcparse

from bulktag import campaigns, store
from bulktag.errors import UserError
from dashboard.rates import RateTracker, eta_seconds
from providers.catalog import PROVIDERS
from worker import callstats
from worker.limiter import LIMITS_KEY, MIN_RATE, RECOVERY
from worker.outcomes import FINAL_STATUSES, Outcome, outcomes_key

# `bulktag worker` listens on this empty queue until it finds campaign queues.
PLACEHOLDER_QUEUE = "bulktag._"
CAMPAIGN_LIMIT = 50  # newest campaigns listed; older ones are reached by id
PAGE_MAX = 500
SCAN_BUDGET_S = 0.04  # a filtered page stops scanning here and hands back its cursor
SCAN_COUNT_MAX = 10_000
ENDED = (store.DONE, store.CANCELLED)


@dataclass(frozen=True, slots=True)
class QueueRow:
    name: str
    depth: int
    oldest_age_s: float | None
    started: int
    failed: int
    scheduled: int
    deferred: int


@dataclass
class Trackers:
    """Rates the dashboard derives from successive reads (see dashboard/rates.py)."""

    progress: RateTracker
    calls: RateTracker
    throttles: RateTracker  # a five-minute window: "throttled in the last minutes"
    lock: threading.Lock

    @classmethod
    def new(cls) -> Trackers:
        return cls(RateTracker(), RateTracker(), RateTracker(window_s=300), threading.Lock())


def _age(stamp: bytes | None, now: float) -> float | None:
    if not stamp:
        return None
    return round(max(0.0, now - utcparse(stamp.decode()).timestamp()), 1)


def queues(conn: redis.Redis) -> list[QueueRow]:
    """Every RQ queue: depth, age of the job at its head, and its registries' sizes.

    Registry sizes are ZCARDs: RQ's ``registry.count`` runs a cleanup first, a write that a
    monitor has no business doing (and that can take long on a big registry)."""
    found = sorted(Queue.all(connection=conn, serializer=JSONSerializer), key=lambda q: q.name)
    pipe = conn.pipeline(transaction=False)
    for q in found:
        pipe.llen(q.key)
        pipe.lindex(q.key, 0)
        for registry in (q.started_job_registry, q.failed_job_registry,
                         q.scheduled_job_registry, q.deferred_job_registry):  # fmt: skip
            pipe.zcard(registry.key)
    answers = pipe.execute()
    heads = [answers[i * 6 + 1] for i in range(len(found))]
    for head in heads:
        pipe.hget(Job.key_for(head.decode()), "enqueued_at") if head else pipe.echo("")
    stamps = pipe.execute()
    now = time.time()
    rows = []
    for i, q in enumerate(found):
        depth, _, started, failed, scheduled, deferred = answers[i * 6 : i * 6 + 6]
        if q.name == PLACEHOLDER_QUEUE and not (depth or started or failed):
            continue
        rows.append(QueueRow(q.name, depth, _age(stamps[i], now) if heads[i] else None,
                             started, failed, scheduled, deferred))  # fmt: skip
    return rows


def workers(conn: redis.Redis) -> list[dict[str, Any]]:
    now = time.time()
    rows = []
    for w in Worker.all(connection=conn, serializer=JSONSerializer):
        beat = w.last_heartbeat.timestamp() if w.last_heartbeat else None
        rows.append({
            "name": w.name,
            "host": w.hostname,
            "pid": w.pid,
            "state": w.get_state(),
            "current_job": w.get_current_job_id(),
            "last_heartbeat": beat,
            "heartbeat_age_s": round(now - beat, 1) if beat else None,
            "queues": len(w.queues),
            "jobs_done": w.successful_job_count,
            "jobs_failed": w.failed_job_count,
        })  # fmt: skip
    return sorted(rows, key=lambda r: (str(r["host"]), str(r["name"])))


def limits(conn: redis.Redis, trackers: Trackers) -> list[dict[str, Any]]:
    """Per (provider, region/project): configured limit, live adaptive rate, calls/s and
    throttled answers. Calls come from the workers' per-second counters (worker/callstats.py)
    when they publish them, otherwise from the limiter's running totals as this dashboard saw
    them move."""
    overrides: dict[bytes, bytes] = conn.hgetall(LIMITS_KEY)  # type: ignore[assignment]
    keys = sorted(conn.scan_iter(f"{store.PREFIX}:limiter:*", count=1000))
    pipe = conn.pipeline(transaction=False)
    pipe.time()
    for key in keys:
        pipe.hmget(key, ["rate", "updated", "calls", "throttles"])
    server_time, *states = pipe.execute()
    now_us = server_time[0] * 1_000_000 + server_time[1]
    windows = callstats.read(conn)
    places: dict[tuple[str, str], dict[str, Any]] = {}

    def place(provider: str, location: str) -> dict[str, Any]:
        if (provider, location) not in places:
            default = PROVIDERS[provider].default_rate_per_second if provider in PROVIDERS else 0
            configured = float(overrides.get(f"{provider}:{location}".encode(), default))
            places[(provider, location)] = {
                "provider": provider, "location": location, "configured": configured,
                "overridden": f"{provider}:{location}".encode() in overrides,
                "rate": configured, "profiles": [], "calls_total": 0, "throttles_total": 0,
            }  # fmt: skip
        return places[(provider, location)]

    for key, (rate, updated, calls, throttles) in zip(keys, states, strict=True):
        name = key.decode().removeprefix(f"{store.PREFIX}:limiter:")
        provider, profile, location, _group = name.split(":", 3)
        row = place(provider, location)
        row["profiles"].append(profile)
        if rate is not None:
            # The script recovers the rate lazily, on the next call: apply it as it would.
            configured = row["configured"]
            idle_s = (now_us - int(updated or now_us)) / 1_000_000
            live = min(configured, float(rate) + RECOVERY * configured * idle_s)
            row["rate"] = min(row["rate"], max(MIN_RATE, live))
        row["calls_total"] += int(calls or 0)
        row["throttles_total"] += int(throttles or 0)
    for field in overrides:
        provider, _, location = field.decode().partition(":")
        place(provider, location)
    for provider, location in windows:
        place(provider, location)
    rows = []
    for (provider, location), row in sorted(places.items()):
        tag = f"{provider}:{location}"
        with trackers.lock:
            calls_rate = trackers.calls.observe(tag, row["calls_total"])
            throttled = trackers.throttles.delta(tag, row["throttles_total"])
        window = windows.get((provider, location))
        if window is not None:
            row.update(
                calls_per_s=window.calls_per_s, throttled_recent=window.throttled,
                calls_recent=window.calls, series=list(window.series), source="workers",
            )  # fmt: skip
        else:
            row.update(
                calls_per_s=None if calls_rate is None else round(calls_rate, 2),
                throttled_recent=int(throttled), calls_recent=None, series=None,
                source="limiter",
            )  # fmt: skip
        row["rate"] = round(row["rate"], 2)
        rows.append(row)
    return rows


def _with_rates(doc: dict[str, Any], trackers: Trackers) -> dict[str, Any]:
    """The status document plus the current rate and an ETA, for the campaign and each
    target."""
    cid = doc["campaign_id"]
    ended = doc["state"] in ENDED
    with trackers.lock:
        rate = trackers.progress.observe(f"{cid}", doc["done"])
        for t in doc["targets"]:
            t_rate = trackers.progress.observe(f"{cid}:{t['target']}", t["done"])
            t["rate_per_second_now"] = None if t_rate is None else round(t_rate, 2)
            t["eta_s"] = None if ended or t["paused"] else eta_seconds(t["pending"], t_rate)
    if rate is None and doc["state"] == "running":
        rate = doc["rate_per_second"]  # until a second read gives a slope: the average
    doc["rate_per_second_now"] = None if rate is None else round(rate, 2)
    doc["eta_s"] = (
        None if ended or doc["state"] == store.PAUSED else eta_seconds(doc["pending"], rate)
    )
    return doc


def campaign_list(
    conn: redis.Redis, trackers: Trackers, limit: int = CAMPAIGN_LIMIT
) -> list[dict[str, Any]]:
    """The newest campaigns, newest first, each a status document with rates."""
    raw: list[bytes] = conn.zrevrange(store.CAMPAIGNS, 0, limit - 1)  # type: ignore[assignment]
    docs = []
    for cid in (r.decode() for r in raw):
        try:
            docs.append(_with_rates(campaigns.status(conn, cid), trackers))
        except UserError:
            continue  # purged between the two reads
    return docs


def campaign_detail(conn: redis.Redis, campaign_id: str, trackers: Trackers) -> dict[str, Any]:
    """One campaign's status document with rates; raises UserError if there is none."""
    return _with_rates(campaigns.status(conn, campaign_id), trackers)


def campaign_count(conn: redis.Redis) -> int:
    return int(conn.zcard(store.CAMPAIGNS))


_GLOB = re.compile(r"([*?\[\]\\])")


def _row(target_no: int, outcome: Outcome, targets: list[dict[str, Any]]) -> dict[str, Any]:
    t = targets[target_no] if target_no < len(targets) else {}
    values = (
        outcome.resource_id, t.get("provider"), t.get("project") or t.get("region"),
        t.get("resource_type"), outcome.status, outcome.code, outcome.message,
        outcome.request_id, outcome.attempts, outcome.finished_at,
    )  # fmt: skip
    return {"target": target_no, **dict(zip(campaigns.REPORT_COLUMNS, values, strict=True))}


@dataclass(frozen=True, slots=True)
class OutcomePage:
    rows: list[dict[str, Any]]
    cursor: int  # HSCAN cursor for the next page; 0 when the hash has been walked through
    scanned: int  # fields looked at for this page (a filter may skip most of them)


def outcome_page(
    conn: redis.Redis,
    campaign_id: str,
    *,
    cursor: int = 0,
    limit: int = 50,
    status: str | None = None,
    search: str | None = None,
    budget_s: float = SCAN_BUDGET_S,
) -> OutcomePage:
    """A page of the per-resource outcomes, optionally of one status or matching an id.

    The HSCAN cursor is the pager: the server keeps no state and a page costs the same with a
    thousand outcomes or a million. A page may hold a few more rows than ``limit`` (HSCAN
    answers whole buckets) and fewer when the time budget runs out first: then ``cursor``
    goes on from there. A search shows the exact id at once (HMGET, one field per target),
    then every id starting with it (HSCAN MATCH)."""
    record = store.load_campaign(conn, campaign_id)
    if record is None:
        raise UserError(f"no campaign {campaign_id!r} in this Redis")
    if status is not None and status not in FINAL_STATUSES:
        raise UserError(f"unknown status {status!r}; use one of {', '.join(FINAL_STATUSES)}")
    key = outcomes_key(campaign_id)
    rows: list[dict[str, Any]] = []
    exact: set[bytes] = set()
    wanted = None if status is None else json.dumps(status).encode()

    def keep(field: bytes, payload: bytes) -> None:
        # The payload is a JSON list that starts with the status: compare before decoding.
        if wanted is not None and not payload[1:].startswith(wanted):
            return
        target, _, rid = field.decode().partition("|")
        rows.append(_row(int(target), Outcome.from_payload(rid, payload), record.targets))

    if search:
        exact = {f"{n}|{search}".encode() for n in range(len(record.targets))}
        if cursor == 0:
            fields = sorted(exact)
            values = cast(list[bytes | None], conn.hmget(key, fields))
            for field, payload in zip(fields, values, strict=True):
                if payload is not None:
                    keep(field, payload)
    match = "*|" + _GLOB.sub(r"\\\1", search) + "*" if search else None
    started = time.monotonic()
    scanned = 0
    count = max(limit, 10)
    while True:
        answer = conn.hscan(key, cursor, match=match, count=count)
        cursor, found = cast(tuple[int, dict[bytes, bytes]], answer)
        before = len(rows)
        for field, payload in found.items():
            if field not in exact:
                keep(field, payload)
        scanned += len(found) if match is None else count
        if cursor == 0 or len(rows) >= limit or time.monotonic() - started >= budget_s:
            return OutcomePage(rows, int(cursor), scanned)
        # A selective filter keeps few rows per bucket: look at more buckets per call.
        kept = (len(rows) - before) / max(len(found) if match is None else count, 1)
        count = int(min(SCAN_COUNT_MAX, (limit - len(rows)) / max(kept, 0.01)))


def overview(conn: redis.Redis, trackers: Trackers) -> dict[str, Any]:
    """Everything the main page shows, in one answer."""
    queue_rows = [asdict(q) for q in queues(conn)]
    worker_rows = workers(conn)
    limit_rows = limits(conn, trackers)
    campaign_docs = campaign_list(conn, trackers)
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "queues": queue_rows,
        "workers": worker_rows,
        "limits": limit_rows,
        "campaigns": campaign_docs,
        "campaigns_total": campaign_count(conn),
        "totals": {
            "queued_jobs": sum(q["depth"] for q in queue_rows),
            "workers": len(worker_rows),
            "busy_workers": sum(1 for w in worker_rows if w["state"] == "busy"),
            "calls_per_s": round(sum(r["calls_per_s"] or 0 for r in limit_rows), 2),
            "active_campaigns": sum(1 for c in campaign_docs if c["state"] not in ENDED),
        },
    }
