"""What a campaign is made of: targets (where to tag) and rows (what to tag with what)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from providers.rules import Tag

DEFAULT_PROFILE = "default"


@dataclass(frozen=True, slots=True, order=True)
class Target:
    """One provider account in one region (Alibaba) or project (Huawei), one resource type.

    Every worker call for a target shares one rate limit; every target has its own RQ queue
    per (provider, location) so a slow region never holds up another.
    """

    provider: str
    profile: str
    region: str
    project: str | None
    resource_type: str

    @property
    def location(self) -> str:
        """What the provider's quota is counted by: the region, or the Huawei project."""
        return self.project or self.region

    @property
    def queue_name(self) -> str:
        return f"bulktag.{self.provider}.{self.location}"

    @property
    def label(self) -> str:
        where = f"{self.region}/{self.project}" if self.project else self.region
        return f"{self.provider}:{where}:{self.resource_type} (profile {self.profile})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Target:
        return cls(
            provider=data["provider"],
            profile=data["profile"],
            region=data["region"],
            project=data.get("project"),
            resource_type=data["resource_type"],
        )


@dataclass(frozen=True, slots=True)
class TargetFields:
    """Target fields as read from input, any of them possibly missing (filled by defaults)."""

    provider: str | None = None
    profile: str | None = None
    region: str | None = None
    project: str | None = None
    resource_type: str | None = None

    def over(self, defaults: TargetFields) -> TargetFields:
        """These fields, with the blanks taken from ``defaults``."""
        return TargetFields(
            self.provider or defaults.provider,
            self.profile or defaults.profile,
            self.region or defaults.region,
            self.project or defaults.project,
            self.resource_type or defaults.resource_type,
        )


@dataclass(frozen=True, slots=True)
class Row:
    """One resource to tag, with where it was read (for error messages)."""

    source: str
    line: int
    resource_id: str
    fields: TargetFields
    tags: tuple[Tag, ...]

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass(frozen=True, slots=True)
class IdBlock:
    """Consecutive ids of a plain id list: one target, one tag set, many ids.

    The million-id case is an id list; handling it a block at a time keeps the per-id cost
    to reading the line and matching the id pattern.
    """

    source: str
    fields: TargetFields
    tags: tuple[Tag, ...]
    ids: list[str]
    lines: list[int]
