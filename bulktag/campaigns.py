"""Reading campaigns back out of Redis: status, per-resource report, retry, wait.

The status is derived from the outcome counters the workers keep (``worker/outcomes.py``),
never from a second copy of them; the report streams the outcome hash with HSCAN, so a
million rows never sit in memory.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from typing import Any, TextIO

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from bulktag import store
from bulktag.errors import UserError
from producer.campaign import Target
from producer.submit import chunk_job, chunk_size_for
from worker.control import paused_key
from worker.outcomes import FINAL_STATUSES, Outcome, counts_key, forget, outcomes_key
from worker.reconcile import jobs_key

REPORT_COLUMNS = (
    "resource_id", "provider", "location", "resource_type", "status", "error_code",
    "error_message", "request_id", "attempts", "finished_at",
)  # fmt: skip
# `bulktag wait` exit statuses, for cron and CI.
WAIT_OK, WAIT_FAILURES, WAIT_CANCELLED, WAIT_TIMEOUT = 0, 1, 4, 124


def _campaign(conn: redis.Redis, campaign_id: str) -> store.CampaignRecord:
    record = store.load_campaign(conn, campaign_id)
    if record is None:
        raise UserError(f"no campaign {campaign_id!r} in this Redis")
    return record


def status(conn: redis.Redis, campaign_id: str) -> dict[str, Any]:
    """The campaign's state and progress per target: a stable JSON-ready document."""
    record = _campaign(conn, campaign_id)
    raw: dict[bytes, bytes] = conn.hgetall(counts_key(campaign_id))  # type: ignore[assignment]
    tally = {k.decode(): int(v) for k, v in raw.items()}
    paused_raw: dict[bytes, bytes] = conn.hgetall(paused_key(campaign_id))  # type: ignore[assignment]
    paused = {int(k): json.loads(v) for k, v in paused_raw.items()}
    targets = []
    for no, target in enumerate(record.targets):
        by_status = {s: tally.get(f"{no}:{s}", 0) for s in FINAL_STATUSES}
        prefix = f"{no}:code:"
        by_code = {k[len(prefix) :]: v for k, v in tally.items() if k.startswith(prefix)}
        done = sum(by_status.values())
        targets.append({
            "target": no,
            "provider": target["provider"],
            "profile": target["profile"],
            "region": target["region"],
            "project": target.get("project"),
            "resource_type": target["resource_type"],
            "queue": target.get("queue"),
            "resources": target["resources"],
            "done": done,
            "pending": target["resources"] - done,
            "by_status": by_status,
            "by_error_code": by_code,
            "paused": paused[no]["reason"] if no in paused else None,
        })  # fmt: skip
    done = tally.get("done", 0)
    state = record.state
    if state in (store.QUEUED,) and done:
        state = "running"
    if state not in (store.DONE, store.CANCELLED) and paused:
        state = store.PAUSED
    elapsed = max(time.time() - record.created_at, 1e-9)
    return {
        "campaign_id": campaign_id,
        "state": state,
        "resources": record.resources,
        "duplicates": record.duplicates,
        "done": done,
        "pending": record.resources - done,
        "by_status": {s: tally.get(f"all:{s}", 0) for s in FINAL_STATUSES},
        "created_at": record.created_at,
        "rate_per_second": round(done / elapsed, 2),
        "targets": targets,
    }


def campaign_ids(conn: redis.Redis) -> list[str]:
    raw: list[bytes] = conn.zrange(store.CAMPAIGNS, 0, -1)  # type: ignore[assignment]
    return [r.decode() for r in raw]


def outcomes(
    conn: redis.Redis, campaign_id: str, statuses: frozenset[str] | None = None
) -> Iterator[tuple[int, Outcome]]:
    """(target number, outcome) for every recorded resource, streamed with HSCAN."""
    for field, payload in conn.hscan_iter(outcomes_key(campaign_id), count=1000):
        target, _, rid = field.decode().partition("|")
        outcome = Outcome.from_payload(rid, payload)
        if statuses is None or outcome.status in statuses:
            yield int(target), outcome


def write_report(
    conn: redis.Redis,
    campaign_id: str,
    out: TextIO,
    fmt: str = "csv",
    statuses: frozenset[str] | None = None,
) -> int:
    """Write the per-resource outcomes; returns the number of rows."""
    record = _campaign(conn, campaign_id)
    rows = 0
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(REPORT_COLUMNS)
    if fmt == "json":
        out.write("[")
    for target_no, o in outcomes(conn, campaign_id, statuses):
        t = record.targets[target_no]
        values = (
            o.resource_id, t["provider"], t.get("project") or t["region"], t["resource_type"],
            o.status, o.code, o.message, o.request_id, o.attempts, o.finished_at,
        )  # fmt: skip
        if writer is not None:
            writer.writerow(["" if v is None else v for v in values])
        else:
            text = json.dumps(dict(zip(REPORT_COLUMNS, values, strict=True)))
            if fmt == "json":
                out.write(("," if rows else "") + "\n" + text)
            else:
                out.write(text + "\n")
        rows += 1
    if fmt == "json":
        out.write("\n]\n")
    return rows


