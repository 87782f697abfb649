"""Validated rows spooled to a temporary SQLite file, deduplicated and grouped.

A million ids do not fit the producer's memory budget as Python objects, and stdin cannot
be read twice; so the first pass writes every valid row to disk, and everything after it
(duplicates, conflicting tags, groups, chunks, the dry-run plan) is a query. Groups are
(target, identical tag set), so that every provider call is filled to its limit (Cloud
Custodian groups by identical tag set before batching for the same reason; peers.md §1).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from producer.campaign import Target
from producer.inputs import Problem
from producer.validate import check_tag_set
from providers.batching import calls_needed
from providers.catalog import PROVIDERS
from providers.rules import Tag

_INSERT_BATCH = 20_000


@dataclass(frozen=True, slots=True)
class Group:
    target: Target
    tags: tuple[Tag, ...]
    size: int
    target_no: int
    tagset_no: int

    @property
    def key(self) -> str:
        """Stable across runs of the same input: names the group's jobs."""
        text = json.dumps([self.target.to_json(), self.tags], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def calls(self) -> int:
        return calls_needed(PROVIDERS[self.target.provider], self.size, len(self.tags))


@dataclass(frozen=True, slots=True)
class TargetPlan:
    target: Target
    resources: int
    groups: int
    calls: int

    def seconds_at(self, rate_per_second: float) -> float:
        return self.calls / rate_per_second if rate_per_second > 0 else 0.0


class Spool:
    """Append rows during validation; then :meth:`finish` and read groups and ids."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="bulktag-spool-", dir=directory)
        self._db = sqlite3.connect(Path(self._tmp.name) / "spool.sqlite3")
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA temp_store = FILE;
            CREATE TABLE rows (
                seq INTEGER PRIMARY KEY, target INTEGER, rid TEXT, tagset INTEGER, src TEXT
            );
            """
        )
        self._targets: dict[Target, int] = {}
        self._tagsets: dict[tuple[Tag, ...], int] = {}
        self._pending: list[tuple[int, str, int, str]] = []
        self._last: tuple[Target | None, tuple[Tag, ...] | None, int, int] = (None, None, 0, 0)
        self.rows = 0
        self.duplicates = 0

    def close(self) -> None:
        self._db.close()
        self._tmp.cleanup()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tagset_no(self, tags: tuple[Tag, ...]) -> int:
        key = tuple(sorted(tags))
        return self._tagsets.setdefault(key, len(self._tagsets))

    def add(self, target: Target, resource_id: str, tags: tuple[Tag, ...], where: str) -> None:
        last_target, last_tags, target_no, tagset_no = self._last
        if target is not last_target or tags is not last_tags:
            target_no = self._targets.setdefault(target, len(self._targets))
            tagset_no = self._tagset_no(tags)
            self._last = (target, tags, target_no, tagset_no)
        self._pending.append((target_no, resource_id, tagset_no, where))
        self.rows += 1
        if len(self._pending) >= _INSERT_BATCH:
            self._flush()

    def _flush(self) -> None:
        self._db.executemany(
            "INSERT INTO rows (target, rid, tagset, src) VALUES (?, ?, ?, ?)", self._pending
        )
        self._pending.clear()

    def finish(self) -> list[Problem]:
        """Collapse duplicate ids (merging their tags); report conflicting tag values."""
        self._flush()
        self._db.execute("CREATE INDEX by_resource ON rows (target, rid)")
        tagsets = {no: tags for tags, no in self._tagsets.items()}
        targets = {no: t for t, no in self._targets.items()}
        problems: list[Problem] = []
        dupes = self._db.execute(
            "SELECT target, rid, group_concat(seq), count(*) FROM rows "
            "GROUP BY target, rid HAVING count(*) > 1"
        ).fetchall()
        for target_no, rid, seqs_text, count in dupes:
            seqs = sorted(int(s) for s in seqs_text.split(","))
            self.duplicates += count - 1
            merged, problem = self._merge(rid, seqs, tagsets)
            if problem is not None:
                problems.append(problem)
                continue
            provider = targets[target_no].provider
            first_src = self._src(seqs[0])
            problems += [
                Problem(first_src, f"{rid}: {message}", code)
                for message, code in check_tag_set(provider, merged)
            ]
            self._db.execute(
                "UPDATE rows SET tagset = ? WHERE seq = ?", (self._tagset_no(merged), seqs[0])
            )
            self._db.executemany("DELETE FROM rows WHERE seq = ?", [(s,) for s in seqs[1:]])
        self._db.execute("CREATE INDEX by_group ON rows (target, tagset, seq)")
        return problems

    def _src(self, seq: int) -> str:
        row = self._db.execute("SELECT src FROM rows WHERE seq = ?", (seq,)).fetchone()
        return str(row[0])

    def _merge(
        self, rid: str, seqs: list[int], tagsets: dict[int, tuple[Tag, ...]]
    ) -> tuple[tuple[Tag, ...], Problem | None]:
        merged: dict[str, tuple[str, int]] = {}
        for seq in seqs:
            (tagset_no,) = self._db.execute(
                "SELECT tagset FROM rows WHERE seq = ?", (seq,)
            ).fetchone()
            for key, value in tagsets[tagset_no]:
                if key in merged and merged[key][0] != value:
                    first_value, first_seq = merged[key]
                    return (), Problem(
                        self._src(seq),
                        f"{rid} gets tag {key}={value!r} here but {key}={first_value!r} at "
                        f"{self._src(first_seq)}",
                        "ConflictingTags",
                    )
                merged.setdefault(key, (value, seq))
        return tuple(sorted((k, v) for k, (v, _) in merged.items())), None

    def groups(self) -> list[Group]:
        targets = {no: t for t, no in self._targets.items()}
        tagsets = {no: tags for tags, no in self._tagsets.items()}
        rows = self._db.execute(
            "SELECT target, tagset, count(*) FROM rows GROUP BY target, tagset "
            "ORDER BY target, tagset"
        ).fetchall()
        return [Group(targets[t], tagsets[s], n, t, s) for t, s, n in rows]

    def ids(self, group: Group, chunk_size: int) -> Iterator[list[str]]:
        """The group's ids in input order, ``chunk_size`` at a time."""
        cursor = self._db.execute(
            "SELECT rid FROM rows WHERE target = ? AND tagset = ? ORDER BY seq",
            (group.target_no, group.tagset_no),
        )
        while True:
            rows = cursor.fetchmany(chunk_size)
            if not rows:
                return
            yield [r[0] for r in rows]

    def unique_resources(self) -> int:
        (count,) = self._db.execute("SELECT count(*) FROM rows").fetchone()
        return int(count)


def summarize(groups: list[Group]) -> list[TargetPlan]:
    by_target: dict[Target, list[Group]] = {}
    for group in groups:
        by_target.setdefault(group.target, []).append(group)
    return [
        TargetPlan(
            target,
            sum(g.size for g in members),
            len(members),
            sum(g.calls for g in members),
        )
        for target, members in by_target.items()
    ]
