"""Pure request signers for Alibaba Cloud OpenAPI: RPC "V2" (HMAC-SHA1) and V3 (ACS3-HMAC-SHA256).

No I/O, no clock, no randomness: callers supply timestamps, nonces and payload hashes, so the
same functions serve the outgoing client (sign) and the emulator (verify).

Verify over *decoded* parameters (``urllib.parse.parse_qsl`` of the raw query), never over the
raw query string: the SDKs encode spaces as ``+`` and the async path leaves ``/`` and ``:``
unescaped (sdk-wire.md §1.2, §1.4).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from providers.authorization import parse_hmac_authorization

# UTC, used by the V2 `Timestamp` parameter (valid 31 min) and the V3 `x-acs-date` header
# (valid 15 min). providers.md §1.4, §1.6.
RPC_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

_ACS3_ALGORITHM = "ACS3-HMAC-SHA256"

# hex(SHA-256(b"")): x-acs-content-sha256 of the SDK's empty-body POST / (providers.md §1.6).
EMPTY_PAYLOAD_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8: keep ``A-Za-z0-9-_.~``, space -> ``%20``, ``*`` ->
    ``%2A`` (providers.md §1.5 step 2)."""
    return quote(value, safe="~")


def canonical_query(params: Iterable[tuple[str, str]] | Mapping[str, str]) -> str:
    """``enc(k)=enc(v)`` pairs sorted by name then value (raw strings, as the SDK sorts), joined
    by ``&``; an empty value gives ``k=`` (providers.md §1.5 steps 1-3, §1.6)."""
    items: Iterable[tuple[str, str]] = params.items() if isinstance(params, Mapping) else params
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(items))


def rpc_signature(method: str, params: Mapping[str, str], access_key_secret: str) -> str:
    """Base64 HMAC-SHA1 RPC signature (``SignatureMethod=HMAC-SHA1``, ``SignatureVersion=1.0``)
    over every parameter except ``Signature`` (providers.md §1.5)."""
    canonical = canonical_query((k, v) for k, v in params.items() if k != "Signature")
    # StringToSign = METHOD & enc("/") & enc(CanonicalizedQueryString)  (providers.md §1.5 step 4)
    string_to_sign = f"{method}&{percent_encode('/')}&{percent_encode(canonical)}"
    # key = secret + "&"  (providers.md §1.5 step 5)
    digest = hmac.new(
        (access_key_secret + "&").encode(), string_to_sign.encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256, the V3 ``x-acs-content-sha256`` / HashedRequestPayload."""
    return hashlib.sha256(data).hexdigest()


def _normalized_signed_headers(signed_headers: Sequence[str]) -> list[str]:
    # Lower-case, de-duplicated, sorted (providers.md §1.6 CanonicalHeaders; SDK
    # get_canonicalized_headers).
    return sorted({name.lower() for name in signed_headers})


def acs3_signature(
    method: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_hash: str,
    access_key_secret: str,
) -> str:
    """Hex ACS3-HMAC-SHA256 signature (providers.md §1.6; sdk-wire.md §1.4).

    ``headers`` maps lower-case names to values; exactly ``signed_headers`` enter the canonical
    headers, as ``name:stripped-value``. A signed header absent from ``headers`` raises
    ``ValueError`` (a request that lists it but does not carry it cannot verify).
    """
    by_name = {name.lower(): value for name, value in headers.items()}
    names = _normalized_signed_headers(signed_headers)
    missing = [name for name in names if name not in by_name]
    if missing:
        raise ValueError(f"signed headers missing from request: {', '.join(missing)}")
    canonical_headers = "".join(f"{name}:{by_name[name].strip()}\n" for name in names)
    canonical_request = "\n".join(
        [
            method,
            path or "/",  # "/" for RPC-style APIs (providers.md §1.6)
            canonical_query(params),
            canonical_headers,
            ";".join(names),
            payload_hash,
        ]
    )
    string_to_sign = f"{_ACS3_ALGORITHM}\n{sha256_hex(canonical_request.encode())}"
    # Raw secret as the key, no "&" (unlike V2): providers.md §1.6.
    return hmac.new(access_key_secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def acs3_authorization(access_key_id: str, signed_headers: Sequence[str], signature: str) -> str:
    """``ACS3-HMAC-SHA256 Credential=<AK>,SignedHeaders=<a;b>,Signature=<hex>``: commas, no
    spaces (providers.md §1.6; sdk-wire.md §1.4)."""
    names = ";".join(_normalized_signed_headers(signed_headers))
    return (
        f"{_ACS3_ALGORITHM} Credential={access_key_id},SignedHeaders={names},Signature={signature}"
    )


@dataclass(frozen=True, slots=True)
class Acs3Authorization:
    access_key_id: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_acs3_authorization(value: str) -> Acs3Authorization | None:
    """Parse an ``ACS3-HMAC-SHA256`` ``Authorization`` header; ``None`` if malformed.

    Accepts optional spaces after the commas; requires exactly the three fields, a non-empty
    credential, non-empty header names and a 64-digit hex signature. ``signed_headers`` is kept
    in the order given.
    """
    parsed = parse_hmac_authorization(value, _ACS3_ALGORITHM, "Credential")
    return Acs3Authorization(*parsed) if parsed else None
