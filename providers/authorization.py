"""Parsing ``<ALGORITHM> Key=value, SignedHeaders=a;b, Signature=<hex>`` headers (pure).

Both providers' HMAC schemes put the same three fields in ``Authorization`` (Alibaba
``Credential``, Huawei ``Access``), with or without spaces after the commas
(sdk-wire.md §1.4, §2.4).
"""

from __future__ import annotations

import re

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_SEPARATOR = re.compile(r",\s*")


def parse_hmac_authorization(
    value: str, algorithm: str, key_field: str
) -> tuple[str, tuple[str, ...], str] | None:
    """(key id, signed header names in the order given, signature), or None if malformed:
    exactly the three fields, a non-empty key id, non-empty header names, 64 hex digits."""
    name, sep, rest = value.strip().partition(" ")
    if name != algorithm or not sep:
        return None
    fields: dict[str, str] = {}
    for part in _SEPARATOR.split(rest.strip()):
        key, eq, field_value = part.strip().partition("=")
        if not eq or key in fields:
            return None
        fields[key] = field_value
    if fields.keys() != {key_field, "SignedHeaders", "Signature"}:
        return None
    key_id, signature = fields[key_field], fields["Signature"]
    if not key_id or any(ch.isspace() for ch in key_id):
        return None
    names = tuple(fields["SignedHeaders"].split(";"))
    if not all(n and not any(ch.isspace() for ch in n) for n in names):
        return None
    if not _HEX64.fullmatch(signature):
        return None
    return key_id, names, signature
