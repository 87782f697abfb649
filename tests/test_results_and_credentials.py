from __future__ import annotations

from pathlib import Path

import pytest

from providers.credentials import CredentialsError, load_aliyun, load_huawei
from providers.results import Outcome, classify_aliyun, classify_huawei


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (200, None, Outcome.OK),
        (404, "InvalidResourceId.NotFound", Outcome.NOT_FOUND),
        (400, "InvalidParameter.TagKey", Outcome.INVALID),
        (400, "InvalidParameter.TagValue", Outcome.INVALID),
        (400, "Duplicate.TagKey", Outcome.INVALID),
        (404, "InvalidAccessKeyId.NotFound", Outcome.AUTH),
        (403, "Forbidden.NoPermission", Outcome.AUTH),
        (400, "IncompleteSignature", Outcome.AUTH),
        (400, "SignatureDoesNotMatch", Outcome.AUTH),
        (429, "Rejected.Throttling", Outcome.THROTTLED),
        (400, "Throttling.User", Outcome.THROTTLED),
        (400, "Throttling", Outcome.THROTTLED),
        (500, "InternalFailure", Outcome.TRANSIENT),
        (503, "ServiceUnavailableTemporary", Outcome.TRANSIENT),
        (409, "Rejected.Disabled", Outcome.FAILED),
    ],
)
def test_alibaba_answers_are_classified(status: int, code: str | None, outcome: Outcome) -> None:
    assert classify_aliyun(status, code) is outcome


@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (204, None, Outcome.OK),
        (404, "KMS.0207", Outcome.NOT_FOUND),
        (404, None, Outcome.NOT_FOUND),
        (400, "KMS.0406", Outcome.INVALID),
        (401, "APIGW.0301", Outcome.AUTH),
        (403, "KMS.0306", Outcome.AUTH),
        (429, "APIGW.0308", Outcome.THROTTLED),
        (502, "APIGW.0201", Outcome.TRANSIENT),
        (500, "KMS.0101", Outcome.TRANSIENT),
        (400, "KMS.0209", Outcome.FAILED),
    ],
)
def test_huawei_answers_are_classified(status: int, code: str | None, outcome: Outcome) -> None:
    assert classify_huawei(status, code) is outcome


def test_only_throttled_and_transient_are_retryable() -> None:
    assert {o for o in Outcome if o.retryable} == {Outcome.THROTTLED, Outcome.TRANSIENT}


def test_default_profile_reads_the_providers_environment_variables(tmp_path: Path) -> None:
    env = {
        "BULKTAG_CREDENTIALS_FILE": str(tmp_path / "none.toml"),
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "id1",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "sec1",
        "HUAWEICLOUD_SDK_AK": "ak1",
        "HUAWEICLOUD_SDK_SK": "sk1",
    }
    ali = load_aliyun("default", env)
    assert (ali.access_key_id, ali.access_key_secret) == ("id1", "sec1")
    hw = load_huawei("default", env)
    assert hw.uses_aksk and hw.sk == "sk1"


def test_secrets_are_masked_in_repr(tmp_path: Path) -> None:
    env = {
        "BULKTAG_CREDENTIALS_FILE": str(tmp_path / "none.toml"),
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "id1",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "very-secret-value",
        "HUAWEICLOUD_AUTH_TOKEN": "token-secret-value",
    }
    assert "very-secret-value" not in repr(load_aliyun("default", env))
    assert "token-secret-value" not in repr(load_huawei("default", env))


def test_named_profile_comes_from_the_file_and_ignores_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[profile.prod.aliyun]\naccess_key_id = "fileid"\naccess_key_secret = "filesec"\n'
        'endpoint = "http://127.0.0.1:8500"\n'
        '[profile.prod.huawei]\nauth_token = "tok"\n'
    )
    env = {"BULKTAG_CREDENTIALS_FILE": str(path), "ALIBABA_CLOUD_ACCESS_KEY_ID": "envid"}
    ali = load_aliyun("prod", env)
    assert ali.access_key_id == "fileid" and ali.endpoint == "http://127.0.0.1:8500"
    hw = load_huawei("prod", env)
    assert hw.auth_token == "tok" and not hw.uses_aksk


def test_missing_profile_error_names_profile_and_file(tmp_path: Path) -> None:
    env = {"BULKTAG_CREDENTIALS_FILE": str(tmp_path / "c.toml")}
    with pytest.raises(CredentialsError, match=r"profile 'ops'.*\[profile\.ops\.aliyun\]"):
        load_aliyun("ops", env)
    with pytest.raises(CredentialsError, match="HUAWEICLOUD_SDK_AK"):
        load_huawei("default", env)


def test_broken_credentials_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[profile.prod\n")
    with pytest.raises(CredentialsError, match="cannot read credentials file"):
        load_aliyun("prod", {"BULKTAG_CREDENTIALS_FILE": str(path)})
