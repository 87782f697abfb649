"""Provider rules against an independent reading of each seed rule (hypothesis)."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.aliyun.rules import RULES as ALIYUN
from providers.catalog import UnknownProviderError, rules_for
from providers.huawei.rules import RULES as HUAWEI
from providers.rules import ProviderRules

ALIYUN_CHARS = set(string.ascii_letters + string.digits + "/\\_-.+=:@")
HUAWEI_FORBIDDEN = {chr(c) for c in range(32)} | set("*<>\\=")


def aliyun_key_ok(key: str) -> bool:
    # Seed: up to 128 characters from letters, digits and / \ _ - . + = : @;
    # "The key cannot start with aliyun or acs:".
    return (
        1 <= len(key) <= 128
        and set(key) <= ALIYUN_CHARS
        and not key.lower().startswith(("aliyun", "acs:"))
    )


def aliyun_value_ok(value: str) -> bool:
    return len(value) <= 128 and set(value) <= ALIYUN_CHARS


def huawei_key_ok(key: str) -> bool:
    # Seed: up to 36 unicodes, not empty, none of ASCII 0-31, *, <, >, \, =.
    return 1 <= len(key) <= 36 and not (set(key) & HUAWEI_FORBIDDEN)


def huawei_value_ok(value: str) -> bool:
    return len(value) <= 43 and not (set(value) & HUAWEI_FORBIDDEN)


# Mostly plausible characters, with the edge cases mixed in often enough to matter.
tag_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(sorted(ALIYUN_CHARS)),
        st.sampled_from(sorted(HUAWEI_FORBIDDEN | {" ", "é", "中", "#", "&", "%"})),
        st.characters(),
    ),
    max_size=140,
)
prefixed = st.builds(
    lambda p, rest: p + rest, st.sampled_from(["aliyun", "ALIYUN", "acs:", "Acs:", "acs"]), tag_text
)


@settings(max_examples=400)
@given(st.one_of(tag_text, prefixed))
def test_aliyun_key_validator_agrees_with_the_seed_rule(key: str) -> None:
    assert (ALIYUN.check_tag_key(key) == []) == aliyun_key_ok(key)


@settings(max_examples=400)
@given(tag_text)
def test_aliyun_value_validator_agrees_with_the_seed_rule(value: str) -> None:
    assert (ALIYUN.check_tag_value("k", value) == []) == aliyun_value_ok(value)


@settings(max_examples=400)
@given(tag_text)
def test_huawei_key_validator_agrees_with_the_seed_rule(key: str) -> None:
    assert (HUAWEI.check_tag_key(key) == []) == huawei_key_ok(key)


@settings(max_examples=400)
@given(tag_text)
def test_huawei_value_validator_agrees_with_the_seed_rule(value: str) -> None:
    assert (HUAWEI.check_tag_value("k", value) == []) == huawei_value_ok(value)


@pytest.mark.parametrize(
    ("rules", "key", "value", "code"),
    [
        (ALIYUN, "a" * 129, "v", "InvalidParameter.TagKey"),
        (ALIYUN, "aliyun-env", "v", "InvalidParameter.TagKey"),
        (ALIYUN, "env", "has space", "InvalidParameter.TagValue"),
        (HUAWEI, "k" * 37, "v", "KMS.0411"),
        (HUAWEI, "k", "v" * 44, "KMS.0410"),
        (HUAWEI, "a<b", "v", "KMS.0406"),
        (HUAWEI, "k", "x=y", "KMS.0405"),
    ],
)
def test_violation_carries_the_providers_own_code(
    rules: ProviderRules, key: str, value: str, code: str
) -> None:
    violations = rules.check_tags([(key, value)])
    assert [v.code for v in violations] == [code]


def test_violation_message_names_rule_value_and_limit() -> None:
    (violation,) = ALIYUN.check_tags([("k" * 130, "v")])
    assert "130 characters" in violation.message
    assert "at most 128" in violation.message
    assert "k" * 130 in violation.message


def test_huawei_empty_value_is_allowed_but_empty_key_is_not() -> None:
    assert HUAWEI.check_tags([("owner", "")]) == []
    assert [v.code for v in HUAWEI.check_tags([("", "x")])] == ["KMS.0411"]


def test_duplicate_keys_are_duplicate_tagkey() -> None:
    codes = [v.code for v in ALIYUN.check_tags([("env", "a"), ("env", "b")])]
    assert codes == ["Duplicate.TagKey"]


def test_huawei_key_holds_at_most_ten_tags() -> None:
    tags = [(f"k{i}", "v") for i in range(11)]
    assert [v.code for v in HUAWEI.check_tags(tags)] == ["KMS.0409"]
    assert HUAWEI.check_tags(tags[:10]) == []


def test_batch_limits_are_the_seed_figures() -> None:
    assert (ALIYUN.max_resources_per_call, ALIYUN.max_tags_per_call) == (50, 20)
    assert HUAWEI.max_resources_per_call == 1


@pytest.mark.parametrize(
    ("rules", "rtype", "rid", "ok"),
    [
        (ALIYUN, "key", "key-hzz62f1cb66fa42qo1234", True),
        (ALIYUN, "key", "1234abcd-12ab-34cd-56ef-1234567890ab", True),
        (ALIYUN, "key", "key-short", False),
        (ALIYUN, "secret", "db/prod-password", True),
        (ALIYUN, "secret", "has space", False),
        (HUAWEI, "key", "0d0466b0-e727-4d9c-b35d-f84bb474a37f", True),
        (HUAWEI, "key", "0D0466B0-e727-4d9c-b35d-f84bb474a37f", False),
        (HUAWEI, "secret", "anything", False),
    ],
)
def test_resource_id_shapes(rules: ProviderRules, rtype: str, rid: str, ok: bool) -> None:
    assert (rules.check_resource_id(rtype, rid) == []) is ok


def test_unknown_region_and_bad_project_are_reported() -> None:
    assert ALIYUN.check_region("cn-hangzhou") == []
    assert "unknown Alibaba Cloud KMS region 'mars-1'" in ALIYUN.check_region("mars-1")[0].message
    assert HUAWEI.check_project("0123456789abcdef0123456789abcdef") == []
    assert HUAWEI.check_project("not-a-project")


def test_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(UnknownProviderError, match="aliyun, huawei"):
        rules_for("aws")
