"""Finding the resources of a policy target and their tags, paged, within the shared limits.

Every listing call first takes a slot from the same shared limiter as the tagging workers
(``worker.limiter``: one per provider, profile and region/project), so a compliance run and
a campaign in the same region share its quota instead of each assuming it is alone. A
throttling answer slows every sharer down (``SharedLimiter.throttled``) and the call is
retried with backoff, as the workers do.

Calls per target (wire formats: providers.md §2.6, §3.2-3.3):

- Alibaba keys: ``ListKeys`` (``PageNumber``/``PageSize`` 100, the maximum), then the tags
  with ``ListTagResources``, 50 key ids a call (its ``ResourceId`` maximum) and its
  ``NextToken`` pages. ``ListResourceTags`` answers for one key a call, so 50 times the calls.
- Alibaba secrets: ``ListSecrets`` with ``FetchTags=true`` gives names and tags together.
- Huawei keys: ``POST /v1.0/{project_id}/kms/list-keys`` (``limit``/``marker``), then each
  key's ``GET /v1.0/{project_id}/kms/{key_id}/tags`` (Huawei has no batched read per key).
- An explicit id list skips the listing: Alibaba ``ListTagResources`` for its ids (an id
  without rows is taken as untagged; if it does not exist the campaign records it
  ``not_found``), Huawei each key's tags (404 ``KMS.0207``: not found).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
import redis.asyncio as aioredis

from compliance.evaluate import Found
from compliance.policy import PolicyTarget
from providers import credentials
from providers.aliyun.client import AliyunKmsClient
from providers.catalog import PROVIDERS
from providers.huawei.client import HuaweiKmsClient
from providers.results import CallResult, Outcome
from worker.limiter import LimitKey, SharedLimiter
from worker.listing import (
    ALIYUN_PAGE_SIZE,
    LimitedCaller,
    ListingFailed,
    aliyun_key_ids,
    check,
)

log = logging.getLogger(__name__)

ALIYUN_TAG_BATCH = 50  # ListTagResources ResourceId maximum (providers.md §2.6)
HUAWEI_PAGE_SIZE = 1000  # list-keys limit is 1-2000 (providers.md §3.3)


@dataclass
class TargetDiscovery:
    target: PolicyTarget
    resources: list[Found] = field(default_factory=list)
    calls: int = 0
    error: str | None = None


async def discover(
    target: PolicyTarget, session: aiohttp.ClientSession, conn: aioredis.Redis
) -> TargetDiscovery:
    """Every resource of ``target`` with its tags; on a call that fails for good, what was
    found so far is dropped and ``error`` says why (a partial listing would hide drift)."""
    t = target.target
    rules = PROVIDERS[t.provider]
    limiter = SharedLimiter(
        conn, LimitKey(t.provider, t.profile, t.location), rules.default_rate_per_second
    )
    call = LimitedCaller(limiter)
    outcome = TargetDiscovery(target)
    try:
        if t.provider == "aliyun":
            aliyun = AliyunKmsClient(session, credentials.load_aliyun(t.profile), t.region)
            if t.resource_type == "secret" and target.ids is None:
                outcome.resources = await _aliyun_secrets(aliyun, call)
            else:
                ids = list(target.ids) if target.ids is not None else None
                if ids is None:
                    ids = (
                        await aliyun_key_ids(lambda n: aliyun.list_keys(n, ALIYUN_PAGE_SIZE), call)
                        or []
                    )
                outcome.resources = await _aliyun_tags(aliyun, call, t.resource_type, ids)
        else:
            assert t.project is not None
            huawei = HuaweiKmsClient(
                session, credentials.load_huawei(t.profile), t.project, t.region
            )
            ids = list(target.ids) if target.ids is not None else await _huawei_ids(huawei, call)
            outcome.resources = await _huawei_tags(huawei, call, ids)
    except ListingFailed as exc:
        outcome.error = str(exc)
        outcome.resources = []
        log.warning("discovery failed", extra={"target": target.key, "error": str(exc)})
    outcome.calls = call.calls
    return outcome


async def _aliyun_tags(
    client: AliyunKmsClient, call: LimitedCaller, resource_type: str, ids: Sequence[str]
) -> list[Found]:
    async def batch(chunk: Sequence[str]) -> dict[str, dict[str, str]]:
        held: dict[str, dict[str, str]] = {rid: {} for rid in chunk}
        token: str | None = None
        while True:

            async def send(
                token: str | None = token,
            ) -> tuple[CallResult, tuple[list[tuple[str, str, str]], str | None]]:
                result, rows, following = await client.list_tag_resources(
                    resource_type, chunk, token
                )
                return result, (rows, following)

            result, (rows, token) = await call("ListTagResources", send)
            check("ListTagResources", result)
            for rid, key, value in rows:
                held.setdefault(rid, {})[key] = value
            if not token:
                return held

    chunks = [ids[i : i + ALIYUN_TAG_BATCH] for i in range(0, len(ids), ALIYUN_TAG_BATCH)]
    found: list[Found] = []
    for held in await asyncio.gather(*(batch(c) for c in chunks)):
        found += [Found(rid, tags) for rid, tags in held.items()]
    return found


async def _aliyun_secrets(client: AliyunKmsClient, call: LimitedCaller) -> list[Found]:
    def page(number: int) -> Callable[[], Awaitable[tuple[CallResult, tuple[list[Found], int]]]]:
        async def send() -> tuple[CallResult, tuple[list[Found], int]]:
            result, secrets, total = await client.list_secrets(number, ALIYUN_PAGE_SIZE)
            return result, ([Found(name, dict(tags)) for name, tags in secrets], total)

        return send

    result, (first, total) = await call("ListSecrets", page(1))
    check("ListSecrets", result)
    pages = math.ceil(total / ALIYUN_PAGE_SIZE)
    rest = await asyncio.gather(*(call("ListSecrets", page(n)) for n in range(2, pages + 1)))
    found = {f.resource_id: f for f in first}
    for result, (secrets, _) in rest:
        check("ListSecrets", result)
        found.update((f.resource_id, f) for f in secrets)
    return list(found.values())


async def _huawei_ids(client: HuaweiKmsClient, call: LimitedCaller) -> list[str]:
    ids: list[str] = []
    marker: str | None = None
    while True:

        async def send(
            marker: str | None = marker,
        ) -> tuple[CallResult, tuple[list[str], str | None]]:
            result, keys, following = await client.list_keys(HUAWEI_PAGE_SIZE, marker)
            return result, (keys, following)

        # The marker of a page comes from the previous one: these calls are sequential.
        result, (keys, marker) = await call("ListKeys", send)
        check("ListKeys", result)
        ids += keys
        if not marker:
            return list(dict.fromkeys(ids))


async def _huawei_tags(
    client: HuaweiKmsClient, call: LimitedCaller, ids: Sequence[str]
) -> list[Found]:
    async def one(key_id: str) -> Found:
        async def send() -> tuple[CallResult, list[tuple[str, str]]]:
            return await client.list_tags(key_id)

        result, tags = await call("ShowKmsTags", send)
        if result.outcome is Outcome.NOT_FOUND:
            return Found(key_id, None)
        check("ShowKmsTags", result)
        return Found(key_id, dict(tags))

    return list(await asyncio.gather(*(one(k) for k in ids)))
