"""``/_emulator/``: look at and steer a running emulator. Not rate limited, not counted.

- ``GET  /_emulator/health``       ``{"ok": true}``
- ``GET  /_emulator/inventory``    ``{"sets": [{"provider", "location", "type", "count",
  "generated", "explicit", "deleted"}]}``
- ``GET  /_emulator/state``        tags per resource (see :meth:`Emulator.state`); query
  ``provider``, ``location``, ``type``, ``id`` (repeatable), ``tagged=true``, ``limit=N``
- ``GET  /_emulator/stats``        call counters (see :mod:`emulator.stats`)
- ``POST /_emulator/reset-stats``  zero the counters; answers the counters as they were
- ``GET  /_emulator/config``       the configuration, secrets left out
- ``PUT  /_emulator/config``       change fields at run time (``EmulatorConfig.apply``), e.g.
  ``{"rate_limits": {"aliyun": 5}, "faults": {"503": 0.1}, "latency_ms": 20}``
- ``POST /_emulator/tags``         drift one resource's tags: ``{"provider", "location", "type",
  "id", "set": {k: v}, "remove": [k], "replace": false}``; answers ``{"id", "tags"}``
- ``POST /_emulator/resources``    create / delete resources: ``{"provider", "location",
  "type", "add": [id] or {id: {k: v}}, "delete": [id]}``; answers ``{"added", "deleted"}``

Errors: 400 / 404 with ``{"error": "<what is wrong>"}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from emulator.config import ConfigError
from emulator.core import Emulator, UnknownResourceError
from emulator.inventory import InventoryError

PREFIX = "/_emulator"

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


async def _object(request: web.Request) -> Mapping[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise ValueError("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def _where(data: Mapping[str, Any]) -> tuple[str, str, str]:
    try:
        provider, location, resource_type = data["provider"], data["location"], data["type"]
    except KeyError as missing:
        raise ValueError(f"the body lacks {missing.args[0]!r}") from None
    if not all(isinstance(v, str) for v in (provider, location, resource_type)):
        raise ValueError("provider, location and type must be strings")
    return provider, location, resource_type


def _guarded(handler: Route) -> Route:
    """Turn a caller's mistake into a one-line 400/404 instead of a 500."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except UnknownResourceError as exc:
            return _error(404, str(exc))
        except (ValueError, ConfigError, InventoryError, TypeError) as exc:
            return _error(400, str(exc))

    return guarded


def add_inspection_routes(app: web.Application, emulator: Emulator) -> None:
    async def health(request: web.Request) -> web.StreamResponse:
        return _json({"ok": True})

    async def inventory(request: web.Request) -> web.StreamResponse:
        return _json({"sets": emulator.inventory.summary()})

    async def state(request: web.Request) -> web.StreamResponse:
        query = request.query
        limit = query.get("limit")
        if limit is not None and not (limit.isascii() and limit.isdigit()):
            raise ValueError("limit must be a whole number")
        return _json(
            emulator.state(
                query.get("provider"),
                query.get("location"),
                query.get("type"),
                ids=query.getall("id", []),
                tagged_only=query.get("tagged", "").lower() in ("1", "true", "yes"),
                limit=int(limit) if limit is not None else None,
            )
        )

    async def stats(request: web.Request) -> web.StreamResponse:
        return _json(emulator.stats.snapshot())

    async def reset_stats(request: web.Request) -> web.StreamResponse:
        before = emulator.stats.snapshot()
        emulator.stats.reset()
        return _json(before)

    async def get_config(request: web.Request) -> web.StreamResponse:
        return _json(emulator.config.public_view())

    async def put_config(request: web.Request) -> web.StreamResponse:
        emulator.config.apply(await _object(request))
        return _json(emulator.config.public_view())

    async def tags(request: web.Request) -> web.StreamResponse:
        data = await _object(request)
        provider, location, resource_type = _where(data)
        rid = data.get("id")
        if not isinstance(rid, str):
            raise ValueError("the body lacks the resource 'id'")
        set_tags = data.get("set") or {}
        remove = data.get("remove") or []
        if not isinstance(set_tags, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in set_tags.items()
        ):
            raise ValueError("'set' must map tag keys to string values")
        if not isinstance(remove, list) or not all(isinstance(k, str) for k in remove):
            raise ValueError("'remove' must be a list of tag keys")
        result = emulator.edit_tags(
            provider,
            location,
            resource_type,
            rid,
            set_tags=set_tags,
            remove=remove,
            replace=bool(data.get("replace", False)),
        )
        return _json({"id": rid, "tags": result})

    async def resources(request: web.Request) -> web.StreamResponse:
        data = await _object(request)
        provider, location, resource_type = _where(data)
        add = data.get("add") or []
        delete = data.get("delete") or []
        if not isinstance(add, list | dict) or not isinstance(delete, list):
            raise ValueError("'add' must be a list or an object, 'delete' a list")
        added = emulator.add_resources(provider, location, resource_type, add) if add else 0
        deleted = emulator.delete_resources(provider, location, resource_type, delete)
        return _json({"added": added, "deleted": deleted})

    router = app.router
    router.add_get(f"{PREFIX}/health", _guarded(health))
    router.add_get(f"{PREFIX}/inventory", _guarded(inventory))
    router.add_get(f"{PREFIX}/state", _guarded(state))
    router.add_get(f"{PREFIX}/stats", _guarded(stats))
    router.add_post(f"{PREFIX}/reset-stats", _guarded(reset_stats))
    router.add_get(f"{PREFIX}/config", _guarded(get_config))
    router.add_put(f"{PREFIX}/config", _guarded(put_config))
    router.add_post(f"{PREFIX}/tags", _guarded(tags))
    router.add_post(f"{PREFIX}/resources", _guarded(resources))
