"""What the emulator accepts and how it misbehaves: credentials, rate limits, latency, faults.

One mutable :class:`EmulatorConfig` is shared by the running app; the gate reads it on every
call, so changing a field (directly, or through ``PUT /_emulator/config``) takes effect on the
next request. :meth:`EmulatorConfig.apply` validates a whole change before touching anything.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PROVIDERS = ("aliyun", "huawei")

# Injected faults: an HTTP status the provider answers with, a hang, or a TCP reset.
FAULT_KINDS = ("500", "502", "503", "504", "timeout", "reset")

# Clock-skew windows, in seconds. Alibaba V3 x-acs-date: 15 min; Alibaba V2 Timestamp: valid
# 31 min (providers.md §1.4, §1.6). Huawei X-Sdk-Date: 15 min (providers.md §3.6).
ALIYUN_V3_SKEW = 15 * 60.0
ALIYUN_V2_SKEW = 31 * 60.0
HUAWEI_SKEW = 15 * 60.0

# The test values both SDK captures use (sdk-wire.md, header).
DEFAULT_ALIYUN_CREDENTIALS = {"testid": "testsecret"}
DEFAULT_HUAWEI_CREDENTIALS = {"testak": "testsk"}
DEFAULT_HUAWEI_TOKENS = frozenset({"test-token"})


class ConfigError(ValueError):
    """A configuration value the emulator cannot use; the message names the field."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who may call: Alibaba AccessKey id -> secret, Huawei AK -> SK, Huawei X-Auth-Token values."""

    aliyun: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ALIYUN_CREDENTIALS))
    huawei: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_HUAWEI_CREDENTIALS))
    huawei_tokens: frozenset[str] = DEFAULT_HUAWEI_TOKENS

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Credentials:
        """``{"aliyun": {id: secret}, "huawei": {ak: sk}, "huawei_tokens": [token, ...]}``.

        A section left out means "nobody" for that provider: a credentials file replaces the
        test defaults entirely.
        """
        unknown = set(data) - {"aliyun", "huawei", "huawei_tokens"}
        if unknown:
            raise ConfigError(
                f"unknown credentials section(s): {', '.join(sorted(unknown))}; "
                "use aliyun, huawei, huawei_tokens"
            )
        aliyun = _string_map(data.get("aliyun", {}), "aliyun")
        huawei = _string_map(data.get("huawei", {}), "huawei")
        tokens = data.get("huawei_tokens", [])
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            raise ConfigError("huawei_tokens must be a list of non-empty strings")
        return cls(aliyun=aliyun, huawei=huawei, huawei_tokens=frozenset(tokens))

    @classmethod
    def load(cls, path: Path) -> Credentials:
        """Read a JSON or TOML credentials file (TOML when the name ends in ``.toml``)."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read credentials file {path}: {exc.strerror}") from None
        try:
            data: Any = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"credentials file {path} is not valid: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"credentials file {path} must hold a table/object")
        return cls.from_mapping(data)


def _string_map(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigError(f"credentials section {name!r} must map non-empty ids to secrets")
    return dict(value)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket's shape: ``qps`` sustained, ``burst`` calls at once."""

    qps: float
    burst: float

    def describe(self) -> str:
        """The rate as Huawei's throttling message prints it (``limit:20``)."""
        return f"{self.qps:g}"


