"""Pure logic: splitting work into calls, and isolating missing ids in a failed batch."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest

from providers.aliyun.rules import RULES as ALIYUN
from providers.batching import batches, calls_needed, round_chunk_size, tag_slices
from providers.huawei.rules import RULES as HUAWEI
from providers.results import CallResult, Outcome
from worker.isolation import isolate, named_missing_id


def ids(n: int) -> list[str]:
    return [f"key-hzz{i:017d}" for i in range(n)]


def test_alibaba_batches_hold_50_ids_and_20_tags() -> None:
    tags = [(f"k{i}", "v") for i in range(25)]
    calls = list(batches(ALIYUN, ids(120), tags))
    assert [(len(i), len(t)) for i, t in calls] == [
        (50, 20), (50, 5), (50, 20), (50, 5), (20, 20), (20, 5),
    ]  # fmt: skip
    assert calls_needed(ALIYUN, 120, 25) == 6 == len(calls)
    assert calls_needed(ALIYUN, 1000, 3) == 20


def test_huawei_is_one_key_per_call_with_all_its_tags() -> None:
    tags = [("env", "prod"), ("owner", "a"), ("cc", "1")]
    calls = list(batches(HUAWEI, ids(3), tags))
    assert [(len(i), len(t)) for i, t in calls] == [(1, 3)] * 3
    assert calls_needed(HUAWEI, 7, 3) == 7
    assert tag_slices(HUAWEI, tags) == [tags]


def test_chunk_size_is_a_multiple_of_the_batch() -> None:
    assert round_chunk_size(ALIYUN, 120) == 150
    assert round_chunk_size(ALIYUN, 1) == 50
    assert round_chunk_size(HUAWEI, 7) == 7


def not_found(message: str = "The specified ResourceId is not found.") -> CallResult:
    return CallResult(Outcome.NOT_FOUND, 404, "InvalidResourceId.NotFound", message)


class FakeBatchApi:
    """All-or-nothing like the emulator: one missing id fails the whole call."""

    def __init__(self, missing: set[str], name_it: bool = False) -> None:
        self.missing = missing
        self.name_it = name_it
        self.calls = 0
        self.tagged: set[str] = set()

    async def __call__(self, group: Sequence[str]) -> CallResult:
        self.calls += 1
        bad = [g for g in group if g in self.missing]
        if bad:
            return not_found(f"The specified ResourceId is not found: {bad[0]}" if self.name_it
                             else "The specified ResourceId is not found.")  # fmt: skip
        self.tagged.update(group)
        return CallResult(Outcome.OK, 200)


def run_isolation(batch: list[str], api: FakeBatchApi) -> dict[str, Outcome]:
    first = asyncio.run(api(batch))
    assert first.outcome is Outcome.NOT_FOUND
    found = asyncio.run(isolate(batch, first, api))
    return {rid: r.outcome for rid, r in found.results.items()}


@pytest.mark.parametrize("k", [1, 2, 3, 7, 25, 50])
def test_isolation_tags_every_existing_id_and_names_every_missing_one(k: int) -> None:
    rng = random.Random(k)
    batch = ids(50)
    missing = set(rng.sample(batch, k))
    api = FakeBatchApi(missing)
    outcomes = run_isolation(batch, api)
    assert set(outcomes) == set(batch)
    assert {r for r, o in outcomes.items() if o is Outcome.NOT_FOUND} == missing
    assert api.tagged == set(batch) - missing


def test_one_missing_id_in_fifty_costs_about_eight_calls() -> None:
    rng = random.Random(7)
    total = 0
    for _ in range(300):
        batch = ids(50)
        api = FakeBatchApi({rng.choice(batch)})
        run_isolation(batch, api)
        total += api.calls
    # Hwang GBS with d=1: 7.9 calls on average, first call included (performance.md §4.3).
    assert total / 300 <= 8.0


def test_a_batch_of_only_missing_ids_costs_about_one_call_per_id() -> None:
    batch = ids(50)
    api = FakeBatchApi(set(batch))
    outcomes = run_isolation(batch, api)
    assert set(outcomes.values()) == {Outcome.NOT_FOUND}
    assert api.calls <= 50 + 15  # searching would cost about 6 calls per missing id


def test_a_message_naming_the_id_needs_one_extra_call_per_missing_id() -> None:
    batch = ids(50)
    api = FakeBatchApi({batch[3], batch[40]}, name_it=True)
    outcomes = run_isolation(batch, api)
    assert api.calls == 3  # the failed whole batch, then one retry per named id
    assert outcomes[batch[3]] is Outcome.NOT_FOUND and outcomes[batch[0]] is Outcome.OK


def test_named_id_must_be_a_batch_member() -> None:
    assert named_missing_id("not found: key-a", ["key-a", "key-b"]) == "key-a"
    assert named_missing_id("not found: key-abc.", ["key-ab", "key-abc"]) == "key-abc"
    assert named_missing_id("not found: key-zzz", ["key-a"]) is None
    assert named_missing_id(None, ["key-a"]) is None
