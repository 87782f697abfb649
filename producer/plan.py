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
_SCANS_BEFORE_INDEX = 8


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


class _SeenBits:
    """A one-hash bitmap over (target, id): "surely new" or "maybe seen before".

    Finding duplicates by sorting a million ids in SQLite costs seconds; this costs a
    fraction of a microsecond per id and 16 MiB. Only the few "maybe" ids (true duplicates
    and about 1 % false alarms per million ids) are checked exactly, in SQL.
    """

    def __init__(self, bits: int = 1 << 27) -> None:
        self._bits = bytearray(bits >> 3)
        self._mask = bits - 1

    def maybe_seen_one(self, target_no: int, rid: str) -> bool:
        h = (hash(rid) ^ (target_no * 0x9E3779B97F4A7C15)) & self._mask
        byte, bit = h >> 3, 1 << (h & 7)
        if self._bits[byte] & bit:
            return True
        self._bits[byte] |= bit
        return False

    def maybe_seen(self, target_no: int, ids: list[str]) -> list[str]:
        bits, mask, salt = self._bits, self._mask, target_no * 0x9E3779B97F4A7C15
        maybe = []
        for rid in ids:
            h = (hash(rid) ^ salt) & mask
            byte, bit = h >> 3, 1 << (h & 7)
            if bits[byte] & bit:
                maybe.append(rid)
            else:
                bits[byte] |= bit
        return maybe


