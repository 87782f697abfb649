"""The dashboard's aiohttp application: a static page, a JSON API, /metrics and /healthz.

Reads are open to whoever reaches the port (it binds loopback unless told otherwise). Actions
(pause, resume, cancel, retry failed) are POSTs that need ``Authorization: Bearer <token>``
with the token from ``BULKTAG_DASHBOARD_TOKEN``; without one configured the dashboard is
read-only. A bearer header, unlike a cookie, is never sent by a browser on its own, so another
site cannot make a visitor's browser act (no CSRF), and nothing answers CORS preflights.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import redis
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from bulktag import campaigns, control, store
from bulktag.errors import UserError
from dashboard import queries
from dashboard.metrics import registry_for
from worker.outcomes import FAILED, FINAL_STATUSES

log = logging.getLogger(__name__)

TOKEN_ENV = "BULKTAG_DASHBOARD_TOKEN"
STATIC = Path(__file__).parent / "static"
REFRESH_MS = 1500
SEARCH_MAX = 256
SECURITY_HEADERS = {
    # Scripts and styles only from this origin, no inline code: an injected string can never
    # run even if some code path forgot to escape it.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

T = TypeVar("T")


@dataclass
class State:
    conn: redis.Redis
    trackers: queries.Trackers
    registry: CollectorRegistry
    token: str | None
    refresh_ms: int


STATE = web.AppKey("state", State)


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest, 401: web.HTTPUnauthorized, 403: web.HTTPForbidden,
    404: web.HTTPNotFound, 409: web.HTTPConflict,
}  # fmt: skip


def _fail(status: int, message: str, **headers: str) -> NoReturn:
    """Stop the handler with a JSON error answer."""
    raise _ERRORS[status](
        text=_dumps({"error": message}), content_type="application/json", headers=headers
    )


async def _read(request: web.Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a synchronous query in a thread (see dashboard/queries.py for why)."""
    state = request.app[STATE]
    return await asyncio.to_thread(fn, state.conn, *args, **kwargs)


def _campaign_id(request: web.Request) -> str:
    cid = request.match_info["campaign_id"]
    if not store.CAMPAIGN_ID.fullmatch(cid):
        _fail(404, "no such campaign")
    return cid


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def healthz(request: web.Request) -> web.Response:
    try:
        await _read(request, lambda conn: conn.ping())
    except redis.RedisError as exc:
        return _json({"ok": False, "redis": str(exc)}, status=503)
    return _json({"ok": True})


async def metrics(request: web.Request) -> web.Response:
    body = await asyncio.to_thread(generate_latest, request.app[STATE].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def api_config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    # Whether actions are possible, never the token itself.
    return _json({"actions": state.token is not None, "refresh_ms": state.refresh_ms,
                  "statuses": list(FINAL_STATUSES)})  # fmt: skip


async def api_overview(request: web.Request) -> web.Response:
    return _json(await _read(request, queries.overview, request.app[STATE].trackers))


async def api_queues(request: web.Request) -> web.Response:
    return _json([asdict(q) for q in await _read(request, queries.queues)])


async def api_workers(request: web.Request) -> web.Response:
    return _json(await _read(request, queries.workers))


async def api_limits(request: web.Request) -> web.Response:
    return _json(await _read(request, queries.limits, request.app[STATE].trackers))


async def api_campaigns(request: web.Request) -> web.Response:
    return _json(await _read(request, queries.campaign_list, request.app[STATE].trackers))


async def api_campaign(request: web.Request) -> web.Response:
    cid = _campaign_id(request)
    try:
        doc = await _read(request, queries.campaign_detail, cid, request.app[STATE].trackers)
    except UserError as exc:
        _fail(404, str(exc))
    return _json(doc)


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name, "")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        _fail(400, f"{name} must be an integer")
    if not low <= value <= high:
        _fail(400, f"{name} must be between {low} and {high}")
    return value


async def api_outcomes(request: web.Request) -> web.Response:
    cid = _campaign_id(request)
    cursor = _int_param(request, "cursor", 0, 0, 2**64 - 1)
    limit = _int_param(request, "limit", 50, 1, queries.PAGE_MAX)
    status = request.query.get("status") or None
    if status is not None and status not in FINAL_STATUSES:
        _fail(400, f"status must be one of {', '.join(FINAL_STATUSES)}")
    search = request.query.get("q", "").strip() or None
    if search is not None and len(search) > SEARCH_MAX:
        _fail(400, f"search at most {SEARCH_MAX} characters")
    try:
        page = await _read(
            request, queries.outcome_page, cid,
            cursor=cursor, limit=limit, status=status, search=search,
        )  # fmt: skip
    except UserError as exc:
        _fail(404, str(exc))
    return _json({"rows": page.rows, "cursor": page.cursor, "scanned": page.scanned})


def _authorize(request: web.Request) -> None:
    token = request.app[STATE].token
    if token is None:
        _fail(403, f"read-only dashboard: start it with {TOKEN_ENV} set to allow actions")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Constant-time comparison: the answer's timing says nothing about the token.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        _fail(401, "a valid bearer token is required", **{"WWW-Authenticate": "Bearer"})


def _retry_failed(conn: redis.Redis, campaign_id: str) -> str:
    resources, jobs = campaigns.retry(conn, campaign_id, frozenset({FAILED}))
    return f"{resources:,} failed resources enqueued again in {jobs} jobs"


ACTIONS: dict[str, Callable[[redis.Redis, str], str]] = {
    "pause": control.pause,
    "resume": control.resume,
    "cancel": control.cancel,
    "retry": _retry_failed,
}


async def api_action(request: web.Request) -> web.Response:
    _authorize(request)
    cid = _campaign_id(request)
    action = ACTIONS.get(request.match_info["action"])
    if action is None:
        _fail(404, "no such action")
    try:
        message = await _read(request, action, cid)
    except UserError as exc:
        _fail(404 if str(exc).startswith("no campaign") else 409, str(exc))
    log.info(
        "dashboard action",
        extra={"campaign": cid, "action": request.match_info["action"],
               "peer": request.remote},
    )  # fmt: skip
    return _json({"ok": True, "message": message})


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    if request.path.startswith(("/api/", "/healthz", "/metrics")):
        response.headers["Cache-Control"] = "no-store"
    else:
        response.headers.setdefault("Cache-Control", "no-cache")


async def _close(app: web.Application) -> None:
    app[STATE].conn.close()


def create_app(
    redis_url: str, token: str | None = None, refresh_ms: int = REFRESH_MS
) -> web.Application:
    conn = redis.Redis.from_url(redis_url)
    trackers = queries.Trackers.new()
    app = web.Application()
    app[STATE] = State(conn, trackers, registry_for(conn, trackers), token or None, refresh_ms)
    app.router.add_get("/", index)
    app.router.add_static("/static", STATIC)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/config", api_config)
    app.router.add_get("/api/overview", api_overview)
    app.router.add_get("/api/queues", api_queues)
    app.router.add_get("/api/workers", api_workers)
    app.router.add_get("/api/limits", api_limits)
    app.router.add_get("/api/campaigns", api_campaigns)
    app.router.add_get("/api/campaigns/{campaign_id}", api_campaign)
    app.router.add_get("/api/campaigns/{campaign_id}/outcomes", api_outcomes)
    app.router.add_post("/api/campaigns/{campaign_id}/{action}", api_action)
    app.on_response_prepare.append(_headers)
    app.on_cleanup.append(_close)
    return app