@dataclass(slots=True)
class EmulatorConfig:
    """Everything about the emulator's behaviour except its inventory. Mutable at run time."""

    credentials: Credentials = field(default_factory=Credentials)
    # Calls per second, keyed "provider" (the default for each of its locations, every location
    # with a bucket of its own) or "provider:location" (a region / project of its own). No entry:
    # unlimited.
    rate_limits: dict[str, float] = field(default_factory=dict)
    # Bucket capacity for every limit; None: one second's worth (at least 1).
    burst: float | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0  # uniform extra 0..jitter_ms on top of latency_ms
    # Probability per call of each fault kind (FAULT_KINDS); the sum must not exceed 1.
    faults: dict[str, float] = field(default_factory=dict)
    timeout_delay: float = 30.0  # seconds a "timeout" fault hangs before answering 504
    # Alibaba's documented message does not name the missing id; with this switch it does.
    name_missing_id: bool = False
    aliyun_v3_skew: float = ALIYUN_V3_SKEW
    aliyun_v2_skew: float = ALIYUN_V2_SKEW
    huawei_skew: float = HUAWEI_SKEW
    # ListKeys / ListSecrets carry no RegionId (the SDK sends it nowhere): the region comes from
    # a kms.<region>.aliyuncs.com Host header, else this one (sdk-wire.md §1.1).
    aliyun_default_region: str = "cn-hangzhou"
    # ListTagResources rows per page: "by default 200 rows" (providers.md §2.6).
    list_tag_resources_page_size: int = 200
    # Nonces are remembered for their timestamp's validity window, at most this many.
    nonce_cache_size: int = 1_000_000
    seed: int | None = None  # fault and jitter randomness; None: unseeded

    def __post_init__(self) -> None:
        self.validate()

    def rate_limit(self, provider: str, location: str) -> RateLimit | None:
        """The limit for one (provider, location): its own entry, else the provider's default."""
        qps = self.rate_limits.get(f"{provider}:{location}")
        if qps is None:
            qps = self.rate_limits.get(provider)
        if qps is None:
            return None
        burst = self.burst if self.burst is not None else max(1.0, qps)
        return RateLimit(qps, burst)

    def validate(self) -> None:
        for key, qps in self.rate_limits.items():
            provider = key.partition(":")[0]
            if provider not in PROVIDERS:
                raise ConfigError(
                    f"rate limit {key!r}: unknown provider {provider!r}; use one of "
                    f"{', '.join(PROVIDERS)}"
                )
            _positive(qps, f"rate limit {key!r}")
        if self.burst is not None:
            _positive(self.burst, "burst")
            if self.burst < 1:
                raise ConfigError("burst must be at least 1 call")
        _non_negative(self.latency_ms, "latency_ms")
        _non_negative(self.jitter_ms, "jitter_ms")
        _non_negative(self.timeout_delay, "timeout_delay")
        total = 0.0
        for kind, rate in self.faults.items():
            if kind not in FAULT_KINDS:
                raise ConfigError(f"unknown fault {kind!r}; use one of {', '.join(FAULT_KINDS)}")
            if not _finite(rate) or not 0.0 <= rate <= 1.0:
                raise ConfigError(f"fault {kind!r}: rate must be between 0 and 1, not {rate!r}")
            total += rate
        if total > 1.0 + 1e-9:
            raise ConfigError(f"fault rates add up to {total:g}; they must not exceed 1")
        for name in ("aliyun_v3_skew", "aliyun_v2_skew", "huawei_skew"):
            _positive(getattr(self, name), name)
        if not isinstance(self.list_tag_resources_page_size, int) or not (
            1 <= self.list_tag_resources_page_size <= 1000
        ):
            raise ConfigError("list_tag_resources_page_size must be an integer from 1 to 1000")
        if not isinstance(self.nonce_cache_size, int) or self.nonce_cache_size < 1:
            raise ConfigError("nonce_cache_size must be a positive integer")

    # --- run-time changes ------------------------------------------------------------------

    # Fields a running emulator lets ``PUT /_emulator/config`` replace.
    MUTABLE = (
        "rate_limits", "burst", "latency_ms", "jitter_ms", "faults", "timeout_delay",
        "name_missing_id", "aliyun_v3_skew", "aliyun_v2_skew", "huawei_skew",
        "list_tag_resources_page_size",
    )  # fmt: skip

    def apply(self, changes: Mapping[str, Any]) -> None:
        """Replace the given fields (a JSON object's worth), all or nothing.

        ``rate_limits`` and ``faults`` are replaced as whole tables; a ``null`` rate limit
        entry means unlimited and is dropped.
        """
        unknown = set(changes) - set(self.MUTABLE)
        if unknown:
            raise ConfigError(
                f"cannot change {', '.join(sorted(unknown))} at run time; "
                f"changeable: {', '.join(self.MUTABLE)}"
            )
        candidate = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in changes.items():
            candidate[name] = _coerce(name, value)
        trial = EmulatorConfig(**candidate)  # validates
        for name in changes:
            setattr(self, name, getattr(trial, name))

    def public_view(self) -> dict[str, Any]:
        """The configuration as JSON, secrets left out (only the ids that may call)."""
        return {
            "credentials": {
                "aliyun_access_key_ids": sorted(self.credentials.aliyun),
                "huawei_access_keys": sorted(self.credentials.huawei),
                "huawei_tokens": len(self.credentials.huawei_tokens),
            },
            "rate_limits": dict(self.rate_limits),
            "burst": self.burst,
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "faults": dict(self.faults),
            "timeout_delay": self.timeout_delay,
            "name_missing_id": self.name_missing_id,
            "aliyun_v3_skew": self.aliyun_v3_skew,
            "aliyun_v2_skew": self.aliyun_v2_skew,
            "huawei_skew": self.huawei_skew,
            "aliyun_default_region": self.aliyun_default_region,
            "list_tag_resources_page_size": self.list_tag_resources_page_size,
            "seed": self.seed,
        }


def _coerce(name: str, value: Any) -> Any:
    """Turn one JSON value into the field's type, or say why it cannot be."""
    if name in ("rate_limits", "faults"):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name} must be an object")
        table: dict[str, float] = {}
        for key, item in value.items():
            if item is None and name == "rate_limits":
                continue
            table[str(key)] = _number(item, f"{name}[{key!r}]")
        return table
    if name == "name_missing_id":
        if not isinstance(value, bool):
            raise ConfigError("name_missing_id must be true or false")
        return value
    if name == "burst" and value is None:
        return None
    if name == "list_tag_resources_page_size":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer")
        return value
    return _number(value, name)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, not {value!r}")
    return float(value)


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: float, name: str) -> None:
    if not _finite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, not {value!r}")


def _non_negative(value: float, name: str) -> None:
    if not _finite(value) or value < 0:
        raise ConfigError(f"{name} must be zero or more, not {value!r}")
