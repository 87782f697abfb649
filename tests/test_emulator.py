"""The provider emulator over real HTTP on loopback, with requests signed by providers/*/signing.

Nothing of the emulator is mocked: each test starts an :class:`EmulatorServer` on a free port
and talks to it with aiohttp, exactly as a worker would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from yarl import URL

from emulator import (
    EmulatorConfig,
    EmulatorServer,
    GenerateSpec,
    Inventory,
    InventoryError,
    ThreadedEmulatorServer,
    aliyun_key_id,
    aliyun_secret_name,
    huawei_key_id,
)
from emulator import cli as emulator_cli
from emulator.config import ConfigError, Credentials
from emulator.nonces import NonceCache
from providers.aliyun import rules as aliyun_rules
from providers.aliyun import signing as aliyun_signing
from providers.huawei import rules as huawei_rules
from providers.huawei import signing as huawei_signing

REGION = "cn-hangzhou"
OTHER_REGION = "cn-shanghai"
PROJECT = "0123456789abcdef0123456789abcdef"
KEYS = 120  # Alibaba keys in REGION
SECRETS = 3
HUAWEI_KEYS = 25
ROOT = Path(__file__).resolve().parent.parent


def make_inventory() -> Inventory:
    return Inventory.generated(
        GenerateSpec("aliyun", REGION, "key", KEYS),
        GenerateSpec("aliyun", REGION, "secret", SECRETS),
        GenerateSpec("aliyun", OTHER_REGION, "key", 5),
        GenerateSpec("huawei", PROJECT, "key", HUAWEI_KEYS),
    )


def key(n: int, region: str = REGION) -> str:
    return aliyun_key_id(region, n)


def hkey(n: int) -> str:
    return huawei_key_id(PROJECT, n)


def tag_params(ids: list[str], tags: list[tuple[str, str]], region: str = REGION) -> dict[str, str]:
    params = {"RegionId": region, "ResourceType": "key"}
    for i, rid in enumerate(ids, start=1):
        params[f"ResourceId.{i}"] = rid
    for i, (k, v) in enumerate(tags, start=1):
        params[f"Tag.{i}.Key"] = k
        params[f"Tag.{i}.Value"] = v
    return params


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    body: Any


class Caller:
    """Signs and sends provider calls the way the official SDKs do (sdk-wire.md §1.2, §2.2)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = URL(base)

    @property
    def host(self) -> str:
        return f"{self.base.host}:{self.base.port}"

    async def _send(self, method: str, url: URL, headers: dict[str, str], data: bytes) -> Answer:
        async with self.session.request(method, url, headers=headers, data=data) as resp:
            raw = await resp.read()
            body = json.loads(raw) if raw else None
            return Answer(resp.status, resp.headers, body)

    async def aliyun(
        self,
        action: str,
        params: Mapping[str, str],
        *,
        scheme: str = "v3",
        ak: str = "testid",
        secret: str = "testsecret",
        when: datetime | None = None,
        nonce: str | None = None,
        encode: Callable[[Mapping[str, str]], str] = aliyun_signing.canonical_query,
    ) -> Answer:
        stamp = (when or datetime.now(UTC)).strftime(aliyun_signing.RPC_TIMESTAMP_FORMAT)
        nonce = nonce or uuid.uuid4().hex
        query = dict(params)
        headers = {"host": self.host, "x-acs-action": action, "x-acs-version": "2016-01-20"}
        if scheme == "v2":
            query.update(
                Action=action,
                Version="2016-01-20",
                Format="JSON",
                AccessKeyId=ak,
                SignatureMethod="HMAC-SHA1",
                SignatureVersion="1.0",
                SignatureNonce=nonce,
                Timestamp=stamp,
            )
            query["Signature"] = aliyun_signing.rpc_signature("POST", query, secret)
        else:
            payload = aliyun_signing.sha256_hex(b"")
            headers.update(
                {
                    "accept": "application/json",
                    "x-acs-date": stamp,
                    "x-acs-signature-nonce": nonce,
                    "x-acs-content-sha256": payload,
                }
            )
            signed = sorted(headers)
            signature = aliyun_signing.acs3_signature(
                "POST", "/", query, headers, signed, payload, secret
            )
            headers["authorization"] = (
                f"ACS3-HMAC-SHA256 Credential={ak},SignedHeaders={';'.join(signed)},"
                f"Signature={signature}"
            )
        url = URL(f"{self.base}/?{encode(query)}", encoded=True)
        return await self._send("POST", url, headers, b"")

    async def huawei(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        ak: str = "testak",
        sk: str = "testsk",
        token: str | None = None,
        when: datetime | None = None,
    ) -> Answer:
        data = json.dumps(body).encode() if body is not None else b""
        headers = {"host": self.host, "x-project-id": PROJECT}
        if data:
            headers["content-type"] = "application/json;charset=utf-8"
        if token is not None:
            headers["x-auth-token"] = token
        else:
            stamp = (when or datetime.now(UTC)).strftime(huawei_signing.SDK_DATE_FORMAT)
            headers["x-sdk-date"] = stamp
            signed = sorted(headers)
            signature = huawei_signing.sdk_hmac_sha256_signature(
                method, path, [], headers, signed, data, stamp, sk
            )
            headers["authorization"] = (
                f"SDK-HMAC-SHA256 Access={ak}, SignedHeaders={';'.join(signed)}, "
                f"Signature={signature}"
            )
        return await self._send(method, self.base.with_path(path), headers, data)

    async def inspect(self, method: str, path: str, body: Any = None, **query: Any) -> Answer:
        url = self.base.with_path(f"/_emulator/{path}")
        if query:
            url = url.with_query(query)
        async with self.session.request(method, url, json=body) as resp:
            return Answer(resp.status, resp.headers, await resp.json())

    async def state(self, **query: Any) -> dict[str, Any]:
        answer = await self.inspect("GET", "state", **query)
        assert answer.status == 200
        resources: dict[str, Any] = answer.body["resources"]
        return resources


