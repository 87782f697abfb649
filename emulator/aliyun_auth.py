"""Alibaba Cloud request authentication: V3 (``ACS3-HMAC-SHA256``) and V2 (RPC HMAC-SHA1).

Signatures are recomputed with ``providers.aliyun.signing`` over the *decoded* parameters
(never the raw query: sdk-wire.md §1.2, §1.4) and the headers exactly as received (the SDK
signs ``host`` with its port, sdk-wire.md §3.6). Answers, providers.md §2.2 and the seed:
unknown AccessKey id 404 ``InvalidAccessKeyId.NotFound``; bad or missing signature 400
``IncompleteSignature``; missing, malformed or stale timestamp 400 ``IllegalTimestamp``;
reused nonce 400 ``SignatureNonceUsed``.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from emulator.config import EmulatorConfig
from emulator.errors import ApiError
from emulator.nonces import NonceCache
from providers.aliyun import signing

_ACS3 = "ACS3-HMAC-SHA256"
# Headers a V3 signature must cover, or a captured request could be replayed with another
# date or nonce (the SDK signs all of its headers anyway: sdk-wire.md §1.4).
_MUST_SIGN = ("host", "x-acs-date", "x-acs-signature-nonce")


def _incomplete(message: str) -> ApiError:
    return ApiError(400, "IncompleteSignature", message)


def _mismatch() -> ApiError:
    return _incomplete(
        "The request signature does not match the signature the server calculated. "
        "Check your AccessKey secret and signing method."
    )


class AliyunAuthenticator:
    def __init__(
        self,
        config: EmulatorConfig,
        nonces: NonceCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._nonces = nonces
        self._clock = clock

    def verify(
        self,
        method: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> str:
        """The caller's AccessKey id, or ApiError. ``headers``: lower-case names."""
        authorization = headers.get("authorization", "")
        if authorization.startswith(_ACS3 + " "):
            return self._verify_v3(method, params, headers, body, authorization)
        if authorization:
            algorithm = authorization.split(" ", 1)[0]
            raise _incomplete(
                f"The signature algorithm {algorithm!r} is not supported here; "
                f"use {_ACS3} or the V2 HMAC-SHA1 parameters."
            )
        if "Signature" in params or "SignatureMethod" in params:
            return self._verify_v2(method, params)
        raise _incomplete(
            f"The request is not signed: send an {_ACS3} Authorization header or the V2 "
            "Signature, SignatureMethod, AccessKeyId, Timestamp and SignatureNonce parameters."
        )

    # --- V3 --------------------------------------------------------------------------------

    def _verify_v3(
        self,
        method: str,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        authorization: str,
    ) -> str:
        parsed = signing.parse_acs3_authorization(authorization)
        if parsed is None:
            raise _incomplete(
                f"The Authorization header is malformed; expected '{_ACS3} "
                "Credential=<AccessKeyId>,SignedHeaders=<a;b;c>,Signature=<hex>'."
            )
        secret = self._secret(parsed.access_key_id)
        signed = [name.lower() for name in parsed.signed_headers]
        for name in _MUST_SIGN:
            if name not in signed:
                raise _incomplete(f"The header {name!r} must be listed in SignedHeaders.")
        expires = self._check_time(headers.get("x-acs-date"), self._config.aliyun_v3_skew)
        try:
            expected = signing.acs3_signature(
                method,
                "/",  # RPC style: the canonical URI is "/" (providers.md §1.6)
                params,
                headers,
                signed,
                signing.sha256_hex(body),
                secret,
            )
        except ValueError as exc:
            raise _incomplete(f"The request cannot be verified: {exc}.") from None
        if not hmac.compare_digest(expected, parsed.signature.lower()):
            raise _mismatch()
        self._use_nonce(parsed.access_key_id, headers["x-acs-signature-nonce"], expires)
        return parsed.access_key_id

    # --- V2 --------------------------------------------------------------------------------

    def _verify_v2(self, method: str, params: Mapping[str, str]) -> str:
        # providers.md §1.4: SignatureMethod HMAC-SHA1, SignatureVersion 1.0.
        if params.get("SignatureMethod") != "HMAC-SHA1":
            raise _incomplete("SignatureMethod must be HMAC-SHA1.")
        if params.get("SignatureVersion") != "1.0":
            raise _incomplete("SignatureVersion must be 1.0.")
        access_key_id = params.get("AccessKeyId")
        if not access_key_id:
            raise _incomplete("The AccessKeyId parameter is missing.")
        signature = params.get("Signature")
        if not signature:
            raise _incomplete("The Signature parameter is missing.")
        nonce = params.get("SignatureNonce")
        if not nonce:
            raise _incomplete("The SignatureNonce parameter is missing.")
        secret = self._secret(access_key_id)
        expires = self._check_time(params.get("Timestamp"), self._config.aliyun_v2_skew)
        expected = signing.rpc_signature(method, params, secret)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise _mismatch()
        self._use_nonce(access_key_id, nonce, expires)
        return access_key_id

    # --- shared ----------------------------------------------------------------------------

    def _secret(self, access_key_id: str) -> str:
        secret = self._config.credentials.aliyun.get(access_key_id)
        if secret is None:
            # Seed error table: 404 InvalidAccessKeyId.NotFound.
            raise ApiError(
                404,
                "InvalidAccessKeyId.NotFound",
                "The Access Key ID provided does not exist in our records.",
            )
        return secret

    def _check_time(self, stamp: str | None, window: float) -> float:
        """Validate a ``yyyy-MM-ddTHH:mm:ssZ`` timestamp; the wall time it stops being valid."""
        if not stamp:
            raise ApiError(
                400,
                "IllegalTimestamp",
                'The input parameter "Timestamp" that is mandatory for processing this '
                "request is not supplied.",
            )
        try:
            when = datetime.strptime(stamp, signing.RPC_TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            raise ApiError(
                400,
                "IllegalTimestamp",
                f"The timestamp {stamp!r} is not in the UTC yyyy-MM-ddTHH:mm:ssZ format.",
            ) from None
        at = when.timestamp()
        if abs(self._clock() - at) > window:
            raise ApiError(
                400,
                "IllegalTimestamp",
                f"Specified time stamp or date value is expired: {stamp} is more than "
                f"{window / 60:g} minutes away from the server's time.",
            )
        return at + window

    def _use_nonce(self, access_key_id: str, nonce: str, expires: float) -> None:
        now = self._clock()
        if not self._nonces.use(f"aliyun\0{access_key_id}\0{nonce}", now, expires - now):
            raise ApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
