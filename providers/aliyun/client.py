"""Async client for Alibaba Cloud KMS (RPC style, API version 2016-01-20) on aiohttp.

Requests are shaped as the official SDKs send them (sdk-wire.md §1.2): ``POST /`` with every
parameter in the query string, lists flattened as ``ResourceId.N`` / ``Tag.N.Key`` /
``Tag.N.Value``, an empty body, and the action and version also as ``x-acs-*`` headers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import aiohttp
from yarl import URL

from providers.aliyun import signing
from providers.credentials import AliyunCredentials
from providers.http import DEFAULT_TIMEOUT, Response, base_url, host_header, send
from providers.results import CallResult, Outcome, classify_aliyun
from providers.rules import Tag

API_VERSION = "2016-01-20"
SignatureKind = Literal["v3", "v2"]


def default_endpoint(region: str, *, vpc: bool = False) -> str:
    """``kms.<region>.aliyuncs.com`` or ``kms-vpc.<region>.aliyuncs.com`` (providers.md §1.1)."""
    return f"kms{'-vpc' if vpc else ''}.{region}.aliyuncs.com"


def flatten(name: str, values: Sequence[str]) -> dict[str, str]:
    """``ResourceId`` -> ``ResourceId.1``, ``ResourceId.2``... (1-based, as the SDKs send)."""
    return {f"{name}.{i}": value for i, value in enumerate(values, start=1)}


def flatten_tags(tags: Sequence[Tag]) -> dict[str, str]:
    params: dict[str, str] = {}
    for i, (key, value) in enumerate(tags, start=1):
        params[f"Tag.{i}.Key"] = key
        params[f"Tag.{i}.Value"] = value
    return params


def tag_resources_params(
    region: str, resource_type: str, resource_ids: Sequence[str], tags: Sequence[Tag]
) -> dict[str, str]:
    return {
        "RegionId": region,
        "ResourceType": resource_type,
        **flatten("ResourceId", resource_ids),
        **flatten_tags(tags),
    }


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _nonce() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class SignedRequest:
    url: URL
    headers: dict[str, str]


def sign_request(
    endpoint: URL,
    action: str,
    params: Mapping[str, str],
    credentials: AliyunCredentials,
    kind: SignatureKind,
    now: datetime,
    nonce: str,
) -> SignedRequest:
    """Build the signed ``POST /`` for one action (pure: clock and nonce are arguments)."""
    query = dict(params)
    stamp = now.strftime(signing.RPC_TIMESTAMP_FORMAT)
    headers = {
        "host": host_header(endpoint),
        "x-acs-action": action,
        "x-acs-version": API_VERSION,
        "accept": "application/json",
    }
    if kind == "v2":
        query.update(
            {
                "Action": action,
                "Version": API_VERSION,
                "Format": "JSON",
                "AccessKeyId": credentials.access_key_id,
                "SignatureMethod": "HMAC-SHA1",
                "SignatureVersion": "1.0",
                "SignatureNonce": nonce,
                "Timestamp": stamp,
            }
        )
        if credentials.security_token:
            query["SecurityToken"] = credentials.security_token
        query["Signature"] = signing.rpc_signature("POST", query, credentials.access_key_secret)
    else:
        headers.update(
            {
                "x-acs-date": stamp,
                "x-acs-signature-nonce": nonce,
                "x-acs-content-sha256": signing.EMPTY_PAYLOAD_SHA256,
            }
        )
        if credentials.security_token:
            headers["x-acs-security-token"] = credentials.security_token
        signed = sorted(headers)
        signature = signing.acs3_signature(
            "POST",
            "/",
            query,
            headers,
            signed,
            signing.EMPTY_PAYLOAD_SHA256,
            credentials.access_key_secret,
        )
        headers["authorization"] = signing.acs3_authorization(
            credentials.access_key_id, signed, signature
        )
    # Encode the query ourselves (RFC 3986) and tell yarl not to re-quote it, so that the
    # bytes on the wire are exactly the ones signed.
    url = endpoint.with_path("/").with_query(None)
    url = URL(f"{url}?{signing.canonical_query(query)}", encoded=True)
    return SignedRequest(url, headers)


class AliyunKmsClient:
    """One region of one account. Share the aiohttp session across every client of a loop."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        credentials: AliyunCredentials,
        region: str,
        *,
        endpoint: str | None = None,
        vpc: bool = False,
        signature: SignatureKind = "v3",
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._session = session
        self._credentials = credentials
        self.region = region
        self._endpoint = base_url(
            endpoint or credentials.endpoint or default_endpoint(region, vpc=vpc)
        )
        self._signature = signature
        self._timeout = timeout
        self._clock = clock

    async def call(self, action: str, params: Mapping[str, str]) -> tuple[CallResult, Any]:
        """Send one action; the result's class, and the parsed JSON body when it succeeded."""
        request = sign_request(
            self._endpoint,
            action,
            params,
            self._credentials,
            self._signature,
            self._clock(),
            _nonce(),
        )
        answer = await send(
            self._session, "POST", request.url, request.headers, timeout=self._timeout
        )
        if isinstance(answer, CallResult):
            return answer, None
        return _result(answer), answer.json()

    async def tag_resources(
        self, resource_type: str, resource_ids: Sequence[str], tags: Sequence[Tag]
    ) -> CallResult:
        params = tag_resources_params(self.region, resource_type, resource_ids, tags)
        result, _ = await self.call("TagResources", params)
        return result

    async def untag_resources(
        self, resource_type: str, resource_ids: Sequence[str], tag_keys: Sequence[str]
    ) -> CallResult:
        params = {
            "RegionId": self.region,
            "ResourceType": resource_type,
            **flatten("ResourceId", resource_ids),
            **flatten("TagKey", tag_keys),
        }
        result, _ = await self.call("UntagResources", params)
        return result

    async def list_keys(
        self, page_number: int = 1, page_size: int = 100
    ) -> tuple[CallResult, list[str], int]:
        """One page of key ids (PageSize 1-100, providers.md §2.6) and the total count."""
        params = {
            "RegionId": self.region,
            "PageNumber": str(page_number),
            "PageSize": str(page_size),
        }
        result, body = await self.call("ListKeys", params)
        if not result.ok or body is None:
            return result, [], 0
        keys = [k["KeyId"] for k in body.get("Keys", {}).get("Key", [])]
        return result, keys, int(body.get("TotalCount", 0))

    async def list_secrets(
        self, page_number: int = 1, page_size: int = 100
    ) -> tuple[CallResult, list[tuple[str, list[Tag]]], int]:
        """One page of secret names with their tags (``FetchTags=true``)."""
        params = {
            "RegionId": self.region,
            "PageNumber": str(page_number),
            "PageSize": str(page_size),
            "FetchTags": "true",
        }
        result, body = await self.call("ListSecrets", params)
        if not result.ok or body is None:
            return result, [], 0
        secrets = [
            (
                s["SecretName"],
                [(t["TagKey"], t.get("TagValue", "")) for t in s.get("Tags", {}).get("Tag", [])],
            )
            for s in body.get("SecretList", {}).get("Secret", [])
        ]
        return result, secrets, int(body.get("TotalCount", 0))

    async def list_tag_resources(
        self, resource_type: str, resource_ids: Sequence[str], next_token: str | None = None
    ) -> tuple[CallResult, list[tuple[str, str, str]], str | None]:
        """Tags of up to 50 resources: (resource id, key, value) rows and the next page token."""
        params = {
            "RegionId": self.region,
            "ResourceType": resource_type,
            **flatten("ResourceId", resource_ids),
        }
        if next_token:
            params["NextToken"] = next_token
        result, body = await self.call("ListTagResources", params)
        if not result.ok or body is None:
            return result, [], None
        rows = [
            (r["ResourceId"], r["TagKey"], r.get("TagValue", ""))
            for r in body.get("TagResources", {}).get("TagResource", [])
        ]
        return result, rows, body.get("NextToken") or None

    async def list_resource_tags(
        self, *, key_id: str | None = None, secret_name: str | None = None
    ) -> tuple[CallResult, list[Tag]]:
        """One key's (``KeyId``) or secret's (``SecretName``) tags (providers.md §2.6)."""
        if (key_id is None) == (secret_name is None):
            raise ValueError("give exactly one of key_id and secret_name")
        params = {"RegionId": self.region}
        if key_id is not None:
            params["KeyId"] = key_id
        else:
            assert secret_name is not None
            params["SecretName"] = secret_name
        result, body = await self.call("ListResourceTags", params)
        if not result.ok or body is None:
            return result, []
        rows = body.get("Tags", {}).get("Tag", [])
        return result, [(r["TagKey"], r.get("TagValue", "")) for r in rows]


def _result(response: Response) -> CallResult:
    body = response.json() or {}
    code = body.get("Code") or body.get("code")
    outcome = classify_aliyun(response.status, code)
    if outcome is Outcome.OK:
        return CallResult(Outcome.OK, response.status, None, None, body.get("RequestId"))
    if not body and response.status >= 400:
        # Not JSON: a proxy or load balancer answered, not KMS.
        code = f"HTTP{response.status}"
    retry_after = response.headers.get("x-acs-retry-after")
    return CallResult(
        outcome,
        response.status,
        code,
        body.get("Message")
        or body.get("message")
        or response.body[:200].decode("utf-8", "replace"),
        body.get("RequestId") or body.get("requestId"),
        # The SDK reads x-acs-retry-after as milliseconds (providers.md §1.7).
        float(retry_after) / 1000 if retry_after and retry_after.isdigit() else None,
    )
