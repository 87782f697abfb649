"""When the worker stops retrying a call (pure logic)."""

from __future__ import annotations

from providers.results import Outcome
from worker.retry import RetryPolicy


def test_transient_failures_give_up_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3, max_throttled=30)
    assert not policy.gives_up(Outcome.TRANSIENT, failures=2, throttles=0)
    assert policy.gives_up(Outcome.TRANSIENT, failures=3, throttles=0)


def test_throttling_has_its_own_larger_budget() -> None:
    """A throttling storm slows a call down; it does not fail it after six answers."""
    policy = RetryPolicy(max_attempts=3, max_throttled=30)
    assert not policy.gives_up(Outcome.THROTTLED, failures=2, throttles=10)
    assert policy.gives_up(Outcome.THROTTLED, failures=0, throttles=30)


def test_final_answers_are_never_retried() -> None:
    policy = RetryPolicy()
    for outcome in (Outcome.OK, Outcome.NOT_FOUND, Outcome.INVALID, Outcome.FAILED):
        assert policy.gives_up(outcome, failures=0, throttles=0)


def test_delays_grow_exponentially_with_full_jitter_up_to_the_cap() -> None:
    policy = RetryPolicy(base_s=0.2, cap_s=1.0)
    assert all(0 <= policy.delay(1) <= 0.4 for _ in range(200))
    assert max(policy.delay(10) for _ in range(200)) <= 1.0
