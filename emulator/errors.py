"""The one exception provider handlers raise to answer with an error."""

from __future__ import annotations


class ApiError(Exception):
    """Answer ``status`` with the provider's ``code`` and ``message``.

    ``gateway`` marks a Huawei API-gateway error (flat body, ``APIGW.*`` codes) as opposed
    to a KMS one (nested under ``"error"``), providers.md §3.4. Alibaba ignores it.
    """

    def __init__(self, status: int, code: str, message: str, *, gateway: bool = False) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.gateway = gateway