def tags_path(n: int, suffix: str = "tags") -> str:
    return f"/v1.0/{PROJECT}/kms/{hkey(n)}/{suffix}"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def server() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(EmulatorConfig(), make_inventory()) as running:
        yield running


@pytest.fixture
def call(server: EmulatorServer, session: aiohttp.ClientSession) -> Caller:
    return Caller(session, server.url)


async def start(config: EmulatorConfig) -> EmulatorServer:
    running = EmulatorServer(config, make_inventory())
    await running.start()
    return running


# --- Alibaba: signatures --------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["v3", "v2"])
async def test_signed_tag_resources_tags_every_resource_and_state_shows_it(
    call: Caller, scheme: str
) -> None:
    ids = [key(0), key(1), key(2)]
    answer = await call.aliyun(
        "TagResources", tag_params(ids, [("team/a", "x=y"), ("env", "prod")]), scheme=scheme
    )
    assert answer.status == 200
    assert re.fullmatch(r"[0-9A-F-]{36}", answer.body["RequestId"])
    tagged = (await call.state(provider="aliyun", location=REGION, type="key", tagged="true"))[
        "aliyun"
    ][REGION]["key"]
    assert tagged == {rid: {"env": "prod", "team/a": "x=y"} for rid in ids}


@pytest.mark.parametrize(
    "encode",
    [
        aliyun_signing.canonical_query,
        urlencode,  # "+" for spaces, %2F, %3A: the sync SDK's style
        lambda p: "&".join(f"{k}={quote(v, safe='/:')}" for k, v in p.items()),  # aiohttp's
    ],
    ids=["rfc3986", "form", "yarl"],
)
@pytest.mark.parametrize("scheme", ["v3", "v2"])
async def test_signature_verifies_over_decoded_parameters_whatever_the_query_encoding(
    call: Caller, scheme: str, encode: Callable[[Mapping[str, str]], str]
) -> None:
    params = tag_params([key(5)], [("path/like:key", "a+b=c@d")])
    answer = await call.aliyun("TagResources", params, scheme=scheme, encode=encode)
    assert answer.status == 200, answer.body
    assert (await call.state(id=key(5)))["aliyun"][REGION]["key"][key(5)] == {
        "path/like:key": "a+b=c@d"
    }


@pytest.mark.parametrize("scheme", ["v3", "v2"])
async def test_replayed_nonce_is_rejected(call: Caller, scheme: str) -> None:
    params = tag_params([key(0)], [("env", "prod")])
    first = await call.aliyun("TagResources", params, scheme=scheme, nonce="same-nonce-1")
    again = await call.aliyun("TagResources", params, scheme=scheme, nonce="same-nonce-1")
    assert first.status == 200
    assert again.status == 400
    assert again.body["Code"] == "SignatureNonceUsed"


@pytest.mark.parametrize(
    ("scheme", "age_minutes", "accepted"),
    [("v3", 16, False), ("v3", 14, True), ("v2", 32, False), ("v2", 20, True)],
)
async def test_stale_timestamp_is_rejected_outside_the_providers_window(
    call: Caller, scheme: str, age_minutes: int, accepted: bool
) -> None:
    # Windows: V3 x-acs-date 15 min, V2 Timestamp 31 min (providers.md §1.4, §1.6).
    when = datetime.now(UTC) - timedelta(minutes=age_minutes)
    answer = await call.aliyun(
        "TagResources", tag_params([key(0)], [("env", "prod")]), scheme=scheme, when=when
    )
    if accepted:
        assert answer.status == 200
    else:
        assert (answer.status, answer.body["Code"]) == (400, "IllegalTimestamp")


