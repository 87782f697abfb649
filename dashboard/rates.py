"""Rates from counters the dashboard reads: resources done per second, limiter calls per second.

A campaign's average since creation (``campaigns.status``) says little about now: a paused
hour drags it down for ever. The dashboard keeps the last ``WINDOW_S`` seconds of every
counter it has read and answers the slope over them; it costs no write to Redis and the
figures start with the second read after a restart.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

WINDOW_S = 30.0
MIN_SPAN_S = 2.0  # two reads closer than this give a noisy slope
MAX_KEYS = 10_000  # campaigns x targets + limiters; beyond it the oldest are forgotten


@dataclass
class RateTracker:
    window_s: float = WINDOW_S
    _samples: dict[str, deque[tuple[float, float]]] = field(default_factory=dict)

    def observe(self, key: str, value: float, now: float | None = None) -> float | None:
        """Record ``value`` for ``key``; its rate of change per second, or None if unknown."""
        at = time.monotonic() if now is None else now
        samples = self._samples.get(key)
        if samples is None:
            if len(self._samples) >= MAX_KEYS:
                del self._samples[next(iter(self._samples))]
            samples = self._samples[key] = deque()
        if samples and value < samples[-1][1]:
            samples.clear()  # a counter reset (retry forgot outcomes, a limiter key expired)
        samples.append((at, value))
        while len(samples) > 2 and at - samples[1][0] >= self.window_s:
            samples.popleft()
        first_at, first = samples[0]
        if at - first_at < MIN_SPAN_S:
            return None
        return (value - first) / (at - first_at)

    def delta(self, key: str, value: float, now: float | None = None) -> float:
        """Record ``value``; how much it grew over the window (0 on the first read)."""
        self.observe(key, value, now)
        return value - self._samples[key][0][1]


def eta_seconds(pending: int, rate: float | None) -> float | None:
    if pending <= 0:
        return 0.0
    if not rate or rate <= 0:
        return None
    return pending / rate
