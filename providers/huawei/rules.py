"""Huawei Cloud KMS key-tag rules, from the seed document and providers.md §3.2, §3.5."""

from __future__ import annotations

import re

from providers.rules import ProviderRules, TagRules

# Regions with a KMS endpoint, as listed by huaweicloudsdkkms's region table.
REGIONS = frozenset(
    {
        "ae-ad-1", "af-north-1", "af-south-1", "ap-southeast-1", "ap-southeast-2",
        "ap-southeast-3", "ap-southeast-4", "ap-southeast-5", "cn-east-2", "cn-east-3",
        "cn-east-4", "cn-east-5", "cn-north-1", "cn-north-11", "cn-north-12", "cn-north-2",
        "cn-north-4", "cn-north-9", "cn-south-1", "cn-south-2", "cn-south-4",
        "cn-southwest-2", "cn-southwest-3", "eu-west-101", "la-north-2", "la-south-2",
        "me-east-1", "my-kualalumpur-1", "na-mexico-1", "ru-moscow-1", "sa-brazil-1",
        "tr-west-1",
    }
)  # fmt: skip

# Seed: key and value may not contain "ASCII(0-31), *, <, >, \, and =".
_FORBIDDEN = frozenset(chr(c) for c in range(32)) | frozenset("*<>\\=")

TAG_RULES = TagRules(
    key_max_len=36,  # seed: "up to 36 unicodes", "cannot be left empty"
    value_max_len=43,  # seed: "up to 43 unicodes", "can be left empty"
    allowed_chars=None,
    allowed_chars_text="",
    forbidden_chars=_FORBIDDEN,
    forbidden_chars_text="control characters (ASCII 0-31), *, <, >, \\ and =",
    # KMS error codes (providers.md §3.4).
    key_code="KMS.0406",  # invalid tag key
    value_code="KMS.0405",  # invalid tag value
    key_length_code="KMS.0411",  # invalid tag key length
    value_length_code="KMS.0410",  # invalid tag value length
    duplicate_key_code="KMS.0406",
    too_many_tags_code="KMS.0409",  # total tags exceed limit
)

# Key ids (providers.md §3.2, BatchCreateKmsTags: key_id pattern).
KEY_ID = re.compile(r"[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}")
PROJECT_ID = re.compile(r"[0-9a-f]{32}")
# "A 36-byte serial number of a request message" (seed).
SEQUENCE_LENGTH = 36

RULES = ProviderRules(
    name="huawei",
    display_name="Huawei Cloud KMS",
    tags=TAG_RULES,
    # Secrets live in another service (CSMS) with other limits; only keys are supported.
    resource_id_patterns={"key": KEY_ID},
    resource_id_shapes={"key": "a key id such as 0d0466b0-e727-4d9c-b35d-f84bb474a37f"},
    regions=REGIONS,
    max_resources_per_call=1,  # one key per call (seed URI: /kms/{key_id}/tags)
    # The add-tag call takes one tag; tags/action takes a key's whole list, and a key holds
    # at most 10 tags (providers.md §3.2).
    max_tags_per_call=10,
    max_tags_per_resource=10,
    default_rate_per_second=20.0,  # "TPS ... is set to 20" (providers.md §3.5)
    not_found_code="KMS.0207",
    project_pattern=PROJECT_ID,
)
