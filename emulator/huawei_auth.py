"""Huawei Cloud API-gateway authentication: ``X-Auth-Token``, or AK/SK ``SDK-HMAC-SHA256``.

The signature is recomputed with ``providers.huawei.signing`` (trailing-slash canonical URI,
decoded query, headers as received: sdk-wire.md §2.4). Every refusal is the gateway's flat
401 ``APIGW.0301`` "Incorrect IAM authentication information: ..." (providers.md §3.4), with
the detail the real gateway gives for a bad signature ("verify aksk signature fail") or a
token ("decrypt token fail"); an ``X-Sdk-Date`` more than 15 minutes off is refused too
(providers.md §3.6).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from emulator.config import EmulatorConfig
from emulator.errors import ApiError
from providers.huawei import signing

# Huawei's guide: the signed headers must include x-sdk-date and host (providers.md §3.6).
_MUST_SIGN = ("host", "x-sdk-date")


def _refused(detail: str) -> ApiError:
    return ApiError(
        401, "APIGW.0301", f"Incorrect IAM authentication information: {detail}", gateway=True
    )


class HuaweiAuthenticator:
    def __init__(self, config: EmulatorConfig, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock

    def verify(
        self,
        method: str,
        raw_path: str,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> str:
        """Who is calling (the AK, or ``"token"``), or ApiError. ``headers``: lower-case."""
        token = headers.get("x-auth-token")
        if token is not None:
            if token in self._config.credentials.huawei_tokens:
                return "token"
            raise _refused("decrypt token fail")
        authorization = headers.get("authorization")
        if not authorization:
            raise _refused("the request carries neither X-Auth-Token nor an Authorization header")
        parsed = signing.parse_authorization(authorization)
        if parsed is None:
            raise _refused(
                "the Authorization header is not 'SDK-HMAC-SHA256 Access=<AK>, "
                "SignedHeaders=<a;b>, Signature=<hex>'"
            )
        secret = self._config.credentials.huawei.get(parsed.access_key)
        if secret is None:
            raise _refused(f"the access key {parsed.access_key!r} does not exist")
        signed = [name.lower() for name in parsed.signed_headers]
        for name in _MUST_SIGN:
            if name not in signed:
                raise _refused(f"the header {name!r} must be signed")
        sdk_date = headers.get("x-sdk-date", "")
        self._check_date(sdk_date)
        try:
            expected = signing.sdk_hmac_sha256_signature(
                method, raw_path, query, headers, signed, body, sdk_date, secret
            )
        except ValueError as exc:
            raise _refused(f"verify aksk signature fail: {exc}") from None
        if not hmac.compare_digest(expected, parsed.signature.lower()):
            raise _refused("verify aksk signature fail")
        return parsed.access_key

    def _check_date(self, sdk_date: str) -> None:
        try:
            when = datetime.strptime(sdk_date, signing.SDK_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise _refused(
                f"X-Sdk-Date {sdk_date!r} is missing or not in YYYYMMDDTHHMMSSZ format"
            ) from None
        window = self._config.huawei_skew
        if abs(self._clock() - when.timestamp()) > window:
            raise _refused(
                f"signature expired: X-Sdk-Date {sdk_date} is more than {window / 60:g} "
                "minutes away from the server's time"
            )
