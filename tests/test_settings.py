"""AwsSettings: Region, profile, endpoints, credentials, roles and guarded accounts from the stack config the engine
hands to configure()."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

import pytest

from kms_connection.settings import AssumeRole, AwsSettings, ConfigError, StaticCredentials, kms_endpoint_from

LOCAL = "http://127.0.0.1:4599"


def config(**values: Any) -> Callable[[str], Any]:
    """A stack config getter; keyword ``aws_region`` stands for the key ``aws:region``."""
    table = {key.replace("_", ":", 1): value for key, value in values.items()}
    return table.get


# --- Region -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack_region", "environ", "expected"),
    [
        pytest.param("eu-west-1", {"AWS_REGION": "us-east-1"}, "eu-west-1", id="stack-config-wins"),
        pytest.param(" eu-west-1 ", {}, "eu-west-1", id="stack-config-is-trimmed"),
        pytest.param(
            None, {"AWS_REGION": "us-east-2", "AWS_DEFAULT_REGION": "us-west-2"}, "us-east-2", id="aws-region-first"
        ),
        pytest.param(None, {"AWS_DEFAULT_REGION": "us-west-2"}, "us-west-2", id="aws-default-region"),
        pytest.param("  ", {"AWS_REGION": "us-east-2"}, "us-east-2", id="blank-stack-config-falls-back"),
        pytest.param(None, {"AWS_REGION": "", "AWS_DEFAULT_REGION": "us-west-2"}, "us-west-2", id="empty-env-is-unset"),
        pytest.param(None, {"AWS_REGION": "  ", "AWS_DEFAULT_REGION": "us-west-2"}, "us-west-2", id="blank-env"),
        pytest.param(None, {}, None, id="nowhere"),
        pytest.param(42, {}, None, id="non-text-stack-config"),
    ],
)
def test_region_from_stack_config_then_environment(
    stack_region: Any, environ: dict[str, str], expected: str | None
) -> None:
    assert AwsSettings.from_stack_config(config(aws_region=stack_region), environ).region == expected


def test_region_falls_back_to_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-1")
    assert AwsSettings.from_stack_config(config()).region == "ap-northeast-1"


def test_an_explicit_empty_environment_ignores_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-northeast-1")
    assert AwsSettings.from_stack_config(config(), {}).region is None


@pytest.mark.parametrize(
    ("resource_region", "expected"),
    [
        pytest.param("us-east-2", "us-east-2", id="resource-input-wins"),
        pytest.param(None, "eu-west-1", id="stack-region-otherwise"),
    ],
)
def test_region_for_a_resource(resource_region: str | None, expected: str) -> None:
    assert AwsSettings(region="eu-west-1").region_for(resource_region) == expected


# --- profile ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        pytest.param("kms-admin", "kms-admin", id="set"),
        pytest.param(" kms-admin\n", "kms-admin", id="trimmed"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="unset"),
    ],
)
def test_profile_from_stack_config(profile: str | None, expected: str | None) -> None:
    assert AwsSettings.from_stack_config(config(aws_profile=profile), {}).profile == expected


# --- endpoints ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoints", "expected"),
    [
        pytest.param(f'[{{"kms":"{LOCAL}"}}]', LOCAL, id="json-text-as-the-engine-delivers-it"),
        pytest.param([{"kms": LOCAL}], LOCAL, id="list"),
        pytest.param({"kms": LOCAL}, LOCAL, id="dict"),
        pytest.param(f'{{"kms": "{LOCAL}"}}', LOCAL, id="json-text-of-a-dict"),
        pytest.param([{"s3": "http://s3.local"}, {"kms": LOCAL}], LOCAL, id="kms-among-other-services"),
        pytest.param([{"kms": f" {LOCAL} "}], LOCAL, id="trimmed"),
        pytest.param([{"kms": "http://first"}, {"kms": "http://second"}], "http://first", id="first-wins"),
        pytest.param('[{"kms": ', None, id="malformed-json"),
        pytest.param(LOCAL, None, id="a-bare-url-is-not-endpoints-config"),
        pytest.param('"http://127.0.0.1:4599"', None, id="json-string"),
        pytest.param("42", None, id="json-number"),
        pytest.param([{"s3": "http://s3.local"}], None, id="no-kms-entry"),
        pytest.param([{"kms": ""}], None, id="empty-kms-entry"),
        pytest.param([{"kms": 4599}], None, id="non-text-kms-entry"),
        pytest.param(["kms", LOCAL], None, id="list-of-strings"),
        pytest.param([], None, id="empty-list"),
        pytest.param("", None, id="empty-text"),
        pytest.param(None, None, id="unset"),
    ],
)
def test_kms_endpoint_from_endpoints_config(endpoints: Any, expected: str | None) -> None:
    assert kms_endpoint_from(endpoints) == expected


def test_endpoint_from_stack_config() -> None:
    settings = AwsSettings.from_stack_config(config(aws_endpoints=f'[{{"kms":"{LOCAL}"}}]'), {})
    assert settings.kms_endpoint == LOCAL


def test_everything_from_stack_config_at_once() -> None:
    get = config(aws_region="eu-central-1", aws_profile="ops", aws_endpoints=f'[{{"kms":"{LOCAL}"}}]')
    assert AwsSettings.from_stack_config(get, {}) == AwsSettings("eu-central-1", "ops", LOCAL)


def test_nothing_configured_is_all_unset() -> None:
    assert AwsSettings.from_stack_config(config(), {}) == AwsSettings(None, None, None)


def test_the_sts_endpoint_comes_from_its_own_entry_of_endpoints() -> None:
    endpoints = f'[{{"kms":"{LOCAL}"}}, {{"sts":"http://127.0.0.1:4600"}}]'
    settings = AwsSettings.from_stack_config(config(aws_endpoints=endpoints), {})
    assert (settings.kms_endpoint, settings.sts_endpoint) == (LOCAL, "http://127.0.0.1:4600")


# --- credentials from secret config ---------------------------------------------------------------------------------

ACCESS_KEY = "AKIASETTINGSCANARY01"
SECRET_KEY = "SettingsSecretCanary0123456789abcdefghij"
TOKEN = "SettingsTokenCanary0123456789"


def test_static_credentials_come_from_the_secret_config_keys() -> None:
    get = config(aws_accessKey=ACCESS_KEY, aws_secretKey=SECRET_KEY, aws_token=TOKEN)
    static = AwsSettings.from_stack_config(get, {}).static_credentials
    assert static == StaticCredentials(ACCESS_KEY, SECRET_KEY, TOKEN)


def test_static_credentials_never_show_in_the_settings_repr() -> None:
    settings = AwsSettings.from_stack_config(
        config(aws_accessKey=ACCESS_KEY, aws_secretKey=SECRET_KEY, aws_token=TOKEN), {}
    )
    for text in (repr(settings), str(settings), repr(settings.static_credentials)):
        assert ACCESS_KEY not in text and SECRET_KEY not in text and TOKEN not in text
    assert "StaticCredentials([secret])" in repr(settings)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        pytest.param({"aws_accessKey": ACCESS_KEY}, "aws:accessKey is set but aws:secretKey is not", id="no-secret"),
        pytest.param({"aws_secretKey": SECRET_KEY}, "aws:secretKey is set but aws:accessKey is not", id="no-key-id"),
        pytest.param({"aws_token": TOKEN}, "aws:token is set without aws:accessKey and aws:secretKey", id="token"),
    ],
)
def test_partial_static_credentials_are_refused_naming_the_keys_and_no_value(
    values: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        AwsSettings.from_stack_config(config(**values), {})
    assert named in str(raised.value)
    assert all(value not in str(raised.value) for value in values.values())


# --- shared files ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param('["/etc/aws/one", "/etc/aws/two"]', ("/etc/aws/one", "/etc/aws/two"), id="json-list"),
        pytest.param("/etc/aws/one", ("/etc/aws/one",), id="one-path"),
        pytest.param(None, (), id="unset"),
    ],
)
def test_shared_files_are_lists_of_paths(value: Any, expected: tuple[str, ...]) -> None:
    settings = AwsSettings.from_stack_config(config(aws_sharedCredentialsFiles=value, aws_sharedConfigFiles=value), {})
    assert settings.shared_credentials_files == expected == settings.shared_config_files


def test_shared_file_paths_expand_the_home_directory() -> None:
    settings = AwsSettings.from_stack_config(config(aws_sharedConfigFiles='["~/.aws/config-ci"]'), {})
    assert settings.shared_config_files == (os.path.expanduser("~/.aws/config-ci"),)


def test_shared_files_that_are_not_paths_are_refused() -> None:
    with pytest.raises(ConfigError, match="aws:sharedCredentialsFiles must be a list of file paths"):
        AwsSettings.from_stack_config(config(aws_sharedCredentialsFiles="[1, 2]"), {})


# --- roles ----------------------------------------------------------------------------------------------------------

SECURITY_ROLE = "arn:aws:iam::222233334444:role/kms-admin"
HOP_ROLE = "arn:aws:iam::333344445555:role/org/hop"


def test_assume_roles_are_read_in_order_with_every_key_pulumi_aws_has() -> None:
    roles = [
        {"roleArn": HOP_ROLE},
        {
            "roleArn": SECURITY_ROLE,
            "sessionName": "pipeline",
            "externalId": "tenant-42",
            "duration": "1h30m",
            "policy": '{"Version":"2012-10-17","Statement":[]}',
            "policyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
            "tags": {"team": "security"},
            "transitiveTagKeys": ["team"],
            "sourceIdentity": "ci",
        },
    ]
    chain = AwsSettings.from_stack_config(config(aws_assumeRoles=json.dumps(roles)), {}).assume_roles
    assert chain == (
        AssumeRole(HOP_ROLE),
        AssumeRole(
            SECURITY_ROLE,
            session_name="pipeline",
            external_id="tenant-42",
            duration_seconds=5400,
            policy='{"Version":"2012-10-17","Statement":[]}',
            policy_arns=("arn:aws:iam::aws:policy/ReadOnlyAccess",),
            tags=(("team", "security"),),
            transitive_tag_keys=("team",),
            source_identity="ci",
        ),
    )
    assert [role.account for role in chain] == ["333344445555", "222233334444"]


def test_a_role_becomes_the_assume_role_request_botocore_sends() -> None:
    role = AssumeRole(SECURITY_ROLE, external_id="x-1", duration_seconds=900, tags=(("team", "security"),))
    assert role.assume_role_args() == {
        "RoleSessionName": "kms-connection",
        "ExternalId": "x-1",
        "DurationSeconds": 900,
        "Tags": [{"Key": "team", "Value": "security"}],
    }


def test_the_older_single_assume_role_is_a_chain_of_one() -> None:
    get = config(aws_assumeRole=json.dumps({"roleArn": SECURITY_ROLE, "sessionName": "old"}))
    assert AwsSettings.from_stack_config(get, {}).assume_roles == (AssumeRole(SECURITY_ROLE, session_name="old"),)


def test_both_assume_role_keys_at_once_are_refused() -> None:
    get = config(aws_assumeRole=json.dumps({"roleArn": SECURITY_ROLE}), aws_assumeRoles="[]")
    with pytest.raises(ConfigError, match="aws:assumeRoles and aws:assumeRole are both set"):
        AwsSettings.from_stack_config(get, {})


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [
        pytest.param("1h", 3600, id="hours"),
        pytest.param("15m", 900, id="minutes"),
        pytest.param("2h30m", 9000, id="hours-and-minutes"),
        pytest.param("3600s", 3600, id="seconds-unit"),
        pytest.param(3600, 3600, id="number-of-seconds"),
        pytest.param("43200", 43200, id="text-of-seconds"),
    ],
)
def test_a_role_duration_is_pulumi_aws_duration_text_or_seconds(duration: Any, seconds: int) -> None:
    get = config(aws_assumeRoles=json.dumps([{"roleArn": SECURITY_ROLE, "duration": duration}]))
    assert AwsSettings.from_stack_config(get, {}).assume_roles[0].duration_seconds == seconds


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param({"roleArn": "kms-admin"}, "aws:assumeRoles[0].roleArn must be an IAM role ARN", id="not-an-arn"),
        pytest.param(
            {"roleArn": "arn:aws:iam::222233334444:user/me"}, "roleArn must be an IAM role ARN", id="user-arn"
        ),
        pytest.param({}, "aws:assumeRoles[0].roleArn must be an IAM role ARN", id="no-role"),
        pytest.param({"roleArn": SECURITY_ROLE, "rolearn": "x"}, "aws:assumeRoles[0].rolearn is not a key", id="typo"),
        pytest.param({"roleArn": SECURITY_ROLE, "duration": "10m"}, "between 15 minutes and 12 hours", id="too-short"),
        pytest.param({"roleArn": SECURITY_ROLE, "duration": "13h"}, "between 15 minutes and 12 hours", id="too-long"),
        pytest.param({"roleArn": SECURITY_ROLE, "duration": "an hour"}, "duration such as 1h", id="not-a-duration"),
        pytest.param({"roleArn": SECURITY_ROLE, "tags": ["team"]}, "tags must map tag keys", id="tags-not-a-map"),
        pytest.param({"roleArn": SECURITY_ROLE, "policyArns": "arn"}, "policyArns must be a list", id="arns-not-list"),
    ],
)
def test_a_role_that_cannot_be_used_is_refused_naming_the_entry(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        AwsSettings.from_stack_config(config(aws_assumeRoles=json.dumps([entry])), {})


# --- allowed and forbidden accounts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param('["111122223333", "222233334444"]', ("111122223333", "222233334444"), id="json-list"),
        pytest.param("111122223333", ("111122223333",), id="one-id"),
        pytest.param("111122223333, 222233334444", ("111122223333", "222233334444"), id="comma-separated"),
        pytest.param("[12345678901]", ("012345678901",), id="unquoted-yaml-number-keeps-its-leading-zero"),
        pytest.param("", None, id="empty-is-unset"),
        pytest.param(None, None, id="unset"),
    ],
)
def test_allowed_account_ids_are_twelve_digit_ids(value: Any, expected: tuple[str, ...] | None) -> None:
    assert AwsSettings.from_stack_config(config(aws_allowedAccountIds=value), {}).allowed_account_ids == expected


@pytest.mark.parametrize("value", ['["1234"]', "prod", "[]", '["111122223333", null]'])
def test_account_ids_that_are_not_account_ids_are_refused_naming_the_key(value: str) -> None:
    with pytest.raises(ConfigError, match="aws:forbiddenAccountIds must be a list of 12-digit AWS account ids"):
        AwsSettings.from_stack_config(config(aws_forbiddenAccountIds=value), {})


def test_allowed_and_forbidden_account_ids_together_are_refused() -> None:
    get = config(aws_allowedAccountIds='["111122223333"]', aws_forbiddenAccountIds='["222233334444"]')
    with pytest.raises(ConfigError, match="aws:allowedAccountIds and aws:forbiddenAccountIds are both set"):
        AwsSettings.from_stack_config(get, {})


@pytest.mark.parametrize(
    ("settings", "account", "refusal"),
    [
        pytest.param(AwsSettings(), "999988887777", None, id="no-guard"),
        pytest.param(AwsSettings(allowed_account_ids=("111122223333",)), "111122223333", None, id="allowed"),
        pytest.param(
            AwsSettings(allowed_account_ids=("111122223333",)),
            "999988887777",
            "account 999988887777, which is not in aws:allowedAccountIds (111122223333)",
            id="not-allowed",
        ),
        pytest.param(AwsSettings(forbidden_account_ids=("999988887777",)), "111122223333", None, id="not-forbidden"),
        pytest.param(
            AwsSettings(forbidden_account_ids=("999988887777",)),
            "999988887777",
            "account 999988887777, which is in aws:forbiddenAccountIds",
            id="forbidden",
        ),
    ],
)
def test_account_refusal_names_the_account_and_the_config_key(
    settings: AwsSettings, account: str, refusal: str | None
) -> None:
    assert settings.account_refusal(account) == refusal
