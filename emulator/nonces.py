"""Replay protection: a signature nonce may be used once while its timestamp is valid.

Alibaba rejects a reused ``SignatureNonce`` (V2) / ``x-acs-signature-nonce`` (V3) with
``SignatureNonceUsed``; the replay window is not documented (providers.md §7.8), so a nonce is
remembered as long as the request's timestamp would still be accepted: after that the
timestamp check refuses the replay anyway. Memory is bounded by ``max_entries`` (oldest
forgotten first).
"""

from __future__ import annotations

from collections import deque


class NonceCache:
    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._expiry: dict[str, float] = {}
        self._order: deque[tuple[float, str]] = deque()

    def __len__(self) -> int:
        return len(self._expiry)

    def use(self, nonce: str, now: float, ttl: float) -> bool:
        """Record ``nonce``; False if it was already used and has not expired."""
        self._purge(now)
        expiry = self._expiry.get(nonce)
        if expiry is not None and expiry > now:
            return False
        expires = now + ttl
        self._expiry[nonce] = expires
        self._order.append((expires, nonce))
        while len(self._expiry) > self._max:
            self._forget_oldest()
        return True

    def _purge(self, now: float) -> None:
        # Entries are appended in arrival order; windows differ (15 vs 31 min), so the queue
        # is only roughly sorted by expiry: an entry stuck behind a longer-lived one is
        # dropped a little late, never early.
        while self._order and self._order[0][0] <= now:
            self._forget_oldest()

    def _forget_oldest(self) -> None:
        expires, nonce = self._order.popleft()
        if self._expiry.get(nonce) == expires:
            del self._expiry[nonce]