@pytest.mark.parametrize("scheme", ["v3", "v2"])
async def test_wrong_secret_is_a_signature_mismatch_and_unknown_key_id_is_404(
    call: Caller, scheme: str
) -> None:
    params = tag_params([key(0)], [("env", "prod")])
    wrong = await call.aliyun("TagResources", params, scheme=scheme, secret="not-the-secret")
    assert (wrong.status, wrong.body["Code"]) == (400, "IncompleteSignature")
    assert "does not match" in wrong.body["Message"]
    unknown = await call.aliyun("TagResources", params, scheme=scheme, ak="nobody")
    assert (unknown.status, unknown.body["Code"]) == (404, "InvalidAccessKeyId.NotFound")
    assert set(unknown.body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert await call.state(tagged="true", type="key", location=REGION) == {
        "aliyun": {REGION: {"key": {}}}
    }


async def test_unsigned_request_and_unknown_action_are_refused(
    call: Caller, session: aiohttp.ClientSession
) -> None:
    unsigned = f"{call.base}/?RegionId={REGION}"
    async with session.post(unsigned, headers={"x-acs-action": "ListKeys"}) as resp:
        assert resp.status == 400
        assert (await resp.json())["Code"] == "IncompleteSignature"
    answer = await call.aliyun("DeleteEverything", {"RegionId": REGION})
    assert (answer.status, answer.body["Code"]) == (404, "InvalidAction.NotFound")


# --- Alibaba: TagResources semantics -----------------------------------------------------------


async def test_batch_with_one_missing_id_tags_nothing_and_answers_404(call: Caller) -> None:
    ids = [key(0), key(KEYS + 7), key(1)]  # the middle one does not exist
    answer = await call.aliyun("TagResources", tag_params(ids, [("env", "prod")]))
    assert answer.status == 404
    assert answer.body["Code"] == "InvalidResourceId.NotFound"
    assert answer.body["Message"] == "The specified ResourceId is not found."
    assert (await call.state(id=[key(0), key(1)]))["aliyun"][REGION]["key"] == {
        key(0): {},
        key(1): {},
    }


async def test_name_missing_id_names_the_first_missing_id(session: aiohttp.ClientSession) -> None:
    running = await start(EmulatorConfig(name_missing_id=True))
    try:
        ids = [key(0), key(KEYS + 3), key(KEYS + 4)]
        answer = await Caller(session, running.url).aliyun(
            "TagResources", tag_params(ids, [("env", "prod")])
        )
        assert answer.status == 404
        assert answer.body["Message"] == f"The specified ResourceId is not found: {key(KEYS + 3)}"
    finally:
        await running.stop()


async def test_a_key_of_another_region_is_not_found(call: Caller) -> None:
    answer = await call.aliyun(
        "TagResources", tag_params([key(0, OTHER_REGION)], [("env", "prod")])
    )
    assert answer.body["Code"] == "InvalidResourceId.NotFound"
    answer = await call.aliyun(
        "TagResources", tag_params([key(0, OTHER_REGION)], [("env", "x")], OTHER_REGION)
    )
    assert answer.status == 200


@pytest.mark.parametrize(
    ("tags", "code"),
    [
        ([("team a", "x")], "InvalidParameter.TagKey"),  # space: not in the allowed set
        ([("aliyun:owner", "x")], "InvalidParameter.TagKey"),  # reserved prefix
        ([("k" * 129, "x")], "InvalidParameter.TagKey"),
        ([("env", "a&b")], "InvalidParameter.TagValue"),
        ([("env", "a"), ("env", "b")], "Duplicate.TagKey"),
        ([(f"k{i}", "v") for i in range(21)], "InvalidParameter"),  # > 20 tags per call
    ],
)
async def test_tag_rules_of_providers_aliyun_rules_are_enforced(
    call: Caller, tags: list[tuple[str, str]], code: str
) -> None:
    answer = await call.aliyun("TagResources", tag_params([key(0)], tags))
    assert (answer.status, answer.body["Code"]) == (400, code)
    assert (await call.state(id=key(0)))["aliyun"][REGION]["key"][key(0)] == {}


async def test_more_than_50_resource_ids_is_refused(call: Caller) -> None:
    ids = [key(i) for i in range(aliyun_rules.RULES.max_resources_per_call + 1)]
    answer = await call.aliyun("TagResources", tag_params(ids, [("env", "prod")]))
    assert (answer.status, answer.body["Code"]) == (400, "InvalidParameter")


async def test_adding_an_existing_tag_key_overwrites_its_value(call: Caller) -> None:
    await call.aliyun("TagResources", tag_params([key(0)], [("env", "dev"), ("team", "a")]))
    await call.aliyun("TagResources", tag_params([key(0)], [("env", "prod")]))
    assert (await call.state(id=key(0)))["aliyun"][REGION]["key"][key(0)] == {
        "env": "prod",
        "team": "a",
    }


async def test_untag_resources_removes_keys_or_all(call: Caller) -> None:
    await call.aliyun("TagResources", tag_params([key(0), key(1)], [("a", "1"), ("b", "2")]))
    base = {"RegionId": REGION, "ResourceType": "key"}
    one = await call.aliyun(
        "UntagResources", {**base, "ResourceId.1": key(0), "TagKey.1": "a", "TagKey.2": "zz"}
    )
    every = await call.aliyun("UntagResources", {**base, "ResourceId.1": key(1), "All": "true"})
    assert (one.status, every.status) == (200, 200)
    state = (await call.state(id=[key(0), key(1)]))["aliyun"][REGION]["key"]
    assert state == {key(0): {"b": "2"}, key(1): {}}


# --- Alibaba: listing ----------------------------------------------------------------------


async def test_list_keys_pages_over_the_generated_inventory(call: Caller) -> None:
    seen: list[str] = []
    for page in (1, 2, 3):
        answer = await call.aliyun("ListKeys", {"PageNumber": str(page), "PageSize": "50"})
        assert answer.status == 200
        assert answer.body["TotalCount"] == KEYS
        assert answer.body["PageNumber"] == page
        seen += [k["KeyId"] for k in answer.body["Keys"]["Key"]]
        first = answer.body["Keys"]["Key"][0]
        assert first["KeyArn"].startswith(f"acs:kms:{REGION}:") and first["KeyArn"].endswith(
            first["KeyId"]
        )
    assert seen == [key(n) for n in range(KEYS)]
    too_big = await call.aliyun("ListKeys", {"PageSize": "101"})
    assert (too_big.status, too_big.body["Code"]) == (400, "InvalidParameter")


async def test_list_secrets_returns_tags_when_asked(call: Caller) -> None:
    secret = aliyun_secret_name(REGION, 1)
    params = {"RegionId": REGION, "ResourceType": "secret", "ResourceId.1": secret}
    await call.aliyun("TagResources", {**params, "Tag.1.Key": "env", "Tag.1.Value": "prod"})
    answer = await call.aliyun("ListSecrets", {"FetchTags": "true", "PageSize": "10"})
    secrets = answer.body["SecretList"]["Secret"]
    assert answer.body["TotalCount"] == SECRETS
    assert [s["SecretName"] for s in secrets] == [aliyun_secret_name(REGION, n) for n in range(3)]
    assert secrets[1]["Tags"]["Tag"] == [{"TagKey": "env", "TagValue": "prod"}]


async def test_list_tag_resources_pages_with_next_token(session: aiohttp.ClientSession) -> None:
    running = await start(EmulatorConfig(list_tag_resources_page_size=3))
    try:
        caller = Caller(session, running.url)
        ids = [key(n) for n in range(5)]
        await caller.aliyun("TagResources", tag_params(ids, [("a", "1"), ("b", "2")]))
        base = {"RegionId": REGION, "ResourceType": "key"}
        base.update({f"ResourceId.{i}": rid for i, rid in enumerate([*ids, key(KEYS)], 1)})
        rows: list[tuple[str, str, str]] = []
        pages, token = 0, ""
        while True:
            answer = await caller.aliyun("ListTagResources", {**base, "NextToken": token})
            page = answer.body["TagResources"]["TagResource"]
            rows += [(r["ResourceId"], r["TagKey"], r["TagValue"]) for r in page]
            pages += 1
            token = answer.body["NextToken"]
            if not token:
                break
        assert pages == 4  # 10 rows, 3 per page
        assert rows == [(rid, k, v) for rid in ids for k, v in (("a", "1"), ("b", "2"))]
        bad = await caller.aliyun("ListTagResources", {**base, "NextToken": "%%%"})
        assert bad.status == 400
    finally:
        await running.stop()


# --- Huawei ----------------------------------------------------------------------------------


async def test_huawei_aksk_and_token_calls_tag_a_key(call: Caller) -> None:
    signed = await call.huawei("POST", tags_path(0), {"tag": {"key": "env", "value": "prod"}})
    assert (signed.status, signed.body) == (204, None)
    assert re.fullmatch(r"[0-9a-f]{32}", signed.headers["X-Request-Id"])
    token = await call.huawei(
        "POST",
        tags_path(0, "tags/action"),
        {"action": "create", "tags": [{"key": "team", "value": "a b"}], "sequence": "1"},
        token="test-token",
    )
    assert token.status == 204
    shown = await call.huawei("GET", tags_path(0))
    assert shown.body["tags"] == [{"key": "env", "value": "prod"}, {"key": "team", "value": "a b"}]
    assert shown.body["existTagsNum"] == 2


@pytest.mark.parametrize(
    ("kwargs", "detail"),
    [
        ({"sk": "wrong"}, "verify aksk signature fail"),
        ({"ak": "nobody"}, "does not exist"),
        ({"token": "expired-token"}, "decrypt token fail"),
        ({"when": datetime.now(UTC) - timedelta(minutes=16)}, "expired"),
    ],
)
async def test_huawei_bad_credentials_get_401_apigw_0301_flat_body(
    call: Caller, kwargs: dict[str, Any], detail: str
) -> None:
    answer = await call.huawei(
        "POST", tags_path(0), {"tag": {"key": "env", "value": "x"}}, **kwargs
    )
    assert answer.status == 401
    assert answer.body["error_code"] == "APIGW.0301"
    assert detail in answer.body["error_msg"]
    assert answer.body["request_id"] == answer.headers["X-Request-Id"]


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        (f"/v1.0/{PROJECT}/kms/not-a-key-id/tags", {"tag": {"key": "a"}}, 400, "KMS.0205"),
        (tags_path(HUAWEI_KEYS + 1), {"tag": {"key": "a", "value": "b"}}, 404, "KMS.0207"),
        (tags_path(0), {"tag": {"key": "a=b", "value": "c"}}, 400, "KMS.0406"),
        (tags_path(0), {"tag": {"key": "a", "value": "c*"}}, 400, "KMS.0405"),
        (tags_path(0), {"tag": {"key": "k" * 37, "value": "c"}}, 400, "KMS.0411"),
        (tags_path(0), {"tag": {"key": "a", "value": "v" * 44}}, 400, "KMS.0410"),
        (
            tags_path(0, "tags/action"),
            {"action": "remove", "tags": [{"key": "a"}]},
            400,
            "KMS.0404",
        ),
        (tags_path(0, "tags/action"), {"action": "create", "tags": []}, 400, "KMS.0401"),
    ],
)
async def test_huawei_kms_errors_are_nested_with_the_rules_codes(
    call: Caller, path: str, body: Any, status: int, code: str
) -> None:
    answer = await call.huawei("POST", path, body)
    assert answer.status == status
    assert answer.body["error"]["error_code"] == code
    assert "X-Request-Id" in answer.headers


