"""The emulated accounts' contents: which keys and secrets exist where, and their tags.

Resources are grouped in :class:`ResourceSet` s, one per (provider, location, resource type);
a location is an Alibaba region or a Huawei project id. A set holds ``generated`` resources
named by the deterministic functions of :mod:`emulator.ids` (no id table: a million keys
cost one 4-byte tag-set number each) plus any number of explicitly named ones.

JSON inventory file (also what ``GET /_emulator/state`` answers inside ``"resources"``)::

    {
      "generate": [{"provider": "aliyun", "location": "cn-hangzhou", "type": "key",
                    "count": 10000, "tags": {"env": "old"}}],
      "resources": {
        "aliyun": {"cn-hangzhou": {"key": {"key-hzz62f1cb66fa42qo1234": {"env": "prod"}},
                                   "secret": ["db-password", "api-token"]}},
        "huawei": {"0123456789abcdef0123456789abcdef": {"key": ["0d0466b0-e727-4d9c-..."]}}
      }
    }

At the type level a list names untagged resources and an object maps ids to their tags.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.ids import (
    SCHEMES,
    aliyun_key_id,
    aliyun_secret_name,
    huawei_key_id,
    resource_id,
)
from emulator.tagpool import EMPTY, TagItems, TagPool
from providers.catalog import PROVIDERS
from providers.rules import ProviderRules

__all__ = [
    "GenerateSpec",
    "Inventory",
    "InventoryError",
    "ResourceSet",
    "aliyun_key_id",
    "aliyun_secret_name",
    "huawei_key_id",
    "resource_id",
]

# Tag-set number of a deleted resource (the array's largest value, never a real set).
DELETED = 0xFFFFFFFF


class InventoryError(ValueError):
    """An inventory that names an unknown provider, location, type or a malformed id."""


@dataclass(frozen=True, slots=True)
class GenerateSpec:
    provider: str
    location: str
    resource_type: str
    count: int
    tags: Mapping[str, str] | None = None


def rules_of(provider: str) -> ProviderRules:
    try:
        return PROVIDERS[provider]
    except KeyError:
        raise InventoryError(
            f"unknown provider {provider!r}; use one of: {', '.join(sorted(PROVIDERS))}"
        ) from None


def check_location(provider: str, location: str, resource_type: str) -> ProviderRules:
    """Refuse what the provider could not hold: an unknown region, a malformed project id,
    a resource type it does not tag (rules in providers/*/rules.py)."""
    rules = rules_of(provider)
    problems = rules.check_resource_type(resource_type)
    if provider == "aliyun":
        problems += rules.check_region(location)
    else:
        problems += rules.check_project(location)
    if problems:
        raise InventoryError(problems[0].message)
    return rules


class ResourceSet:
    """The resources of one (provider, location, resource type) and their tags."""

    def __init__(
        self,
        provider: str,
        location: str,
        resource_type: str,
        pool: TagPool,
        generated: int = 0,
        initial_tags: int = EMPTY,
    ) -> None:
        self.rules = check_location(provider, location, resource_type)
        self.provider = provider
        self.location = location
        self.resource_type = resource_type
        self._pool = pool
        self._scheme = SCHEMES.get((provider, resource_type))
        if generated and self._scheme is None:
            raise InventoryError(f"cannot generate {provider} {resource_type} ids")
        self._id_tag = self._scheme.tag(location) if self._scheme else None
        self._generated = generated
        self._extra_ids: list[str] = []
        self._extra_index: dict[str, int] = {}
        # One tag-set number per resource slot (generated first, then explicit ones).
        self._tags = array("I", [initial_tags]) * generated
        self._deleted = 0
        self._live: array[int] | None = None  # live slots, cached while some are deleted

    # --- membership ------------------------------------------------------------------------

    def __len__(self) -> int:
        """Resources that exist (deleted ones excluded)."""
        return len(self._tags) - self._deleted

    @property
    def generated(self) -> int:
        return self._generated

    def _slot_of(self, rid: str) -> int | None:
        if self._scheme is not None and self._generated:
            n = self._scheme.parse(self.location, rid, self._id_tag)
            if n is not None and n < self._generated:
                return n
        return self._extra_index.get(rid)

    def index_of(self, rid: str) -> int | None:
        """The slot of an existing resource, or None if there is no such resource."""
        slot = self._slot_of(rid)
        if slot is None or self._tags[slot] == DELETED:
            return None
        return slot

    def __contains__(self, rid: object) -> bool:
        return isinstance(rid, str) and self.index_of(rid) is not None

    def id_at(self, slot: int) -> str:
        if slot < self._generated:
            assert self._scheme is not None
            return self._scheme.make(self.location, slot, self._id_tag)
        return self._extra_ids[slot - self._generated]

    def live_slots(self, start: int = 0, stop: int | None = None) -> Sequence[int]:
        """Slots of existing resources, in listing order, positions ``start:stop``."""
        if not self._deleted:
            end = len(self._tags) if stop is None else min(stop, len(self._tags))
            return range(start, max(start, end))
        if self._live is None:
            self._live = array("I", (i for i, t in enumerate(self._tags) if t != DELETED))
        return self._live[start:stop]

    # --- tags ------------------------------------------------------------------------------

    def tag_items(self, slot: int) -> TagItems:
        return self._pool.items(self._tags[slot])

    def tags(self, slot: int) -> dict[str, str]:
        return self._pool.as_dict(self._tags[slot])

    def tag_set(self, slot: int) -> int:
        return self._tags[slot]

    def set_tag_set(self, slot: int, tag_set: int) -> None:
        self._tags[slot] = tag_set

    def set_tags(self, slot: int, tags: Mapping[str, str]) -> None:
        self._tags[slot] = self._pool.intern(tags)

    def add_tags(self, slot: int, tags: TagItems) -> None:
        self._tags[slot] = self._pool.merged(self._tags[slot], tags)

    def remove_tags(self, slot: int, keys: frozenset[str]) -> None:
        self._tags[slot] = self._pool.without(self._tags[slot], keys)

    def tagged_slots(self) -> Iterator[int]:
        """Slots of existing resources that have at least one tag."""
        for slot, tag_set in enumerate(self._tags):
            if tag_set != EMPTY and tag_set != DELETED:
                yield slot

    # --- resources come and go (drift) -----------------------------------------------------

    def add(self, rid: str, tags: Mapping[str, str] | None = None) -> int:
        """Create a resource (or revive a deleted one); its slot. Existing ones are kept."""
        problems = self.rules.check_resource_id(self.resource_type, rid)
        if problems:
            raise InventoryError(problems[0].message)
        tag_set = self._pool.intern(tags) if tags else EMPTY
        slot = self._slot_of(rid)
        if slot is not None:
            if self._tags[slot] == DELETED:
                self._tags[slot] = tag_set
                self._deleted -= 1
                self._live = None
            elif tags:
                self._tags[slot] = tag_set
            return slot
        slot = len(self._tags)
        self._extra_index[rid] = slot
        self._extra_ids.append(rid)
        self._tags.append(tag_set)
        self._live = None
        return slot

    def delete(self, slot: int) -> None:
        if self._tags[slot] != DELETED:
            self._tags[slot] = DELETED
            self._deleted += 1
            self._live = None

    def summary(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "location": self.location,
            "type": self.resource_type,
            "count": len(self),
            "generated": self._generated,
            "explicit": len(self._extra_ids),
            "deleted": self._deleted,
        }


class Inventory:
    """Every resource set, by (provider, location, resource type)."""

    def __init__(self) -> None:
        self.pool = TagPool()
        self._sets: dict[tuple[str, str, str], ResourceSet] = {}

    @classmethod
    def generated(cls, *specs: GenerateSpec) -> Inventory:
        inventory = cls()
        for spec in specs:
            inventory.generate(
                spec.provider, spec.location, spec.resource_type, spec.count, spec.tags
            )
        return inventory

    def generate(
        self,
        provider: str,
        location: str,
        resource_type: str,
        count: int,
        tags: Mapping[str, str] | None = None,
    ) -> ResourceSet:
        """``count`` resources named by :mod:`emulator.ids`, optionally all with ``tags``."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise InventoryError(f"count must be a whole number >= 0, not {count!r}")
        key = (provider, location, resource_type)
        if key in self._sets:
            raise InventoryError(
                f"{provider} {location} {resource_type}: resources are already defined there; "
                "generate each location once, before adding named resources"
            )
        initial = self.pool.intern(tags) if tags else EMPTY
        made = ResourceSet(provider, location, resource_type, self.pool, count, initial)
        self._sets[key] = made
        return made

    def ensure(self, provider: str, location: str, resource_type: str) -> ResourceSet:
        """The set for this location, created empty if absent."""
        key = (provider, location, resource_type)
        found = self._sets.get(key)
        if found is None:
            found = ResourceSet(provider, location, resource_type, self.pool)
            self._sets[key] = found
        return found

    def add(
        self,
        provider: str,
        location: str,
        resource_type: str,
        resources: Iterable[str] | Mapping[str, Mapping[str, str]],
    ) -> ResourceSet:
        """Named resources: a list of ids, or ids mapped to their tags."""
        target = self.ensure(provider, location, resource_type)
        if isinstance(resources, Mapping):
            for rid, tags in resources.items():
                target.add(rid, tags)
        else:
            for rid in resources:
                target.add(rid)
        return target

    def get(self, provider: str, location: str, resource_type: str) -> ResourceSet | None:
        return self._sets.get((provider, location, resource_type))

    def sets(
        self,
        provider: str | None = None,
        location: str | None = None,
        resource_type: str | None = None,
    ) -> list[ResourceSet]:
        return [
            s
            for (p, loc, t), s in self._sets.items()
            if (provider is None or p == provider)
            and (location is None or loc == location)
            and (resource_type is None or t == resource_type)
        ]

    def locations(self, provider: str) -> list[str]:
        return sorted({loc for (p, loc, _t) in self._sets if p == provider})

    def summary(self) -> list[dict[str, Any]]:
        return [s.summary() for s in self._sets.values()]

    # --- JSON ------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Inventory:
        """An inventory from the JSON shape in this module's docstring."""
        if not isinstance(data, Mapping):
            raise InventoryError("an inventory must be a JSON object")
        unknown = set(data) - {"generate", "resources"}
        if unknown:
            raise InventoryError(
                f"unknown inventory field(s) {', '.join(sorted(unknown))}; use generate, resources"
            )
        inventory = cls()
        generate = data.get("generate", [])
        if not isinstance(generate, list):
            raise InventoryError("'generate' must be a list")
        for item in generate:
            inventory.generate(*_generate_entry(item))
        resources = data.get("resources", {})
        for provider, locations in _mapping(resources, "resources").items():
            for location, types in _mapping(locations, f"resources.{provider}").items():
                for resource_type, entries in _mapping(types, f"{provider}.{location}").items():
                    where = f"{provider}.{location}.{resource_type}"
                    if isinstance(entries, list):
                        if not all(isinstance(e, str) for e in entries):
                            raise InventoryError(f"{where}: ids must be strings")
                        inventory.add(provider, location, resource_type, entries)
                    else:
                        tagged = {
                            rid: _tags(tags, f"{where}.{rid}")
                            for rid, tags in _mapping(entries, where).items()
                        }
                        inventory.add(provider, location, resource_type, tagged)
        return inventory

    @classmethod
    def load(cls, path: Path) -> Inventory:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InventoryError(f"cannot read inventory {path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InventoryError(f"inventory {path} is not valid JSON: {exc}") from None
        return cls.from_json(data)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InventoryError(f"{where} must be a JSON object")
    return value


def _tags(value: Any, where: str) -> dict[str, str]:
    tags = _mapping(value, where)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise InventoryError(f"{where}: tag keys and values must be strings")
    return dict(tags)


def _generate_entry(item: Any) -> tuple[str, str, str, int, dict[str, str] | None]:
    entry = _mapping(item, "generate entry")
    missing = {"provider", "location", "type", "count"} - set(entry)
    if missing:
        raise InventoryError(f"generate entry lacks {', '.join(sorted(missing))}")
    tags = _tags(entry["tags"], "generate entry tags") if "tags" in entry else None
    fields = (entry["provider"], entry["location"], entry["type"])
    if not all(isinstance(f, str) for f in fields):
        raise InventoryError("generate entry: provider, location and type must be strings")
    return (str(fields[0]), str(fields[1]), str(fields[2]), entry["count"], tags)
