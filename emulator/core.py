"""One running emulator's state: configuration, inventory, counters, buckets, nonces.

The provider handlers and the inspection API act on the same :class:`Emulator`; tests may
call its methods directly (from the event loop's thread).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emulator.config import EmulatorConfig
from emulator.faults import Chaos
from emulator.gate import Gate
from emulator.inventory import Inventory, ResourceSet
from emulator.nonces import NonceCache
from emulator.stats import Stats
from emulator.throttle import Throttle


class UnknownResourceError(LookupError):
    """The resource named in an inspection call does not exist."""


@dataclass
class Emulator:
    """Everything one running emulator owns."""

    config: EmulatorConfig
    inventory: Inventory
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.throttle = Throttle(self.config)
        self.nonces = NonceCache(self.config.nonce_cache_size)
        self.chaos = Chaos(self.config)
        self.gate = Gate(self.config, self.stats, self.throttle, self.chaos)

    # --- looking at the tags ---------------------------------------------------------------

    def state(
        self,
        provider: str | None = None,
        location: str | None = None,
        resource_type: str | None = None,
        *,
        ids: Iterable[str] = (),
        tagged_only: bool = False,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """``{"resources": {provider: {location: {type: {id: {key: value}}}}}, "count": n,
        "truncated": bool}`` for the matching sets (every matching set appears, maybe empty)."""
        wanted = list(ids)
        resources: dict[str, dict[str, dict[str, dict[str, dict[str, str]]]]] = {}
        count = 0
        truncated = False
        for found in self.inventory.sets(provider, location, resource_type):
            out = resources.setdefault(found.provider, {}).setdefault(found.location, {})
            table = out.setdefault(found.resource_type, {})
            for slot in _slots(found, wanted, tagged_only):
                if limit is not None and count >= limit:
                    truncated = True
                    break
                table[found.id_at(slot)] = found.tags(slot)
                count += 1
        return {"resources": resources, "count": count, "truncated": truncated}

    def tags_of(
        self, provider: str, location: str, resource_type: str, resource_id: str
    ) -> dict[str, str] | None:
        """One resource's tags, or None if it does not exist."""
        found = self.inventory.get(provider, location, resource_type)
        slot = found.index_of(resource_id) if found is not None else None
        return found.tags(slot) if found is not None and slot is not None else None

    # --- drift: changing things behind the client's back ------------------------------------

    def edit_tags(
        self,
        provider: str,
        location: str,
        resource_type: str,
        resource_id: str,
        *,
        set_tags: Mapping[str, str] | None = None,
        remove: Iterable[str] = (),
        replace: bool = False,
    ) -> dict[str, str]:
        """Change a resource's tags directly (no rules checked): ``replace`` its whole set
        with ``set_tags``, or remove ``remove`` then add/overwrite ``set_tags``."""
        found, slot = self._locate(provider, location, resource_type, resource_id)
        if replace:
            found.set_tags(slot, dict(set_tags or {}))
        else:
            keys = frozenset(remove)
            if keys:
                found.remove_tags(slot, keys)
            if set_tags:
                found.add_tags(slot, tuple(sorted(set_tags.items())))
        return found.tags(slot)

    def add_resources(
        self,
        provider: str,
        location: str,
        resource_type: str,
        resources: Iterable[str] | Mapping[str, Mapping[str, str]],
    ) -> int:
        """Create resources (ids, or ids mapped to tags); how many were named."""
        names = dict(resources) if isinstance(resources, Mapping) else list(resources)
        self.inventory.add(provider, location, resource_type, names)
        return len(names)

    def delete_resources(
        self, provider: str, location: str, resource_type: str, ids: Iterable[str]
    ) -> int:
        """Delete resources (later calls get "not found"); how many existed."""
        found = self.inventory.get(provider, location, resource_type)
        deleted = 0
        for rid in ids:
            slot = found.index_of(rid) if found is not None else None
            if found is not None and slot is not None:
                found.delete(slot)
                deleted += 1
        return deleted

    def _locate(
        self, provider: str, location: str, resource_type: str, resource_id: str
    ) -> tuple[ResourceSet, int]:
        found = self.inventory.get(provider, location, resource_type)
        slot = found.index_of(resource_id) if found is not None else None
        if found is None or slot is None:
            raise UnknownResourceError(
                f"no {provider} {resource_type} {resource_id!r} in {location}"
            )
        return found, slot


def _slots(found: ResourceSet, ids: list[str], tagged_only: bool) -> Iterable[int]:
    if ids:
        slots: Iterable[int] = [s for s in (found.index_of(i) for i in ids) if s is not None]
        if tagged_only:
            slots = [s for s in slots if found.tag_items(s)]
        return slots
    return found.tagged_slots() if tagged_only else found.live_slots()
