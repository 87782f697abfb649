"""Huawei Cloud KMS key tags and key listing, as the seed, providers.md §3 and the SDK use them.

Routes (sdk-wire.md §2.2, §3 item 4; providers.md §3.2-3.3):

- ``POST /v1.0/{project_id}/kms/{key_id}/tags``: one tag, ``{"tag": {"key", "value"},
  "sequence"}``; 204, empty body (``CreateKmsTag``).
- ``POST /v1.0/{project_id}/kms/{key_id}/tags/action``: ``{"action": "create"|"delete",
  "tags": [...], "sequence"}``; 204 (``BatchCreateKmsTags``).
- ``GET /v1.0/{project_id}/kms/{key_id}/tags``: ``{"tags": [...], "existTagsNum": n}``
  (``ShowKmsTags``).
- ``POST /v1.0/{project_id}/kms/list-keys``: ``limit``/``marker`` paging (``ListKeys``).

Errors: KMS ones nested, ``{"error": {"error_code", "error_msg"}}``; gateway ones flat,
``{"error_msg", "error_code", "request_id"}`` (providers.md §3.4). Every answer carries
``X-Request-Id``, the only place the SDK reads a request id from (sdk-wire.md §2.5). Tag and
key-id rules come from ``providers.huawei.rules``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from emulator.config import EmulatorConfig, RateLimit
from emulator.errors import ApiError
from emulator.gate import Call, Gate
from emulator.huawei_auth import HuaweiAuthenticator
from emulator.inventory import Inventory
from emulator.responses import json_response
from providers.huawei.rules import RULES, SEQUENCE_LENGTH
from providers.rules import Tag

# The emulated account's domain id, as key_details report it.
DOMAIN_ID = "00000000000000000000000000000000"
# Creation time of every generated key, in milliseconds (the API's format).
_CREATED_MS = "1704067200000"
# ListKeys: limit "1" to "2000", default 2000 (providers.md §3.3).
_LIST_LIMIT = 2000
_KEY_ENABLED = "2"  # key_state 2: enabled (providers.md §3.3)

# Answers for injected 5xx faults: KMS's own error for 500; the gateway's "backend
# unavailable / timeout" (APIGW.0201, providers.md §3.4) for 502, 503 and 504.
_SERVER_ERRORS = {
    500: ("KMS.0101", "KMS error.", False),
    502: ("APIGW.0201", "Backend unavailable.", True),
    503: ("APIGW.0201", "Backend unavailable.", True),
    504: ("APIGW.0201", "Backend timeout.", True),
}


def new_request_id() -> str:
    return uuid.uuid4().hex


class HuaweiDialect:
    """How Huawei words errors (gate.Dialect)."""

    def render_error(self, call: Call, error: ApiError) -> web.Response:
        body: dict[str, Any]
        if error.gateway:
            body = {
                "error_msg": error.message,
                "error_code": error.code,
                "request_id": call.request_id,
            }
        else:
            body = {"error": {"error_code": error.code, "error_msg": error.message}}
        return json_response(body, error.status)

    def throttled(self, call: Call, limit: RateLimit) -> ApiError:
        # providers.md §3.4: 429 APIGW.0308 and the message form observed in the wild.
        return ApiError(
            429,
            "APIGW.0308",
            "The throttling threshold has been reached: policy user over ratelimit,"
            f"limit:{limit.describe()},time:1 second",
            gateway=True,
        )

    def server_error(self, call: Call, status: int) -> ApiError:
        code, message, gateway = _SERVER_ERRORS[status]
        return ApiError(status, code, message, gateway=gateway)

    def finish(self, call: Call, response: web.StreamResponse) -> None:
        response.headers["X-Request-Id"] = call.request_id


DIALECT = HuaweiDialect()

Operation = Callable[[Call, Mapping[str, str], bytes], web.StreamResponse]


def _kms(status: int, code: str, message: str) -> ApiError:
    return ApiError(status, code, message)


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise _kms(400, "KMS.0202", "The JSON format of the request message is invalid.") from None
    if not isinstance(data, dict):
        raise _kms(400, "KMS.0202", "The request body must be a JSON object.")
    return data


def _check_sequence(data: Mapping[str, Any]) -> None:
    # "A 36-byte serial number" (seed): optional; at most 36 bytes accepted, since the SDK
    # examples send shorter ones (sdk-wire.md §2.1).
    if "sequence" not in data:
        return
    sequence = data["sequence"]
    if not isinstance(sequence, str) or len(sequence.encode()) > SEQUENCE_LENGTH:
        raise _kms(400, "KMS.0206", f"Invalid sequence: at most {SEQUENCE_LENGTH} bytes.")


def _tag_item(item: Any, where: str) -> Tag:
    if not isinstance(item, Mapping) or "key" not in item:
        raise _kms(400, "KMS.0204", f"The request message lacks required parameters: {where}.key.")
    key, value = item["key"], item.get("value", "")
    if value is None:
        value = ""
    if not isinstance(key, str) or not isinstance(value, str):
        raise _kms(400, "KMS.0308", f"Invalid {where}: key and value must be strings.")
    return key, value


def _check_key_id(key_id: str) -> str:
    problems = RULES.check_resource_id("key", key_id)
    if problems:
        raise _kms(400, "KMS.0205", f"Invalid key_id: {problems[0].message}.")
    return key_id


def _first_violation(tags: list[Tag]) -> None:
    problems = RULES.check_tags(tags)
    if problems:
        raise _kms(400, problems[0].code, problems[0].message)


class HuaweiApi:
    def __init__(
        self,
        gate: Gate,
        inventory: Inventory,
        config: EmulatorConfig,
        authenticator: HuaweiAuthenticator,
    ) -> None:
        self._gate = gate
        self._inventory = inventory
        self._config = config
        self._auth = authenticator

    def add_routes(self, app: web.Application) -> None:
        base = "/v1.0/{project_id}/kms"
        router = app.router
        router.add_post(f"{base}/list-keys", self._route("ListKeys", self._list_keys))
        router.add_post(f"{base}/{{key_id}}/tags", self._route("CreateKmsTag", self._create_tag))
        router.add_get(f"{base}/{{key_id}}/tags", self._route("ShowKmsTags", self._show_tags))
        router.add_post(
            f"{base}/{{key_id}}/tags/action", self._route("BatchCreateKmsTags", self._batch)
        )
        # Anything else under /v1.0 is an API the gateway does not know.
        router.add_route("*", "/v1.0/{tail:.*}", self._route("-", self._unknown))

    def _route(
        self, action: str, operation: Operation
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            headers = {name.lower(): value for name, value in request.headers.items()}
            match = request.match_info
            project = match.get("project_id") or match.get("tail", "").partition("/")[0]
            call = Call("huawei", project, action, new_request_id())

            async def authenticate() -> None:
                if operation is self._unknown:
                    return  # the gateway answers for an unknown API before any auth
                self._auth.verify(
                    request.method,
                    request.rel_url.raw_path,
                    list(request.query.items()),
                    headers,
                    body,
                )

            async def handler() -> web.StreamResponse:
                self._check_project(call.location, headers)
                return operation(call, match, body)

            return await self._gate.run(request, DIALECT, call, authenticate, handler)

        return handle

    def _check_project(self, project: str, headers: Mapping[str, str]) -> None:
        problems = RULES.check_project(project)
        if problems:
            raise _kms(400, "KMS.0201", f"Invalid request URL: {problems[0].message}.")
        sent = headers.get("x-project-id")
        if sent is not None and sent != project:
            # The SDK sends X-Project-Id equal to the path's project (sdk-wire.md §3 item 4).
            raise _kms(
                400,
                "KMS.0201",
                f"Invalid request URL: X-Project-Id {sent!r} is not the project in the URL.",
            )

    def _key_slot(self, call: Call, key_id: str) -> int:
        _check_key_id(key_id)
        found = self._inventory.get("huawei", call.location, "key")
        slot = found.index_of(key_id) if found is not None else None
        if slot is None:
            raise _kms(404, RULES.not_found_code, "The key does not exist.")
        return slot

    def _add_tags(self, call: Call, key_id: str, slot: int, tags: list[Tag]) -> None:
        target = self._inventory.ensure("huawei", call.location, "key")
        held = {k for k, _ in target.tag_items(slot)}
        total = len(held | {k for k, _ in tags})
        limit = RULES.max_tags_per_resource
        if limit is not None and total > limit:
            raise _kms(
                400,
                RULES.tags.too_many_tags_code,
                f"The total number of tags exceeds the limit: key {key_id} would have {total} "
                f"tags; at most {limit} are allowed.",
            )
        # An existing key takes the new value (providers.md §3.2, seed).
        target.add_tags(slot, tuple(sorted(dict(tags).items())))

    # --- operations ------------------------------------------------------------------------

    def _create_tag(self, call: Call, match: Mapping[str, str], body: bytes) -> web.Response:
        key_id = _check_key_id(match["key_id"])
        data = _json_body(body)
        _check_sequence(data)
        if "tag" not in data:
            raise _kms(400, "KMS.0204", "The request message lacks required parameters: tag.")
        tag = _tag_item(data["tag"], "tag")
        _first_violation([tag])
        slot = self._key_slot(call, key_id)
        self._add_tags(call, key_id, slot, [tag])
        return web.Response(status=204)

    def _batch(self, call: Call, match: Mapping[str, str], body: bytes) -> web.Response:
        key_id = _check_key_id(match["key_id"])
        data = _json_body(body)
        _check_sequence(data)
        action = data.get("action")
        if action is None:
            raise _kms(400, "KMS.0204", "The request message lacks required parameters: action.")
        if action not in ("create", "delete"):
            raise _kms(400, "KMS.0404", f"Invalid action {action!r}: use create or delete.")
        items = data.get("tags")
        if not isinstance(items, list) or not items:
            raise _kms(400, "KMS.0401", "The tag list is empty.")
        tags = [_tag_item(item, f"tags[{i}]") for i, item in enumerate(items)]
        if action == "create":
            _first_violation(tags)
            slot = self._key_slot(call, key_id)
            self._add_tags(call, key_id, slot, tags)
        else:
            if len(tags) > RULES.max_tags_per_call:
                raise _kms(
                    400,
                    "KMS.0407",
                    f"Invalid tag list length: {len(tags)}; at most "
                    f"{RULES.max_tags_per_call} tags per call.",
                )
            for key, _value in tags:
                problems = RULES.check_tag_key(key)
                if problems:
                    raise _kms(400, problems[0].code, problems[0].message)
            slot = self._key_slot(call, key_id)
            # Deleting a tag the key does not have is not an error.
            target = self._inventory.ensure("huawei", call.location, "key")
            target.remove_tags(slot, frozenset(k for k, _ in tags))
        return web.Response(status=204)

    def _show_tags(self, call: Call, match: Mapping[str, str], body: bytes) -> web.Response:
        key_id = match["key_id"]
        slot = self._key_slot(call, key_id)
        target = self._inventory.ensure("huawei", call.location, "key")
        tags = [{"key": k, "value": v} for k, v in target.tag_items(slot)]
        # The SDK model reads "existTagsNum" (ShowKmsTagsResponse); older API pages spell it
        # "existTagNum". Both are sent.
        return json_response({"tags": tags, "existTagsNum": len(tags), "existTagNum": len(tags)})

    def _list_keys(self, call: Call, match: Mapping[str, str], body: bytes) -> web.Response:
        data = _json_body(body)
        _check_sequence(data)
        limit = _paging_number(data.get("limit"), "limit", _LIST_LIMIT, 1, _LIST_LIMIT)
        start = _paging_number(data.get("marker"), "marker", 0, 0, 2**53)
        found = self._inventory.get("huawei", call.location, "key")
        state = data.get("key_state")
        if found is None or (state not in (None, "", _KEY_ENABLED)):
            # Every emulated key is enabled: another state filter matches none.
            return json_response(
                {"keys": [], "key_details": [], "next_marker": "", "truncated": "false",
                 "total": 0}
            )  # fmt: skip
        slots = found.live_slots(start, start + limit)
        keys = [found.id_at(slot) for slot in slots]
        listed = start + len(keys)
        truncated = listed < len(found)
        return json_response(
            {
                "keys": keys,
                "key_details": [
                    _key_details(key_id, slot) for key_id, slot in zip(keys, slots, strict=True)
                ],
                # The marker is how many keys were listed so far: the next page starts after
                # it (providers.md §3.3).
                "next_marker": str(listed) if truncated else "",
                "truncated": "true" if truncated else "false",
                "total": len(found),
            }
        )

    def _unknown(self, call: Call, match: Mapping[str, str], body: bytes) -> web.Response:
        raise ApiError(
            404,
            "APIGW.0101",
            "The API does not exist or has not been published in the environment.",
            gateway=True,
        )


def _paging_number(value: Any, name: str, default: int, low: int, high: int) -> int:
    if value is None or value == "":
        return default
    # The API takes these as strings ("limit": "2"); a JSON number is accepted too.
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    if number is None or not low <= number <= high:
        raise _kms(400, "KMS.0308", f"Invalid {name}: {value!r} (use {low} to {high}).")
    return number


def _key_details(key_id: str, slot: int) -> dict[str, str]:
    return {
        "key_id": key_id,
        "domain_id": DOMAIN_ID,
        "key_alias": f"bulktag-emulated-{slot}",
        "realm": "",
        "key_spec": "AES_256",
        "key_usage": "ENCRYPT_DECRYPT",
        "key_description": "",
        "creation_date": _CREATED_MS,
        "scheduled_deletion_date": "",
        "key_state": _KEY_ENABLED,
        "default_key_flag": "0",
        "key_type": "1",
        "expiration_time": "",
        "origin": "kms",
        "key_rotation_enabled": "false",
        "sys_enterprise_project_id": "0",
        "keystore_id": "0",
    }
