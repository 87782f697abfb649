"""Fuzzing the input parsers and validators: whatever bytes or documents they are given, they
either parse or refuse with a ``UserError`` (``InputError``, ``PolicyError``) naming the file.
Any other exception would reach the user as a traceback instead of a line and exit status 2.

Signers against the official SDK signers on random requests are in tests/test_signing.py.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bulktag.errors import UserError
from compliance.policy import Policy, load_policy, parse_policy
from producer.campaign import IdBlock, Row, TargetFields
from producer.inputs import (
    CampaignFile,
    Problem,
    load_campaign_file,
    read_csv_manifest,
    read_id_list,
    read_jsonl_manifest,
    read_source,
)
from producer.validate import RowChecker, check_block, check_row, check_tag_set, resolve_target
from providers.catalog import PROVIDERS

PROJECT = "0123456789abcdef0123456789abcdef"
# A few seconds per test in the suite; FUZZ_EXAMPLES=5000 for a deeper run by hand.
FAST = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_counter = itertools.count()


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Module-scoped: hypothesis runs many examples per test, and a function-scoped tmp_path
    # would be shared across them anyway (each example writes a file of its own).
    return tmp_path_factory.mktemp("fuzz")


def _write(directory: Path, suffix: str, data: bytes) -> str:
    path = directory / f"input-{next(_counter)}{suffix}"
    path.write_bytes(data)
    return str(path)


def _validate(items: Any) -> int:
    """Run every item through the validators, as ``bulktag submit`` does; count them."""
    checker = RowChecker()
    seen = 0
    for item in items:
        seen += 1
        if isinstance(item, Problem):
            assert str(item)
        elif isinstance(item, IdBlock):
            check_block(item)
        else:
            assert isinstance(item, Row)
            checker.check(item)
            check_row(item)
    return seen


# --- raw bytes ------------------------------------------------------------------------------

# Plain bytes; bytes that look like text (the interesting part of the parsers' paths); and
# the gzip magic followed by anything (readers gunzip whatever starts with it).
_TEXTY = st.text(
    st.characters(exclude_categories=["Cs"]) | st.sampled_from(list(",\"'#\n\r\t:-[]{}=")),
    max_size=300,
).map(str.encode)
_BYTES = st.one_of(
    st.binary(max_size=400),
    _TEXTY,
    st.binary(max_size=200).map(lambda b: b"\x1f\x8b" + b),
    _TEXTY.map(gzip.compress),
    _TEXTY.map(lambda b: gzip.compress(b)[: max(2, len(b) // 2)]),
)
_FIELDS = TargetFields(provider="aliyun", region="cn-hangzhou", resource_type="key")
_HW_FIELDS = TargetFields(provider="huawei", region="cn-north-4", project=PROJECT)

# Inputs that once crashed a parser with something other than a UserError (kept as examples
# so the fixes stay pinned).
_NESTED_JSON = b"[" * 5000
_NESTED_YAML = b"a: " + b"[" * 5000
_NESTED_TOML = b"a = " + b"[" * 5000
_BAD_DEFLATE = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage"


@FAST
@given(data=_BYTES)
@example(data=_BAD_DEFLATE)
def test_id_list_reader_parses_or_raises_user_error_on_any_bytes(
    fuzz_dir: Path, data: bytes
) -> None:
    path = _write(fuzz_dir, ".txt", data)
    try:
        _validate(read_id_list(path, _FIELDS, (("env", "prod"),)))
    except UserError as exc:
        assert path in str(exc)


@FAST
@given(data=_BYTES)
@example(data=_BAD_DEFLATE)
@example(data=b'resource_id,tag:env\nkey-1,"x\n')
def test_csv_manifest_reader_parses_or_raises_user_error_on_any_bytes(
    fuzz_dir: Path, data: bytes
) -> None:
    path = _write(fuzz_dir, ".csv", data)
    try:
        _validate(read_csv_manifest(path, _HW_FIELDS))
    except UserError as exc:
        assert path in str(exc)


@FAST
@given(data=_BYTES)
@example(data=_NESTED_JSON + b"\n")
@example(data=_BAD_DEFLATE)
def test_jsonl_manifest_reader_parses_or_raises_user_error_on_any_bytes(
    fuzz_dir: Path, data: bytes
) -> None:
    path = _write(fuzz_dir, ".jsonl", data)
    try:
        _validate(read_jsonl_manifest(path, _FIELDS))
    except UserError as exc:
        assert path in str(exc)


def _campaign(path: str) -> CampaignFile | None:
    try:
        campaign = load_campaign_file(path)
    except UserError as exc:
        assert path in str(exc)
        return None
    for source in campaign.sources:
        # An ids_file or manifest that does not exist, or is not text, is its own UserError.
        with contextlib.suppress(UserError):
            _validate(read_source(source))
    return campaign


@FAST
@given(data=_BYTES, suffix=st.sampled_from([".yaml", ".yml", ".toml", ".json"]))
@example(data=_NESTED_JSON, suffix=".json")
@example(data=_NESTED_YAML, suffix=".yaml")
@example(data=_NESTED_TOML, suffix=".toml")
def test_campaign_file_loader_parses_or_raises_user_error_on_any_bytes(
    fuzz_dir: Path, data: bytes, suffix: str
) -> None:
    _campaign(_write(fuzz_dir, suffix, data))


@FAST
@given(data=_BYTES, suffix=st.sampled_from([".yaml", ".toml"]))
@example(data=_NESTED_YAML, suffix=".yaml")
@example(data=_NESTED_TOML, suffix=".toml")
def test_policy_loader_parses_or_raises_policy_error_on_any_bytes(
    fuzz_dir: Path, data: bytes, suffix: str
) -> None:
    path = _write(fuzz_dir, suffix, data)
    try:
        assert isinstance(load_policy(path), Policy)
    except UserError as exc:
        assert path in str(exc)


# --- structured documents -------------------------------------------------------------------

# Random bytes seldom get past the YAML parser; documents built from the real keys, with
# values of every JSON/YAML type, reach the validation code behind it.
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "aliyun",
            "huawei",
            "cn-hangzhou",
            "cn-north-4",
            PROJECT,
            "key",
            "secret",
            "key-0123456789abcdef0123",
            "0 2 * * *",
            "UTC",
            "Asia/Shanghai",
            "-",
            "env",
            "prod",
            "",
        ]
    ),
)


def _values(keys: list[str]) -> st.SearchStrategy[Any]:
    def extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), inner, max_size=4),
        )

    return st.recursive(_SCALARS, extend, max_leaves=12)


_CAMPAIGN_KEYS = [
    "id",
    "targets",
    "webhook",
    "provider",
    "profile",
    "region",
    "project",
    "resource_type",
    "tags",
    "ids",
    "ids_file",
    "manifest",
]
_POLICY_KEYS = [
    "name",
    "schedule",
    "timezone",
    "required_tags",
    "targets",
    "provider",
    "profile",
    "region",
    "regions",
    "project",
    "projects",
    "resource_type",
    "resource_types",
    "ids",
    "ids_file",
    "value",
    "exists",
    "default",
]


def _document(keys: list[str], top: list[str], target: list[str]) -> st.SearchStrategy[Any]:
    values = _values(keys)
    section = st.dictionaries(st.sampled_from(target), values, max_size=len(target))
    return st.one_of(
        values,
        st.fixed_dictionaries(
            {},
            optional={
                **{k: values for k in top},
                "targets": st.lists(section | values, max_size=3) | values,
            },
        ),
        # Keys YAML allows but JSON does not: numbers, booleans, null.
        st.dictionaries(st.one_of(st.integers(), st.booleans(), st.none()), values, max_size=2),
    )


_CAMPAIGN_DOC = _document(
    _CAMPAIGN_KEYS,
    ["id", "webhook"],
    [
        "provider",
        "profile",
        "region",
        "project",
        "resource_type",
        "tags",
        "ids",
        "ids_file",
        "manifest",
    ],
)
_POLICY_DOC = _document(
    _POLICY_KEYS,
    ["name", "schedule", "timezone", "required_tags"],
    [
        "provider",
        "profile",
        "region",
        "regions",
        "project",
        "projects",
        "resource_type",
        "resource_types",
        "ids",
        "ids_file",
    ],
)


def _dump(doc: Any, suffix: str) -> bytes:
    if suffix == ".json":
        return json.dumps(doc).encode()
    return yaml.safe_dump(doc, allow_unicode=True).encode()


@FAST
@given(doc=_CAMPAIGN_DOC, suffix=st.sampled_from([".yaml", ".json"]))
@example(doc={1: "x", "id": "a"}, suffix=".yaml")
@example(doc={"targets": [{None: 1, "ids": ["a"]}]}, suffix=".yaml")
def test_campaign_file_loader_validates_any_document(fuzz_dir: Path, doc: Any, suffix: str) -> None:
    try:
        data = _dump(doc, suffix)
    except ValueError:
        return  # a document JSON cannot hold (NaN is allowed; keys of mixed types are not)
    _campaign(_write(fuzz_dir, suffix, data))


@FAST
@given(doc=_POLICY_DOC)
@example(
    doc={
        "schedule": "0 2 * * *",
        "required_tags": {"a": "b"},
        "targets": [{"provider": ["aliyun"], "region": "cn-hangzhou"}],
    }
)
@example(
    doc={
        "schedule": "0 2 * * *",
        "required_tags": {"a": "b"},
        "timezone": "\x00",
        "targets": [{"provider": "aliyun", "region": "cn-hangzhou"}],
    }
)
def test_policy_parser_validates_any_document(fuzz_dir: Path, doc: Any) -> None:
    try:
        assert isinstance(parse_policy(doc, "fuzz.yaml", fuzz_dir), Policy)
    except UserError as exc:
        assert "fuzz.yaml" in str(exc)


# --- validators -----------------------------------------------------------------------------

_FIELD = (
    st.none()
    | st.text(max_size=40)
    | st.sampled_from(
        ["aliyun", "huawei", "cn-hangzhou", "cn-north-4", PROJECT, "key", "secret", "default"]
    )
)
_TAG_TEXT = st.text(max_size=140) | st.sampled_from(["aliyun:x", "acs:y", "a" * 129, "=", "*"])


@FAST
@given(
    fields=st.builds(TargetFields, _FIELD, _FIELD, _FIELD, _FIELD, _FIELD),
    resource_id=st.text(max_size=80),
    tags=st.lists(st.tuples(_TAG_TEXT, _TAG_TEXT), max_size=25).map(tuple),
)
def test_validators_return_problems_and_never_raise(
    fields: TargetFields, resource_id: str, tags: tuple[tuple[str, str], ...]
) -> None:
    target, problems = resolve_target(fields)
    assert (target is None) == bool(problems)
    row = Row("fuzz", 1, resource_id, fields, tags)
    checked, row_problems = check_row(row)
    assert (checked is None) == bool(row_problems)
    assert all(p.where == "fuzz:1" and p.message for p in row_problems)
    # The cached fast path agrees with the full check.
    fast, fast_problems = RowChecker().check(row)
    assert fast == checked and [str(p) for p in fast_problems] == [str(p) for p in row_problems]
    block_target, ids, _, _ = check_block(IdBlock("fuzz", fields, tags, [resource_id], [1]))
    assert block_target == target
    assert ids in ([], [resource_id])
    for provider in PROVIDERS:
        assert all(message and code for message, code in check_tag_set(provider, tags))
