"""The supported providers by name: the one place that knows which providers exist."""

from __future__ import annotations

from providers.aliyun.rules import RULES as ALIYUN
from providers.huawei.rules import RULES as HUAWEI
from providers.rules import ProviderRules

PROVIDERS: dict[str, ProviderRules] = {ALIYUN.name: ALIYUN, HUAWEI.name: HUAWEI}


class UnknownProviderError(ValueError):
    pass


def rules_for(provider: str) -> ProviderRules:
    try:
        return PROVIDERS[provider]
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise UnknownProviderError(f"unknown provider {provider!r}; use one of: {known}") from None
