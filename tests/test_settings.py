"""AwsSettings: Region, profile and KMS endpoint from the stack config the engine hands to configure()."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kms_connection.settings import AwsSettings, kms_endpoint_from

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


def test_credentials_are_never_part_of_the_settings() -> None:
    settings = AwsSettings.from_stack_config(config(aws_accessKey="AKIA...", aws_secretKey="secret"), {})
    assert settings == AwsSettings()


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
