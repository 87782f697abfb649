"""Declarative provider rules, and the one validator that reads them.

Each provider module (``providers.aliyun.rules``, ``providers.huawei.rules``) describes its
limits as data (a :class:`ProviderRules`). The producer validates campaigns with it before
anything is enqueued; the worker batches with it; the emulator answers with it. A limit is
therefore written down once, next to the source it comes from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Tag = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: the provider's own error code and a sentence an operator can act on."""

    code: str
    subject: str
    value: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class TagRules:
    """What one provider accepts as a tag key and value, and the codes it answers with."""

    key_max_len: int
    value_max_len: int
    # Exactly one of these two describes the characters: an allow-list or a deny-list.
    allowed_chars: re.Pattern[str] | None
    allowed_chars_text: str
    forbidden_chars: frozenset[str] = frozenset()
    forbidden_chars_text: str = ""
    reserved_key_prefixes: tuple[str, ...] = ()
    key_code: str = "InvalidParameter.TagKey"
    value_code: str = "InvalidParameter.TagValue"
    key_length_code: str = "InvalidParameter.TagKey"
    value_length_code: str = "InvalidParameter.TagValue"
    duplicate_key_code: str = "Duplicate.TagKey"
    too_many_tags_code: str = "InvalidParameter"


@dataclass(frozen=True, slots=True)
class ProviderRules:
    """Limits of one provider's tag API, as published (sources cited where each is built)."""

    name: str
    display_name: str
    tags: TagRules
    resource_id_patterns: dict[str, re.Pattern[str]]
    resource_id_shapes: dict[str, str]
    regions: frozenset[str]
    max_resources_per_call: int
    max_tags_per_call: int
    max_tags_per_resource: int | None
    default_rate_per_second: float
    not_found_code: str
    project_pattern: re.Pattern[str] | None = None

    @property
    def resource_types(self) -> tuple[str, ...]:
        return tuple(self.resource_id_patterns)

    # --- tags -----------------------------------------------------------------------------

    def check_tag_key(self, key: str) -> list[Violation]:
        rules = self.tags
        found: list[Violation] = []
        if not key:
            return [Violation(rules.key_length_code, "tag key", key, "tag key is empty")]
        if len(key) > rules.key_max_len:
            found.append(
                Violation(
                    rules.key_length_code,
                    "tag key",
                    key,
                    f"tag key {key!r} is {len(key)} characters long; "
                    f"{self.display_name} allows at most {rules.key_max_len}",
                )
            )
        bad = _bad_chars(key, rules)
        if bad:
            found.append(
                Violation(
                    rules.key_code,
                    "tag key",
                    key,
                    f"tag key {key!r} contains {_show_chars(bad)}; "
                    f"{self.display_name} allows {_charset_text(rules)}",
                )
            )
        lowered = key.lower()
        for prefix in rules.reserved_key_prefixes:
            if lowered.startswith(prefix):
                found.append(
                    Violation(
                        rules.key_code,
                        "tag key",
                        key,
                        f"tag key {key!r} starts with the reserved prefix {prefix!r}",
                    )
                )
        return found

    def check_tag_value(self, key: str, value: str) -> list[Violation]:
        rules = self.tags
        found: list[Violation] = []
        if len(value) > rules.value_max_len:
            found.append(
                Violation(
                    rules.value_length_code,
                    "tag value",
                    value,
                    f"value of tag {key!r} is {len(value)} characters long; "
                    f"{self.display_name} allows at most {rules.value_max_len}",
                )
            )
        bad = _bad_chars(value, rules)
        if bad:
            found.append(
                Violation(
                    rules.value_code,
                    "tag value",
                    value,
                    f"value {value!r} of tag {key!r} contains {_show_chars(bad)}; "
                    f"{self.display_name} allows {_charset_text(rules)}",
                )
            )
        return found

    def check_tags(self, tags: Sequence[Tag]) -> list[Violation]:
        """Every rule for one resource's tag set: each key and value, duplicates, the count."""
        found: list[Violation] = []
        seen: set[str] = set()
        for key, value in tags:
            found.extend(self.check_tag_key(key))
            found.extend(self.check_tag_value(key, value))
            if key in seen:
                found.append(
                    Violation(
                        self.tags.duplicate_key_code,
                        "tag key",
                        key,
                        f"tag key {key!r} is given more than once",
                    )
                )
            seen.add(key)
        if self.max_tags_per_resource is not None and len(seen) > self.max_tags_per_resource:
            found.append(
                Violation(
                    self.tags.too_many_tags_code,
                    "tags",
                    str(len(seen)),
                    f"{len(seen)} tags for one resource; {self.display_name} allows at most "
                    f"{self.max_tags_per_resource} tags per resource",
                )
            )
        return found

    # --- resources and locations ----------------------------------------------------------

    def check_resource_type(self, resource_type: str) -> list[Violation]:
        if resource_type in self.resource_id_patterns:
            return []
        allowed = ", ".join(sorted(self.resource_id_patterns))
        return [
            Violation(
                "InvalidParameter.ResourceType",
                "resource type",
                resource_type,
                f"resource type {resource_type!r} is not supported for {self.display_name}; "
                f"use one of: {allowed}",
            )
        ]

    def check_resource_id(self, resource_type: str, resource_id: str) -> list[Violation]:
        pattern = self.resource_id_patterns.get(resource_type)
        if pattern is None:
            return self.check_resource_type(resource_type)
        if pattern.fullmatch(resource_id):
            return []
        return [
            Violation(
                "InvalidParameter.ResourceId",
                "resource id",
                resource_id,
                f"{resource_id!r} is not a {self.display_name} {resource_type} id "
                f"(expected {self.resource_id_shapes[resource_type]})",
            )
        ]

    def check_region(self, region: str) -> list[Violation]:
        if region in self.regions:
            return []
        return [
            Violation(
                "InvalidParameter.RegionId",
                "region",
                region,
                f"unknown {self.display_name} region {region!r}",
            )
        ]

    def check_project(self, project_id: str) -> list[Violation]:
        if self.project_pattern is None or self.project_pattern.fullmatch(project_id):
            return []
        return [
            Violation(
                "InvalidParameter.ProjectId",
                "project id",
                project_id,
                f"{project_id!r} is not a {self.display_name} project id "
                "(expected 32 hexadecimal characters)",
            )
        ]


def _bad_chars(text: str, rules: TagRules) -> list[str]:
    if rules.allowed_chars is not None:
        return _unique(ch for ch in text if not rules.allowed_chars.fullmatch(ch))
    return _unique(ch for ch in text if ch in rules.forbidden_chars)


def _charset_text(rules: TagRules) -> str:
    if rules.allowed_chars is not None:
        return rules.allowed_chars_text
    return f"any character except {rules.forbidden_chars_text}"


def _unique(chars: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(chars))


def _show_chars(chars: list[str]) -> str:
    shown = ", ".join(repr(ch) for ch in chars[:5])
    more = f" and {len(chars) - 5} more" if len(chars) > 5 else ""
    noun = "character" if len(chars) == 1 else "characters"
    return f"the {noun} {shown}{more}"