async def test_huawei_more_than_10_tags_on_a_key_is_kms_0409(call: Caller) -> None:
    limit = huawei_rules.RULES.max_tags_per_resource
    assert limit == 10
    tags = [{"key": f"k{i}", "value": "v"} for i in range(limit)]
    full = await call.huawei(
        "POST", tags_path(1, "tags/action"), {"action": "create", "tags": tags}
    )
    overwrite = await call.huawei("POST", tags_path(1), {"tag": {"key": "k0", "value": "new"}})
    one_more = await call.huawei("POST", tags_path(1), {"tag": {"key": "k10", "value": "v"}})
    assert (full.status, overwrite.status, one_more.status) == (204, 204, 400)
    assert one_more.body["error"]["error_code"] == "KMS.0409"
    held = (await call.state(id=hkey(1)))["huawei"][PROJECT]["key"][hkey(1)]
    assert len(held) == 10 and held["k0"] == "new"


async def test_huawei_batch_delete_removes_tags(call: Caller) -> None:
    path = tags_path(2, "tags/action")
    tags = [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]
    await call.huawei("POST", path, {"action": "create", "tags": tags})
    deleted = await call.huawei("POST", path, {"action": "delete", "tags": tags[:1]})
    assert deleted.status == 204
    assert (await call.state(id=hkey(2)))["huawei"][PROJECT]["key"][hkey(2)] == {"b": "2"}


