"""Alibaba Cloud KMS (API 2016-01-20) as the official SDK calls it: RPC style, ``POST /``.

Routing and parsing follow sdk-wire.md §3 items 1-3: the action comes from the
``x-acs-action`` header (or ``Action`` in V2), every parameter from the query string decoded
with form rules (plus a form body, if one is sent), lists rebuilt from ``ResourceId.N`` /
``Tag.N.Key`` / ``Tag.N.Value`` / ``TagKey.N``, and every answer is JSON: success
``{"RequestId": ...}`` plus the action's fields, errors
``{"RequestId", "HostId", "Code", "Message", "Recommend"}`` (providers.md §2.1) with the
HTTP status of the code. Limits and tag rules come from ``providers.aliyun.rules``.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from emulator.aliyun_auth import AliyunAuthenticator
from emulator.config import EmulatorConfig, RateLimit
from emulator.errors import ApiError
from emulator.gate import Call, Gate
from emulator.inventory import Inventory, ResourceSet
from emulator.responses import json_response
from emulator.tagpool import EMPTY
from providers.aliyun.rules import RULES
from providers.rules import Tag

API_VERSION = "2016-01-20"
# The emulated account, as it appears in key ARNs (acs:kms:<region>:<account>:key/<id>).
ACCOUNT_ID = "1000000000000000"
# Fixed times for generated metadata: the emulator has no creation history.
_CREATED = "2024-01-01T00:00:00Z"

_HOST_REGION = re.compile(r"kms(?:-vpc)?\.([a-z0-9-]+)\.aliyuncs\.com(?::\d+)?")

# Seed error table messages (aliyun-kms-TagResources.txt), by code.
_SEED_MESSAGES = {
    "InvalidParameter.TagKey": "The specified parameter is not valid.",
    "InvalidParameter.TagValue": "The specified parameter is not valid.",
    "Duplicate.TagKey": "The specified tagKey is duplicate.",
}
_NOT_FOUND = "The specified ResourceId is not found."

# Answers for injected 5xx faults. 500 and 503 are KMS's own codes (providers.md §2.2); KMS
# documents none for 502/504, so these two are the emulator's wording of a gateway failure.
_SERVER_ERRORS = {
    500: ("InternalFailure", "The request processing has failed due to some unknown error."),
    502: ("BadGateway", "The gateway received an invalid response from the KMS service."),
    503: (
        "ServiceUnavailableTemporary",
        "The request has failed due to a temporary failure of the server.",
    ),
    504: ("GatewayTimeout", "The KMS service did not answer the gateway in time."),
}


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()


class AliyunDialect:
    """How Alibaba words errors (gate.Dialect)."""

    def render_error(self, call: Call, error: ApiError) -> web.Response:
        body = {
            "RequestId": call.request_id,
            "HostId": f"kms.{call.location}.aliyuncs.com",
            "Code": error.code,
            "Message": error.message,
            "Recommend": (
                f"https://api.aliyun.com/troubleshoot?q={error.code}&product=Kms"
                f"&requestId={call.request_id}"
            ),
        }
        return json_response(body, error.status)

    def throttled(self, call: Call, limit: RateLimit) -> ApiError:
        # providers.md §2.3: HTTP 429, Rejected.Throttling, "QPS Limit Exceeded". No
        # x-acs-retry-after header: KMS is not documented to send one (providers.md §7.4).
        return ApiError(429, "Rejected.Throttling", "QPS Limit Exceeded")

    def server_error(self, call: Call, status: int) -> ApiError:
        code, message = _SERVER_ERRORS[status]
        return ApiError(status, code, message)

    def finish(self, call: Call, response: web.StreamResponse) -> None:
        pass  # the request id travels in the body


DIALECT = AliyunDialect()


# --- parameters ----------------------------------------------------------------------------


def request_params(request: web.BaseRequest, body: bytes) -> dict[str, str]:
    """Query parameters decoded with form rules (``+`` is a space), plus a form body's."""
    params = dict(request.query)
    if body and request.content_type == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def indexed(params: Mapping[str, str], name: str) -> list[str]:
    """``Name.1``, ``Name.2``, ... in index order (sdk-wire.md §1.2: 1-based, flattened)."""
    prefix = name + "."
    found: list[tuple[int, str]] = []
    for key, value in params.items():
        if key.startswith(prefix):
            index = key[len(prefix) :]
            if index.isascii() and index.isdigit():
                found.append((int(index), value))
    return [value for _, value in sorted(found)]


