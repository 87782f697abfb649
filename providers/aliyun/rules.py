"""Alibaba Cloud KMS ``TagResources`` rules, from the seed document and providers.md §1.2, §2.4."""

from __future__ import annotations

import re

from providers.rules import ProviderRules, TagRules

# Public KMS regions (providers.md §1.1 endpoint list; finance/gov regions included).
REGIONS = frozenset(
    {
        "cn-hangzhou", "cn-shanghai", "cn-qingdao", "cn-beijing", "cn-zhangjiakou",
        "cn-huhehaote", "cn-wulanchabu", "cn-shenzhen", "cn-heyuan", "cn-guangzhou",
        "cn-chengdu", "cn-nanjing", "cn-fuzhou", "cn-hongkong", "cn-hangzhou-finance",
        "cn-shanghai-finance-1", "cn-shenzhen-finance-1", "cn-beijing-finance-1",
        "cn-north-2-gov-1", "ap-northeast-1", "ap-northeast-2", "ap-southeast-1",
        "ap-southeast-2", "ap-southeast-3", "ap-southeast-5", "ap-southeast-6",
        "ap-southeast-7", "ap-south-1", "us-east-1", "us-west-1", "eu-west-1",
        "eu-central-1", "me-east-1", "me-central-1", "na-south-1",
    }
)  # fmt: skip

# Seed: "letters, digits, /, \, _, -, ., +, =, :, @" — read as ASCII letters and digits.
_TAG_CHARS = re.compile(r"[A-Za-z0-9/\\_\-.+=:@]")

TAG_RULES = TagRules(
    key_max_len=128,  # seed: "Each key can be up to 128 characters"
    value_max_len=128,  # seed: "Each value can be up to 128 characters"
    allowed_chars=_TAG_CHARS,
    allowed_chars_text="letters, digits and / \\ _ - . + = : @",
    # Seed: "The key cannot start with aliyun or acs:". Checked case-insensitively, as
    # Alibaba's Tag service documents for the same prefixes.
    reserved_key_prefixes=("aliyun", "acs:"),
    key_code="InvalidParameter.TagKey",
    value_code="InvalidParameter.TagValue",
    key_length_code="InvalidParameter.TagKey",
    value_length_code="InvalidParameter.TagValue",
    duplicate_key_code="Duplicate.TagKey",
    too_many_tags_code="InvalidParameter.Tag",
)

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

RULES = ProviderRules(
    name="aliyun",
    display_name="Alibaba Cloud KMS",
    tags=TAG_RULES,
    resource_id_patterns={
        # Key ids look like key-hzz62f1cb66fa42qo1234 (seed example); keys created before the
        # key- prefix existed have UUID ids.
        "key": re.compile(rf"key-[a-z0-9]{{16,40}}|{_UUID}"),
        # Secret names: letters, digits and _ / + = . @ -, 1 to 192 characters.
        "secret": re.compile(r"[A-Za-z0-9_/+=.@\-]{1,192}"),
    },
    resource_id_shapes={
        "key": "key-<16 to 40 lower-case letters or digits>, or a UUID",
        "secret": "a secret name of 1 to 192 letters, digits or _ / + = . @ -",
    },
    regions=REGIONS,
    max_resources_per_call=50,  # seed: "a maximum of 50 resource IDs"
    max_tags_per_call=20,  # seed: "You can enter up to 20 tags"
    # Not published for TagResources (providers.md §7.6): the service is the judge.
    max_tags_per_resource=None,
    # Key-management writes: 30 QPS on the current page, 10 on the older one (providers.md
    # §2.4). Start at the conservative figure; operators raise it with `bulktag limits`.
    default_rate_per_second=10.0,
    not_found_code="InvalidResourceId.NotFound",
)
