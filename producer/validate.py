"""Row validation against the provider rules (pure; no I/O).

Targets and tag sets repeat across millions of rows, so each distinct one is checked once
and remembered; only the resource id is checked per row.
"""

from __future__ import annotations

from functools import lru_cache

from producer.campaign import DEFAULT_PROFILE, IdBlock, Row, Target, TargetFields
from producer.inputs import Problem
from providers.catalog import PROVIDERS
from providers.rules import Tag

DEFAULT_RESOURCE_TYPE = "key"


@lru_cache(maxsize=4096)
def resolve_target(fields: TargetFields) -> tuple[Target | None, tuple[tuple[str, str], ...]]:
    """The target these fields name, or None, and the (message, code) of every problem."""
    problems: list[tuple[str, str]] = []
    if not fields.provider:
        return None, (("no provider: give --provider or a provider column", "MissingProvider"),)
    rules = PROVIDERS.get(fields.provider)
    if rules is None:
        known = ", ".join(sorted(PROVIDERS))
        return None, ((f"unknown provider {fields.provider!r}; use one of: {known}",
                       "UnknownProvider"),)  # fmt: skip
    resource_type = fields.resource_type or DEFAULT_RESOURCE_TYPE
    problems += [(v.message, v.code) for v in rules.check_resource_type(resource_type)]
    if not fields.region:
        problems.append(("no region: give --region or a region column", "MissingRegion"))
    else:
        problems += [(v.message, v.code) for v in rules.check_region(fields.region)]
    if rules.project_pattern is not None:
        if not fields.project:
            problems.append(
                (f"no project: {rules.display_name} needs --project or a project column",
                 "MissingProject")
            )  # fmt: skip
        else:
            problems += [(v.message, v.code) for v in rules.check_project(fields.project)]
    elif fields.project:
        problems.append(
            (f"{rules.display_name} has no projects; remove project {fields.project!r}",
             "UnexpectedProject")
        )  # fmt: skip
    if problems:
        return None, tuple(problems)
    assert fields.region is not None
    target = Target(
        fields.provider, fields.profile or DEFAULT_PROFILE, fields.region, fields.project,
        resource_type,
    )  # fmt: skip
    return target, ()


@lru_cache(maxsize=4096)
def check_tag_set(provider: str, tags: tuple[Tag, ...]) -> tuple[tuple[str, str], ...]:
    if not tags:
        return (("no tags to add: give --tag KEY=VALUE or tag columns", "MissingTags"),)
    return tuple((v.message, v.code) for v in PROVIDERS[provider].check_tags(tags))


class RowChecker:
    """check_row, remembering the last target and tag set: rows of an id list share the
    very same objects, so the per-row cost is the id check alone."""

    def __init__(self) -> None:
        self._fields: TargetFields | None = None
        self._target: tuple[Target | None, tuple[tuple[str, str], ...]] = (None, ())
        self._tags: tuple[Tag, ...] | None = None
        self._provider: str | None = None
        self._tag_problems: tuple[tuple[str, str], ...] = ()

    def check(self, row: Row) -> tuple[Target | None, list[Problem]]:
        if row.fields is not self._fields:
            self._fields, self._target = row.fields, resolve_target(row.fields)
        target, target_problems = self._target
        if target is not None and row.resource_id and not target_problems:
            if row.tags is not self._tags or target.provider != self._provider:
                self._tags, self._provider = row.tags, target.provider
                self._tag_problems = check_tag_set(target.provider, row.tags)
            id_ok = PROVIDERS[target.provider].resource_id_patterns[target.resource_type]
            if not self._tag_problems and id_ok.fullmatch(row.resource_id):
                return target, []
        return check_row(row)


def check_block(block: IdBlock) -> tuple[Target | None, list[str], list[int], list[Problem]]:
    """The block's target, its valid ids and their lines, and every problem."""
    target, target_problems = resolve_target(block.fields)
    if target is None:
        first = f"{block.source}:{block.lines[0]}"
        return None, [], [], [Problem(first, message, code) for message, code in target_problems]
    problems = [
        Problem(f"{block.source}:{block.lines[0]}", message, code)
        for message, code in check_tag_set(target.provider, block.tags)
    ]
    pattern = PROVIDERS[target.provider].resource_id_patterns[target.resource_type]
    match = pattern.fullmatch
    if all(match(rid) for rid in block.ids):
        return target, block.ids, block.lines, problems
    ids: list[str] = []
    lines: list[int] = []
    rules = PROVIDERS[target.provider]
    for rid, line in zip(block.ids, block.lines, strict=True):
        if match(rid):
            ids.append(rid)
            lines.append(line)
        else:
            problems += [
                Problem(f"{block.source}:{line}", v.message, v.code)
                for v in rules.check_resource_id(target.resource_type, rid)
            ]
    return target, ids, lines, problems


def check_row(row: Row) -> tuple[Target | None, list[Problem]]:
    target, target_problems = resolve_target(row.fields)
    problems = [Problem(row.where, message, code) for message, code in target_problems]
    if not row.resource_id:
        problems.append(Problem(row.where, "empty resource id", "MissingResourceId"))
    if target is None:
        return None, problems
    rules = PROVIDERS[target.provider]
    if row.resource_id:
        problems += [
            Problem(row.where, v.message, v.code)
            for v in rules.check_resource_id(target.resource_type, row.resource_id)
        ]
    problems += [Problem(row.where, m, c) for m, c in check_tag_set(target.provider, row.tags)]
    return (None if problems else target), problems
