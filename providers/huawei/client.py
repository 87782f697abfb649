"""Async client for Huawei Cloud KMS key tags on aiohttp.

Paths and bodies as the seed and providers.md §3.2 give them; authentication by AK/SK
(``SDK-HMAC-SHA256``, providers.md §3.6) or by ``X-Auth-Token`` (the seed).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from yarl import URL

from providers.credentials import HuaweiCredentials
from providers.http import DEFAULT_TIMEOUT, Response, base_url, host_header, send
from providers.huawei import signing
from providers.results import CallResult, Outcome, classify_huawei
from providers.rules import Tag

CONTENT_TYPE = "application/json;charset=UTF-8"


def default_endpoint(region: str) -> str:
    """``kms.<region>.myhuaweicloud.com`` (providers.md §3.1)."""
    return f"kms.{region}.myhuaweicloud.com"


def sequence() -> str:
    """The optional 36-byte request serial number (seed): a UUID in text form is 36 bytes."""
    return str(uuid.uuid4())


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _compact(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True, slots=True)
class SignedRequest:
    url: URL
    headers: dict[str, str]
    body: bytes


def sign_request(
    endpoint: URL,
    method: str,
    path: str,
    body: bytes,
    project_id: str,
    credentials: HuaweiCredentials,
    now: datetime,
) -> SignedRequest:
    """Build one signed (or token-authenticated) request; pure, the clock is an argument."""
    url = endpoint.with_path(path, encoded=False)
    headers = {
        "host": host_header(endpoint),
        "x-project-id": project_id,
    }
    if body or method == "POST":
        headers["content-type"] = CONTENT_TYPE
    if credentials.uses_aksk:
        assert credentials.ak is not None and credentials.sk is not None
        headers["x-sdk-date"] = now.strftime(signing.SDK_DATE_FORMAT)
        if credentials.security_token:
            headers["x-security-token"] = credentials.security_token
        signed = sorted(headers)
        signature = signing.sdk_hmac_sha256_signature(
            method, url.path, [], headers, signed, body, headers["x-sdk-date"], credentials.sk
        )
        headers["authorization"] = signing.authorization(credentials.ak, signed, signature)
    elif credentials.auth_token:
        headers["x-auth-token"] = credentials.auth_token
    return SignedRequest(url, headers, body)


class HuaweiKmsClient:
    """One project in one region. Share the aiohttp session across every client of a loop."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        credentials: HuaweiCredentials,
        project_id: str,
        region: str,
        *,
        endpoint: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._session = session
        self._credentials = credentials
        self.project_id = project_id
        self.region = region
        self._endpoint = base_url(endpoint or credentials.endpoint or default_endpoint(region))
        self._timeout = timeout
        self._clock = clock

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[CallResult, Any]:
        request = sign_request(
            self._endpoint,
            method,
            path,
            _compact(body) if body is not None else b"",
            self.project_id,
            self._credentials,
            self._clock(),
        )
        answer = await send(
            self._session, method, request.url, request.headers, request.body, self._timeout
        )
        if isinstance(answer, CallResult):
            return answer, None
        return _result(answer), answer.json()

    def _key_path(self, key_id: str, suffix: str = "tags") -> str:
        return f"/v1.0/{self.project_id}/kms/{key_id}/{suffix}"

    async def add_tag(self, key_id: str, key: str, value: str) -> CallResult:
        """The seed's call: one key, one tag; 204 No Content on success."""
        body = {"tag": {"key": key, "value": value}, "sequence": sequence()}
        result, _ = await self._call("POST", self._key_path(key_id), body)
        return result

    async def batch_tags(
        self, key_id: str, tags: Sequence[Tag], action: str = "create"
    ) -> CallResult:
        """``tags/action``: all of one key's tags in one call (create or delete)."""
        body = {
            "action": action,
            "tags": [{"key": k, "value": v} for k, v in tags],
            "sequence": sequence(),
        }
        result, _ = await self._call("POST", self._key_path(key_id, "tags/action"), body)
        return result

    async def tag_key(self, key_id: str, tags: Sequence[Tag]) -> CallResult:
        """Add tags to one key in one call: the seed's add-tag for one tag, else tags/action."""
        if len(tags) == 1:
            return await self.add_tag(key_id, *tags[0])
        return await self.batch_tags(key_id, tags)

    async def list_tags(self, key_id: str) -> tuple[CallResult, list[Tag]]:
        result, body = await self._call("GET", self._key_path(key_id))
        if not result.ok or body is None:
            return result, []
        return result, [(t["key"], t.get("value", "")) for t in body.get("tags", [])]

    async def list_keys(
        self, limit: int = 1000, marker: str | None = None
    ) -> tuple[CallResult, list[str], str | None]:
        """One page of key ids and the marker of the next page (None on the last page)."""
        body: dict[str, Any] = {"limit": str(limit)}
        if marker:
            body["marker"] = marker
        result, answer = await self._call("POST", f"/v1.0/{self.project_id}/kms/list-keys", body)
        if not result.ok or answer is None:
            return result, [], None
        keys = [str(k) for k in answer.get("keys", [])]
        more = str(answer.get("truncated", "false")).lower() == "true"
        return result, keys, (answer.get("next_marker") or None) if more else None


def _error_fields(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """KMS errors nest under ``error``; gateway errors are flat (providers.md §3.4)."""
    inner = body.get("error")
    source = inner if isinstance(inner, dict) else body
    return source.get("error_code"), source.get("error_msg")


def _result(response: Response) -> CallResult:
    request_id: str | None = response.headers.get("X-Request-Id")
    if 200 <= response.status < 300:
        return CallResult(Outcome.OK, response.status, None, None, request_id)
    code: str | None
    message: str | None
    body = response.json()
    if body is None:
        code, message = f"HTTP{response.status}", response.body[:200].decode("utf-8", "replace")
    else:
        code, message = _error_fields(body)
        request_id = request_id or body.get("request_id")
    return CallResult(
        classify_huawei(response.status, code), response.status, code, message, request_id
    )
