"""Counts of provider calls by (provider, location, action, outcome).

Outcome is ``ok``, the error code answered (``InvalidResourceId.NotFound``, ``KMS.0207``,
``IncompleteSignature``...), ``throttled``, or ``fault:<kind>`` for an injected fault
(``fault:503``, ``fault:timeout``, ``fault:reset``). Inspection calls are not counted.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

OK = "ok"
THROTTLED = "throttled"
FAULT_PREFIX = "fault:"


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Stats:
    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str, str, str]] = Counter()
        # (provider, location) -> [first, last] answer time (epoch seconds): benchmarks
        # measure each region's achieved rate over the time it was actually called.
        self.window: dict[tuple[str, str], list[float]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.since = _now_iso()

    def enter(self) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self, provider: str, location: str, action: str, outcome: str) -> None:
        self.in_flight -= 1
        self.calls[(provider, location, action, outcome)] += 1
        now = time.time()
        span = self.window.get((provider, location))
        if span is None:
            self.window[(provider, location)] = [now, now]
        else:
            span[1] = now

    def count(
        self,
        provider: str | None = None,
        location: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
    ) -> int:
        """Calls matching every given field."""
        return sum(
            n
            for (p, loc, a, o), n in self.calls.items()
            if (provider is None or p == provider)
            and (location is None or loc == location)
            and (action is None or a == action)
            and (outcome is None or o == outcome)
        )

    def reset(self) -> None:
        self.calls.clear()
        self.window.clear()
        self.max_in_flight = self.in_flight
        self.since = _now_iso()

    def snapshot(self) -> dict[str, Any]:
        by_outcome: Counter[str] = Counter()
        by_provider: dict[str, Counter[str]] = {}
        for (provider, _loc, _action, outcome), n in self.calls.items():
            by_outcome[outcome] += n
            kinds = by_provider.setdefault(provider, Counter())
            kinds["total"] += n
            kinds[_kind(outcome)] += n
        total = sum(by_outcome.values())
        totals: Counter[str] = Counter()
        for outcome, n in by_outcome.items():
            totals[_kind(outcome)] += n
        return {
            "since": self.since,
            "total": total,
            "ok": totals["ok"],
            "throttled": totals["throttled"],
            "faults": totals["faults"],
            "errors": totals["errors"],
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "by_outcome": dict(sorted(by_outcome.items())),
            "by_provider": {
                p: {k: kinds[k] for k in ("total", "ok", "throttled", "faults", "errors")}
                for p, kinds in sorted(by_provider.items())
            },
            "calls": [
                {
                    "provider": p,
                    "location": loc,
                    "action": a,
                    "outcome": o,
                    "count": n,
                }
                for (p, loc, a, o), n in sorted(self.calls.items())
            ],
            "windows": [
                {"provider": p, "location": loc, "first": first, "last": last}
                for (p, loc), (first, last) in sorted(self.window.items())
            ],
        }


def _kind(outcome: str) -> str:
    if outcome == OK:
        return "ok"
    if outcome == THROTTLED:
        return "throttled"
    if outcome.startswith(FAULT_PREFIX):
        return "faults"
    return "errors"