async def test_huawei_list_keys_pages_with_marker(call: Caller) -> None:
    path = f"/v1.0/{PROJECT}/kms/list-keys"
    seen: list[str] = []
    marker = ""
    truncations = []
    while True:
        answer = await call.huawei("POST", path, {"limit": "10", "marker": marker})
        assert answer.status == 200
        assert answer.body["total"] == HUAWEI_KEYS
        assert [d["key_id"] for d in answer.body["key_details"]] == answer.body["keys"]
        seen += answer.body["keys"]
        truncations.append(answer.body["truncated"])
        marker = answer.body["next_marker"]
        if answer.body["truncated"] == "false":
            break
    assert truncations == ["true", "true", "false"]
    assert seen == [hkey(n) for n in range(HUAWEI_KEYS)]
    bad = await call.huawei("POST", path, {"limit": "0"})
    assert (bad.status, bad.body["error"]["error_code"]) == (400, "KMS.0308")


async def test_huawei_unknown_api_is_the_gateways_404(call: Caller) -> None:
    answer = await call.huawei("POST", f"/v1.0/{PROJECT}/kms/describe-everything", {})
    assert (answer.status, answer.body["error_code"]) == (404, "APIGW.0101")


# --- rate limits, latency, faults -------------------------------------------------------------


async def test_rate_limit_answers_429_past_the_limit_and_counts_it(
    session: aiohttp.ClientSession,
) -> None:
    running = await start(EmulatorConfig(rate_limits={"aliyun": 2, "huawei": 1}))
    try:
        caller = Caller(session, running.url)
        params = tag_params([key(0)], [("env", "prod")])
        statuses = [(await caller.aliyun("TagResources", params)).status for _ in range(3)]
        assert statuses == [200, 200, 429]
        throttled = await caller.aliyun("TagResources", params)
        assert throttled.body["Code"] == "Rejected.Throttling"
        assert throttled.body["Message"] == "QPS Limit Exceeded"
        # Another region has a bucket of its own at the provider's default rate.
        other = await caller.aliyun(
            "TagResources", tag_params([key(0, OTHER_REGION)], [("a", "b")], OTHER_REGION)
        )
        assert other.status == 200
        body = {"tag": {"key": "env", "value": "prod"}}
        first = await caller.huawei("POST", tags_path(0), body)
        second = await caller.huawei("POST", tags_path(0), body)
        assert (first.status, second.status) == (204, 429)
        assert second.body["error_code"] == "APIGW.0308"
        assert second.body["error_msg"] == (
            "The throttling threshold has been reached: policy user over ratelimit,"
            "limit:1,time:1 second"
        )
        stats = (await caller.inspect("GET", "stats")).body
        assert stats["throttled"] == 3
        assert stats["by_provider"]["aliyun"] == {
            "total": 5,
            "ok": 3,
            "throttled": 2,
            "faults": 0,
            "errors": 0,
        }
        assert {
            "provider": "aliyun",
            "location": REGION,
            "action": "TagResources",
            "outcome": "throttled",
            "count": 2,
        } in stats["calls"]
    finally:
        await running.stop()