def wait(conn: redis.Redis, campaign_id: str, timeout: float | None, poll: float = 1.0) -> int:
    """Block until the campaign ends; the exit status says how it went."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        doc = status(conn, campaign_id)
        if doc["state"] == store.CANCELLED and doc["pending"] == 0:
            return WAIT_CANCELLED
        if doc["pending"] == 0 and doc["state"] == store.DONE:
            bad = doc["by_status"]["failed"] + doc["by_status"]["invalid"]
            return WAIT_FAILURES if bad else WAIT_OK
        if deadline is not None and time.monotonic() >= deadline:
            return WAIT_TIMEOUT
        time.sleep(poll)


def report_text(doc: dict[str, Any]) -> str:
    """A plain-text status for terminals without rich output and for logs."""
    buf = io.StringIO()
    buf.write(
        f"{doc['campaign_id']}: {doc['state']}, {doc['done']:,}/{doc['resources']:,} done "
        f"({', '.join(f'{k} {v:,}' for k, v in doc['by_status'].items() if v)})\n"
    )
    for t in doc["targets"]:
        where = t["project"] or t["region"]
        codes = ", ".join(f"{k} {v}" for k, v in sorted(t["by_error_code"].items()))
        buf.write(
            f"  {t['provider']}:{where}:{t['resource_type']}: {t['done']:,}/{t['resources']:,}"
            + (f"; errors: {codes}" if codes else "")
            + (f"; PAUSED: {t['paused']}" if t["paused"] else "")
            + "\n"
        )
    return buf.getvalue()


def retry(conn: redis.Redis, campaign_id: str, statuses: frozenset[str]) -> tuple[int, int]:
    """Enqueue again the resources whose outcome is one of ``statuses``; (resources, jobs).

    Their outcomes are removed (with their counts) as the new chunks are enqueued; the tags
    come from the campaign's own chunk jobs, which are kept as long as the campaign."""
    record = _campaign(conn, campaign_id)
    wanted: dict[tuple[int, str], Outcome] = {
        (t, o.resource_id): o for t, o in outcomes(conn, campaign_id, statuses)
    }
    if not wanted:
        return 0, 0
    groups: dict[tuple[int, str, tuple[tuple[str, str], ...]], list[str]] = {}
    for job_id in sorted(m.decode() for m in conn.smembers(jobs_key(campaign_id))):  # type: ignore[union-attr]
        try:
            job = Job.fetch(job_id, connection=conn, serializer=JSONSerializer)
        except NoSuchJobError:
            continue
        kw = job.kwargs
        tags = tuple((k, v) for k, v in kw["tags"])
        key = (kw.get("target_no", 0), json.dumps(kw["target"], sort_keys=True), tags)
        for rid in kw["resource_ids"]:
            if (key[0], rid) in wanted:
                groups.setdefault(key, []).append(rid)
    found = sum(len(ids) for ids in groups.values())
    if found < len(wanted):
        raise UserError(
            f"{len(wanted) - found} of the resources to retry belong to chunk jobs that no "
            "longer exist (past their retention); submit them as a new campaign"
        )
    stamp = int(time.time())
    jobs = 0
    for n, ((target_no, target_json, tags), ids) in enumerate(sorted(groups.items())):
        target = Target.from_json(json.loads(target_json))
        size = chunk_size_for(target, None)
        for i in range(0, len(ids), size):
            part = list(dict.fromkeys(ids[i : i + size]))
            data = chunk_job(
                campaign_id, target_no, target, tags, part,
                f"bulktag-{campaign_id}-retry{stamp}-{n}-{i // size}", "retry",
            )  # fmt: skip
            forget(conn, campaign_id, target_no, [wanted[(target_no, rid)] for rid in part])
            pipe = conn.pipeline()
            Queue(target.queue_name, connection=conn, serializer=JSONSerializer).enqueue_many(
                [data], pipeline=pipe
            )
            pipe.sadd(jobs_key(campaign_id), data.job_id)
            pipe.execute()
            jobs += 1
    if record.state == store.DONE:
        conn.hset(store.campaign_key(campaign_id), mapping={"state": store.QUEUED})
    return found, jobs


def purge(conn: redis.Redis, campaign_id: str, force: bool = False) -> int:
    """Delete a campaign: its record, outcomes, counters and its RQ jobs. Returns jobs deleted."""
    doc = status(conn, campaign_id)
    if doc["state"] not in (store.DONE, store.CANCELLED) and not force:
        raise UserError(
            f"campaign {campaign_id!r} is {doc['state']}; cancel it first, or use --force"
        )
    job_ids = [m.decode() for m in conn.smembers(jobs_key(campaign_id))]  # type: ignore[union-attr]
    for job_id in job_ids:
        try:
            Job.fetch(job_id, connection=conn, serializer=JSONSerializer).delete()
        except NoSuchJobError:
            continue
    key = store.campaign_key(campaign_id)
    suffixes = ("", ":outcomes", ":counts", ":paused", ":parked", ":jobs")
    conn.delete(*(key + s for s in suffixes))
    conn.zrem(store.CAMPAIGNS, campaign_id)
    return len(job_ids)


def expired(conn: redis.Redis, older_than_s: float) -> list[str]:
    """Finished (done or cancelled) campaigns created more than ``older_than_s`` ago."""
    cutoff = time.time() - older_than_s
    raw: list[bytes] = conn.zrangebyscore(store.CAMPAIGNS, 0, cutoff)  # type: ignore[assignment]
    found = []
    for cid in (r.decode() for r in raw):
        state = conn.hget(store.campaign_key(cid), "state")
        if state in (store.DONE.encode(), store.CANCELLED.encode()):
            found.append(cid)
    return found
