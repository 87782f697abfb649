"""Finding the missing ids in an Alibaba batch that failed as a whole (pure logic).

``TagResources`` with one missing id answers ``InvalidResourceId.NotFound`` and tags nothing
(the emulator's reading of providers.md §7.1, the worst case). Every existing id must still
end tagged and every missing one ``not_found``, with as few extra calls as possible, since
every call spends the region's quota.

- If the error message names the missing id, drop it and call again: k+1 calls for k
  missing ids (performance.md §4.1).
- Otherwise Hwang's generalized binary splitting with d = 1 (performance.md §4.2-4.4): test
  the largest power-of-two group that is likely clean; a clean group is tagged by the test
  itself; a failing group is binary-searched for one missing id. About 7.9 calls for one
  missing id in 50 (performance.md §4.3), against 9.4 for halving.
- A batch found mostly bad is finished one id per call (Hwang's rule for n <= 2d - 2).

Only a definite not-found answer drives the search: throttling and transient errors are
retried by the caller's ``probe`` and never taken as "this group holds a missing id".
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from providers.results import CallResult, Outcome

Probe = Callable[[Sequence[str]], Awaitable[CallResult]]


@dataclass
class Isolation:
    """What the search settled: per id, the final result of the call that decided it."""

    results: dict[str, CallResult] = field(default_factory=dict)
    calls: int = 0


def named_missing_id(message: str | None, batch: Sequence[str]) -> str | None:
    """The batch member that a not-found message names, if it names exactly one."""
    if not message:
        return None
    named = {rid for rid in batch if rid in message}
    # An id that is part of another named id (key-ab in key-abc) is not named itself.
    named = {rid for rid in named if not any(rid != other and rid in other for other in named)}
    return named.pop() if len(named) == 1 else None


async def isolate(batch: Sequence[str], first: CallResult, probe: Probe) -> Isolation:
    """Settle every id of ``batch``, whose whole-batch call answered ``first`` (not found)."""
    found = Isolation()
    await _settle(list(batch), first, probe, found)
    return found


async def _call(ids: Sequence[str], probe: Probe, found: Isolation) -> CallResult:
    found.calls += 1
    return await probe(ids)


def _decide(ids: Sequence[str], result: CallResult, found: Isolation) -> None:
    for rid in ids:
        found.results[rid] = result


def _mostly_bad(missing: int, settled: int, pending: int) -> bool:
    """Whether one call per remaining id is expected to be cheaper than searching on.

    Each missing id costs a search of about log2(n) + 1 calls; with the share of missing ids
    seen so far, the remaining ones hold about ``share * pending`` of them
    (performance.md §4.3-4.4: at 10 missing in 50, per-id calls beat bisection)."""
    if missing < 2:
        return False
    share = missing / (settled + 10)  # smoothed: a prior of ten clean ids
    return pending <= share * pending * (math.log2(pending) + 1)


async def _settle(ids: list[str], failed: CallResult, probe: Probe, found: Isolation) -> None:
    """``ids`` is known to contain at least one missing id (its call answered ``failed``)."""
    pending = ids
    known_bad = failed
    searched = 0  # missing ids found by searching (named ones cost a single call)
    while pending:
        if len(pending) == 1:
            _decide(pending, known_bad, found)
            return
        named = named_missing_id(known_bad.message, pending)
        if named is not None:
            _decide([named], known_bad, found)
            pending = [rid for rid in pending if rid != named]
            nxt = await _whole(pending, probe, found)
            if nxt is None:
                return
            known_bad = nxt
            continue
        if _mostly_bad(searched, len(ids) - len(pending), len(pending)):
            for rid in pending:
                _decide([rid], await _call([rid], probe, found), found)
            return
        bad, good_unknown = await _binary_search(pending, known_bad, probe, found)
        searched += 1
        _decide([bad.rid], bad.result, found)
        # Everything after the search is untested: try it whole (Hwang, d = 1).
        pending = good_unknown
        if not pending:
            return
        nxt = await _whole(pending, probe, found)
        if nxt is None:
            return
        known_bad = nxt


async def _whole(ids: list[str], probe: Probe, found: Isolation) -> CallResult | None:
    """Call ``ids`` whole: None when settled (tagged or failed otherwise), else the
    not-found answer that says the group still holds a missing id."""
    if not ids:
        return None
    result = await _call(ids, probe, found)
    if result.outcome is Outcome.NOT_FOUND:
        return result
    _decide(ids, result, found)
    return None


@dataclass(frozen=True, slots=True)
class _Bad:
    rid: str
    result: CallResult


async def _binary_search(
    ids: list[str], failed: CallResult, probe: Probe, found: Isolation
) -> tuple[_Bad, list[str]]:
    """Find one missing id in ``ids`` (known to hold one). Tested-clean halves are tagged
    by their test; returns the missing id and the ids never tested."""
    untested: list[str] = []
    group = ids
    result = failed
    while len(group) > 1:
        # Largest power of two below len(group): Hwang's group size for d = 1.
        size = 1 << ((len(group) - 1).bit_length() - 1)
        head, tail = group[:size], group[size:]
        answer = await _call(head, probe, found)
        if answer.outcome is Outcome.NOT_FOUND:
            # The missing id is in head; tail is untested.
            untested = tail + untested
            group, result = head, answer
            continue
        # Head is settled (tagged, or failed for a reason of its own); the missing id is
        # in tail, which therefore needs no test of its own.
        _decide(head, answer, found)
        group = tail
    return _Bad(group[0], result), untested
