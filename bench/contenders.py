"""What a user would run instead of bulktag, written as they would write it (bench/compare.py).

Each ``run_*`` takes the spec compare.py wrote and returns (finished, when its clock started
as epoch seconds, seconds of work). They
all get the same ids, endpoint and configured rate; none but bulktag shares a limiter
between threads or processes, because none of the tools users pick has one (peers.md §1.3).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis

HUAWEI_REGION = "cn-north-4"
BATCH = 50
# The SDK's own retry, switched on as its docs show: throttling and 5xx codes, exponential
# backoff with full jitter from 200 ms (providers.md §4), 5 attempts.
ALIYUN_RETRY_CODES = [
    "Rejected.Throttling", "Throttling", "Throttling.User", "Throttling.Api",
    "ServiceUnavailableTemporary", "InternalFailure", "BadGateway", "GatewayTimeout",
]  # fmt: skip
NOT_FOUND = "InvalidResourceId.NotFound"


def chunks(ids: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


class Deadline:
    def __init__(self, budget_s: float) -> None:
        self.at = time.monotonic() + budget_s
        self.hit = False

    def passed(self) -> bool:
        self.hit = self.hit or time.monotonic() >= self.at
        return self.hit


# --- the official SDKs, as a user script calls them -----------------------------------------


def aliyun_sdk(endpoint: str, region: str, retry: bool = True) -> Any:
    from alibabacloud_kms20160120.client import Client
    from alibabacloud_tea_openapi import models as open_api_models
    from darabonba.policy.retry import RetryOptions

    config = open_api_models.Config(
        access_key_id="testid", access_key_secret="testsecret",
        endpoint=endpoint.removeprefix("http://"), protocol="http", region_id=region,
    )  # fmt: skip
    if retry:
        config.retry_options = RetryOptions({
            "retryable": True,
            "retryCondition": [{
                "maxAttempts": 5, "errorCode": ALIYUN_RETRY_CODES,
                "backoff": {"policy": "ExponentialWithFullJitter", "period": 200, "cap": 20000},
            }],
        })  # fmt: skip
    return Client(config)


def aliyun_tag(client: Any, region: str, ids: list[str], value: str) -> str | None:
    """One TagResources call; the error code, or None."""
    from alibabacloud_kms20160120 import models

    request = models.TagResourcesRequest(
        region_id=region, resource_type="key", resource_id=ids,
        tag=[models.TagResourcesRequestTag(key="bench", value=value)],
    )  # fmt: skip
    try:
        client.tag_resources(request)
        return None
    except Exception as exc:  # what a script does: note the code and go on
        return str(getattr(exc, "code", type(exc).__name__))


def aliyun_batch_with_fallback(client: Any, region: str, ids: list[str], value: str) -> None:
    """A careful script: when a batch fails on a missing id, tag its ids one by one."""
    if aliyun_tag(client, region, ids, value) == NOT_FOUND:
        for rid in ids:
            aliyun_tag(client, region, [rid], value)


def huawei_sdk(endpoint: str, project: str) -> Any:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkkms.v2 import KmsClient

    credentials = BasicCredentials("testak", "testsk", project_id=project)
    return KmsClient.new_builder().with_credentials(credentials).with_endpoint(endpoint).build()


def huawei_tag(client: Any, key_id: str, value: str) -> None:
    from huaweicloudsdkcore.retry.backoff_strategy import BackoffStrategies
    from huaweicloudsdkkms.v2 import CreateKmsTagRequest, CreateKmsTagRequestBody, TagItem

    body = CreateKmsTagRequestBody(tag=TagItem(key="bench", value=value))
    invoker = client.create_kms_tag_invoker(CreateKmsTagRequest(key_id=key_id, body=body))

    def retryable(_response: Any, exc: Any) -> bool:  # throttled or a gateway failure
        return exc is not None and getattr(exc, "status_code", 0) in (429, 500, 502, 503, 504)

    with contextlib.suppress(Exception):  # the script notes failures and goes on
        invoker.with_retry(retryable, 5, BackoffStrategies.EQUAL_JITTER).invoke()


def sdk_jobs(spec: dict[str, Any]) -> list[Callable[[], None]]:
    """One job per call, region after region, as a script loops over its input."""
    scenario, endpoint, value = spec["scenario"], spec["endpoint"], spec["tag_value"]
    jobs: list[Callable[[], None]] = []
    local = threading.local()

    def client_for(loc: str) -> Any:  # one client per thread and region, as SDKs advise
        cache = local.__dict__.setdefault("clients", {})
        if loc not in cache:
            cache[loc] = (
                aliyun_sdk(endpoint, loc) if scenario["provider"] == "aliyun"
                else huawei_sdk(endpoint, loc)
            )  # fmt: skip
        return cache[loc]

    for loc, ids in spec["ids"].items():
        if scenario["provider"] == "aliyun":
            for batch in chunks(ids, BATCH):
                jobs.append(lambda loc=loc, batch=batch: aliyun_batch_with_fallback(
                    client_for(loc), loc, batch, value))  # fmt: skip
        else:
            for rid in ids:
                jobs.append(lambda loc=loc, rid=rid: huawei_tag(client_for(loc), rid, value))
    return jobs


def run_sdk(spec: dict[str, Any], threads: int) -> tuple[bool, float, float]:
    deadline = Deadline(spec["budget_s"])
    jobs = sdk_jobs(spec)
    started = time.time()

    def guarded(job: Callable[[], None]) -> None:
        if not deadline.passed():
            job()

    if threads == 1:
        for job in jobs:
            guarded(job)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(guarded, jobs))
    return not deadline.hit, started, time.time() - started


# --- a Cloud Custodian-style runner ---------------------------------------------------------


def c7n_retry(call: Callable[[], str | None], max_attempts: int = 8) -> str | None:
    """c7n.utils.get_retry: retry throttling codes with delays 1, 2, 4... s, jitter taking up
    to 20 % off each (peers.md §1.3)."""
    delay = 1.0
    code = call()
    for _ in range(max_attempts - 1):
        if code is None or code == NOT_FOUND or code not in ALIYUN_RETRY_CODES:
            return code
        time.sleep(delay * (1 - random.uniform(0, 0.2)))
        delay *= 2
        code = call()
    return code


def _c7n_region(endpoint: str, provider: str, loc: str, ids: list[str], value: str,
                budget_at: float) -> None:  # fmt: skip
    if provider == "aliyun":
        client = aliyun_sdk(endpoint, loc, retry=False)

        def tag(batch: list[str]) -> None:
            if time.time() < budget_at:
                # A batch with a missing id fails and is dropped (peers.md §1.4).
                c7n_retry(lambda: aliyun_tag(client, loc, batch, value))

        batches = list(chunks(ids, BATCH))
    else:
        client = huawei_sdk(endpoint, loc)

        def tag(batch: list[str]) -> None:
            if time.time() < budget_at:
                huawei_tag(client, batch[0], value)

        batches = [[rid] for rid in ids]
    with ThreadPoolExecutor(2) as pool:  # c7n's tag actions: concurrency 2 (peers.md §1.2)
        list(pool.map(tag, batches))


def run_custodian(spec: dict[str, Any]) -> tuple[bool, float, float]:
    """c7n-org style: a process per region (account x region), each with its own backoff."""
    budget_at = time.time() + spec["budget_s"]
    started = time.time()
    procs = [
        multiprocessing.get_context("fork").Process(
            target=_c7n_region,
            args=(
                spec["endpoint"],
                spec["scenario"]["provider"],
                loc,
                ids,
                spec["tag_value"],
                budget_at,
            ),
        )
        for loc, ids in spec["ids"].items()
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return time.time() < budget_at, started, time.time() - started


# --- one call per resource on asyncio ---------------------------------------------------------


async def _async_single(spec: dict[str, Any], deadline: Deadline) -> None:
    from providers.aliyun.client import AliyunKmsClient
    from providers.credentials import AliyunCredentials, HuaweiCredentials
    from providers.http import new_session
    from providers.huawei.client import HuaweiKmsClient
    from providers.results import CallResult

    scenario, endpoint, value = spec["scenario"], spec["endpoint"], spec["tag_value"]
    slots = asyncio.Semaphore(32)
    async with new_session() as session:

        def caller(loc: str) -> Callable[[str], Any]:
            if scenario["provider"] == "aliyun":
                creds = AliyunCredentials("testid", "testsecret", endpoint=endpoint)
                ali = AliyunKmsClient(session, creds, loc)
                return lambda rid: ali.tag_resources("key", [rid], [("bench", value)])
            hw = HuaweiKmsClient(session, HuaweiCredentials("testak", "testsk", endpoint=endpoint),
                                 loc, HUAWEI_REGION)  # fmt: skip
            return lambda rid: hw.tag_key(rid, [("bench", value)])

        async def one(call: Callable[[str], Any], rid: str) -> None:
            async with slots:
                for attempt in range(6):
                    if deadline.passed():
                        return
                    result: CallResult = await call(rid)
                    if not result.outcome.retryable:
                        return
                    await asyncio.sleep(random.uniform(0, min(20.0, 0.2 * 2**attempt)))

        calls = {loc: caller(loc) for loc in spec["ids"]}
        await asyncio.gather(*(one(calls[loc], rid) for loc, ids in spec["ids"].items()
                               for rid in ids))  # fmt: skip


def run_async_single(spec: dict[str, Any]) -> tuple[bool, float, float]:
    deadline = Deadline(spec["budget_s"])
    started = time.time()
    asyncio.run(_async_single(spec, deadline))
    return not deadline.hit, started, time.time() - started


# --- bulktag ------------------------------------------------------------------------------


def run_bulktag(spec: dict[str, Any]) -> tuple[bool, float, float]:
    """Workers already running, as in production; the clock runs from the submit to the last
    outcome. The private Redis and the workers are children of this process, so their CPU
    time and memory are counted."""
    from bulktag import control
    from bulktag.embedded_redis import EmbeddedRedis
    from producer.campaign import IdBlock, TargetFields
    from producer.submit import SubmitOptions, submit
    from worker.cli import spawn
    from worker.limiter import set_limit
    from worker.outcomes import counts_key

    scenario, endpoint = spec["scenario"], spec["endpoint"]
    provider = scenario["provider"]
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        url = server.start()
        creds = Path(tmp) / "credentials.toml"
        creds.write_text(
            f'[profile.bench.aliyun]\naccess_key_id = "testid"\naccess_key_secret = "testsecret"\n'
            f'endpoint = "{endpoint}"\n'
            f'[profile.bench.huawei]\nak = "testak"\nsk = "testsk"\nendpoint = "{endpoint}"\n'
        )
        conn = redis.Redis.from_url(url)
        for loc in spec["ids"]:
            set_limit(conn, provider, loc, scenario["configured_rate"])
        workers = spawn(url, spec["workers"], str(creds))
        try:
            while len(conn.keys("rq:worker:*")) < spec["workers"]:
                time.sleep(0.05)
            started = time.time()
            deadline = Deadline(spec["budget_s"])
            items = [
                IdBlock(loc, TargetFields(provider, "bench",
                                          HUAWEI_REGION if provider == "huawei" else loc,
                                          loc if provider == "huawei" else None, "key"),
                        (("bench", spec["tag_value"]),), ids, list(range(1, len(ids) + 1)))
                for loc, ids in spec["ids"].items()
            ]  # fmt: skip
            total = sum(len(ids) for ids in spec["ids"].values())
            submit(items, SubmitOptions(campaign_id="bench"), conn)
            while int(conn.hget(counts_key("bench"), "done") or 0) < total:
                if deadline.passed():
                    control.cancel(conn, "bench")
                    break
                time.sleep(0.02)
            wall = time.time() - started
        finally:
            for w in workers:
                w.terminate()
            for w in workers:
                w.wait()
            server.stop()
    return not deadline.hit, started, wall


def run(spec: dict[str, Any]) -> tuple[bool, float, float]:
    contender = spec["contender"]
    if contender == "bulktag":
        return run_bulktag(spec)
    if contender == "sdk-sequential":
        return run_sdk(spec, 1)
    if contender == "sdk-threads":
        return run_sdk(spec, 8)
    if contender == "custodian":
        return run_custodian(spec)
    if contender == "async-single":
        return run_async_single(spec)
    raise ValueError(f"unknown contender {contender!r}")
