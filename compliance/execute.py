"""One compliance run: discover, evaluate, submit a campaign for what is wrong, record it.

The same function serves the scheduled RQ job, ``bulktag schedule run-now`` and the tests.
The fixing is an ordinary campaign submitted through the producer's Python API, so the
workers tag it within the shared limits and record an outcome per resource; the run record
takes the campaign's counts when the campaign ends (``runs.refresh``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
import redis.asyncio as aioredis

from compliance import runs
from compliance.discovery import TargetDiscovery, discover
from compliance.evaluate import Evaluation, Finding, drift, evaluate
from compliance.policy import Policy, PolicyTarget
from producer.campaign import Row, TargetFields
from producer.submit import SubmitOptions, submit
from providers.credentials import CredentialsError
from providers.http import new_session
from providers.rules import Tag

log = logging.getLogger(__name__)


@dataclass
class TargetResult:
    target: PolicyTarget
    discovery: TargetDiscovery
    evaluation: Evaluation


@dataclass
class RunResult:
    """What a run found; ``record`` is None for a dry run (nothing is written)."""

    policy: Policy
    tick: datetime
    targets: list[TargetResult] = field(default_factory=list)
    record: runs.RunRecord | None = None
    skipped: bool = False  # this tick already had its run

    def to_fix(self) -> Iterator[tuple[PolicyTarget, Finding]]:
        for t in self.targets:
            for finding in t.evaluation.fixable:
                yield t.target, finding

    def findings(self) -> dict[str, str]:
        """``<target key>|<id>`` -> problems, for every non-compliant resource."""
        return {
            f"{t.target.key}|{f.resource_id}": "; ".join(f.problems)
            for t in self.targets
            for f in t.evaluation.findings
        }


async def discover_all(policy: Policy, aconn: aioredis.Redis) -> list[TargetResult]:
    """Every target at once: each has its own limiter, so they never slow each other."""
    async with new_session() as session:

        async def one(target: PolicyTarget) -> TargetResult:
            try:
                found = await discover(target, session, aconn)
            except CredentialsError as exc:
                found = TargetDiscovery(target, error=str(exc))
            return TargetResult(target, found, evaluate(found.resources, policy.rules))

        return list(await asyncio.gather(*(one(t) for t in policy.targets)))


def _rows(policy: Policy, result: RunResult) -> Iterator[Row]:
    # One tuple object per distinct fix: the producer checks each tag set once, by identity.
    shared: dict[tuple[Tag, ...], tuple[Tag, ...]] = {}
    for line, (target, finding) in enumerate(result.to_fix(), start=1):
        t = target.target
        fields = TargetFields(t.provider, t.profile, t.region, t.project, t.resource_type)
        tags = shared.setdefault(finding.fix, finding.fix)
        yield Row(f"compliance:{policy.name}", line, finding.resource_id, fields, tags)


async def run_policy(
    conn: redis.Redis,
    aconn: aioredis.Redis,
    policy: Policy,
    tick: datetime | None = None,
    *,
    dry_run: bool = False,
) -> RunResult:
    """Run ``policy`` for ``tick`` (default: now). A dry run only discovers and evaluates."""
    tick = (tick or datetime.now(UTC)).replace(microsecond=0)
    result = RunResult(policy, tick)
    if dry_run:
        result.targets = await discover_all(policy, aconn)
        return result
    run_id = runs.run_id_for(policy.name, tick)
    record = runs.RunRecord(run_id, policy.name, tick.timestamp(), started_at=time.time())
    if not runs.claim_run(conn, record):
        log.info("run already made for this tick", extra={"run": run_id})
        result.skipped = True
        result.record = runs.load_run(conn, run_id)
        return result
    try:
        result.targets = await discover_all(policy, aconn)
        _record(conn, policy, result, record)
    except BaseException:
        # Let a retry of this job claim the tick again rather than leave a run half made.
        runs.release_run(conn, record)
        raise
    result.record = record
    return result


def _record(conn: redis.Redis, policy: Policy, result: RunResult, record: runs.RunRecord) -> None:
    for t in result.targets:
        ev = t.evaluation
        record.found += ev.found
        record.compliant += ev.compliant
        record.noncompliant += len(ev.findings)
        record.unfixable += len(ev.unfixable)
        record.not_found += len(ev.not_found)
        record.calls += t.discovery.calls
        if t.discovery.error:
            record.errors.append(f"{t.target.key}: {t.discovery.error}")
    current = result.findings()
    previous = runs.previous_run(conn, policy.name, record.tick)
    drifted: dict[str, str] = {}
    if previous is not None:
        # Drift is measured against what the previous run left compliant; a target whose
        # discovery failed has no findings now, so it shows no drift (its error is recorded).
        drifted = drift(current, runs.still_open(conn, previous))
        record.drift = len(drifted)
    runs.save_findings(conn, record.run_id, current, drifted)
    runs.set_discovery_not_found(conn, record.run_id, record.not_found)
    fixes = list(_rows(policy, result))
    record.submitted = len(fixes)
    if fixes:
        submitted = submit(
            fixes,
            SubmitOptions(
                campaign_id=record.run_id,
                options={"compliance_policy": policy.name, "compliance_run": record.run_id},
            ),
            conn,
        )
        record.campaign_id = submitted.campaign_id
        record.state = runs.SUBMITTED
    else:
        all_failed = bool(result.targets) and all(t.discovery.error for t in result.targets)
        record.state = runs.FAILED if all_failed else runs.DONE
        record.finished_at = time.time()
    runs.save_run(conn, record)
    runs.trim_history(conn, policy.name)
    log.info(
        "compliance run recorded",
        extra={"run": record.run_id, "found": record.found, "compliant": record.compliant,
               "noncompliant": record.noncompliant, "submitted": record.submitted,
               "drift": record.drift, "errors": len(record.errors)},
    )  # fmt: skip
