"""Deterministic, invertible resource ids for generated inventories.

``n`` (0, 1, 2, ...) maps to a realistic-looking id and back, so a generated location of a
million keys needs no table of ids: membership is "does this id decode to an n below the
count". Tests and benchmarks call the same functions to name ids that exist (``n < count``)
and ids that do not (``n >= count``), and every id matches the provider's own id pattern
(``providers.aliyun.rules``, ``providers.huawei.rules``).

Shape: a fixed prefix, 8 characters derived from the location (so ids of different regions
or projects never collide), then ``n`` scrambled by an affine bijection modulo the id space
(so consecutive ids do not look consecutive).
"""

from __future__ import annotations

import hashlib
import math
import re

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_HEX = "0123456789abcdef"
_TAG_LENGTH = 8


class IdScheme:
    """How one (provider, resource type) names its generated resources:
    ``prefix + tag(location) + separator + scramble(n)``, optionally shown as a UUID."""

    def __init__(
        self,
        kind: str,
        prefix: str,
        alphabet: str,
        digits: int,
        *,
        separator: str = "",
        uuid_shaped: bool = False,
    ) -> None:
        self._kind = kind
        self._prefix = prefix
        self._alphabet = alphabet
        self._digits = digits
        self._separator = separator
        self._uuid_shaped = uuid_shaped
        self._modulus = len(alphabet) ** digits
        # n -> a*n + b (mod m) is a bijection whenever a is coprime with m. Full-size constants
        # from a hash make even n = 0, 1, 2 look random.
        seed = hashlib.sha256(f"bulktag-emulator\0{kind}".encode()).digest()
        multiplier = int.from_bytes(seed[:16], "big") % self._modulus
        while math.gcd(multiplier, self._modulus) != 1:
            multiplier += 1
        self._multiplier = multiplier
        self._offset = int.from_bytes(seed[16:], "big") % self._modulus
        self._inverse = pow(multiplier, -1, self._modulus)
        # int(text, base) decodes fast but also takes signs, "_" and spaces: check first.
        self._body = re.compile(f"[{re.escape(alphabet)}]{{{digits}}}")
        self._tags: dict[str, str] = {}

    def tag(self, location: str) -> str:
        """The location's part of every id."""
        found = self._tags.get(location)
        if found is None:
            digest = hashlib.sha256(f"{self._kind}\0{location}".encode()).digest()
            value = int.from_bytes(digest[:8], "big") % len(self._alphabet) ** _TAG_LENGTH
            found = _encode(value, self._alphabet, _TAG_LENGTH)
            if len(self._tags) < 4096:  # locations are few; never grow without bound
                self._tags[location] = found
        return found

    def make(self, location: str, n: int, tag: str | None = None) -> str:
        if not 0 <= n < self._modulus:
            raise ValueError(f"resource number {n} out of range")
        scrambled = (n * self._multiplier + self._offset) % self._modulus
        body = _encode(scrambled, self._alphabet, self._digits)
        raw = f"{self._prefix}{tag or self.tag(location)}{self._separator}{body}"
        if self._uuid_shaped:
            return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
        return raw

    def parse(self, location: str, resource_id: str, tag: str | None = None) -> int | None:
        """``n`` for an id this scheme made for ``location``, else None."""
        raw = resource_id
        if self._uuid_shaped:
            parts = resource_id.split("-")
            if [len(p) for p in parts] != [8, 4, 4, 4, 12]:
                return None
            raw = "".join(parts)
        head = f"{self._prefix}{tag or self.tag(location)}{self._separator}"
        if len(raw) != len(head) + self._digits or not raw.startswith(head):
            return None
        body = raw[len(head) :]
        if not self._body.fullmatch(body):
            return None
        scrambled = int(body, len(self._alphabet))
        n: int = ((scrambled - self._offset) * self._inverse) % self._modulus
        return n


def _encode(value: int, alphabet: str, width: int) -> str:
    base = len(alphabet)
    chars = []
    for _ in range(width):
        value, digit = divmod(value, base)
        chars.append(alphabet[digit])
    return "".join(reversed(chars))


# Alibaba key ids: "key-" + 20 lower-case letters/digits, like key-hzz62f1cb66fa42qo1234
# (seed example; providers.aliyun.rules key pattern key-[a-z0-9]{16,40}).
ALIYUN_KEY = IdScheme("aliyun-key", "key-", _BASE36, 12)
# Alibaba secret names: letters, digits and _ / + = . @ - (providers.aliyun.rules).
ALIYUN_SECRET = IdScheme("aliyun-secret", "secret-", _BASE36, 12, separator="-")
# Huawei key ids: 32 hex digits as 8-4-4-4-12 (providers.huawei.rules.KEY_ID).
HUAWEI_KEY = IdScheme("huawei-key", "", _HEX, 24, uuid_shaped=True)

SCHEMES: dict[tuple[str, str], IdScheme] = {
    ("aliyun", "key"): ALIYUN_KEY,
    ("aliyun", "secret"): ALIYUN_SECRET,
    ("huawei", "key"): HUAWEI_KEY,
}


def aliyun_key_id(region: str, n: int) -> str:
    """The ``n``-th generated Alibaba key id of ``region`` (exists iff ``n`` < the count)."""
    return ALIYUN_KEY.make(region, n)


def aliyun_secret_name(region: str, n: int) -> str:
    """The ``n``-th generated Alibaba secret name of ``region``."""
    return ALIYUN_SECRET.make(region, n)


def huawei_key_id(project_id: str, n: int) -> str:
    """The ``n``-th generated Huawei key id of ``project_id``."""
    return HUAWEI_KEY.make(project_id, n)


def resource_id(provider: str, location: str, resource_type: str, n: int) -> str:
    """The ``n``-th generated id of any (provider, location, resource type)."""
    try:
        scheme = SCHEMES[(provider, resource_type)]
    except KeyError:
        raise ValueError(f"no generated ids for {provider} {resource_type}") from None
    return scheme.make(location, n)
