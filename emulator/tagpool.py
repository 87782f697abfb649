"""Interned tag sets: a resource stores one 32-bit number instead of a dict of its tags.

A bulk campaign gives thousands or millions of resources the same few tag sets, so each set
is stored once and resources refer to it by index (``0`` is "no tags"). Merges are memoised:
"set #7 plus these tags" is computed once however many resources go through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

TagItems = tuple[tuple[str, str], ...]  # sorted by key, keys unique

EMPTY = 0
_K = TypeVar("_K")
_MEMO_LIMIT = 65_536


class TagPool:
    def __init__(self) -> None:
        self._sets: list[TagItems] = [()]
        self._index: dict[TagItems, int] = {(): EMPTY}
        self._merge_memo: dict[tuple[int, TagItems], int] = {}
        self._remove_memo: dict[tuple[int, frozenset[str]], int] = {}

    def __len__(self) -> int:
        return len(self._sets)

    def intern(self, tags: Mapping[str, str] | Iterable[tuple[str, str]]) -> int:
        pairs = tags.items() if isinstance(tags, Mapping) else tags
        items = tuple(sorted(dict(pairs).items()))
        index = self._index.get(items)
        if index is None:
            index = len(self._sets)
            self._sets.append(items)
            self._index[items] = index
        return index

    def items(self, index: int) -> TagItems:
        return self._sets[index]

    def as_dict(self, index: int) -> dict[str, str]:
        return dict(self._sets[index])

    def merged(self, index: int, add: TagItems) -> int:
        """The set ``index`` with ``add`` applied: a key already there takes the new value
        (both providers overwrite an existing tag key)."""
        memo_key = (index, add)
        found = self._merge_memo.get(memo_key)
        if found is None:
            merged = dict(self._sets[index])
            merged.update(add)
            found = self.intern(merged)
            self._remember(self._merge_memo, memo_key, found)
        return found

    def without(self, index: int, keys: frozenset[str]) -> int:
        """The set ``index`` minus ``keys`` (keys it does not hold are ignored)."""
        memo_key = (index, keys)
        found = self._remove_memo.get(memo_key)
        if found is None:
            found = self.intern((k, v) for k, v in self._sets[index] if k not in keys)
            self._remember(self._remove_memo, memo_key, found)
        return found

    @staticmethod
    def _remember(memo: dict[_K, int], key: _K, value: int) -> None:
        # Bounded: a campaign with per-resource values would otherwise memoise every resource.
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[key] = value
