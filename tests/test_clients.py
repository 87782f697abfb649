"""The project's own provider clients against the emulator, over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from emulator.config import EmulatorConfig
from emulator.ids import aliyun_key_id, aliyun_secret_name, huawei_key_id
from emulator.inventory import GenerateSpec, Inventory
from emulator.server import EmulatorServer
from providers.aliyun.client import AliyunKmsClient, tag_resources_params
from providers.credentials import AliyunCredentials, HuaweiCredentials
from providers.http import new_session
from providers.huawei.client import HuaweiKmsClient
from providers.results import Outcome

REGION = "cn-hangzhou"
PROJECT = "0123456789abcdef0123456789abcdef"
ALI = AliyunCredentials("testid", "testsecret")
HW = HuaweiCredentials("testak", "testsk")
HW_TOKEN = HuaweiCredentials(auth_token="test-token")


def inventory() -> Inventory:
    return Inventory.generated(
        GenerateSpec("aliyun", REGION, "key", 200),
        GenerateSpec("aliyun", REGION, "secret", 20),
        GenerateSpec("huawei", PROJECT, "key", 30),
    )


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(EmulatorConfig(), inventory()) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with new_session() as s:
        yield s


def ali(session: aiohttp.ClientSession, server: EmulatorServer, **kw: object) -> AliyunKmsClient:
    return AliyunKmsClient(session, ALI, REGION, endpoint=server.url, **kw)  # type: ignore[arg-type]


def hw(
    session: aiohttp.ClientSession, server: EmulatorServer, creds: HuaweiCredentials = HW
) -> HuaweiKmsClient:
    return HuaweiKmsClient(session, creds, PROJECT, "cn-north-4", endpoint=server.url)


def test_alibaba_arrays_are_flattened_with_one_based_indexes() -> None:
    params = tag_resources_params(REGION, "key", ["a", "b"], [("env", "prod"), ("o", "x")])
    assert params == {
        "RegionId": REGION, "ResourceType": "key", "ResourceId.1": "a", "ResourceId.2": "b",
        "Tag.1.Key": "env", "Tag.1.Value": "prod", "Tag.2.Key": "o", "Tag.2.Value": "x",
    }  # fmt: skip


@pytest.mark.parametrize("signature", ["v3", "v2"])
async def test_alibaba_tag_resources_tags_a_batch_of_fifty(
    emulator: EmulatorServer, session: aiohttp.ClientSession, signature: str
) -> None:
    ids = [aliyun_key_id(REGION, n) for n in range(50)]
    result = await ali(session, emulator, signature=signature).tag_resources(
        "key", ids, [("env", "prod"), ("path", "a/b=c:d@e")]
    )
    assert result.outcome is Outcome.OK and result.http_status == 200 and result.request_id
    for rid in (ids[0], ids[49]):
        assert emulator.emulator.tags_of("aliyun", REGION, "key", rid) == {
            "env": "prod", "path": "a/b=c:d@e",
        }  # fmt: skip


async def test_alibaba_secrets_are_tagged_too(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    name = aliyun_secret_name(REGION, 3)
    result = await ali(session, emulator).tag_resources("secret", [name], [("env", "prod")])
    assert result.ok
    assert emulator.emulator.tags_of("aliyun", REGION, "secret", name) == {"env": "prod"}


async def test_alibaba_missing_id_is_not_found_and_tags_nothing(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    ids = [aliyun_key_id(REGION, 1), "key-hzz99999999999999999"]
    result = await ali(session, emulator).tag_resources("key", ids, [("env", "prod")])
    assert result.outcome is Outcome.NOT_FOUND
    assert (result.http_status, result.code) == (404, "InvalidResourceId.NotFound")
    assert result.request_id
    assert emulator.emulator.tags_of("aliyun", REGION, "key", ids[0]) == {}


async def test_alibaba_wrong_secret_is_auth(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    client = AliyunKmsClient(
        session, AliyunCredentials("testid", "wrong"), REGION, endpoint=emulator.url
    )
    result = await client.tag_resources("key", [aliyun_key_id(REGION, 1)], [("env", "prod")])
    assert result.outcome is Outcome.AUTH


async def test_alibaba_unknown_access_key_is_auth(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    client = AliyunKmsClient(
        session, AliyunCredentials("nobody", "x"), REGION, endpoint=emulator.url, signature="v2"
    )
    result = await client.tag_resources("key", [aliyun_key_id(REGION, 1)], [("env", "prod")])
    assert (result.outcome, result.code) == (Outcome.AUTH, "InvalidAccessKeyId.NotFound")


async def test_alibaba_bad_tag_is_invalid(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    result = await ali(session, emulator).tag_resources(
        "key", [aliyun_key_id(REGION, 1)], [("aliyun:reserved", "x")]
    )
    assert (result.outcome, result.code) == (Outcome.INVALID, "InvalidParameter.TagKey")


async def test_alibaba_rate_limit_is_throttled(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    emulator.config.apply({"rate_limits": {"aliyun": 2}, "burst": 1})
    client = ali(session, emulator)
    results = [
        await client.tag_resources("key", [aliyun_key_id(REGION, n)], [("env", "prod")])
        for n in range(4)
    ]
    throttled = [r for r in results if r.outcome is Outcome.THROTTLED]
    assert throttled and throttled[0].http_status == 429
    assert throttled[0].code == "Rejected.Throttling"


@pytest.mark.parametrize("fault", ["500", "503", "reset"])
async def test_alibaba_server_faults_are_transient(
    emulator: EmulatorServer, session: aiohttp.ClientSession, fault: str
) -> None:
    emulator.config.apply({"faults": {fault: 1.0}})
    result = await ali(session, emulator).tag_resources(
        "key", [aliyun_key_id(REGION, 1)], [("env", "prod")]
    )
    assert result.outcome is Outcome.TRANSIENT


async def test_timeout_is_transient(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    emulator.config.apply({"faults": {"timeout": 1.0}, "timeout_delay": 5})
    client = AliyunKmsClient(session, ALI, REGION, endpoint=emulator.url, timeout=0.3)
    result = await client.tag_resources("key", [aliyun_key_id(REGION, 1)], [("env", "prod")])
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "Timeout")


async def test_unreachable_endpoint_is_transient(session: aiohttp.ClientSession) -> None:
    client = AliyunKmsClient(session, ALI, REGION, endpoint="http://127.0.0.1:1")
    result = await client.tag_resources("key", ["key-hzz00000000000000001"], [("env", "x")])
    assert (result.outcome, result.code) == (Outcome.TRANSIENT, "ConnectionError")


async def test_alibaba_listing_pages_and_tags(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    client = ali(session, emulator)
    first = aliyun_key_id(REGION, 0)
    assert (await client.tag_resources("key", [first], [("env", "prod")])).ok
    result, keys, total = await client.list_keys(page_number=2, page_size=100)
    assert result.ok and total == 200 and len(keys) == 100 and keys[0] == aliyun_key_id(REGION, 100)
    result, rows, token = await client.list_tag_resources("key", [first])
    assert result.ok and rows == [(first, "env", "prod")] and token is None
    result, secrets, total = await client.list_secrets(page_size=5)
    assert result.ok and total == 20 and len(secrets) == 5


async def test_alibaba_untag_removes_the_keys(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    client = ali(session, emulator)
    rid = aliyun_key_id(REGION, 7)
    await client.tag_resources("key", [rid], [("env", "prod"), ("owner", "a")])
    assert (await client.untag_resources("key", [rid], ["env"])).ok
    assert emulator.emulator.tags_of("aliyun", REGION, "key", rid) == {"owner": "a"}


# --- Huawei ---------------------------------------------------------------------------------


@pytest.mark.parametrize("creds", [HW, HW_TOKEN], ids=["aksk", "token"])
async def test_huawei_single_tag_then_batch_tags_one_key(
    emulator: EmulatorServer, session: aiohttp.ClientSession, creds: HuaweiCredentials
) -> None:
    client = hw(session, emulator, creds)
    key = huawei_key_id(PROJECT, 3)
    one = await client.tag_key(key, [("env", "prod")])
    assert one.outcome is Outcome.OK and one.http_status == 204 and one.request_id
    many = await client.tag_key(key, [("owner", "team a"), ("cost-center", "")])
    assert many.ok
    result, tags = await client.list_tags(key)
    assert result.ok and dict(tags) == {"env": "prod", "owner": "team a", "cost-center": ""}


async def test_huawei_missing_key_is_not_found(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    result = await hw(session, emulator).add_tag(missing, "env", "prod")
    assert (result.outcome, result.http_status, result.code) == (Outcome.NOT_FOUND, 404, "KMS.0207")
    assert result.request_id


async def test_huawei_wrong_sk_and_bad_token_are_auth(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    key = huawei_key_id(PROJECT, 1)
    bad_sk = hw(session, emulator, HuaweiCredentials("testak", "nope"))
    bad_token = hw(session, emulator, HuaweiCredentials(auth_token="nope"))
    for client in (bad_sk, bad_token):
        result = await client.add_tag(key, "env", "prod")
        assert (result.outcome, result.http_status, result.code) == (
            Outcome.AUTH,
            401,
            "APIGW.0301",
        )


async def test_huawei_bad_tag_is_invalid(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    result = await hw(session, emulator).add_tag(huawei_key_id(PROJECT, 1), "a*b", "x")
    assert (result.outcome, result.code) == (Outcome.INVALID, "KMS.0406")


async def test_huawei_throttling_is_throttled(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    emulator.config.apply({"rate_limits": {"huawei": 1}, "burst": 1})
    client = hw(session, emulator)
    results = [await client.add_tag(huawei_key_id(PROJECT, n), "env", "p") for n in range(3)]
    assert any(
        r.outcome is Outcome.THROTTLED and r.code == "APIGW.0308" and r.http_status == 429
        for r in results
    )


async def test_huawei_502_is_transient(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    emulator.config.apply({"faults": {"502": 1.0}})
    result = await hw(session, emulator).add_tag(huawei_key_id(PROJECT, 1), "env", "p")
    assert result.outcome is Outcome.TRANSIENT


async def test_huawei_list_keys_pages_with_marker(
    emulator: EmulatorServer, session: aiohttp.ClientSession
) -> None:
    client = hw(session, emulator)
    seen: list[str] = []
    marker: str | None = None
    while True:
        result, keys, marker = await client.list_keys(limit=7, marker=marker)
        assert result.ok
        seen += keys
        if marker is None:
            break
    assert seen == [huawei_key_id(PROJECT, n) for n in range(30)]
