"""Request signers: published vectors, literal SDK captures, and parity with the official SDKs.

Vectors: providers.md §1.5, §1.6, §3.6, §5. Captures: sdk-wire.md §1.3 and §2.3 (re-verified
there with the decode-then-re-encode recipe of §1.4 / §2.4, which these tests pin).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_openapi_util.client import Client as OpenApiUtil
from alibabacloud_tea_openapi.utils import Utils as TeaOpenApiUtils
from darabonba.request import DaraRequest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer as HuaweiSigner
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.aliyun import signing as ali
from providers.huawei import signing as hw

# --------------------------------------------------------------------------------------------
# Alibaba V2 (HMAC-SHA1 RPC): providers.md §1.5 / §5

_V2_COMMON = {
    "AccessKeyId": "testid",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureVersion": "1.0",
}

# Self-computed, SDK-confirmed TagResources vector (providers.md §1.5).
TAG_RESOURCES_V2_PARAMS: dict[str, str] = {
    **_V2_COMMON,
    "Action": "TagResources",
    "Format": "json",
    "RegionId": "cn-hangzhou",
    "ResourceId.1": "key-hzz62f1cb66fa42qo1234",
    "ResourceId.2": "key-hzz62f1cb66fa42qo5678",
    "ResourceType": "key",
    "SignatureNonce": "11111111-2222-3333-4444-555555555555",
    "Tag.1.Key": "env",
    "Tag.1.Value": "prod",
    "Tag.2.Key": "owner",
    "Tag.2.Value": "team a/b",
    "Timestamp": "2024-01-01T00:00:00Z",
    "Version": "2016-01-20",
}
TAG_RESOURCES_V2_SIGNATURE = "eD4oP1wK67VZxi1EJdPpdwW9cmk="

V2_VECTORS = [
    pytest.param(
        "GET",
        {
            **_V2_COMMON,
            "Action": "CreateKey",
            "Format": "json",
            "Timestamp": "2016-03-28T03:13:08Z",
            "Version": "2016-01-20",
        },
        "testsecret",
        "41wk2SSX1GJh7fwnc5eqOfiJPFg=",
        id="kms-doc-CreateKey",
    ),
    pytest.param(
        "GET",
        {
            **_V2_COMMON,
            "Action": "DescribeDedicatedHosts",
            "Format": "JSON",
            "RegionId": "cn-beijing",
            "SignatureNonce": "edb2b34af0af9a6d14deaf7c1a5315eb",
            "Timestamp": "2023-03-13T08:34:30Z",
            "Version": "2014-05-26",
        },
        "testsecret",
        "9NaGiOspFP5UPcwX8Iwt2YJXXuk=",
        id="v2-doc-DescribeDedicatedHosts",
    ),
    pytest.param(
        "GET",
        {
            **_V2_COMMON,
            "Action": "DescribeRegions",
            "Format": "XML",
            "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
            "Timestamp": "2016-02-23T12:46:24Z",
            "Version": "2014-05-26",
        },
        "testsecret",
        "OLeaidS1JvxuMvnyHOwuJ+uX5qY=",
        id="ecs-doc-DescribeRegions",
    ),
    # darabonba-openapi-util python/tests/test_client.py::test_get_rpc_signature
    pytest.param(
        "GET",
        {"query": "test", "body": "test"},
        "secret",
        "XlUyV4sXjOuX5FnjUz9IF9tm5rU=",
        id="sdk-unit-test",
    ),
    pytest.param(
        "POST",
        TAG_RESOURCES_V2_PARAMS,
        "testsecret",
        TAG_RESOURCES_V2_SIGNATURE,
        id="self-TagResources-POST",
    ),
]


@pytest.mark.parametrize(("method", "params", "secret", "expected"), V2_VECTORS)
def test_rpc_signature_reproduces_published_v2_vectors(
    method: str, params: dict[str, str], secret: str, expected: str
) -> None:
    assert ali.rpc_signature(method, params, secret) == expected


def test_rpc_signature_ignores_a_signature_parameter() -> None:
    params = {**TAG_RESOURCES_V2_PARAMS, "Signature": "x"}
    assert ali.rpc_signature("POST", params, "testsecret") == TAG_RESOURCES_V2_SIGNATURE


def test_percent_encode_is_rfc3986_not_form_encoding() -> None:
    assert ali.percent_encode("a b*c~d/e+f=g&h") == "a%20b%2Ac~d%2Fe%2Bf%3Dg%26h"
    assert ali.percent_encode("é") == "%C3%A9"


def test_canonical_query_sorts_by_name_then_value_and_encodes_both() -> None:
    pairs = [("b", "2"), ("a b", "x/y"), ("b", "1"), ("empty", "")]
    assert ali.canonical_query(pairs) == "a%20b=x%2Fy&b=1&b=2&empty="
    assert ali.canonical_query({"b": "1", "a": "z"}) == "a=z&b=1"


def test_tag_resources_canonical_query_encodes_space_and_slash() -> None:
    # providers.md §1.5: "canonical query contains Tag.2.Value=team%20a%2Fb".
    assert "Tag.2.Value=team%20a%2Fb" in ali.canonical_query(TAG_RESOURCES_V2_PARAMS)


# --------------------------------------------------------------------------------------------
# Alibaba V3 (ACS3-HMAC-SHA256): providers.md §1.6 / §5


def test_acs3_signature_reproduces_v3_doc_run_instances_vector() -> None:
    # The doc signs exactly these six headers (no content-type, no user-agent).
    headers = {
        "host": "ecs.cn-shanghai.aliyuncs.com",
        "x-acs-action": "RunInstances",
        "x-acs-content-sha256": ali.EMPTY_PAYLOAD_SHA256,
        "x-acs-date": "2023-10-26T10:22:32Z",
        "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
        "x-acs-version": "2014-05-26",
    }
    params = {
        "ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
        "RegionId": "cn-shanghai",
    }
    signature = ali.acs3_signature(
        "POST", "/", params, headers, list(headers), ali.EMPTY_PAYLOAD_SHA256, "YourAccessKeySecret"
    )
    assert signature == "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"


def test_acs3_signature_reproduces_sdk_unit_test_vector_with_merged_header_and_empty_value() -> (
    None
):
    # darabonba-openapi-util test_get_authorization: headers x-acs-test=http and x-acs-TEST=https
    # merge to "http,https" (sorted values); empty path -> "/"; query empty= -> "empty=".
    signature = ali.acs3_signature(
        "GET",
        "",
        {"test": "ok", "empty": ""},
        {"x-acs-test": "http,https"},
        ["x-acs-test"],
        "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23",
        "secret",
    )
    assert signature == "d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
    assert ali.acs3_authorization("acesskey", ["x-acs-test"], signature) == (
        "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,Signature="
        "d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
    )


def test_acs3_signature_reproduces_self_computed_tag_resources_vector() -> None:
    headers = {
        "host": "kms.cn-hangzhou.aliyuncs.com",
        "x-acs-action": "TagResources",
        "x-acs-version": "2016-01-20",
        "x-acs-date": "2024-01-01T00:00:00Z",
        "x-acs-signature-nonce": "0123456789abcdef0123456789abcdef",
        "x-acs-content-sha256": ali.EMPTY_PAYLOAD_SHA256,
    }
    params = {
        "RegionId": "cn-hangzhou",
        "ResourceId.1": "key-hzz62f1cb66fa42qo1234",
        "ResourceType": "key",
        "Tag.1.Key": "env",
        "Tag.1.Value": "prod",
    }
    signature = ali.acs3_signature(
        "POST", "/", params, headers, list(headers), ali.EMPTY_PAYLOAD_SHA256, "testsecret"
    )
    assert signature == "5615856981b7425b705983eb42a99bdd524d4b60c43c5ff9b3e3c271dd597d1d"


def test_acs3_signature_is_independent_of_signed_header_order_and_case() -> None:
    headers = {"host": "h", "x-acs-date": "d"}
    args = ("POST", "/", {"a": "1"}, headers)
    first = ali.acs3_signature(*args, ["x-acs-date", "host"], ali.EMPTY_PAYLOAD_SHA256, "s")
    second = ali.acs3_signature(*args, ["Host", "X-Acs-Date"], ali.EMPTY_PAYLOAD_SHA256, "s")
    assert first == second


def test_acs3_signature_rejects_a_signed_header_the_request_lacks() -> None:
    with pytest.raises(ValueError, match="x-acs-date"):
        ali.acs3_signature(
            "POST", "/", {}, {"host": "h"}, ["host", "x-acs-date"], ali.EMPTY_PAYLOAD_SHA256, "s"
        )


def test_sha256_hex_of_empty_payload_is_the_constant() -> None:
    assert ali.sha256_hex(b"") == ali.EMPTY_PAYLOAD_SHA256
    assert ali.sha256_hex(b"test") == (
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    )


def test_rpc_timestamp_format_renders_utc_like_the_sdk() -> None:
    moment = datetime(2026, 11, 25, 21, 8, 8, tzinfo=UTC)
    assert moment.strftime(ali.RPC_TIMESTAMP_FORMAT) == "2026-11-25T21:08:08Z"


# --------------------------------------------------------------------------------------------
# Literal SDK captures (sdk-wire.md §1.3): verify over parse_qsl-decoded parameters.

_CAPTURE_USER_AGENT = "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2"
_CAPTURE_V3_COMMON = {
    "host": "127.0.0.1:38585",
    "x-acs-version": "2016-01-20",
    "x-acs-action": "TagResources",
    "user-agent": _CAPTURE_USER_AGENT,
    "x-acs-date": "2026-11-25T21:08:08Z",
    "accept": "application/json",
    "x-acs-content-sha256": ali.EMPTY_PAYLOAD_SHA256,
    "x-acs-credentials-provider": "static_ak",
}
_CAPTURE_V3_SIGNED = (
    "accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;"
    "x-acs-date;x-acs-signature-nonce;x-acs-version"
)

ALIYUN_V3_CAPTURES = [
    pytest.param(
        "/?RegionId=cn-hangzhou&ResourceId.1=key-hzz63a1b2c3d4e5f6g7h8"
        "&ResourceId.2=key-hzz6aaaabbbbccccdddd&ResourceType=key&Tag.1.Key=env&Tag.1.Value=prod"
        "&Tag.2.Key=team+a%2Fb&Tag.2.Value=x%3Dy%26z",
        {
            **_CAPTURE_V3_COMMON,
            "x-acs-signature-nonce": "21b035c69bd02e53e05796352e80830a",
            "accept-encoding": "identity",
            "content-length": "0",
        },
        "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=" + _CAPTURE_V3_SIGNED + ",Signature="
        "8cb824932928d3bf308bbb7112b74b9d8bfd21fe081e63e7268dc51e9da50052",
        id="a-sync",
    ),
    pytest.param(
        # aiohttp/yarl leaves "/" unescaped in the query.
        "/?RegionId=cn-hangzhou&ResourceId.1=key-hzz63a1b2c3d4e5f6g7h8"
        "&ResourceId.2=key-hzz6aaaabbbbccccdddd&ResourceType=key&Tag.1.Key=env&Tag.1.Value=prod"
        "&Tag.2.Key=team+a/b&Tag.2.Value=x%3Dy%26z",
        {
            **_CAPTURE_V3_COMMON,
            "x-acs-signature-nonce": "dbeb5c2aed98ccb52f00d8b5f91981fc",
            "accept-encoding": "gzip, deflate",
            "content-length": "0",
            "content-type": "application/octet-stream",
        },
        "ACS3-HMAC-SHA256 Credential=testid,SignedHeaders=" + _CAPTURE_V3_SIGNED + ",Signature="
        "5586e59e461f626ef0eedccc1d69bcef7df2f5e74d52fc2c7ca0aec838c8af76",
        id="c-async",
    ),
]


@pytest.mark.parametrize(("target", "headers", "authorization"), ALIYUN_V3_CAPTURES)
def test_acs3_signature_verifies_literal_sdk_capture_over_decoded_query(
    target: str, headers: dict[str, str], authorization: str
) -> None:
    parsed = ali.parse_acs3_authorization(authorization)
    assert parsed is not None
    assert parsed.access_key_id == "testid"
    url = urlsplit(target)
    params = dict(parse_qsl(url.query, keep_blank_values=True))
    payload_hash = ali.sha256_hex(b"")
    assert headers["x-acs-content-sha256"] == payload_hash
    signature = ali.acs3_signature(
        "POST", url.path, params, headers, parsed.signed_headers, payload_hash, "testsecret"
    )
    assert signature == parsed.signature
    assert ali.acs3_authorization("testid", parsed.signed_headers, signature) == authorization


ALIYUN_V2_CAPTURES = [
    pytest.param(
        "/?Action=TagResources&Format=json&Version=2016-01-20&Timestamp=2026-11-25T21%3A08%3A08Z"
        "&SignatureNonce=2af17acdc4d27fd8d6d6c4bfe1695a67&RegionId=cn-hangzhou"
        "&ResourceId.1=key-hzz63a1b2c3d4e5f6g7h8&ResourceId.2=key-hzz6aaaabbbbccccdddd"
        "&ResourceType=key&Tag.1.Key=env&Tag.1.Value=prod&Tag.2.Key=team+a%2Fb"
        "&Tag.2.Value=x%3Dy%26z&SignatureMethod=HMAC-SHA1&SignatureVersion=1.0"
        "&AccessKeyId=testid&Signature=9oAewaWpVSRZXyNb1M277NEeMAI%3D",
        "9oAewaWpVSRZXyNb1M277NEeMAI=",
        id="b-sync",
    ),
    pytest.param(
        # aiohttp/yarl leaves "/" and ":" unescaped.
        "/?Action=TagResources&Format=json&Version=2016-01-20&Timestamp=2026-11-25T21:08:08Z"
        "&SignatureNonce=acdbdbe07fcda2e34b66b053634bee67&RegionId=cn-hangzhou"
        "&ResourceId.1=key-hzz63a1b2c3d4e5f6g7h8&ResourceId.2=key-hzz6aaaabbbbccccdddd"
        "&ResourceType=key&Tag.1.Key=env&Tag.1.Value=prod&Tag.2.Key=team+a/b"
        "&Tag.2.Value=x%3Dy%26z&SignatureMethod=HMAC-SHA1&SignatureVersion=1.0"
        "&AccessKeyId=testid&Signature=YXJu0ce14RZf/vkhWCjUswrUVHo%3D",
        "YXJu0ce14RZf/vkhWCjUswrUVHo=",
        id="d-async",
    ),
]


@pytest.mark.parametrize(("target", "expected"), ALIYUN_V2_CAPTURES)
def test_rpc_signature_verifies_literal_sdk_capture_over_decoded_query(
    target: str, expected: str
) -> None:
    params = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
    assert params["Signature"] == expected
    assert params["Tag.2.Key"] == "team a/b"
    assert ali.rpc_signature("POST", params, "testsecret") == expected


def test_rpc_signature_over_the_raw_query_would_not_verify() -> None:
    # Why the recipe decodes first: the raw "+" is a form-encoded space, not a literal "+".
    target, expected = (str(value) for value in ALIYUN_V2_CAPTURES[0].values)
    raw = dict(pair.split("=", 1) for pair in urlsplit(target).query.split("&"))
    assert raw["Signature"] != expected
    assert ali.rpc_signature("POST", raw, "testsecret") != expected


# --------------------------------------------------------------------------------------------
# Huawei SDK-HMAC-SHA256: providers.md §3.6 / §5, sdk-wire.md §2.3

_HW_DOC_AK = "QTWAOYTTINDUT2QVKYUC"
_HW_DOC_SK = "MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc"


def test_huawei_signature_reproduces_signing_guide_vpc_list_vector() -> None:
    headers = {
        "Content-Type": "application/json",
        "Host": "service.region.example.com",
        "X-Sdk-Date": "20191115T033655Z",
    }
    query = [("limit", "2"), ("marker", "13551d6b-755d-4757-b956-536f674975c0")]
    signature = hw.sdk_hmac_sha256_signature(
        "GET",
        "/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
        query,
        headers,
        list(headers),
        b"",
        "20191115T033655Z",
        _HW_DOC_SK,
    )
    assert signature == "7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
    assert hw.authorization(_HW_DOC_AK, list(headers), signature) == (
        "SDK-HMAC-SHA256 Access=QTWAOYTTINDUT2QVKYUC, "
        "SignedHeaders=content-type;host;x-sdk-date, "
        "Signature=7be6668032f70418fcc22abc52071e57aff61b84a1d2381bb430d6870f4f6ebe"
    )


def test_huawei_signature_reproduces_self_computed_kms_tags_action_vector() -> None:
    headers = {
        "Content-Type": "application/json;charset=UTF-8",
        "Host": "kms.cn-north-4.myhuaweicloud.com",
        "X-Sdk-Date": "20240101T000000Z",
    }
    signature = hw.sdk_hmac_sha256_signature(
        "POST",
        "/v1.0/0123456789abcdef0123456789abcdef/kms/0d0466b0-e727-4d9c-b35d-f84bb474a37f/tags/action",
        [],
        headers,
        list(headers),
        b'{"action":"create","tags":[{"key":"env","value":"prod"}]}',
        "20240101T000000Z",
        _HW_DOC_SK,
    )
    assert signature == "50ca0fa38d1bfd19c123bd055b5bad98dc163a6e09fdfff60e00288fa09eabdf"


_HW_CAPTURE_HEADERS = {
    "User-Agent": "huaweicloud-usdk-python/3.0; os/Linux##1_SMP_PREEMPT_DYNAMIC_@0#x86_64 "
    "python/3.11.7 impl/CPython; app/d161b941-de3d-4114-81a1-e5e91b4922ab",
    "Accept-Encoding": "gzip, deflate",
    "Accept": "*/*",
    "Connection": "keep-alive",
    "Content-Type": "application/json;charset=utf-8",
    "X-Project-Id": "0123456789abcdef0123456789abcdef",
    "X-Sdk-Date": "20261125T210805Z",
    "Host": "127.0.0.1:34815",
}
_HW_CAPTURE_PREFIX = (
    "/v1.0/0123456789abcdef0123456789abcdef/kms/0d0466b0-e727-4d9c-b35d-f84bb474a37f"
)

HUAWEI_CAPTURES = [
    pytest.param(
        _HW_CAPTURE_PREFIX + "/tags",
        b'{"tag": {"key": "env", "value": "prod"}, "sequence": "919215215123"}',
        "SDK-HMAC-SHA256 Access=testak, "
        "SignedHeaders=content-type;host;user-agent;x-project-id;x-sdk-date, "
        "Signature=063b6be5479f13bf308e0ef5f87ef811e4c12d283de7089d2478e384515438cf",
        id="create_kms_tag",
    ),
    pytest.param(
        _HW_CAPTURE_PREFIX + "/tags/action",
        b'{"tags": [{"key": "env", "value": "prod"}, {"key": "team a/b", "value": "x=y&z"}], '
        b'"action": "create", "sequence": "919215215123"}',
        "SDK-HMAC-SHA256 Access=testak, "
        "SignedHeaders=content-type;host;user-agent;x-project-id;x-sdk-date, "
        "Signature=e9ed239de9ec4ca4335a806e0a4fc4ecf63ea14fec58d9e861f2c0d40bca7cc5",
        id="batch_create_kms_tags",
    ),
]


@pytest.mark.parametrize(("path", "body", "authorization"), HUAWEI_CAPTURES)
def test_huawei_signature_verifies_literal_sdk_capture(
    path: str, body: bytes, authorization: str
) -> None:
    parsed = hw.parse_authorization(authorization)
    assert parsed is not None
    assert parsed.access_key == "testak"
    signature = hw.sdk_hmac_sha256_signature(
        "POST",
        path,
        parse_qsl(urlsplit(path).query, keep_blank_values=True),
        _HW_CAPTURE_HEADERS,
        parsed.signed_headers,
        body,
        _HW_CAPTURE_HEADERS["X-Sdk-Date"],
        "testsk",
    )
    assert signature == parsed.signature
    assert hw.authorization("testak", parsed.signed_headers, signature) == authorization


def test_huawei_canonical_uri_adds_trailing_slash_and_reencodes_segments() -> None:
    assert hw.canonical_uri("/v1.0/p/kms/k/tags") == "/v1.0/p/kms/k/tags/"
    assert hw.canonical_uri("/v1.0/p/kms/k/tags/") == "/v1.0/p/kms/k/tags/"
    assert hw.canonical_uri("/a b/c%20d/e+f") == "/a%20b/c%20d/e%2Bf/"
    assert hw.canonical_uri("") == "/"


def test_huawei_canonical_uri_keeps_an_encoded_slash_inside_its_segment() -> None:
    # Per-segment decoding (sdk-wire.md §2.4). NB: the SDK's Signer decodes the whole path before
    # splitting, so for "%2F" it would sign "/a/b/"; KMS ids never contain one.
    assert hw.canonical_uri("/a%2Fb") == "/a%2Fb/"


def test_huawei_canonical_query_sorts_repeated_keys_by_value() -> None:
    pairs = [("marker", "x y"), ("limit", "2"), ("k", "b"), ("k", "a")]
    assert hw.canonical_query(pairs) == "k=a&k=b&limit=2&marker=x%20y"


def test_huawei_signature_uses_content_sha256_header_for_unsigned_payload_like_the_sdk() -> None:
    headers = {"Content-Type": "text/plain", "Host": "h", "X-Sdk-Date": "20240101T000000Z"}
    request = SdkRequest(
        method="PUT",
        schema="https",
        host="h",
        resource_path="/v1/x",
        query_params=[],
        header_params=dict(headers),
        body=b"not json",
    )
    HuaweiSigner(BasicCredentials("ak", "sk")).sign(request)
    assert request.header_params["X-Sdk-Content-Sha256"] == "UNSIGNED-PAYLOAD"
    headers["X-Sdk-Content-Sha256"] = "UNSIGNED-PAYLOAD"
    signature = hw.sdk_hmac_sha256_signature(
        "PUT", "/v1/x", [], headers, list(headers), b"not json", "20240101T000000Z", "sk"
    )
    assert request.header_params["Authorization"] == hw.authorization(
        "ak", list(headers), signature
    )


def test_huawei_signature_rejects_a_signed_header_the_request_lacks() -> None:
    with pytest.raises(ValueError, match="x-sdk-date"):
        hw.sdk_hmac_sha256_signature(
            "GET", "/", [], {"Host": "h"}, ["host", "x-sdk-date"], b"", "", "s"
        )


def test_sdk_date_format_renders_basic_iso8601_utc() -> None:
    moment = datetime(2019, 11, 15, 3, 36, 55, tzinfo=UTC)
    assert moment.strftime(hw.SDK_DATE_FORMAT) == "20191115T033655Z"


# --------------------------------------------------------------------------------------------
# Wrong secret, Authorization round trips and garbage


def test_wrong_secret_changes_every_signature() -> None:
    params = TAG_RESOURCES_V2_PARAMS
    assert ali.rpc_signature("POST", params, "testsecret") == TAG_RESOURCES_V2_SIGNATURE
    assert ali.rpc_signature("POST", params, "testsecreT") != TAG_RESOURCES_V2_SIGNATURE

    headers = {"host": "h", "x-acs-date": "2024-01-01T00:00:00Z"}
    empty = ali.EMPTY_PAYLOAD_SHA256
    right = ali.acs3_signature("POST", "/", params, headers, list(headers), empty, "testsecret")
    wrong = ali.acs3_signature("POST", "/", params, headers, list(headers), empty, "testsecreT")
    assert right != wrong

    def huawei(secret: str) -> str:
        return hw.sdk_hmac_sha256_signature(
            "POST",
            "/v1/x",
            [("a", "b")],
            {"Host": "h"},
            ["host"],
            b"{}",
            "20240101T000000Z",
            secret,
        )

    assert huawei("sk") != huawei("sK")


_HEX64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
_ACCESS_KEY = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=1
)
_HEADER_NAMES = st.lists(st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True), min_size=1)


@settings(max_examples=50, deadline=None)
@given(access_key=_ACCESS_KEY, names=_HEADER_NAMES, signature=_HEX64)
def test_parse_acs3_authorization_round_trips_authorization_output(
    access_key: str, names: list[str], signature: str
) -> None:
    parsed = ali.parse_acs3_authorization(ali.acs3_authorization(access_key, names, signature))
    expected_names = tuple(sorted({name.lower() for name in names}))
    assert parsed == ali.Acs3Authorization(access_key, expected_names, signature)


@settings(max_examples=50, deadline=None)
@given(access_key=_ACCESS_KEY, names=_HEADER_NAMES, signature=_HEX64)
def test_parse_huawei_authorization_round_trips_authorization_output(
    access_key: str, names: list[str], signature: str
) -> None:
    value = hw.authorization(access_key, names, signature)
    expected = hw.HuaweiAuthorization(
        access_key, tuple(sorted({name.lower() for name in names})), signature
    )
    assert hw.parse_authorization(value) == expected
    assert hw.parse_authorization(value.replace(", ", ",")) == expected


_SIG = "8cb824932928d3bf308bbb7112b74b9d8bfd21fe081e63e7268dc51e9da50052"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ACS3-HMAC-SHA256",
        "ACS3-HMAC-SHA256 ",
        "Bearer abc",
        f"acs3-hmac-sha256 Credential=a,SignedHeaders=host,Signature={_SIG}",
        f"ACS3-HMAC-SHA1 Credential=a,SignedHeaders=host,Signature={_SIG}",
        "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host",
        f"ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature={_SIG}",
        f"ACS3-HMAC-SHA256 Credential=a,SignedHeaders=,Signature={_SIG}",
        f"ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host;;x,Signature={_SIG}",
        "ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature=xyz",
        f"ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature={_SIG}0",
        f"ACS3-HMAC-SHA256 Credential=a,Credential=b,SignedHeaders=host,Signature={_SIG}",
        f"ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature={_SIG},Extra=1",
        f"ACS3-HMAC-SHA256 Credential=a SignedHeaders=host Signature={_SIG}",
        f"SDK-HMAC-SHA256 Access=a, SignedHeaders=host, Signature={_SIG}",
    ],
)
def test_parse_acs3_authorization_returns_none_on_garbage(value: str) -> None:
    assert ali.parse_acs3_authorization(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SDK-HMAC-SHA256",
        "Bearer abc",
        "SDK-HMAC-SHA256 Access=a, SignedHeaders=host",
        f"SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature={_SIG}",
        f"SDK-HMAC-SHA256 Access=a, SignedHeaders=, Signature={_SIG}",
        "SDK-HMAC-SHA256 Access=a, SignedHeaders=host, Signature=zz",
        f"SDK-HMAC-SHA256 Access=a, Access=b, SignedHeaders=host, Signature={_SIG}",
        f"SDK-HMAC-SHA256 Access=a; SignedHeaders=host; Signature={_SIG}",
        f"ACS3-HMAC-SHA256 Credential=a,SignedHeaders=host,Signature={_SIG}",
    ],
)
def test_parse_huawei_authorization_returns_none_on_garbage(value: str) -> None:
    assert hw.parse_authorization(value) is None


@settings(max_examples=50, deadline=None)
@given(value=st.text())
def test_parse_functions_never_raise_on_arbitrary_text(value: str) -> None:
    ali.parse_acs3_authorization(value)
    hw.parse_authorization(value)


# --------------------------------------------------------------------------------------------
# Parity with the official SDK signers on random TagResources-like requests

# No lone surrogates (not UTF-8 encodable, the SDKs would raise too); plenty of the characters
# that differ between form and RFC 3986 encoding.
_TEXT_CHARS = st.characters(exclude_categories=["Cs"]) | st.sampled_from(" /=&+%~*:;,?#")
_TAG_KEY = st.text(_TEXT_CHARS, min_size=1, max_size=30)
_TAG_VALUE = st.text(_TEXT_CHARS, max_size=30)
_TAGS = st.lists(st.tuples(_TAG_KEY, _TAG_VALUE), min_size=1, max_size=20)
_REGION = st.from_regex(r"[a-z]{2}-[a-z]{3,10}(-[0-9])?", fullmatch=True)
_ALI_RESOURCE_IDS = st.lists(
    st.from_regex(r"key-[a-z0-9]{20}", fullmatch=True), min_size=1, max_size=50
)
_SECRET = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)
_WHEN = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
_NONCE = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)


def _tag_resources_query(region: str, resource_ids: list[str], tags: list[tuple[str, str]]) -> Any:
    # Flattened exactly as the SDK does (ResourceId.N, Tag.N.Key/Value): providers.md §1.3.
    return OpenApiUtil.query(
        {
            "RegionId": region,
            "ResourceType": "key",
            "ResourceId": resource_ids,
            "Tag": [kms_models.TagResourcesRequestTag(key=k, value=v) for k, v in tags],
        }
    )


@pytest.mark.parametrize("sdk", [OpenApiUtil, TeaOpenApiUtils], ids=["openapi-util", "tea-openapi"])
@settings(max_examples=50, deadline=None)
@given(
    region=_REGION,
    resource_ids=_ALI_RESOURCE_IDS,
    tags=_TAGS,
    secret=_SECRET,
    when=_WHEN,
    nonce=_NONCE,
    method=st.sampled_from(["POST", "GET"]),
)
def test_rpc_signature_matches_sdk_get_rpcsignature_on_random_tag_resources(
    sdk: Any,
    region: str,
    resource_ids: list[str],
    tags: list[tuple[str, str]],
    secret: str,
    when: datetime,
    nonce: str,
    method: str,
) -> None:
    params: dict[str, str] = {
        "Action": "TagResources",
        "Format": "json",
        "Version": "2016-01-20",
        "Timestamp": when.strftime(ali.RPC_TIMESTAMP_FORMAT),
        "SignatureNonce": nonce,
        **_tag_resources_query(region, resource_ids, tags),
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "AccessKeyId": "testid",
    }
    assert len(params) == 10 + len(resource_ids) + 2 * len(tags)
    expected = sdk.get_rpcsignature(params, method, secret)
    assert ali.rpc_signature(method, params, secret) == expected
    # What an emulator sees: the signed query round-trips through the wire encoding.
    wire = "&".join(f"{quote(k)}={quote(v)}" for k, v in {**params, "Signature": expected}.items())
    decoded = dict(parse_qsl(wire, keep_blank_values=True))
    assert ali.rpc_signature(method, decoded, secret) == expected


@pytest.mark.parametrize("sdk", [OpenApiUtil, TeaOpenApiUtils], ids=["openapi-util", "tea-openapi"])
@settings(max_examples=50, deadline=None)
@given(
    region=_REGION,
    resource_ids=_ALI_RESOURCE_IDS,
    tags=_TAGS,
    secret=_SECRET,
    when=_WHEN,
    nonce=_NONCE,
    user_agent=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
)
def test_acs3_authorization_matches_sdk_get_authorization_on_random_tag_resources(
    sdk: Any,
    region: str,
    resource_ids: list[str],
    tags: list[tuple[str, str]],
    secret: str,
    when: datetime,
    nonce: str,
    user_agent: str,
) -> None:
    # The headers the SDK sets before signing, all of them signed (sdk-wire.md §1.3 (a), §1.4).
    headers = {
        "host": f"kms.{region}.aliyuncs.com",
        "x-acs-version": "2016-01-20",
        "x-acs-action": "TagResources",
        "user-agent": f" {user_agent} ",
        "x-acs-date": when.strftime(ali.RPC_TIMESTAMP_FORMAT),
        "x-acs-signature-nonce": nonce,
        "accept": "application/json",
        "x-acs-content-sha256": ali.EMPTY_PAYLOAD_SHA256,
        "x-acs-credentials-provider": "static_ak",
    }
    params = _tag_resources_query(region, resource_ids, tags)
    request = DaraRequest()
    request.method = "POST"
    request.pathname = "/"
    request.query = dict(params)
    request.headers = dict(headers)
    expected = sdk.get_authorization(
        request, "ACS3-HMAC-SHA256", ali.EMPTY_PAYLOAD_SHA256, "testid", secret
    )
    signature = ali.acs3_signature(
        "POST", "/", params, headers, list(headers), ali.EMPTY_PAYLOAD_SHA256, secret
    )
    assert ali.acs3_authorization("testid", list(headers), signature) == expected
    parsed = ali.parse_acs3_authorization(expected)
    assert parsed is not None
    assert parsed.signature == signature


# A path segment: usually a KMS key id (UUID), sometimes arbitrary text (no "/": see
# test_huawei_canonical_uri_keeps_an_encoded_slash_inside_its_segment).
_HW_KEY_ID = st.uuids().map(str) | st.text(
    _TEXT_CHARS.filter(lambda ch: ch != "/"), min_size=1, max_size=20
)
_HW_QUERY = st.lists(st.tuples(st.sampled_from(["limit", "marker", "k"]), _TAG_VALUE), max_size=4)


@settings(max_examples=50, deadline=None)
@given(
    region=_REGION,
    project_id=st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    key_ids=st.lists(_HW_KEY_ID, min_size=1, max_size=50),
    tags=_TAGS,
    query=_HW_QUERY,
    secret=_SECRET,
    when=_WHEN,
    action=st.sampled_from(["create", "delete"]),
)
def test_huawei_signature_matches_sdk_signer_on_random_batch_tag_requests(
    region: str,
    project_id: str,
    key_ids: list[str],
    tags: list[tuple[str, str]],
    query: list[tuple[str, str]],
    secret: str,
    when: datetime,
    action: str,
) -> None:
    signer = HuaweiSigner(BasicCredentials("testak", secret, project_id))
    host = f"kms.{region}.myhuaweicloud.com"
    sdk_date = when.strftime(hw.SDK_DATE_FORMAT)
    body = json.dumps(
        {"tags": [{"key": k, "value": v} for k, v in tags], "action": action}
    ).encode()
    for key_id in key_ids:
        path = f"/v1.0/{project_id}/kms/{quote(key_id, safe='')}/tags/action"
        # The headers the SDK sets before signing (sdk-wire.md §2.2); it adds Host itself.
        headers = {
            "Content-Type": "application/json;charset=utf-8",
            "X-Project-Id": project_id,
            "X-Sdk-Date": sdk_date,
        }
        request = SdkRequest(
            method="POST",
            schema="https",
            host=host,
            resource_path=path,
            query_params=list(query),
            header_params=dict(headers),
            body=body,
        )
        signer.sign(request)
        signed = [*headers, "Host"]
        signature = hw.sdk_hmac_sha256_signature(
            "POST", path, query, {**headers, "Host": host}, signed, body, sdk_date, secret
        )
        expected = request.header_params["Authorization"]
        assert hw.authorization("testak", signed, signature) == expected
        parsed = hw.parse_authorization(expected)
        assert parsed is not None
        assert parsed.signed_headers == ("content-type", "host", "x-project-id", "x-sdk-date")
