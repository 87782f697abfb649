"""How a provider call is retried: exponential backoff with full jitter, and attempt budgets."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

from providers.results import Outcome


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; base 200 ms after Alibaba's guidance
    (providers.md §4), Huawei advises 3 to 5 retries (providers.md §4).

    Throttling has a budget of its own: it says "slower", not "this request is bad", and
    the shared limiter already slows every worker down, so a throttling storm must not turn
    existing resources into failures the way six 5xx answers in a row do."""

    base_s: float = 0.2
    cap_s: float = 20.0
    max_attempts: int = 6
    max_throttled: int = 30

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """``BULKTAG_RETRY_BASE_MS``, ``_CAP_MS``, ``_ATTEMPTS``, ``_THROTTLED``."""
        env = os.environ
        default = cls()
        return cls(
            base_s=float(env.get("BULKTAG_RETRY_BASE_MS", default.base_s * 1000)) / 1000,
            cap_s=float(env.get("BULKTAG_RETRY_CAP_MS", default.cap_s * 1000)) / 1000,
            max_attempts=int(env.get("BULKTAG_RETRY_ATTEMPTS", default.max_attempts)),
            max_throttled=int(env.get("BULKTAG_RETRY_THROTTLED", default.max_throttled)),
        )

    def gives_up(self, outcome: Outcome, failures: int, throttles: int) -> bool:
        if outcome is Outcome.THROTTLED:
            return throttles >= self.max_throttled
        return not outcome.retryable or failures >= self.max_attempts

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.cap_s, self.base_s * 2**attempt))
