"""Compliance policy files (YAML or TOML): parse and validate, all or nothing (pure, no Redis).

A policy says where to look, what to look at, which tags every resource must carry, and
when to run::

    name: nightly-kms                  # optional; default: the file's name without suffix
    schedule: "0 2 * * *"              # cron: minute hour day month weekday (or + seconds)
    timezone: Asia/Shanghai            # optional; the schedule's clock (default UTC)
    required_tags:
      cost-center: cc-1234             # must have exactly this value (set it otherwise)
      owner: {default: unassigned}     # must exist, any value (add the default if missing)
      team: {exists: true}             # must exist; reported, never fixed (no default)
    targets:
      - provider: aliyun
        profile: prod
        regions: [cn-hangzhou]
        resource_types: [key, secret]  # default [key]
      - provider: huawei
        profile: prod
        region: cn-north-4             # the endpoint's region
        projects: [0123456789abcdef0123456789abcdef]
        ids_file: keys.txt             # or ids: [...]; omitted: every key found by listing

Every problem is a :class:`PolicyError` (a ``UserError``: exit status 2, nothing written)
naming the file, the field and what is wrong.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter

from bulktag.errors import UserError
from producer.campaign import DEFAULT_PROFILE, Target
from producer.inputs import InputError, display_name, open_binary, text_lines
from providers.catalog import PROVIDERS

# Policy names become part of campaign ids (64 characters at most, store.CAMPAIGN_ID) next
# to a run's timestamp, hence the shorter limit.
POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
_TOP_KEYS = frozenset({"name", "schedule", "timezone", "required_tags", "targets"})
_TARGET_KEYS = frozenset(
    {"provider", "profile", "region", "regions", "project", "projects", "resource_type",
     "resource_types", "ids", "ids_file"}
)  # fmt: skip
_TAG_RULE_KEYS = frozenset({"value", "exists", "default"})


class PolicyError(UserError):
    """A policy file that cannot be used; the message names file, field and problem."""


@dataclass(frozen=True, slots=True)
class TagRule:
    """One required tag: an exact ``value``, or only presence (fixed with ``default``)."""

    key: str
    value: str | None = None
    default: str | None = None

    @property
    def fix_value(self) -> str | None:
        """What to set when the tag is missing; None when it cannot be fixed."""
        return self.value if self.value is not None else self.default

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "default": self.default}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TagRule:
        return cls(data["key"], data.get("value"), data.get("default"))


@dataclass(frozen=True, slots=True)
class PolicyTarget:
    """One account in one region or project, one resource type, and its selection: the
    explicit ``ids`` or, when None, every resource the listing finds."""

    target: Target
    ids: tuple[str, ...] | None = None

    @property
    def key(self) -> str:
        """A stable name for the target in run records: ``provider:location:type``."""
        t = self.target
        return f"{t.provider}:{t.location}:{t.resource_type}"

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target.to_json(), "ids": list(self.ids) if self.ids else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PolicyTarget:
        ids = data.get("ids")
        return cls(Target.from_json(data["target"]), tuple(ids) if ids is not None else None)


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    schedule: str
    timezone: str
    rules: tuple[TagRule, ...]
    targets: tuple[PolicyTarget, ...]
    source: str = ""

    def to_json(self) -> dict[str, Any]:
        """What Redis keeps: the whole validated policy, ids included, so that a scheduler or
        worker on another machine never needs the file (and no secret: profiles are names)."""
        return {
            "name": self.name,
            "schedule": self.schedule,
            "timezone": self.timezone,
            "rules": [r.to_json() for r in self.rules],
            "targets": [t.to_json() for t in self.targets],
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Policy:
        return cls(
            data["name"],
            data["schedule"],
            data.get("timezone", "UTC"),
            tuple(TagRule.from_json(r) for r in data["rules"]),
            tuple(PolicyTarget.from_json(t) for t in data["targets"]),
            data.get("source", ""),
        )


def load_policy(path: str) -> Policy:
    """Read and validate a policy file; :class:`PolicyError` on the first problem."""
    name = display_name(path)
    try:
        with open_binary(path) as stream:
            text = "\n".join(line for _, line in text_lines(stream, name))
    except InputError as exc:
        raise PolicyError(str(exc)) from None
    data = _parse(name, text)
    base = Path(path).parent if path != "-" else Path.cwd()
    return parse_policy(data, name, base, default_name=Path(path).name.split(".")[0])


def _parse(name: str, text: str) -> Any:
    try:
        return _parse_text(name, text)
    except RecursionError:
        # Both parsers recurse per nesting level; a line of 5,000 '[' exhausts the stack.
        kind = "TOML" if name.lower().endswith(".toml") else "YAML"
        raise PolicyError(f"{name}: not valid {kind}: nested too deeply") from None


def _parse_text(name: str, text: str) -> Any:
    if name.lower().endswith(".toml"):
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{name}: not valid TOML: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = str(exc).replace("\n", " ")
        raise PolicyError(f"{name}: not valid YAML: {detail}") from None


def parse_policy(data: Any, name: str, base: Path, default_name: str = "policy") -> Policy:
    """Validate an already parsed document (``name`` is the file, for messages)."""
    if not isinstance(data, dict):
        raise PolicyError(f"{name}: expected a mapping with schedule, required_tags and targets")
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise PolicyError(f"{name}: unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    policy_name = data.get("name", default_name)
    if not isinstance(policy_name, str) or not POLICY_NAME.fullmatch(policy_name):
        raise PolicyError(
            f"{name}: name: {policy_name!r} is not a valid policy name (1 to 40 letters, digits, "
            "'_' or '-', starting with a letter or digit)"
        )
    timezone = _timezone(name, data.get("timezone", "UTC"))
    schedule = _schedule(name, data.get("schedule"), timezone)
    rules = _rules(name, data.get("required_tags"))
    targets_raw = data.get("targets")
    if not isinstance(targets_raw, list) or not targets_raw:
        raise PolicyError(f"{name}: targets: expected a non-empty list of targets")
    targets: list[PolicyTarget] = []
    for index, section in enumerate(targets_raw):
        targets += _targets(f"{name}: targets[{index}]", base, section, rules)
    seen: set[str] = set()
    for target in targets:
        if target.key in seen:
            raise PolicyError(f"{name}: targets: {target.key} is named more than once")
        seen.add(target.key)
    return Policy(policy_name, schedule, timezone, rules, tuple(targets), name)


def _timezone(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise PolicyError(f"{name}: timezone: expected a time zone name such as 'UTC'")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PolicyError(f"{name}: timezone: unknown time zone {value!r}") from None
    return value


def _schedule(name: str, value: Any, timezone: str) -> str:
    if value is None:
        raise PolicyError(f"{name}: schedule: missing (a cron expression such as '0 2 * * *')")
    if not isinstance(value, str) or not value.strip():
        raise PolicyError(f"{name}: schedule: expected a cron expression as a string")
    expression = " ".join(value.split())
    fields = len(expression.split(" "))
    # croniter reads a sixth field as seconds; anything else (year fields, '@reboot') the
    # scheduler could not honour.
    if fields not in (5, 6) or not croniter.is_valid(expression):
        raise PolicyError(
            f"{name}: schedule: {value!r} is not a cron expression (minute hour day month "
            "weekday, optionally followed by seconds)"
        )
    try:
        croniter(expression, datetime.now(ZoneInfo(timezone))).get_next(datetime)
    except (ValueError, KeyError) as exc:
        raise PolicyError(f"{name}: schedule: {value!r} never matches: {exc}") from None
    return expression


def _string(where: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise PolicyError(f"{where}: expected a string")
    return str(value)


def _rules(name: str, value: Any) -> tuple[TagRule, ...]:
    if not isinstance(value, dict) or not value:
        raise PolicyError(
            f"{name}: required_tags: expected a mapping of tag key to a value, "
            "{default: VALUE} or {exists: true}"
        )
    rules = []
    for key, spec in value.items():
        where = f"{name}: required_tags.{key}"
        if not isinstance(key, str) or not key:
            raise PolicyError(f"{name}: required_tags: tag keys must be non-empty strings")
        if isinstance(spec, dict):
            unknown = set(spec) - _TAG_RULE_KEYS
            if unknown:
                raise PolicyError(
                    f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                    "use value, or exists with an optional default"
                )
            if "value" in spec and ("exists" in spec or "default" in spec):
                raise PolicyError(f"{where}: give either value, or exists/default, not both")
            if "value" in spec:
                rules.append(TagRule(key, value=_string(f"{where}.value", spec["value"])))
                continue
            exists = spec.get("exists", True)
            if exists is not True:
                raise PolicyError(f"{where}.exists: must be true (a required tag must exist)")
            default = spec.get("default")
            rules.append(
                TagRule(key, default=_string(f"{where}.default", default) if default is not None
                        else None)
            )  # fmt: skip
        else:
            rules.append(TagRule(key, value=_string(where, spec)))
    return tuple(rules)


def _list_field(where: str, section: Mapping[str, Any], one: str, many: str) -> list[str]:
    if one in section and many in section:
        raise PolicyError(f"{where}: give {one} or {many}, not both")
    if one in section:
        return [_string(f"{where}.{one}", section[one])]
    if many in section:
        values = section[many]
        if not isinstance(values, list) or not values:
            raise PolicyError(f"{where}.{many}: expected a non-empty list of strings")
        return [_string(f"{where}.{many}[{i}]", v) for i, v in enumerate(values)]
    return []


def _targets(
    where: str, base: Path, section: Any, rules: tuple[TagRule, ...]
) -> list[PolicyTarget]:
    if not isinstance(section, dict):
        raise PolicyError(f"{where}: expected a mapping")
    unknown = set(section) - _TARGET_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown field(s): {', '.join(sorted(map(str, unknown)))}")
    provider = section.get("provider")
    # isinstance first: a YAML list or mapping is unhashable, and `in` would raise.
    if not isinstance(provider, str) or provider not in PROVIDERS:
        raise PolicyError(
            f"{where}.provider: {provider!r} is not a provider; use one of: "
            f"{', '.join(sorted(PROVIDERS))}"
        )
    rules_of = PROVIDERS[provider]
    profile = _string(f"{where}.profile", section.get("profile", DEFAULT_PROFILE))
    regions = _list_field(where, section, "region", "regions")
    if not regions:
        raise PolicyError(f"{where}.regions: missing (the region(s) to look in)")
    for i, region in enumerate(regions):
        for problem in rules_of.check_region(region):
            raise PolicyError(f"{where}.regions[{i}]: {problem.message}")
    projects = _list_field(where, section, "project", "projects")
    if rules_of.project_pattern is not None:
        if not projects:
            raise PolicyError(f"{where}.projects: missing ({rules_of.display_name} needs them)")
        if len(regions) != 1:
            raise PolicyError(
                f"{where}.region: give exactly one region for {rules_of.display_name} projects"
            )
        for i, project in enumerate(projects):
            for problem in rules_of.check_project(project):
                raise PolicyError(f"{where}.projects[{i}]: {problem.message}")
    elif projects:
        raise PolicyError(f"{where}.projects: {rules_of.display_name} has no projects")
    types = _list_field(where, section, "resource_type", "resource_types") or ["key"]
    for i, resource_type in enumerate(types):
        for problem in rules_of.check_resource_type(resource_type):
            raise PolicyError(f"{where}.resource_types[{i}]: {problem.message}")
    # The tags this policy would set must be ones this target's provider accepts.
    file = where.partition(": ")[0]
    for rule in rules:
        checked = rules_of.check_tags([(rule.key, rule.fix_value or "")])
        for problem in checked:
            raise PolicyError(
                f"{file}: required_tags.{rule.key}: {problem.message} [{problem.code}] "
                f"({where.partition(': ')[2]} is {rules_of.display_name})"
            )
    ids = _ids(where, base, section)
    if ids is not None and len(types) != 1:
        raise PolicyError(f"{where}: an id list needs exactly one resource_type")
    if ids is not None:
        for i, rid in enumerate(ids, start=1):
            for id_problem in rules_of.check_resource_id(types[0], rid):
                raise PolicyError(f"{where}: id {i} ({rid!r}): {id_problem.message}")
    locations: list[tuple[str, str | None]] = (
        [(regions[0], p) for p in projects] if projects else [(r, None) for r in regions]
    )
    return [
        PolicyTarget(Target(provider, profile, region, project, rtype), ids)
        for region, project in locations
        for rtype in types
    ]


def _ids(where: str, base: Path, section: Mapping[str, Any]) -> tuple[str, ...] | None:
    if "ids" in section and "ids_file" in section:
        raise PolicyError(f"{where}: give ids or ids_file, not both")
    if "ids" in section:
        ids = section["ids"]
        if not isinstance(ids, list) or not ids:
            raise PolicyError(f"{where}.ids: expected a non-empty list of resource ids")
        return tuple(dict.fromkeys(_string(f"{where}.ids[{i}]", v).strip()
                                   for i, v in enumerate(ids)))  # fmt: skip
    if "ids_file" in section:
        raw = section["ids_file"]
        if not isinstance(raw, str) or not raw:
            raise PolicyError(f"{where}.ids_file: expected a file path")
        path = raw if raw == "-" else str(base / raw)
        found: list[str] = []
        try:
            with open_binary(path) as stream:
                for _, line in text_lines(stream, display_name(path)):
                    text = line.split("#", 1)[0].strip()
                    if text:
                        found.append(text)
        except InputError as exc:
            raise PolicyError(f"{where}.ids_file: {exc}") from None
        if not found:
            raise PolicyError(f"{where}.ids_file: {path} lists no ids")
        return tuple(dict.fromkeys(found))
    return None
