"""Each policy checks its own config before it decides anything: the CLI checks a pack's config against the schemas
for ``type`` and ``properties`` only, so an unknown key or crossed bounds would otherwise pass in silence."""

from __future__ import annotations

from typing import Any

import pytest
from kms_policy_testkit import connection_args, policies, policy, stack_args, validate
from pulumi_policy import ResourceValidationArgs, StackValidationArgs

from kms_connection.inputs import MAX_TIMEOUT_SECONDS

STORE = "cks-1234567890abcdef0"
TIMEOUTS = policies.TIMEOUTS_WITHIN_BOUNDS


def args_for(policy_name: str, config: dict[str, Any]) -> ResourceValidationArgs | StackValidationArgs:
    """Arguments the policy would pass with an empty config."""
    if policy_name in (policies.EVERY_STORE_CONNECTED, policies.NO_FAILED_CONNECTIONS):
        return stack_args([], config=config)
    return connection_args({"custom_key_store_id": STORE, "on_delete": "retain"}, config=config)


@pytest.mark.parametrize(
    ("policy_name", "typo", "meant"),
    [
        (policies.DESIRED_CONNECTED, "protectedStack", "protectedStacks"),
        (policies.RETAIN_ON_DELETE, "allowedKeystores", "allowedKeyStores"),
        (policies.EVERY_STORE_CONNECTED, "allowedKeyStore", "allowedKeyStores"),
        (TIMEOUTS, "minConnectTimeout", "minConnectTimeoutSeconds"),
        (policies.NO_FAILED_CONNECTIONS, "allowed_key_stores", "allowedKeyStores"),
    ],
)
def test_each_policy_rejects_an_unknown_config_key_naming_the_nearest_one(
    policy_name: str, typo: str, meant: str
) -> None:
    with pytest.raises(policies.PolicyConfigError) as rejected:
        validate(policy(policy_name), args_for(policy_name, {typo: ["prod*"]}))

    message = str(rejected.value)
    assert message.startswith(f"policy '{policy_name}' of policy pack 'kms-connection' has config it cannot apply:")
    assert f"'{typo}' is not a property of this policy" in message and f"Did you mean '{meant}'?" in message


def test_an_unknown_config_key_without_a_near_one_lists_the_properties() -> None:
    with pytest.raises(policies.PolicyConfigError) as rejected:
        validate(policy(policies.DESIRED_CONNECTED), args_for(policies.DESIRED_CONNECTED, {"colour": "blue"}))

    assert "(properties: protectedStacks, allowedKeyStores)." in str(rejected.value)
    assert "Did you mean" not in str(rejected.value)


def test_config_is_checked_for_resources_the_policy_does_not_apply_to() -> None:
    args = connection_args({"id": STORE}, config={"protectedStack": ["live-*"]}, resource_type=policies.KEY_STORE_TYPE)

    with pytest.raises(policies.PolicyConfigError):
        validate(policy(policies.DESIRED_CONNECTED), args)


def test_config_is_checked_in_a_stack_that_no_pattern_protects() -> None:
    args = connection_args({"custom_key_store_id": STORE}, stack="dev", config={"protectedStack": ["live-*"]})

    with pytest.raises(policies.PolicyConfigError):
        validate(policy(policies.RETAIN_ON_DELETE, stack="dev"), args)


def test_timeouts_reject_a_minimum_above_its_configured_maximum() -> None:
    config = {"minDisconnectTimeoutSeconds": 600, "maxDisconnectTimeoutSeconds": 300}

    with pytest.raises(policies.PolicyConfigError) as rejected:
        validate(policy(TIMEOUTS), args_for(TIMEOUTS, config))

    assert "minDisconnectTimeoutSeconds=600 is above maxDisconnectTimeoutSeconds=300: no timeout could pass." in str(
        rejected.value
    )


def test_timeouts_reject_a_minimum_above_the_default_maximum() -> None:
    with pytest.raises(policies.PolicyConfigError) as rejected:
        validate(policy(TIMEOUTS), args_for(TIMEOUTS, {"minConnectTimeoutSeconds": 9000}))

    assert "minConnectTimeoutSeconds=9000 is above maxConnectTimeoutSeconds=7200 (the default)" in str(rejected.value)


@pytest.mark.parametrize("seconds", [0, -5, MAX_TIMEOUT_SECONDS + 1])
def test_timeouts_reject_bounds_outside_what_the_provider_accepts(seconds: int) -> None:
    with pytest.raises(policies.PolicyConfigError) as rejected:
        validate(policy(TIMEOUTS), args_for(TIMEOUTS, {"minConnectTimeoutSeconds": seconds}))

    assert f"minConnectTimeoutSeconds must lie within 1..86400 s, the timeouts the provider accepts; got {seconds}" in (
        str(rejected.value)
    )


@pytest.mark.parametrize("seconds", [1, MAX_TIMEOUT_SECONDS])
def test_timeouts_accept_the_provider_bounds_themselves(seconds: int) -> None:
    config = {"minConnectTimeoutSeconds": seconds, "maxConnectTimeoutSeconds": seconds}
    args = connection_args({"custom_key_store_id": STORE, "connect_timeout_seconds": seconds}, config=config)

    assert validate(policy(TIMEOUTS), args).reported == []


@pytest.mark.parametrize("value", [90.5, "600", True, None])
def test_timeouts_reject_a_bound_that_is_not_a_whole_number(value: object) -> None:
    with pytest.raises(policies.PolicyConfigError) as rejected:
        validate(policy(TIMEOUTS), args_for(TIMEOUTS, {"maxConnectTimeoutSeconds": value}))

    assert "maxConnectTimeoutSeconds must be a whole number of seconds" in str(rejected.value)


def test_timeouts_accept_a_whole_number_sent_as_a_double() -> None:
    # Config crosses the wire in a protobuf Struct, where every number is a double.
    config = {"minConnectTimeoutSeconds": 1200.0}

    assert validate(policy(TIMEOUTS), args_for(TIMEOUTS, config)).reported == []


def test_a_list_config_property_rejects_anything_but_strings() -> None:
    with pytest.raises(policies.PolicyConfigError) as rejected:
        validate(policy(policies.DESIRED_CONNECTED), args_for(policies.DESIRED_CONNECTED, {"allowedKeyStores": STORE}))

    assert f'allowedKeyStores must be a list of strings; got "{STORE}".' in str(rejected.value)


def test_every_problem_of_a_config_is_named_at_once() -> None:
    config = {"minConnectTimeout": 60, "maxDisconnectTimeoutSeconds": 0}

    with pytest.raises(policies.PolicyConfigError) as rejected:
        validate(policy(TIMEOUTS), args_for(TIMEOUTS, config))

    assert "'minConnectTimeout'" in str(rejected.value) and "maxDisconnectTimeoutSeconds must lie" in str(
        rejected.value
    )


def test_timeout_bound_schemas_declare_the_providers_range() -> None:
    (timeouts,) = (p for p in policies.build_policies() if p.name == TIMEOUTS)
    assert timeouts.config_schema is not None

    for key, schema in timeouts.config_schema.properties.items():
        assert (schema["minimum"], schema["maximum"]) == (1, MAX_TIMEOUT_SECONDS), key
    assert (policies.MIN_TIMEOUT_SECONDS, policies.MAX_TIMEOUT_SECONDS) == (1, MAX_TIMEOUT_SECONDS)