async def test_rate_limit_refills_at_the_configured_rate(session: aiohttp.ClientSession) -> None:
    running = await start(EmulatorConfig(rate_limits={f"aliyun:{REGION}": 10}, burst=1))
    try:
        caller = Caller(session, running.url)
        params = {"PageSize": "1"}
        assert (await caller.aliyun("ListKeys", params)).status == 200
        assert (await caller.aliyun("ListKeys", params)).status == 429
        await asyncio.sleep(0.12)  # one token per 100 ms
        assert (await caller.aliyun("ListKeys", params)).status == 200
    finally:
        await running.stop()


async def test_fault_503_answers_503_every_time_and_changes_nothing(
    session: aiohttp.ClientSession,
) -> None:
    running = await start(EmulatorConfig(faults={"503": 1.0}))
    try:
        caller = Caller(session, running.url)
        for _ in range(3):
            answer = await caller.aliyun("TagResources", tag_params([key(0)], [("env", "p")]))
            assert (answer.status, answer.body["Code"]) == (503, "ServiceUnavailableTemporary")
        huawei = await caller.huawei("POST", tags_path(0), {"tag": {"key": "env", "value": "p"}})
        assert (huawei.status, huawei.body["error_code"]) == (503, "APIGW.0201")
        assert await caller.state(tagged="true") == {
            "aliyun": {REGION: {"key": {}, "secret": {}}, OTHER_REGION: {"key": {}}},
            "huawei": {PROJECT: {"key": {}}},
        }
        stats = (await caller.inspect("GET", "stats")).body
        assert stats["by_outcome"] == {"fault:503": 4}
        assert stats["faults"] == 4
    finally:
        await running.stop()


async def test_fault_reset_closes_the_connection(session: aiohttp.ClientSession) -> None:
    running = await start(EmulatorConfig(faults={"reset": 1.0}))
    try:
        with pytest.raises(aiohttp.ClientConnectionError):
            await Caller(session, running.url).aliyun("ListKeys", {})
        assert running.emulator.stats.count(outcome="fault:reset") == 1
    finally:
        await running.stop()


async def test_fault_timeout_hangs_then_answers_504(session: aiohttp.ClientSession) -> None:
    running = await start(EmulatorConfig(faults={"timeout": 1.0}, timeout_delay=0.3))
    try:
        caller = Caller(session, running.url)
        started = time.monotonic()
        answer = await caller.huawei("GET", tags_path(0))
        assert time.monotonic() - started >= 0.3
        assert (answer.status, answer.body["error_code"]) == (504, "APIGW.0201")
        with pytest.raises(asyncio.TimeoutError):
            async with asyncio.timeout(0.1):
                await caller.aliyun("ListKeys", {})
    finally:
        await running.stop()


async def test_latency_delays_every_provider_call(session: aiohttp.ClientSession) -> None:
    running = await start(EmulatorConfig(latency_ms=80, jitter_ms=20, seed=7))
    try:
        caller = Caller(session, running.url)
        started = time.monotonic()
        await caller.aliyun("ListKeys", {})
        assert time.monotonic() - started >= 0.08
    finally:
        await running.stop()


# --- inspection and run-time configuration ------------------------------------------------------


async def test_config_changes_at_run_time_and_bad_changes_are_refused(call: Caller) -> None:
    params = {"PageSize": "1"}
    assert [(await call.aliyun("ListKeys", params)).status for _ in range(3)] == [200] * 3
    changed = await call.inspect("PUT", "config", {"rate_limits": {"aliyun": 1}, "burst": 1})
    assert changed.status == 200 and changed.body["rate_limits"] == {"aliyun": 1.0}
    assert [(await call.aliyun("ListKeys", params)).status for _ in range(2)] == [200, 429]
    refused = await call.inspect("PUT", "config", {"faults": {"503": 0.7, "500": 0.6}})
    assert refused.status == 400 and "must not exceed 1" in refused.body["error"]
    unknown = await call.inspect("PUT", "config", {"credentials": {}})
    assert unknown.status == 400
    lifted = await call.inspect("PUT", "config", {"rate_limits": {}, "faults": {"500": 1}})
    assert lifted.body["faults"] == {"500": 1.0}
    failed = await call.aliyun("ListKeys", params)
    assert (failed.status, failed.body["Code"]) == (500, "InternalFailure")
    shown = (await call.inspect("GET", "config")).body
    assert "testsecret" not in json.dumps(shown) and "testsk" not in json.dumps(shown)
    assert shown["credentials"]["aliyun_access_key_ids"] == ["testid"]


