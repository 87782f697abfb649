"""What a provider answered, reduced to the one class of result the worker acts on.

The classification follows providers.md §2.2-2.3 (Alibaba) and §3.4 (Huawei) and the task's
table: not found, invalid input, authentication, throttling, transient, anything else failed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.StrEnum):
    OK = "ok"
    NOT_FOUND = "not_found"
    INVALID = "invalid"
    AUTH = "auth"
    THROTTLED = "throttled"
    TRANSIENT = "transient"
    FAILED = "failed"

    @property
    def retryable(self) -> bool:
        return self in (Outcome.THROTTLED, Outcome.TRANSIENT)


@dataclass(frozen=True, slots=True)
class CallResult:
    """One provider call: its class, and the provider's own status, code, message, request id."""

    outcome: Outcome
    http_status: int | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    # Seconds the provider asked us to wait (Alibaba x-acs-retry-after), when it said so.
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


# Alibaba ----------------------------------------------------------------------------------

_ALIYUN_NOT_FOUND = frozenset({"InvalidResourceId.NotFound", "Forbidden.KeyNotFound"})
_ALIYUN_AUTH = frozenset(
    {
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId",
        "IncompleteSignature",
        "SignatureDoesNotMatch",
        "SignatureNonceUsed",
        "IllegalTimestamp",
        "InvalidTimeStamp.Expired",
        "InvalidSecurityToken.Expired",
        "InvalidSecurityToken.Malformed",
    }
)
_ALIYUN_THROTTLED = frozenset({"Rejected.Throttling", "Throttling"})


def classify_aliyun(status: int, code: str | None) -> Outcome:
    """Map an Alibaba answer (HTTP status and body ``Code``) to an :class:`Outcome`."""
    if 200 <= status < 300:
        return Outcome.OK
    code = code or ""
    if code in _ALIYUN_NOT_FOUND:
        return Outcome.NOT_FOUND
    # 429 Rejected.Throttling is KMS's own; generic POP throttling is 400 Throttling[.User|.Api]
    # (providers.md §2.3).
    if status == 429 or code in _ALIYUN_THROTTLED or code.startswith("Throttling"):
        return Outcome.THROTTLED
    if code in _ALIYUN_AUTH or code.startswith("Forbidden") or status in (401, 403):
        return Outcome.AUTH
    if code.startswith("InvalidParameter") or code in ("Duplicate.TagKey", "MissingParameter"):
        return Outcome.INVALID
    if status >= 500:
        return Outcome.TRANSIENT
    return Outcome.FAILED


# Huawei -----------------------------------------------------------------------------------

_HUAWEI_AUTH = frozenset(
    {
        "APIGW.0301",  # incorrect IAM authentication information (incl. bad AK/SK signature)
        "APIGW.0302",
        "APIGW.0303",
        "APIGW.0307",  # token must be updated
        "KMS.0301",
        "KMS.0302",
        "KMS.0303",
        "KMS.0305",
        "KMS.0306",
        "KMS.0307",
    }
)
_HUAWEI_INVALID = frozenset(
    {"KMS.0205", "KMS.0401", "KMS.0405", "KMS.0406", "KMS.0407", "KMS.0409", "KMS.0410",
     "KMS.0411", "KMS.0202", "KMS.0204"}
)  # fmt: skip
_HUAWEI_TRANSIENT = frozenset({"APIGW.0201", "APIGW.0613", "KMS.0101", "KMS.0102"})


def classify_huawei(status: int, code: str | None) -> Outcome:
    """Map a Huawei answer (HTTP status and ``error_code``) to an :class:`Outcome`."""
    if 200 <= status < 300:
        return Outcome.OK
    code = code or ""
    if code == "KMS.0207" or (status == 404 and not code.startswith("APIGW")):
        return Outcome.NOT_FOUND
    if status == 429 or code == "APIGW.0308":
        return Outcome.THROTTLED
    if code in _HUAWEI_AUTH or status in (401, 403):
        return Outcome.AUTH
    if code in _HUAWEI_INVALID:
        return Outcome.INVALID
    if status >= 500 or code in _HUAWEI_TRANSIENT:
        return Outcome.TRANSIENT
    return Outcome.FAILED


def transport_failure(kind: str, detail: str) -> CallResult:
    """A call that got no HTTP answer (timeout, reset, refused): always worth a retry."""
    return CallResult(Outcome.TRANSIENT, None, kind, detail, None)
