"""Credentials per named profile, from the providers' conventional variables or a file.

Secrets live only in worker memory: they are never logged (their ``repr`` is masked), never
written to Redis and never part of a job payload. Jobs carry the profile *name*; each worker
resolves it here.

File (``BULKTAG_CREDENTIALS_FILE``, default ``~/.config/bulktag/credentials.toml``)::

    [profile.prod.aliyun]
    access_key_id = "LTAI..."
    access_key_secret = "..."
    # security_token = "..."      (STS)
    # endpoint = "kms-vpc.cn-hangzhou.aliyuncs.com" or "http://127.0.0.1:8500" (emulator)

    [profile.prod.huawei]
    ak = "..."
    sk = "..."
    # auth_token = "..."          (X-Auth-Token instead of AK/SK)

The profile ``default`` also reads the environment, which wins over the file:
``ALIBABA_CLOUD_ACCESS_KEY_ID``, ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``,
``ALIBABA_CLOUD_SECURITY_TOKEN``; ``HUAWEICLOUD_SDK_AK``, ``HUAWEICLOUD_SDK_SK``,
``HUAWEICLOUD_SDK_SECURITY_TOKEN``, ``HUAWEICLOUD_AUTH_TOKEN``; endpoints
``BULKTAG_ALIYUN_ENDPOINT`` and ``BULKTAG_HUAWEI_ENDPOINT``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PROFILE = "default"


class CredentialsError(Exception):
    """A profile is missing or incomplete; the message names what and where."""


@dataclass(frozen=True)
class AliyunCredentials:
    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    endpoint: str | None = None


@dataclass(frozen=True)
class HuaweiCredentials:
    ak: str | None = None
    sk: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    auth_token: str | None = field(default=None, repr=False)
    endpoint: str | None = None

    @property
    def uses_aksk(self) -> bool:
        return bool(self.ak and self.sk)


def credentials_file(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("BULKTAG_CREDENTIALS_FILE"):
        return Path(env["BULKTAG_CREDENTIALS_FILE"])
    return Path.home() / ".config" / "bulktag" / "credentials.toml"


def _profile_section(profile: str, provider: str, path: Path) -> tuple[dict[str, Any], bool]:
    """The file's section for (profile, provider), and whether the file exists at all."""
    if not path.exists():
        return {}, False
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CredentialsError(f"{path}: cannot read credentials file: {exc}") from None
    section = data.get("profile", {}).get(profile, {}).get(provider, {})
    if not isinstance(section, dict):
        raise CredentialsError(f"{path}: [profile.{profile}.{provider}] must be a table")
    return section, True


def _str(section: Mapping[str, Any], key: str) -> str | None:
    value = section.get(key)
    return str(value) if value not in (None, "") else None


def load_aliyun(
    profile: str = DEFAULT_PROFILE, environ: Mapping[str, str] | None = None
) -> AliyunCredentials:
    env = os.environ if environ is None else environ
    path = credentials_file(env)
    section, _ = _profile_section(profile, "aliyun", path)
    values = {k: _str(section, k) for k in ("access_key_id", "access_key_secret",
                                             "security_token", "endpoint")}  # fmt: skip
    if profile == DEFAULT_PROFILE:
        for key, var in (
            ("access_key_id", "ALIBABA_CLOUD_ACCESS_KEY_ID"),
            ("access_key_secret", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
            ("security_token", "ALIBABA_CLOUD_SECURITY_TOKEN"),
            ("endpoint", "BULKTAG_ALIYUN_ENDPOINT"),
        ):
            values[key] = env.get(var) or values[key]
    key_id, secret = values["access_key_id"], values["access_key_secret"]
    if not key_id or not secret:
        raise CredentialsError(
            f"no Alibaba Cloud credentials for profile {profile!r}: set access_key_id and "
            f"access_key_secret under [profile.{profile}.aliyun] in {path}"
            + (
                " or ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET"
                if profile == DEFAULT_PROFILE
                else ""
            )
        )
    return AliyunCredentials(key_id, secret, values["security_token"], values["endpoint"])


def load_huawei(
    profile: str = DEFAULT_PROFILE, environ: Mapping[str, str] | None = None
) -> HuaweiCredentials:
    env = os.environ if environ is None else environ
    path = credentials_file(env)
    section, _ = _profile_section(profile, "huawei", path)
    values = {k: _str(section, k) for k in ("ak", "sk", "security_token", "auth_token",
                                             "endpoint")}  # fmt: skip
    if profile == DEFAULT_PROFILE:
        for key, var in (
            ("ak", "HUAWEICLOUD_SDK_AK"),
            ("sk", "HUAWEICLOUD_SDK_SK"),
            ("security_token", "HUAWEICLOUD_SDK_SECURITY_TOKEN"),
            ("auth_token", "HUAWEICLOUD_AUTH_TOKEN"),
            ("endpoint", "BULKTAG_HUAWEI_ENDPOINT"),
        ):
            values[key] = env.get(var) or values[key]
    creds = HuaweiCredentials(
        values["ak"], values["sk"], values["security_token"], values["auth_token"],
        values["endpoint"],
    )  # fmt: skip
    if not creds.uses_aksk and not creds.auth_token:
        raise CredentialsError(
            f"no Huawei Cloud credentials for profile {profile!r}: set ak and sk (or auth_token) "
            f"under [profile.{profile}.huawei] in {path}"
            + (" or HUAWEICLOUD_SDK_AK / HUAWEICLOUD_SDK_SK" if profile == DEFAULT_PROFILE else "")
        )
    return creds


def secrets_of(creds: AliyunCredentials | HuaweiCredentials) -> list[str]:
    """Every secret value in a credentials object (used by leak scans in tests)."""
    if isinstance(creds, AliyunCredentials):
        candidates = [creds.access_key_secret, creds.security_token]
    else:
        candidates = [creds.sk, creds.security_token, creds.auth_token]
    return [c for c in candidates if c]