async def test_state_filters_and_stats_reset(call: Caller) -> None:
    await call.aliyun("TagResources", tag_params([key(3)], [("env", "prod")]))
    await call.huawei("POST", tags_path(3), {"tag": {"key": "env", "value": "prod"}})
    everything = await call.inspect("GET", "state")
    assert everything.body["count"] == KEYS + SECRETS + 5 + HUAWEI_KEYS
    only_huawei = await call.state(provider="huawei", tagged="true")
    assert only_huawei == {"huawei": {PROJECT: {"key": {hkey(3): {"env": "prod"}}}}}
    limited = await call.inspect("GET", "state", provider="aliyun", limit="4")
    assert (limited.body["count"], limited.body["truncated"]) == (4, True)
    inventory = (await call.inspect("GET", "inventory")).body["sets"]
    assert {"provider": "huawei", "location": PROJECT, "type": "key", "count": HUAWEI_KEYS} in [
        {k: s[k] for k in ("provider", "location", "type", "count")} for s in inventory
    ]
    before = await call.inspect("POST", "reset-stats")
    assert before.body["total"] == 2 and before.body["ok"] == 2
    after = (await call.inspect("GET", "stats")).body
    assert (after["total"], after["calls"]) == (0, [])


async def test_inspection_calls_are_neither_throttled_nor_counted(
    session: aiohttp.ClientSession,
) -> None:
    running = await start(EmulatorConfig(rate_limits={"aliyun": 1, "huawei": 1}, burst=1))
    try:
        caller = Caller(session, running.url)
        for _ in range(5):
            assert (await caller.inspect("GET", "health")).status == 200
        assert (await caller.inspect("GET", "stats")).body["total"] == 0
    finally:
        await running.stop()


async def test_drift_tags_set_and_removed_directly_and_resources_deleted(call: Caller) -> None:
    await call.aliyun("TagResources", tag_params([key(4)], [("env", "prod"), ("team", "a")]))
    where = {"provider": "aliyun", "location": REGION, "type": "key", "id": key(4)}
    drifted = await call.inspect("POST", "tags", {**where, "remove": ["env"], "set": {"x": "1"}})
    assert drifted.body == {"id": key(4), "tags": {"team": "a", "x": "1"}}
    listed = await call.aliyun(
        "ListTagResources", {"RegionId": REGION, "ResourceType": "key", "ResourceId.1": key(4)}
    )
    rows = listed.body["TagResources"]["TagResource"]
    assert {(r["TagKey"], r["TagValue"]) for r in rows} == {("team", "a"), ("x", "1")}
    replaced = await call.inspect("POST", "tags", {**where, "set": {"y": "2"}, "replace": True})
    assert replaced.body["tags"] == {"y": "2"}
    missing = await call.inspect("POST", "tags", {**where, "id": key(KEYS + 1), "set": {}})
    assert missing.status == 404
    where.pop("id")
    gone = await call.inspect("POST", "resources", {**where, "delete": [key(4)]})
    assert gone.body == {"added": 0, "deleted": 1}
    answer = await call.aliyun("TagResources", tag_params([key(4)], [("env", "prod")]))
    assert answer.body["Code"] == "InvalidResourceId.NotFound"
    listed_keys = await call.aliyun("ListKeys", {"PageSize": "100", "PageNumber": "1"})
    assert listed_keys.body["TotalCount"] == KEYS - 1
    assert key(4) not in [k["KeyId"] for k in listed_keys.body["Keys"]["Key"]]
    added = await call.inspect("POST", "resources", {**where, "add": {key(4): {"back": "yes"}}})
    assert added.body == {"added": 1, "deleted": 0}
    assert (await call.state(id=key(4)))["aliyun"][REGION]["key"][key(4)] == {"back": "yes"}


# --- inventory, ids and nonces (no server) ----------------------------------------------------


@given(
    n=st.integers(min_value=0, max_value=10**12),
    region=st.sampled_from(sorted(aliyun_rules.REGIONS)),
)
def test_generated_ids_match_the_providers_patterns_and_are_distinct_per_location(
    n: int, region: str
) -> None:
    rules = aliyun_rules.RULES
    assert rules.check_resource_id("key", aliyun_key_id(region, n)) == []
    assert rules.check_resource_id("secret", aliyun_secret_name(region, n)) == []
    assert huawei_rules.KEY_ID.fullmatch(huawei_key_id(PROJECT, n))
    assert aliyun_key_id(region, n) != aliyun_key_id(region, n + 1)
    other = "cn-shanghai" if region != "cn-shanghai" else "cn-beijing"
    assert aliyun_key_id(region, n) != aliyun_key_id(other, n)


def test_a_million_generated_keys_cost_a_few_bytes_each() -> None:
    inventory = Inventory.generated(GenerateSpec("huawei", PROJECT, "key", 1_000_000))
    found = inventory.get("huawei", PROJECT, "key")
    assert found is not None and len(found) == 1_000_000
    assert found.index_of(hkey(999_999)) == 999_999
    assert found.index_of(hkey(1_000_000)) is None
    assert found.index_of(huawei_key_id("f" * 32, 5)) is None
    found.add_tags(7, (("env", "prod"),))
    assert list(found.tagged_slots()) == [7]
    assert len(inventory.pool) == 2  # "no tags" and one interned set


