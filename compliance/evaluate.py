"""Which resources break a policy, why, and which tags would fix them (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from compliance.policy import TagRule
from providers.rules import Tag


@dataclass(frozen=True, slots=True)
class Found:
    """One resource as discovery saw it; ``tags`` is None when it does not exist."""

    resource_id: str
    tags: Mapping[str, str] | None


@dataclass(frozen=True, slots=True)
class Finding:
    """A non-compliant resource: what is wrong (human-readable) and the tags that fix it
    (empty when nothing can: a tag that must exist but has no default)."""

    resource_id: str
    problems: tuple[str, ...]
    fix: tuple[Tag, ...]


@dataclass
class Evaluation:
    found: int = 0
    compliant: int = 0
    not_found: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def fixable(self) -> list[Finding]:
        return [f for f in self.findings if f.fix]

    @property
    def unfixable(self) -> list[Finding]:
        return [f for f in self.findings if not f.fix]


def check(tags: Mapping[str, str], rules: Sequence[TagRule]) -> Finding | None:
    """The finding for a resource with ``tags``, or None when it complies.

    A tag is wrong when missing, or when the rule wants a value and it holds another; the fix
    sets the wanted value, or the default of a presence-only rule. Tags that are right are
    never re-sent, so a fix touches only what is wrong."""
    problems: list[str] = []
    fix: list[Tag] = []
    for rule in rules:
        held = tags.get(rule.key)
        if held is None:
            problems.append(f"{rule.key} missing")
            if rule.fix_value is not None:
                fix.append((rule.key, rule.fix_value))
        elif rule.value is not None and held != rule.value:
            problems.append(f"{rule.key}={held!r}, want {rule.value!r}")
            fix.append((rule.key, rule.value))
    if not problems:
        return None
    return Finding("", tuple(problems), tuple(fix))


def evaluate(resources: Iterable[Found], rules: Sequence[TagRule]) -> Evaluation:
    result = Evaluation()
    for resource in resources:
        if resource.tags is None:
            result.not_found.append(resource.resource_id)
            continue
        result.found += 1
        finding = check(resource.tags, rules)
        if finding is None:
            result.compliant += 1
        else:
            result.findings.append(Finding(resource.resource_id, finding.problems, finding.fix))
    return result


def drift(current: Mapping[str, str], still_open: Iterable[str]) -> dict[str, str]:
    """What became non-compliant since the previous run: findings of this run whose resource
    was compliant after the previous one (compliant then, or fixed by it). ``current`` maps
    resource keys to this run's problems; ``still_open`` are the previous run's findings its
    campaign did not fix."""
    known = set(still_open)
    return {k: v for k, v in current.items() if k not in known}
