"""Pure request signer for Huawei Cloud API Gateway AK/SK auth (``SDK-HMAC-SHA256``).

No I/O, no clock: the caller supplies ``X-Sdk-Date``, so the same functions serve the outgoing
client (sign) and the emulator (verify). Algorithm: providers.md §3.6; verification recipe
(trailing-slash canonical URI, decoded query): sdk-wire.md §2.4.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote, unquote

from providers.authorization import parse_hmac_authorization

# X-Sdk-Date: basic ISO 8601, UTC; > 15 min skew is rejected (providers.md §3.6).
SDK_DATE_FORMAT = "%Y%m%dT%H%M%SZ"

_ALGORITHM = "SDK-HMAC-SHA256"
_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
# The SDK signs this header's value instead of the body hash when present (it sets
# "UNSIGNED-PAYLOAD" for non-JSON bodies): providers.md §3.6; SDK signer._process_hash_payload.
_CONTENT_SHA256_HEADER = "x-sdk-content-sha256"


def _encode(value: str) -> str:
    # RFC 3986: space -> %20, only "~" kept besides unreserved (providers.md §3.6).
    return quote(value, safe="~")


def canonical_uri(path: str) -> str:
    """Each ``/``-separated segment percent-decoded then RFC 3986-encoded, with a trailing ``/``
    added if missing: the signing form only, not required on the wire (sdk-wire.md §2.4)."""
    uri = "/".join(_encode(unquote(segment)) for segment in path.split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """``enc(k)=enc(v)`` sorted by name then value (repeated keys -> sorted values), joined by
    ``&`` (providers.md §3.6)."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(params))


def _normalized_signed_headers(signed_headers: Sequence[str]) -> list[str]:
    return sorted({name.lower() for name in signed_headers})


def sdk_hmac_sha256_signature(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    body: bytes,
    sdk_date: str,
    secret_key: str,
) -> str:
    """Hex ``SDK-HMAC-SHA256`` signature (providers.md §3.6; sdk-wire.md §2.4).

    ``headers`` names are matched case-insensitively; exactly ``signed_headers`` (lower-cased,
    sorted) enter the canonical headers as ``name:stripped-value``. A signed header absent from
    ``headers`` raises ``ValueError``. ``sdk_date`` is the ``X-Sdk-Date`` value
    (``SDK_DATE_FORMAT``). As in the SDK, a non-empty body is represented by the
    ``X-Sdk-Content-Sha256`` header's value when that header is present.
    """
    by_name = {name.lower(): value for name, value in headers.items()}
    names = _normalized_signed_headers(signed_headers)
    missing = [name for name in names if name not in by_name]
    if missing:
        raise ValueError(f"signed headers missing from request: {', '.join(missing)}")
    if not body:
        payload_hash = _EMPTY_SHA256
    else:
        payload_hash = by_name.get(_CONTENT_SHA256_HEADER) or hashlib.sha256(body).hexdigest()
    # The SDK joins header lines with "\n" and appends one more (so "\n" when none are signed).
    canonical_headers = "\n".join(f"{name}:{by_name[name].strip()}" for name in names) + "\n"
    canonical_request = "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            canonical_headers,
            ";".join(names),
            payload_hash,
        ]
    )
    canonical_hash = hashlib.sha256(canonical_request.encode()).hexdigest()
    string_to_sign = f"{_ALGORITHM}\n{sdk_date}\n{canonical_hash}"
    return hmac.new(secret_key.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def authorization(access_key: str, signed_headers: Sequence[str], signature: str) -> str:
    """``SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<a;b>, Signature=<hex>``: comma *and*
    space separated, unlike Alibaba (providers.md §3.6; sdk-wire.md §2.2)."""
    names = ";".join(_normalized_signed_headers(signed_headers))
    return f"{_ALGORITHM} Access={access_key}, SignedHeaders={names}, Signature={signature}"


@dataclass(frozen=True, slots=True)
class HuaweiAuthorization:
    access_key: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> HuaweiAuthorization | None:
    """Parse an ``SDK-HMAC-SHA256`` ``Authorization`` header; ``None`` if malformed.

    Tolerates zero or more spaces after the commas; requires exactly ``Access``,
    ``SignedHeaders`` and ``Signature``, non-empty values and a 64-digit hex signature.
    ``signed_headers`` is kept in the order given.
    """
    parsed = parse_hmac_authorization(value, _ALGORITHM, "Access")
    return HuaweiAuthorization(*parsed) if parsed else None