def test_inventory_json_round_trips_and_bad_files_are_refused(tmp_path: Path) -> None:
    data = {
        "generate": [{"provider": "aliyun", "location": REGION, "type": "key", "count": 3}],
        "resources": {
            "aliyun": {REGION: {"secret": {"db-password": {"env": "prod"}}}},
            "huawei": {PROJECT: {"key": ["0d0466b0-e727-4d9c-b35d-f84bb474a37f"]}},
        },
    }
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(data))
    inventory = Inventory.load(path)
    secrets = inventory.get("aliyun", REGION, "secret")
    assert secrets is not None and secrets.tags(secrets.index_of("db-password") or 0) == {
        "env": "prod"
    }
    huawei_keys = inventory.get("huawei", PROJECT, "key")
    assert huawei_keys is not None and "0d0466b0-e727-4d9c-b35d-f84bb474a37f" in huawei_keys
    bad_files: list[dict[str, Any]] = [
        {"resources": {"aliyun": {"mars-north-1": {"key": []}}}},
        {"resources": {"huawei": {"not-a-project": {"key": []}}}},
        {"resources": {"aliyun": {REGION: {"key": ["has space"]}}}},
        {"generate": [{"provider": "gcp", "location": "x", "type": "key", "count": 1}]},
    ]
    for bad in bad_files:
        with pytest.raises(InventoryError):
            Inventory.from_json(bad)


def test_nonce_is_remembered_for_its_window_and_memory_is_bounded() -> None:
    cache = NonceCache(max_entries=3)
    assert cache.use("a", now=0.0, ttl=10.0)
    assert not cache.use("a", now=5.0, ttl=10.0)
    assert cache.use("a", now=11.0, ttl=10.0)  # expired: usable again
    for nonce in "bcde":
        assert cache.use(nonce, now=12.0, ttl=10.0)
    assert len(cache) == 3


def test_config_refuses_impossible_values() -> None:
    for bad in (
        {"rate_limits": {"gcp": 1.0}},
        {"rate_limits": {"aliyun": 0.0}},
        {"faults": {"418": 0.5}},
        {"faults": {"500": 0.6, "timeout": 0.6}},
        {"latency_ms": -1.0},
        {"burst": 0.5},
    ):
        with pytest.raises(ConfigError):
            EmulatorConfig(**bad)
    with pytest.raises(ConfigError):
        Credentials.from_mapping({"aliyun": {"id": ""}})


# --- CLI --------------------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bulktag emulator")
    emulator_cli.configure_parser(parser)
    return parser.parse_args(argv)


def test_cli_refuses_a_non_loopback_host_without_allow_remote(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert emulator_cli.run(parse("--host", "0.0.0.0")) == 2
    err = capsys.readouterr().err
    assert "--allow-remote" in err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--rate-limit", "aliyun=fast"],
        ["--rate-limit", "aliyun=-3"],
        ["--rate-limit", "gcp=3"],
        ["--rate-limit", "aliyun:mars-1=3"],
        ["--fault", "418=0.1"],
        ["--fault", "503=2"],
        ["--generate", "aliyun:cn-hangzhou:key"],
        ["--generate", "huawei:not-a-project:key:10"],
        ["--port", "70000"],
        ["--burst", "0"],
        ["--latency-ms", "-5"],
        ["--inventory", "/nonexistent/inventory.json"],
        ["--aliyun-default-region", "mars-north-1"],
    ],
)
def test_cli_bad_option_values_exit_2_with_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert emulator_cli.run(parse(*argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bulktag emulator: error: {argv[0]} {argv[1]!r}: ")
    assert err.count("\n") == 1


def test_cli_fault_rates_adding_up_past_1_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("--fault", "503=60%", "--fault", "reset=0.5", "--port", "0")
    assert emulator_cli.run(args) == 2
    assert "must not exceed 1" in capsys.readouterr().err


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials.toml"
    credentials.write_text('huawei_tokens = ["t"]\n[aliyun]\nops = "s3cret"\n')
    child = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0", "--credentials", str(credentials),
         "--generate", f"aliyun:{REGION}:key:10", "--rate-limit", "aliyun=10"],
        cwd=ROOT, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert child.stderr is not None
        line = child.stderr.readline()
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert url, line

        async def check() -> None:
            async with aiohttp.ClientSession() as client:
                caller = Caller(client, url.group(1))
                ok = await caller.aliyun("ListKeys", {}, ak="ops", secret="s3cret")
                default = await caller.aliyun("ListKeys", {})
                assert (ok.status, ok.body["TotalCount"]) == (200, 10)
                assert default.body["Code"] == "InvalidAccessKeyId.NotFound"

        asyncio.run(check())
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=10) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_threaded_server_serves_synchronous_callers() -> None:
    with ThreadedEmulatorServer(EmulatorConfig(), make_inventory()) as running:

        async def tag() -> Answer:
            async with aiohttp.ClientSession() as client:
                return await Caller(client, running.url).huawei(
                    "POST", tags_path(0), {"tag": {"key": "env", "value": "prod"}}
                )

        assert asyncio.run(tag()).status == 204
        tags = running.call(lambda: running.emulator.tags_of("huawei", PROJECT, "key", hkey(0)))
        assert tags == {"env": "prod"}
    with pytest.raises(RuntimeError):
        running.call(lambda: None)
