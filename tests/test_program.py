"""The stack program (`__main__.py`) under `pulumi.runtime.set_mocks`: stack config in, resources and inputs out."""

from __future__ import annotations

from typing import Any

import pytest

from kms_connection.provider import CustomKeyStoreConnectionProvider
from seam.engine import (
    PROJECT_ROOT,
    ProgramError,
    Registration,
    capture_registrations,
    decode_provider,
    is_secret,
    unwrap_secrets,
)

PROGRAM = PROJECT_ROOT / "__main__.py"
CONNECTION = "pulumi-python:dynamic/kms:CustomKeyStoreConnection"
CONNECTION_SET = "pulumi-python:dynamic/kms:CustomKeyStoreConnectionSet"
AWS_STORE = "aws:kms/customKeyStore:CustomKeyStore"
HSM = "cks-0123456789abcdef0"
XKS = "cks-0fedcba9876543210"


def run(config: dict[str, Any], **kwargs: Any) -> dict[str, Registration]:
    registrations = capture_registrations(PROGRAM, {"aws:region": "us-east-1", **config}, **kwargs)
    return {registration.name: registration for registration in registrations}


def user_inputs(registration: Registration) -> dict[str, Any]:
    """The inputs the program set, without the serialized provider."""
    inputs = unwrap_secrets(registration.inputs)
    assert isinstance(inputs, dict)
    return {key: value for key, value in inputs.items() if key != "__provider"}


def test_each_key_store_entry_becomes_one_connection_with_its_settings() -> None:
    resources = run(
        {
            "kms-connection:keyStores": [
                {"id": HSM, "name": "primary-hsm", "desiredState": "CONNECTED", "connectTimeoutSeconds": 1200},
                {"id": XKS, "onDelete": "retain", "region": "eu-west-1"},
            ]
        }
    )
    assert {name: r.type_ for name, r in resources.items()} == {"primary-hsm": CONNECTION, XKS: CONNECTION}
    assert user_inputs(resources["primary-hsm"]) == {
        "custom_key_store_id": HSM,
        "desired_state": "CONNECTED",
        "connect_timeout_seconds": 1200,
        "resource_name": "primary-hsm",
    }
    assert user_inputs(resources[XKS]) == {
        "custom_key_store_id": XKS,
        "on_delete": "retain",
        "region": "eu-west-1",
        "resource_name": XKS,
    }


def test_every_connection_carries_the_serialized_provider_as_a_secret() -> None:
    resources = run({"kms-connection:keyStores": [{"id": HSM}]})
    provider = resources[HSM].inputs["__provider"]
    assert is_secret(provider)
    assert isinstance(decode_provider(provider), CustomKeyStoreConnectionProvider)


def test_a_key_store_set_entry_becomes_one_set() -> None:
    resources = run({"kms-connection:keyStoreSets": [{"name": "fleet", "ids": [HSM, XKS], "onDelete": "retain"}]})
    assert resources["fleet"].type_ == CONNECTION_SET
    assert user_inputs(resources["fleet"]) == {
        "custom_key_store_ids": [HSM, XKS],
        "on_delete": "retain",
        "resource_name": "fleet",
    }


def test_a_new_cloudhsm_key_store_is_created_and_connected_through_its_id() -> None:
    resources = run(
        {
            "kms-connection:newCloudHsmKeyStore": {
                "name": "new-hsm",
                "cloudHsmClusterId": "cluster-2a3b4c5d6e7",
                "trustAnchorCertificate": "-----BEGIN CERTIFICATE-----",
                "onDelete": "retain",
            },
            "kms-connection:newCloudHsmKeyStorePassword": "kmsuser-password",
        },
        secret_keys=["kms-connection:newCloudHsmKeyStorePassword"],
    )
    assert resources["new-hsm"].type_ == AWS_STORE
    assert resources["new-hsm-connection"].type_ == CONNECTION
    connection = user_inputs(resources["new-hsm-connection"])
    assert connection["on_delete"] == "retain"
    # Under mocks the store's id is the mock's: what matters is that the connection takes it from the store.
    assert connection["custom_key_store_id"].startswith("new-hsm")


def test_an_empty_stack_declares_nothing() -> None:
    assert run({}) == {}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param({"name": "no-id"}, "kms-connection:keyStores[0] needs `id`", id="missing-id"),
        pytest.param(
            {"id": HSM, "desiredStat": "CONNECTED"},
            "kms-connection:keyStores[0] has an unknown key `desiredStat` (did you mean `desiredState`?)",
            id="unknown-key",
        ),
        pytest.param(
            {"id": HSM, "connectTimeoutSeconds": 0},
            "kms-connection:keyStores[0].connectTimeoutSeconds: connectTimeoutSeconds must be",
            id="a-value-the-provider-refuses-named-as-written",
        ),
        pytest.param("cks-0123456789abcdef0", "must be an object", id="not-an-object"),
    ],
)
def test_a_malformed_entry_stops_the_program_with_its_place_in_the_config(entry: Any, message: str) -> None:
    with pytest.raises(ProgramError) as raised:
        run({"kms-connection:keyStores": [entry]})
    assert message in raised.value.stderr


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            {"kms-connection:keyStores": [{"id": HSM}, {"id": HSM, "name": "again"}]},
            f"kms-connection:keyStores[1] lists {HSM}, which kms-connection:keyStores[0] lists too",
            id="two-connections",
        ),
        pytest.param(
            {
                "kms-connection:keyStores": [{"id": HSM, "desiredState": "CONNECTED"}],
                "kms-connection:keyStoreSets": [{"name": "fleet", "ids": [XKS, HSM], "desiredState": "DISCONNECTED"}],
            },
            f"kms-connection:keyStoreSets[0] lists {HSM}, which kms-connection:keyStores[0] lists too",
            id="a-connection-and-a-set",
        ),
        pytest.param(
            {"kms-connection:keyStoreSets": [{"name": "a", "ids": [HSM]}, {"name": "b", "ids": [HSM.upper()]}]},
            f"kms-connection:keyStoreSets[1] lists {HSM.upper()}, which kms-connection:keyStoreSets[0] lists too",
            id="two-sets-any-case",
        ),
    ],
)
def test_a_store_listed_in_two_entries_stops_the_program_naming_both(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ProgramError) as raised:
        run(config)
    assert message in raised.value.stderr
    assert "a key store belongs in one entry" in raised.value.stderr


def test_a_store_listed_twice_in_one_set_stops_the_program_naming_its_index() -> None:
    with pytest.raises(ProgramError) as raised:
        run({"kms-connection:keyStoreSets": [{"name": "fleet", "ids": [HSM, HSM]}]})
    assert f"kms-connection:keyStoreSets[0].ids: ids[1]: {HSM} is listed twice" in raised.value.stderr


def test_an_unknown_stack_config_key_stops_the_program_with_the_nearest_known_one() -> None:
    with pytest.raises(ProgramError) as raised:
        run({"kms-connection:keyStore": [{"id": HSM}]})
    assert "the stack config has an unknown key `keyStore` (did you mean `keyStores`?)" in raised.value.stderr
