"""Splitting work into the fewest provider calls the limits allow (pure).

Alibaba ``TagResources`` takes up to 50 ids and 20 tags per call, so n ids with t tags need
ceil(n/50) x ceil(t/20) calls. Huawei tags one key per call: the add-tag call for a single
tag, ``tags/action`` for all of a key's tags (a key holds at most 10).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from math import ceil

from providers.rules import ProviderRules, Tag


def batches(
    rules: ProviderRules, resource_ids: Sequence[str], tags: Sequence[Tag]
) -> Iterator[tuple[Sequence[str], Sequence[Tag]]]:
    """(ids, tags) per call, ids in input order; every (id, tag) pair appears exactly once."""
    per_ids, per_tags = rules.max_resources_per_call, rules.max_tags_per_call
    for i in range(0, len(resource_ids), per_ids):
        for j in range(0, len(tags), per_tags):
            yield resource_ids[i : i + per_ids], tags[j : j + per_tags]


def calls_needed(rules: ProviderRules, resources: int, tags: int) -> int:
    if resources <= 0 or tags <= 0:
        return 0
    return ceil(resources / rules.max_resources_per_call) * ceil(tags / rules.max_tags_per_call)


def round_chunk_size(rules: ProviderRules, requested: int) -> int:
    """A job size that fills every call: the request rounded up to a multiple of the batch."""
    batch = rules.max_resources_per_call
    return max(batch, ceil(requested / batch) * batch)


def tag_slices(rules: ProviderRules, tags: Sequence[Tag]) -> list[Sequence[Tag]]:
    """The tags of one resource split into calls (one slice unless over the per-call limit)."""
    per_call = rules.max_tags_per_call
    return [tags[j : j + per_call] for j in range(0, len(tags), per_call)] or [tags]