class Spool:
    """Append rows during validation; then :meth:`finish` and read groups and ids."""

    def __init__(self, directory: str | Path | None = None, seen_bits: int = 1 << 27) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="bulktag-spool-", dir=directory)
        self._db = sqlite3.connect(Path(self._tmp.name) / "spool.sqlite3")
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA temp_store = FILE;
            CREATE TABLE rows (
                seq INTEGER PRIMARY KEY, target INTEGER, rid TEXT, tagset INTEGER,
                source INTEGER, line INTEGER
            );
            CREATE TABLE maybe (target INTEGER, rid TEXT);
            """
        )
        self._targets: dict[Target, int] = {}
        self._tagsets: dict[tuple[Tag, ...], int] = {}
        self._sources: dict[str, int] = {}
        self._sizes: dict[tuple[int, int], int] = {}
        self._seen = _SeenBits(seen_bits)
        self._pending: list[tuple[int, str, int, int, int]] = []
        self._maybe: list[tuple[int, str]] = []
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

    def _numbers(self, target: Target, tags: tuple[Tag, ...]) -> tuple[int, int]:
        last_target, last_tags, target_no, tagset_no = self._last
        if target is not last_target or tags is not last_tags:
            target_no = self._targets.setdefault(target, len(self._targets))
            tagset_no = self._tagset_no(tags)
            self._last = (target, tags, target_no, tagset_no)
        return target_no, tagset_no

    def _count(self, target_no: int, tagset_no: int, ids: list[str]) -> None:
        key = (target_no, tagset_no)
        self._sizes[key] = self._sizes.get(key, 0) + len(ids)
        self.rows += len(ids)
        maybe = self._seen.maybe_seen(target_no, ids)
        if maybe:
            self._db.executemany(
                "INSERT INTO maybe (target, rid) VALUES (?, ?)", ((target_no, r) for r in maybe)
            )

    def add(
        self, target: Target, resource_id: str, tags: tuple[Tag, ...], source: str, line: int
    ) -> None:
        target_no, tagset_no = self._numbers(target, tags)
        source_no = self._sources.setdefault(source, len(self._sources))
        self._pending.append((target_no, resource_id, tagset_no, source_no, line))
        key = (target_no, tagset_no)
        self._sizes[key] = self._sizes.get(key, 0) + 1
        self.rows += 1
        if self._seen.maybe_seen_one(target_no, resource_id):
            self._maybe.append((target_no, resource_id))
        if len(self._pending) >= _INSERT_BATCH:
            self._flush()

    def add_block(
        self,
        target: Target,
        tags: tuple[Tag, ...],
        ids: list[str],
        source: str,
        lines: list[int],
    ) -> None:
        self._flush()
        target_no, tagset_no = self._numbers(target, tags)
        source_no = self._sources.setdefault(source, len(self._sources))
        if lines[-1] - lines[0] == len(lines) - 1:
            # Consecutive lines (no blank or comment lines in between): one statement that
            # SQLite expands itself, about twice as fast as executemany.
            self._db.execute(
                "INSERT INTO rows (target, rid, tagset, source, line) "
                "SELECT ?, value, ?, ?, ? + key FROM json_each(?)",
                (target_no, tagset_no, source_no, lines[0], json.dumps(ids)),
            )
        else:
            self._db.executemany(
                "INSERT INTO rows (target, rid, tagset, source, line) VALUES (?, ?, ?, ?, ?)",
                ((target_no, rid, tagset_no, source_no, line)
                 for rid, line in zip(ids, lines, strict=True)),
            )  # fmt: skip
        self._count(target_no, tagset_no, ids)

    def _flush(self) -> None:
        if self._maybe:
            self._db.executemany("INSERT INTO maybe (target, rid) VALUES (?, ?)", self._maybe)
            self._maybe.clear()
        if self._pending:
            self._db.executemany(
                "INSERT INTO rows (target, rid, tagset, source, line) VALUES (?, ?, ?, ?, ?)",
                self._pending,
            )
            self._pending.clear()

    def finish(self) -> list[Problem]:
        """Collapse duplicate ids (merging their tags); report conflicting tag values."""
        self._flush()
        tagsets = {no: tags for tags, no in self._tagsets.items()}
        targets = {no: t for t, no in self._targets.items()}
        problems: list[Problem] = []
        # One scan of the rows, probing the (small) set of ids the bitmap flagged.
        candidates = self._db.execute(
            "SELECT target, rid, seq, tagset FROM rows "
            "WHERE (target, rid) IN (SELECT target, rid FROM maybe) ORDER BY seq"
        ).fetchall()
        occurrences: dict[tuple[int, str], list[tuple[int, int]]] = {}
        for target_no, rid, seq, tagset_no in candidates:
            occurrences.setdefault((target_no, rid), []).append((seq, tagset_no))
        for (target_no, rid), seen in occurrences.items():
            if len(seen) < 2:
                continue  # a false alarm of the bitmap
            self.duplicates += len(seen) - 1
            merged, problem = self._merge(rid, seen, tagsets)
            if problem is not None:
                problems.append(problem)
                continue
            provider = targets[target_no].provider
            problems += [
                Problem(self._src(seen[0][0]), f"{rid}: {message}", code)
                for message, code in check_tag_set(provider, merged)
            ]
            merged_no = self._tagset_no(merged)
            for _, tagset_no in seen:
                self._sizes[(target_no, tagset_no)] -= 1
            self._sizes[(target_no, merged_no)] = self._sizes.get((target_no, merged_no), 0) + 1
            self._db.execute("UPDATE rows SET tagset = ? WHERE seq = ?", (merged_no, seen[0][0]))
            self._db.executemany("DELETE FROM rows WHERE seq = ?", [(s,) for s, _ in seen[1:]])
        self._sizes = {k: n for k, n in self._sizes.items() if n > 0}
        if len(self._sizes) > _SCANS_BEFORE_INDEX:
            # Many groups: an index beats one table scan per group.
            self._db.execute("CREATE INDEX by_group ON rows (target, tagset, seq)")
        return problems

    def _src(self, seq: int) -> str:
        source_no, line = self._db.execute(
            "SELECT source, line FROM rows WHERE seq = ?", (seq,)
        ).fetchone()
        names = {no: name for name, no in self._sources.items()}
        return f"{names[source_no]}:{line}"

    def _merge(
        self, rid: str, seen: list[tuple[int, int]], tagsets: dict[int, tuple[Tag, ...]]
    ) -> tuple[tuple[Tag, ...], Problem | None]:
        merged: dict[str, tuple[str, int]] = {}
        for seq, tagset_no in seen:
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
        return [Group(targets[t], tagsets[s], n, t, s) for (t, s), n in sorted(self._sizes.items())]

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
        return sum(self._sizes.values())


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