def indexed_tags(params: Mapping[str, str]) -> list[Tag]:
    """``Tag.N.Key`` / ``Tag.N.Value`` pairs in index order; a missing half is ``""``."""
    entries: dict[int, list[str]] = {}
    for key, value in params.items():
        parts = key.split(".")
        if (
            len(parts) == 3
            and parts[0] == "Tag"
            and parts[2] in ("Key", "Value")
            and parts[1].isascii()
            and parts[1].isdigit()
        ):
            entry = entries.setdefault(int(parts[1]), ["", ""])
            entry[0 if parts[2] == "Key" else 1] = value
    return [(entry[0], entry[1]) for _, entry in sorted(entries.items())]


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise ApiError(
            400, "MissingParameter", f"The input parameter {name} that is mandatory is missing."
        )
    return value


def _integer(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(
            400,
            "InvalidParameter",
            f"The specified parameter {name} is not valid: {raw!r} is not an integer "
            f"from {low} to {high}.",
        )
    return value


def _resource_type(params: Mapping[str, str]) -> str:
    resource_type = _required(params, "ResourceType")
    problems = RULES.check_resource_type(resource_type)
    if problems:
        raise ApiError(400, problems[0].code, problems[0].message)
    return resource_type


def _resource_ids(params: Mapping[str, str], required: bool = True) -> list[str]:
    ids = indexed(params, "ResourceId")
    if not ids and required:
        raise ApiError(
            400, "MissingParameter", "The input parameter ResourceId that is mandatory is missing."
        )
    if len(ids) > RULES.max_resources_per_call:
        raise ApiError(
            400,
            "InvalidParameter",
            f"The specified parameter ResourceId is not valid: {len(ids)} resource ids; "
            f"at most {RULES.max_resources_per_call} are allowed.",
        )
    return list(dict.fromkeys(ids))


def _check_tag_count(count: int, name: str) -> None:
    if count > RULES.max_tags_per_call:
        raise ApiError(
            400,
            "InvalidParameter",
            f"The specified parameter {name} is not valid: {count} tags; "
            f"at most {RULES.max_tags_per_call} are allowed.",
        )


def _violation_error(code: str, detail: str) -> ApiError:
    seed = _SEED_MESSAGES.get(code, "The specified parameter is not valid.")
    return ApiError(400, code, f"{seed} ({detail})")


# --- the API -------------------------------------------------------------------------------


class AliyunApi:
    def __init__(
        self,
        gate: Gate,
        inventory: Inventory,
        config: EmulatorConfig,
        authenticator: AliyunAuthenticator,
    ) -> None:
        self._gate = gate
        self._inventory = inventory
        self._config = config
        self._auth = authenticator
        self._actions = {
            "TagResources": self._tag_resources,
            "UntagResources": self._untag_resources,
            "ListKeys": self._list_keys,
            "ListSecrets": self._list_secrets,
            "ListTagResources": self._list_tag_resources,
            "ListResourceTags": self._list_resource_tags,
        }

    def add_routes(self, app: web.Application) -> None:
        # The SDK POSTs (sdk-wire.md §1.2); RPC also accepts GET (providers.md §1.1).
        app.router.add_post("/", self.handle)
        app.router.add_get("/", self.handle, allow_head=False)

    def _region(self, params: Mapping[str, str], host: str) -> str:
        region = params.get("RegionId")
        if region:
            return region
        # ListKeys/ListSecrets send no RegionId: the real service knows it from its endpoint.
        match = _HOST_REGION.fullmatch(host)
        return match.group(1) if match else self._config.aliyun_default_region

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        params = request_params(request, body)
        headers = {name.lower(): value for name, value in request.headers.items()}
        action = headers.get("x-acs-action") or params.get("Action") or "-"
        call = Call(
            "aliyun", self._region(params, headers.get("host", "")), action, new_request_id()
        )

        async def authenticate() -> None:
            self._auth.verify(request.method, params, headers, body)

        async def handler() -> web.StreamResponse:
            return self._dispatch(call, params, headers)

        return await self._gate.run(request, DIALECT, call, authenticate, handler)

    def _dispatch(
        self, call: Call, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> web.Response:
        action = self._actions.get(call.action)
        if action is None:
            raise ApiError(
                404,
                "InvalidAction.NotFound",
                f"Specified api {call.action!r} is not found, please check your url and method.",
            )
        version = headers.get("x-acs-version") or params.get("Version")
        if version and version != API_VERSION:
            raise ApiError(
                400, "InvalidVersion", f"Specified parameter Version {version!r} is not valid."
            )
        problems = RULES.check_region(call.location)
        if problems:
            raise ApiError(400, problems[0].code, problems[0].message)
        result = action(call, params)
        return json_response({"RequestId": call.request_id, **result})

    def _existing(self, call: Call, resource_type: str, ids: Sequence[str]) -> list[int]:
        """Slots of every id, or 404 if any does not exist (then nothing is changed)."""
        found = self._inventory.get("aliyun", call.location, resource_type)
        slots = []
        for rid in ids:
            slot = found.index_of(rid) if found is not None else None
            if slot is None:
                message = (
                    f"The specified ResourceId is not found: {rid}"
                    if self._config.name_missing_id
                    else _NOT_FOUND
                )
                raise ApiError(404, RULES.not_found_code, message)
            slots.append(slot)
        return slots

    def _set(self, call: Call, resource_type: str) -> ResourceSet:
        return self._inventory.ensure("aliyun", call.location, resource_type)

    # --- actions ---------------------------------------------------------------------------

    def _tag_resources(self, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
        resource_type = _resource_type(params)
        ids = _resource_ids(params)
        tags = indexed_tags(params)
        if not tags:
            raise ApiError(
                400, "MissingParameter", "The input parameter Tag that is mandatory is missing."
            )
        _check_tag_count(len(tags), "Tag")
        problems = RULES.check_tags(tags)
        if problems:
            raise _violation_error(problems[0].code, problems[0].message)
        slots = self._existing(call, resource_type, ids)
        target = self._set(call, resource_type)
        add = tuple(sorted(tags))  # keys are unique: duplicates were refused above
        for slot in slots:
            target.add_tags(slot, add)
        return {}

    def _untag_resources(self, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
        resource_type = _resource_type(params)
        ids = _resource_ids(params)
        keys = indexed(params, "TagKey")
        remove_all = params.get("All", "").lower() == "true"
        if keys:
            _check_tag_count(len(keys), "TagKey")
            for key in keys:
                # Includes the reserved aliyun/acs: prefixes, which cannot be removed
                # (providers.md §2.6).
                problems = RULES.check_tag_key(key)
                if problems:
                    raise _violation_error(problems[0].code, problems[0].message)
        elif not remove_all:
            raise ApiError(
                400,
                "MissingParameter",
                "The input parameter TagKey that is mandatory is missing (or set All=true).",
            )
        slots = self._existing(call, resource_type, ids)
        target = self._set(call, resource_type)
        remove = frozenset(keys)
        for slot in slots:
            if remove:
                # "only some of the tag keys are associated ... the tags whose keys are
                # associated are removed" (providers.md §2.5): absent keys are ignored.
                target.remove_tags(slot, remove)
            else:
                kept = {k: v for k, v in target.tag_items(slot) if _reserved(k)}
                if kept:
                    target.set_tags(slot, kept)
                else:
                    target.set_tag_set(slot, EMPTY)
        return {}

    def _list_keys(self, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
        # providers.md §2.6: PageNumber from 1, PageSize 1-100 (default 10).
        number = _integer(params, "PageNumber", 1, 1, 10**9)
        size = _integer(params, "PageSize", 10, 1, 100)
        found = self._inventory.get("aliyun", call.location, "key")
        keys = []
        if found is not None:
            start = (number - 1) * size
            for slot in found.live_slots(start, start + size):
                key_id = found.id_at(slot)
                arn = f"acs:kms:{call.location}:{ACCOUNT_ID}:key/{key_id}"
                keys.append({"KeyId": key_id, "KeyArn": arn})
        return {
            "Keys": {"Key": keys},
            "TotalCount": len(found) if found is not None else 0,
            "PageNumber": number,
            "PageSize": size,
        }

    def _list_secrets(self, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
        number = _integer(params, "PageNumber", 1, 1, 10**9)
        size = _integer(params, "PageSize", 10, 1, 100)
        fetch_tags = params.get("FetchTags", "").lower() == "true"
        found = self._inventory.get("aliyun", call.location, "secret")
        secrets = []
        if found is not None:
            start = (number - 1) * size
            for slot in found.live_slots(start, start + size):
                secret: dict[str, Any] = {
                    "SecretName": found.id_at(slot),
                    "SecretType": "Generic",
                    "CreateTime": _CREATED,
                    "UpdateTime": _CREATED,
                }
                if fetch_tags:
                    secret["Tags"] = {
                        "Tag": [{"TagKey": k, "TagValue": v} for k, v in found.tag_items(slot)]
                    }
                secrets.append(secret)
        return {
            "SecretList": {"Secret": secrets},
            "TotalCount": len(found) if found is not None else 0,
            "PageNumber": number,
            "PageSize": size,
        }

    def _list_tag_resources(self, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
        resource_type = _resource_type(params)
        ids = _resource_ids(params, required=False)
        filters = indexed_tags(params)
        _check_tag_count(len(filters), "Tag")
        start, inner = _decode_token(params.get("NextToken", ""))
        found = self._inventory.get("aliyun", call.location, resource_type)
        if found is None:
            return {"TagResources": {"TagResource": []}, "NextToken": ""}
        candidates: Sequence[int]
        if ids:
            # Ids that do not exist simply have no rows.
            candidates = [s for s in (found.index_of(rid) for rid in ids) if s is not None]
        else:
            candidates = found.live_slots()
        page = self._config.list_tag_resources_page_size
        rows: list[dict[str, str]] = []
        position = start
        while position < len(candidates):
            slot = candidates[position]
            items = found.tag_items(slot)
            if items and _matches(items, filters):
                rid = found.id_at(slot)
                for key, value in items[inner:]:
                    if len(rows) == page:
                        return _tag_page(rows, _encode_token(position, inner))
                    rows.append(
                        {
                            "ResourceId": rid,
                            "ResourceType": resource_type,
                            "TagKey": key,
                            "TagValue": value,
                        }
                    )
                    inner += 1
            position += 1
            inner = 0
        return _tag_page(rows, "")

    def _list_resource_tags(self, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
        """One resource's tags: ``KeyId`` (providers.md §2.6: ``Tags.Tag[]{KeyId, TagKey,
        TagValue}``) or ``SecretName`` (the same shape, named by ``SecretName``)."""
        if params.get("KeyId"):
            resource_type, name_field, rid = "key", "KeyId", params["KeyId"]
            # KMS's code for a key that does not exist (DescribeKey and the key APIs).
            missing = ApiError(
                404, "Forbidden.KeyNotFound", f"The specified Key {rid} is not found."
            )
        elif params.get("SecretName"):
            resource_type, name_field, rid = "secret", "SecretName", params["SecretName"]
            missing = ApiError(404, RULES.not_found_code, _NOT_FOUND)
        else:
            raise ApiError(
                400, "MissingParameter", "The input parameter KeyId that is mandatory is missing."
            )
        found = self._inventory.get("aliyun", call.location, resource_type)
        slot = found.index_of(rid) if found is not None else None
        if found is None or slot is None:
            raise missing
        rows = [{name_field: rid, "TagKey": k, "TagValue": v} for k, v in found.tag_items(slot)]
        return {"Tags": {"Tag": rows}}


def _reserved(key: str) -> bool:
    return key.lower().startswith(RULES.tags.reserved_key_prefixes)


def _matches(items: Sequence[Tag], filters: Sequence[Tag]) -> bool:
    """A resource matches when it has every filter key, with the value if one is given."""
    if not filters:
        return True
    held = dict(items)
    return all(k in held and (not v or held[k] == v) for k, v in filters)


def _tag_page(rows: list[dict[str, str]], next_token: str) -> dict[str, Any]:
    # NextToken "" marks the last page (providers.md §2.6).
    return {"TagResources": {"TagResource": rows}, "NextToken": next_token}


def _encode_token(position: int, inner: int) -> str:
    return base64.urlsafe_b64encode(f"{position}:{inner}".encode()).decode("ascii")


def _decode_token(token: str) -> tuple[int, int]:
    if not token:
        return 0, 0
    try:
        position, inner = base64.urlsafe_b64decode(token.encode("ascii")).decode().split(":")
        return max(0, int(position)), max(0, int(inner))
    except (ValueError, UnicodeError, binascii.Error):
        raise ApiError(
            400, "InvalidParameter", f"The specified parameter NextToken {token!r} is not valid."
        ) from None
