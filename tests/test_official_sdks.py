"""The unmodified official SDKs against the emulator, configured as sdk-wire.md §1.1 and §2.1.

The emulator serves from a thread of its own (:class:`ThreadedEmulatorServer`), so the SDKs'
blocking calls can run straight from the test; the Alibaba async SDK runs on the test's loop.
Tag state is checked through ``/_emulator/state``, as any client would.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_kms20160120.client import Client as AliyunClient
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.exceptions import ClientException
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkkms.v2 import (
    BatchCreateKmsTagsRequest,
    BatchCreateKmsTagsRequestBody,
    CreateKmsTagRequest,
    CreateKmsTagRequestBody,
    KmsClient,
    ListKeysRequest,
    ListKeysRequestBody,
    ShowKmsTagsRequest,
    TagItem,
)

from emulator import (
    EmulatorConfig,
    GenerateSpec,
    Inventory,
    ThreadedEmulatorServer,
    aliyun_key_id,
    huawei_key_id,
)

REGION = "cn-hangzhou"
PROJECT = "0123456789abcdef0123456789abcdef"
KEYS = 30
HUAWEI_KEYS = 12
# Alibaba allows only letters, digits and / \ _ - . + = : @ in tags: no spaces.
TAGS = [("team/a", "x=y"), ("env", "prod")]


def inventory() -> Inventory:
    return Inventory.generated(
        GenerateSpec("aliyun", REGION, "key", KEYS),
        GenerateSpec("huawei", PROJECT, "key", HUAWEI_KEYS),
    )


@pytest.fixture
def server() -> Iterator[ThreadedEmulatorServer]:
    with ThreadedEmulatorServer(EmulatorConfig(), inventory()) as running:
        yield running


@pytest.fixture
def throttled_server() -> Iterator[ThreadedEmulatorServer]:
    config = EmulatorConfig(rate_limits={"aliyun": 1, "huawei": 1}, burst=1)
    with ThreadedEmulatorServer(config, inventory()) as running:
        yield running


def state(server: ThreadedEmulatorServer, provider: str, location: str) -> dict[str, Any]:
    url = f"{server.url}/_emulator/state?provider={provider}&location={location}&tagged=true"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: dict[str, Any] = json.load(resp)
    table: dict[str, Any] = body["resources"][provider][location]["key"]
    return table


# --- Alibaba -----------------------------------------------------------------------------------


def aliyun(server: ThreadedEmulatorServer, signature: str, secret: str = "testsecret") -> Any:
    config = open_api_models.Config(
        access_key_id="testid",
        access_key_secret=secret,
        endpoint=server.endpoint,  # '127.0.0.1:PORT', no scheme (sdk-wire.md §1.1)
        protocol="http",
        region_id=REGION,
    )
    if signature == "v2":
        config.signature_algorithm = "v2"
    return AliyunClient(config)


def tag_request(ids: list[str]) -> Any:
    return kms_models.TagResourcesRequest(
        region_id=REGION,
        resource_type="key",
        resource_id=ids,
        tag=[kms_models.TagResourcesRequestTag(key=k, value=v) for k, v in TAGS],
    )


@pytest.mark.parametrize("signature", ["v3", "v2"])
def test_alibaba_sdk_tag_resources_succeeds_and_tags_show_in_state(
    server: ThreadedEmulatorServer, signature: str
) -> None:
    ids = [aliyun_key_id(REGION, 0), aliyun_key_id(REGION, 1)]
    response = aliyun(server, signature).tag_resources(tag_request(ids))
    assert response.status_code == 200
    assert response.body.request_id
    assert state(server, "aliyun", REGION) == {rid: dict(TAGS) for rid in ids}


@pytest.mark.parametrize("signature", ["v3", "v2"])
def test_alibaba_sdk_missing_key_raises_not_found_and_tags_nothing(
    server: ThreadedEmulatorServer, signature: str
) -> None:
    ids = [aliyun_key_id(REGION, 2), aliyun_key_id(REGION, KEYS + 1)]
    with pytest.raises(ClientException) as raised:
        aliyun(server, signature).tag_resources(tag_request(ids))
    assert raised.value.code == "InvalidResourceId.NotFound"
    assert raised.value.status_code == 404
    assert raised.value.data["Message"] == "The specified ResourceId is not found."
    assert state(server, "aliyun", REGION) == {}


@pytest.mark.parametrize("signature", ["v3", "v2"])
def test_alibaba_sdk_wrong_secret_gets_a_signature_error(
    server: ThreadedEmulatorServer, signature: str
) -> None:
    client = aliyun(server, signature, secret="wrong-secret")
    with pytest.raises(ClientException) as raised:
        client.tag_resources(tag_request([aliyun_key_id(REGION, 0)]))
    assert (raised.value.code, raised.value.status_code) == ("IncompleteSignature", 400)
    assert "does not match" in raised.value.data["Message"]
    assert state(server, "aliyun", REGION) == {}


async def test_alibaba_sdk_tag_resources_async_succeeds(server: ThreadedEmulatorServer) -> None:
    ids = [aliyun_key_id(REGION, 3)]
    response = await aliyun(server, "v3").tag_resources_async(tag_request(ids))
    assert response.status_code == 200
    assert state(server, "aliyun", REGION) == {ids[0]: dict(TAGS)}


def test_alibaba_sdk_list_calls_parse(server: ThreadedEmulatorServer) -> None:
    client = aliyun(server, "v3")
    tagged = aliyun_key_id(REGION, 4)
    client.tag_resources(tag_request([tagged]))
    keys = client.list_keys(kms_models.ListKeysRequest(page_number=2, page_size=20)).body
    assert keys.total_count == KEYS
    assert [k.key_id for k in keys.keys.key] == [aliyun_key_id(REGION, n) for n in range(20, 30)]
    rows = client.list_tag_resources(
        kms_models.ListTagResourcesRequest(
            region_id=REGION, resource_type="key", resource_id=[tagged]
        )
    ).body
    found = [(r.resource_id, r.tag_key, r.tag_value) for r in rows.tag_resources.tag_resource]
    assert sorted(found) == sorted((tagged, k, v) for k, v in TAGS)
    assert rows.next_token == ""
    client.untag_resources(
        kms_models.UntagResourcesRequest(
            region_id=REGION, resource_type="key", resource_id=[tagged], tag_key=["env"]
        )
    )
    assert state(server, "aliyun", REGION) == {tagged: {"team/a": "x=y"}}


def test_alibaba_sdk_throttled_call_is_429_rejected_throttling(
    throttled_server: ThreadedEmulatorServer,
) -> None:
    client = aliyun(throttled_server, "v3")
    request = tag_request([aliyun_key_id(REGION, 0)])
    client.tag_resources(request)
    with pytest.raises(ClientException) as raised:
        client.tag_resources(request)
    assert (raised.value.code, raised.value.status_code) == ("Rejected.Throttling", 429)
    assert raised.value.data["Message"] == "QPS Limit Exceeded"


# --- Huawei ------------------------------------------------------------------------------------


def huawei(server: ThreadedEmulatorServer, sk: str = "testsk") -> Any:
    credentials = BasicCredentials("testak", sk, project_id=PROJECT)
    return (
        KmsClient.new_builder()
        .with_credentials(credentials)
        .with_endpoint(server.url)  # 'http://127.0.0.1:PORT': the scheme is required (§2.1)
        .build()
    )


def create_request(key_id: str, key: str = "env", value: str = "prod") -> Any:
    body = CreateKmsTagRequestBody(tag=TagItem(key=key, value=value), sequence="919215215123")
    return CreateKmsTagRequest(key_id=key_id, body=body)


def test_huawei_sdk_create_and_batch_create_succeed(server: ThreadedEmulatorServer) -> None:
    client = huawei(server)
    key_id = huawei_key_id(PROJECT, 0)
    assert client.create_kms_tag(create_request(key_id)).status_code == 204
    batch = BatchCreateKmsTagsRequest(
        key_id=key_id,
        body=BatchCreateKmsTagsRequestBody(
            action="create",
            sequence="919215215123",
            tags=[TagItem(key="team a/b", value="x y&z"), TagItem(key="env", value="staging")],
        ),
    )
    assert client.batch_create_kms_tags(batch).status_code == 204
    expected = {"env": "staging", "team a/b": "x y&z"}  # env overwritten
    assert state(server, "huawei", PROJECT) == {key_id: expected}
    shown = client.show_kms_tags(ShowKmsTagsRequest(key_id=key_id))
    assert {t.key: t.value for t in shown.tags} == expected
    assert shown.exist_tags_num == 2
    listed = client.list_keys(ListKeysRequest(body=ListKeysRequestBody(limit="5", marker="5")))
    assert listed.keys == [huawei_key_id(PROJECT, n) for n in range(5, 10)]
    assert (listed.truncated, listed.next_marker, listed.total) == ("true", "10", HUAWEI_KEYS)
    assert listed.key_details[0].key_id == listed.keys[0]


def test_huawei_sdk_missing_key_is_404_kms_0207_with_the_request_id(
    server: ThreadedEmulatorServer,
) -> None:
    with pytest.raises(ClientRequestException) as raised:
        huawei(server).create_kms_tag(create_request(huawei_key_id(PROJECT, HUAWEI_KEYS)))
    error = raised.value
    assert (error.status_code, error.error_code) == (404, "KMS.0207")
    assert error.request_id is not None and re.fullmatch(r"[0-9a-f]{32}", error.request_id)


def test_huawei_sdk_wrong_sk_is_401_apigw_0301(server: ThreadedEmulatorServer) -> None:
    with pytest.raises(ClientRequestException) as raised:
        huawei(server, sk="wrong").create_kms_tag(create_request(huawei_key_id(PROJECT, 0)))
    assert (raised.value.status_code, raised.value.error_code) == (401, "APIGW.0301")
    assert "verify aksk signature fail" in raised.value.error_msg
    assert state(server, "huawei", PROJECT) == {}


def test_huawei_sdk_throttled_call_is_429_apigw_0308(
    throttled_server: ThreadedEmulatorServer,
) -> None:
    client = huawei(throttled_server)
    request = create_request(huawei_key_id(PROJECT, 0))
    client.create_kms_tag(request)
    with pytest.raises(ClientRequestException) as raised:
        client.create_kms_tag(request)
    assert (raised.value.status_code, raised.value.error_code) == (429, "APIGW.0308")
    assert raised.value.request_id
