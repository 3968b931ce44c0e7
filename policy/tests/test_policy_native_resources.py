"""The pack sees the provider plugin's native resources (provider/) as it sees the dynamic ones: their own type
tokens, camelCase properties, the same verdicts."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from kms_policy_testkit import (
    Violations,
    connection_args,
    policies,
    policy,
    remedy,
    stack_args,
    stack_resource,
    validate,
)

ROOT = Path(__file__).resolve().parents[2]
STORE = "cks-1234567890abcdef0"
OTHER_STORE = "cks-0fedcba9876543210"


def test_native_type_tokens_are_those_of_the_plugins_schema() -> None:
    # The plugin's package lives in provider/, which the engine puts first on the plugin's path.
    sys.path.insert(0, str(ROOT / "provider"))
    try:
        schema = importlib.import_module("kms_connection_plugin.schema")
    finally:
        sys.path.remove(str(ROOT / "provider"))

    assert {policies.NATIVE_CONNECTION_TYPE, policies.NATIVE_CONNECTION_SET_TYPE} == set(schema.build()["resources"])
    assert {policies.NATIVE_CONNECTION_TYPE, policies.NATIVE_CONNECTION_SET_TYPE} < policies.CONNECTION_TYPES


def test_desired_connected_reports_a_native_connection_declared_disconnected_naming_its_property() -> None:
    args = connection_args(
        {"customKeyStoreId": STORE, "desiredState": "DISCONNECTED"}, resource_type=policies.NATIVE_CONNECTION_TYPE
    )

    (message,) = validate(policy(policies.DESIRED_CONNECTED, stack="prod"), args).messages

    assert STORE in message and "desiredState='CONNECTED'" in message


def test_retain_on_delete_passes_a_native_set_with_on_delete_retain() -> None:
    args = connection_args(
        {"customKeyStoreIds": [STORE, OTHER_STORE], "onDelete": "retain"},
        name="stores",
        resource_type=policies.NATIVE_CONNECTION_SET_TYPE,
    )

    assert validate(policy(policies.RETAIN_ON_DELETE, stack="prod"), args).reported == []


def test_disconnect_guard_reports_a_native_connection_without_refuse_naming_its_property() -> None:
    args = connection_args(
        {"customKeyStoreId": STORE, "disconnectGuard": "warn"}, resource_type=policies.NATIVE_CONNECTION_TYPE
    )

    (message,) = validate(policy(policies.DISCONNECT_GUARD_REFUSE, stack="prod"), args).messages

    assert STORE in message and "disconnectGuard='warn'" in message and "set disconnectGuard='refuse'" in message


def test_disconnect_guard_passes_a_native_set_that_refuses_disconnects() -> None:
    args = connection_args(
        {"customKeyStoreIds": [STORE, OTHER_STORE], "disconnectGuard": "refuse"},
        name="stores",
        resource_type=policies.NATIVE_CONNECTION_SET_TYPE,
    )

    assert validate(policy(policies.DISCONNECT_GUARD_REFUSE, stack="prod"), args).reported == []


def test_timeouts_report_a_native_connect_timeout_out_of_bounds_naming_its_property() -> None:
    args = connection_args(
        {"customKeyStoreId": STORE, "connectTimeoutSeconds": 5}, resource_type=policies.NATIVE_CONNECTION_TYPE
    )

    (message,) = validate(policy(policies.TIMEOUTS_WITHIN_BOUNDS), args).messages

    assert STORE in message and "connectTimeoutSeconds=5 s" in message


def test_every_store_connected_counts_a_native_connection_of_the_store() -> None:
    store = stack_resource(policies.KEY_STORE_TYPE, "hsm-store", {"id": STORE, "customKeyStoreName": "hsm"})
    native = stack_resource(policies.NATIVE_CONNECTION_TYPE, "hsm-connection", {"customKeyStoreId": STORE})

    assert validate(policy(policies.EVERY_STORE_CONNECTED), stack_args([store, native])).reported == []


def test_no_failed_connections_reports_a_store_a_native_set_observed_failed() -> None:
    native = stack_resource(
        policies.NATIVE_CONNECTION_SET_TYPE,
        "stores",
        {
            "customKeyStoreIds": [STORE, OTHER_STORE],
            "connectionStates": {STORE: "CONNECTED", OTHER_STORE: "FAILED"},
            "connectionErrorCodes": {OTHER_STORE: "USER_LOCKED_OUT"},
        },
    )

    violations = validate(policy(policies.NO_FAILED_CONNECTIONS), stack_args([native]), Violations())

    (message,) = violations.messages
    assert OTHER_STORE in message and "USER_LOCKED_OUT" in message and remedy("USER_LOCKED_OUT") in message
