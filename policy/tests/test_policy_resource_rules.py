"""The pack's resource policies, called with the arguments pulumi-policy's analyzer server builds."""

from __future__ import annotations

import contextvars

import pulumi
import pulumi.runtime
import pytest
from kms_policy_testkit import UNKNOWN, Violations, connection_args, policies, policy, set_args, validate
from pulumi_policy import EnforcementLevel, StackValidationPolicy
from pulumi_policy.proxy import UnknownValueError

from kms_connection import CustomKeyStoreConnection, CustomKeyStoreConnectionSet
from kms_connection.inputs import DEFAULTS, GUARD_DEFAULT

STORE = "cks-1234567890abcdef0"
OTHER_STORE = "cks-0fedcba9876543210"
THIRD_STORE = "cks-00112233445566778"

DESIRED_CONNECTED = policies.DESIRED_CONNECTED
RETAIN_ON_DELETE = policies.RETAIN_ON_DELETE
TIMEOUTS = policies.TIMEOUTS_WITHIN_BOUNDS
GUARD = policies.DISCONNECT_GUARD_REFUSE


# --- the pack's shape -------------------------------------------------------------------------------------------


def test_pack_has_the_six_policies_with_their_default_enforcement_levels() -> None:
    levels = {p.name: p.enforcement_level for p in policies.build_policies()}

    assert levels == {
        DESIRED_CONNECTED: EnforcementLevel.MANDATORY,
        RETAIN_ON_DELETE: EnforcementLevel.MANDATORY,
        GUARD: EnforcementLevel.MANDATORY,
        policies.EVERY_STORE_CONNECTED: EnforcementLevel.MANDATORY,
        TIMEOUTS: EnforcementLevel.ADVISORY,
        policies.NO_FAILED_CONNECTIONS: EnforcementLevel.ADVISORY,
    }


def test_every_policy_documents_its_config_properties() -> None:
    for p in policies.build_policies():
        assert p.description
        assert p.config_schema is not None and p.config_schema.properties, p.name
        for key, schema in p.config_schema.properties.items():
            assert schema.get("description") and "default" in schema, (p.name, key)


def test_type_tokens_are_those_the_resource_classes_register_with() -> None:
    # The pack writes the tokens out so that the analyzer process need not import kms_connection.resource.
    assert "pulumi-python:" + CustomKeyStoreConnection._resource_type_name == policies.CONNECTION_TYPE
    assert "pulumi-python:" + CustomKeyStoreConnectionSet._resource_type_name == policies.CONNECTION_SET_TYPE
    native = {policies.NATIVE_CONNECTION_TYPE, policies.NATIVE_CONNECTION_SET_TYPE}
    assert {policies.CONNECTION_TYPE, policies.CONNECTION_SET_TYPE, *native} == policies.CONNECTION_TYPES


def test_provider_defaults_are_those_of_the_providers_check() -> None:
    assert {
        "desired_state": policies.DEFAULT_DESIRED_STATE,
        "on_delete": policies.DEFAULT_ON_DELETE,
        "connect_timeout_seconds": policies.DEFAULT_CONNECT_TIMEOUT_SECONDS,
        "disconnect_timeout_seconds": policies.DEFAULT_DISCONNECT_TIMEOUT_SECONDS,
    } == DEFAULTS
    assert GUARD_DEFAULT.value == policies.DEFAULT_DISCONNECT_GUARD


def test_stack_policies_are_stack_validation_policies() -> None:
    stack_policies = {p.name for p in policies.build_policies() if isinstance(p, StackValidationPolicy)}

    assert stack_policies == {policies.EVERY_STORE_CONNECTED, policies.NO_FAILED_CONNECTIONS}


def test_stack_name_defaults_to_the_stack_the_analyzer_configures_the_runtime_with() -> None:
    def analyzer_configured() -> str:
        # What the analyzer server does with PULUMI_PROJECT/PULUMI_STACK/PULUMI_DRY_RUN before each analysis.
        pulumi.runtime.configure(pulumi.runtime.Settings(project="kms-connection", stack="production-us"))
        return policies.current_stack_name()

    # The runtime's settings are context variables: a copy of the context keeps them from other tests.
    assert contextvars.copy_context().run(analyzer_configured) == "production-us"


# --- connection-desired-connected-in-protected-stacks -----------------------------------------------------------


def test_desired_connected_passes_a_connected_connection_in_a_protected_stack() -> None:
    args = connection_args({"custom_key_store_id": STORE, "desired_state": "CONNECTED"})

    assert validate(policy(DESIRED_CONNECTED, stack="prod"), args).reported == []


def test_desired_connected_treats_a_missing_desired_state_as_connected() -> None:
    args = connection_args({"custom_key_store_id": STORE})

    assert validate(policy(DESIRED_CONNECTED, stack="prod"), args).reported == []


def test_desired_connected_reports_disconnected_in_a_protected_stack_naming_resource_store_and_fix() -> None:
    args = connection_args(
        {"custom_key_store_id": STORE, "desired_state": "DISCONNECTED"}, name="payments", stack="prod-eu"
    )

    (message,) = validate(policy(DESIRED_CONNECTED, stack="prod-eu"), args).messages

    assert "'payments'" in message and args.urn in message
    assert STORE in message and "prod-eu" in message and "'prod*'" in message
    assert "desired_state='CONNECTED'" in message and "allowedKeyStores" in message


@pytest.mark.parametrize("written", ["disconnected", "Disconnected", " DISCONNECTED "])
def test_desired_connected_reads_desired_state_in_any_letter_case_as_check_does(written: str) -> None:
    args = connection_args({"custom_key_store_id": STORE, "desired_state": written})

    (message,) = validate(policy(DESIRED_CONNECTED), args).messages

    assert f"desired_state='{written}'" in message


@pytest.mark.parametrize("written", ["connected", "Connected", " CONNECTED"])
def test_desired_connected_passes_connected_in_any_letter_case(written: str) -> None:
    args = connection_args({"custom_key_store_id": STORE, "desired_state": written})

    assert validate(policy(DESIRED_CONNECTED), args).reported == []


def test_desired_connected_ignores_a_stack_that_no_pattern_protects() -> None:
    args = connection_args({"custom_key_store_id": STORE, "desired_state": "DISCONNECTED"}, stack="dev")

    assert validate(policy(DESIRED_CONNECTED, stack="dev"), args).reported == []


def test_desired_connected_matches_protected_stacks_case_sensitively() -> None:
    args = connection_args({"custom_key_store_id": STORE, "desired_state": "DISCONNECTED"}, stack="Prod")

    assert validate(policy(DESIRED_CONNECTED, stack="Prod"), args).reported == []


def test_desired_connected_protects_the_configured_stack_patterns_instead_of_the_defaults() -> None:
    config = {"protectedStacks": ["live-*"]}
    props = {"custom_key_store_id": STORE, "desired_state": "DISCONNECTED"}

    live = validate(policy(DESIRED_CONNECTED, stack="live-eu"), connection_args(props, config=config))
    prod = validate(policy(DESIRED_CONNECTED, stack="prod"), connection_args(props, config=config))

    assert len(live.reported) == 1 and "'live-*'" in live.messages[0]
    assert prod.reported == []


def test_desired_connected_allows_an_allow_listed_key_store() -> None:
    args = connection_args(
        {"custom_key_store_id": STORE, "desired_state": "DISCONNECTED"}, config={"allowedKeyStores": [STORE]}
    )

    assert validate(policy(DESIRED_CONNECTED), args).reported == []


def test_desired_connected_allow_list_does_not_cover_other_key_stores() -> None:
    args = connection_args(
        {"custom_key_store_id": STORE, "desired_state": "DISCONNECTED"}, config={"allowedKeyStores": [OTHER_STORE]}
    )

    assert len(validate(policy(DESIRED_CONNECTED), args).reported) == 1


def test_desired_connected_reports_a_disconnected_connection_at_once_when_no_store_is_allow_listed() -> None:
    # With an empty allow-list (the default) the unknown id of a store being created cannot change the verdict.
    args = connection_args({"custom_key_store_id": UNKNOWN, "desired_state": "DISCONNECTED"}, name="ledger")

    (message,) = validate(policy(DESIRED_CONNECTED), args).messages

    assert "'ledger'" in message and "key store (known once the key store exists)" in message
    assert "desired_state='CONNECTED'" in message


def test_desired_connected_defers_an_unknown_store_id_that_the_allow_list_could_hold() -> None:
    args = connection_args(
        {"custom_key_store_id": UNKNOWN, "desired_state": "DISCONNECTED"}, config={"allowedKeyStores": [STORE]}
    )

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(DESIRED_CONNECTED), args)

    assert deferred.value.props == ["custom_key_store_id"]
    assert deferred.value.message.startswith("waits for custom_key_store_id of CustomKeyStoreConnection 'conn' ")
    assert f"allowedKeyStores ({STORE})" in deferred.value.message


def test_desired_connected_defers_an_unknown_desired_state_naming_it() -> None:
    args = connection_args({"custom_key_store_id": STORE, "desired_state": UNKNOWN})

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(DESIRED_CONNECTED), args)

    assert deferred.value.props == ["desired_state"]
    assert deferred.value.message.startswith("waits for desired_state of CustomKeyStoreConnection 'conn' ")


def test_desired_connected_passes_an_unknown_desired_state_when_every_store_is_allow_listed() -> None:
    args = connection_args(
        {"custom_key_store_id": STORE, "desired_state": UNKNOWN}, config={"allowedKeyStores": [STORE]}
    )

    assert validate(policy(DESIRED_CONNECTED), args).reported == []


def test_desired_connected_does_not_read_an_unknown_desired_state_in_an_unprotected_stack() -> None:
    args = connection_args({"custom_key_store_id": UNKNOWN, "desired_state": UNKNOWN}, stack="dev")

    assert validate(policy(DESIRED_CONNECTED, stack="dev"), args).reported == []


def test_desired_connected_reports_a_connection_without_a_store_id() -> None:
    args = connection_args({"desired_state": "DISCONNECTED"})

    (message,) = validate(policy(DESIRED_CONNECTED), args).messages

    assert "for no key store (custom_key_store_id is not set)" in message
    assert "name the key store in custom_key_store_id" in message


def test_desired_connected_reports_an_empty_store_id() -> None:
    args = connection_args({"custom_key_store_id": "  ", "desired_state": "DISCONNECTED"})

    (message,) = validate(policy(DESIRED_CONNECTED), args).messages

    assert "for key store '  ' (not a key store id)" in message


@pytest.mark.parametrize(
    ("written", "shown"),
    [(1234, "1234"), ([STORE], f'["{STORE}"]'), ({"id": STORE}, f'{{"id": "{STORE}"}}'), (True, "true")],
    ids=["number", "list", "object", "boolean"],
)
def test_desired_connected_shows_a_store_id_of_the_wrong_type_as_written(written: object, shown: str) -> None:
    args = connection_args({"custom_key_store_id": written, "desired_state": "DISCONNECTED"})

    (message,) = validate(policy(DESIRED_CONNECTED), args).messages

    assert f"for key store {shown} (not a key store id)" in message
    assert "Proxy" not in message and "None" not in message


def test_desired_connected_shows_a_desired_state_of_the_wrong_type_as_written() -> None:
    args = connection_args({"custom_key_store_id": STORE, "desired_state": ["DISCONNECTED"]})

    (message,) = validate(policy(DESIRED_CONNECTED), args).messages

    assert 'desired_state=["DISCONNECTED"] for key store' in message and "Proxy" not in message


def test_desired_connected_redacts_values_named_by_additional_secret_outputs() -> None:
    args = connection_args(
        {"custom_key_store_id": STORE, "desired_state": "DISCONNECTED"},
        additional_secret_outputs=["custom_key_store_id"],
    )

    (message,) = validate(policy(DESIRED_CONNECTED), args).messages

    assert STORE not in message and "key store [secret]" in message


def test_desired_connected_decides_a_connected_connection_without_its_unknown_store_id() -> None:
    args = connection_args({"custom_key_store_id": UNKNOWN, "desired_state": "CONNECTED"})

    assert validate(policy(DESIRED_CONNECTED), args).reported == []


def test_desired_connected_ignores_other_resource_types() -> None:
    args = connection_args(
        {"custom_key_store_id": STORE, "desired_state": "DISCONNECTED"}, resource_type="pulumi-python:dynamic:Resource"
    )

    assert validate(policy(DESIRED_CONNECTED), args).reported == []


# --- no-disconnect-on-delete-in-protected-stacks ----------------------------------------------------------------


def test_retain_on_delete_reports_the_default_disconnect_in_a_protected_stack() -> None:
    args = connection_args({"custom_key_store_id": STORE}, name="payments")

    (message,) = validate(policy(RETAIN_ON_DELETE), args).messages

    assert "'payments'" in message and args.urn in message and STORE in message
    assert "on_delete='disconnect'" in message and "on_delete='retain'" in message


def test_retain_on_delete_passes_retain_in_a_protected_stack() -> None:
    args = connection_args({"custom_key_store_id": STORE, "on_delete": "retain"})

    assert validate(policy(RETAIN_ON_DELETE), args).reported == []


@pytest.mark.parametrize("written", ["RETAIN", "Retain", " retain "])
def test_retain_on_delete_passes_retain_in_any_letter_case(written: str) -> None:
    args = connection_args({"custom_key_store_id": STORE, "on_delete": written})

    assert validate(policy(RETAIN_ON_DELETE), args).reported == []


def test_retain_on_delete_reports_disconnect_in_upper_case() -> None:
    args = connection_args({"custom_key_store_id": STORE, "on_delete": "DISCONNECT"})

    assert len(validate(policy(RETAIN_ON_DELETE), args).reported) == 1


def test_retain_on_delete_ignores_a_stack_that_no_pattern_protects() -> None:
    args = connection_args({"custom_key_store_id": STORE, "on_delete": "disconnect"}, stack="staging")

    assert validate(policy(RETAIN_ON_DELETE, stack="staging"), args).reported == []


def test_retain_on_delete_protects_production_stacks_by_default() -> None:
    args = connection_args({"custom_key_store_id": STORE}, stack="production")

    assert len(validate(policy(RETAIN_ON_DELETE, stack="production"), args).reported) == 1


def test_retain_on_delete_allows_an_allow_listed_key_store() -> None:
    args = connection_args({"custom_key_store_id": STORE}, config={"allowedKeyStores": [STORE]})

    assert validate(policy(RETAIN_ON_DELETE), args).reported == []


def test_retain_on_delete_reports_the_default_at_once_when_the_store_id_is_unknown() -> None:
    # The most common shape of a new store in a production stack: its connection, with the default on_delete.
    args = connection_args({"custom_key_store_id": UNKNOWN}, name="ledger-connection")

    (message,) = validate(policy(RETAIN_ON_DELETE), args).messages

    assert "'ledger-connection'" in message and "on_delete='disconnect'" in message
    assert "key store (known once the key store exists)" in message


def test_retain_on_delete_defers_an_unknown_store_id_that_the_allow_list_could_hold() -> None:
    args = connection_args({"custom_key_store_id": UNKNOWN}, config={"allowedKeyStores": [STORE]})

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(RETAIN_ON_DELETE), args)

    assert deferred.value.props == ["custom_key_store_id"]
    assert "waits for custom_key_store_id of CustomKeyStoreConnection 'conn'" in deferred.value.message


def test_retain_on_delete_reports_a_connection_without_a_store_id() -> None:
    args = connection_args({"on_delete": "disconnect"})

    (message,) = validate(policy(RETAIN_ON_DELETE), args).messages

    assert "for no key store (custom_key_store_id is not set)" in message


# --- disconnect-guard-in-protected-stacks -----------------------------------------------------------------------


def test_disconnect_guard_reports_the_default_warn_in_a_protected_stack_naming_resource_store_and_fix() -> None:
    args = connection_args({"custom_key_store_id": STORE}, name="payments", stack="prod-eu")

    (message,) = validate(policy(GUARD, stack="prod-eu"), args).messages

    assert "'payments'" in message and args.urn in message and STORE in message and "'prod*'" in message
    assert "disconnect_guard='warn' for key store" in message
    assert "enabled KMS keys" in message
    assert "Fix: set disconnect_guard='refuse'" in message and "allowedKeyStores" in message


@pytest.mark.parametrize("written", ["warn", "off", "OFF"])
def test_disconnect_guard_reports_anything_but_refuse_in_a_protected_stack(written: str) -> None:
    args = connection_args({"custom_key_store_id": STORE, "disconnect_guard": written})

    (message,) = validate(policy(GUARD), args).messages

    assert f"disconnect_guard='{written}'" in message


@pytest.mark.parametrize("written", ["refuse", "Refuse", " REFUSE "])
def test_disconnect_guard_passes_refuse_in_any_letter_case(written: str) -> None:
    args = connection_args({"custom_key_store_id": STORE, "disconnect_guard": written})

    assert validate(policy(GUARD), args).reported == []


def test_disconnect_guard_checks_a_set_as_it_checks_a_connection() -> None:
    reported = validate(policy(GUARD), set_args({"custom_key_store_ids": [STORE, OTHER_STORE]})).messages
    passed = validate(policy(GUARD), set_args({"custom_key_store_ids": [STORE], "disconnect_guard": "refuse"}))

    (message,) = reported
    assert f"key stores {STORE}, {OTHER_STORE}" in message
    assert passed.reported == []


def test_disconnect_guard_ignores_a_stack_that_no_pattern_protects() -> None:
    args = connection_args({"custom_key_store_id": STORE}, stack="dev")

    assert validate(policy(GUARD, stack="dev"), args).reported == []


def test_disconnect_guard_allows_an_allow_listed_key_store() -> None:
    args = connection_args({"custom_key_store_id": STORE}, config={"allowedKeyStores": [STORE]})

    assert validate(policy(GUARD), args).reported == []


def test_disconnect_guard_defers_an_unknown_guard_unless_every_store_is_allow_listed() -> None:
    args = connection_args({"custom_key_store_id": STORE, "disconnect_guard": UNKNOWN})
    allowed = connection_args(
        {"custom_key_store_id": STORE, "disconnect_guard": UNKNOWN}, config={"allowedKeyStores": [STORE]}
    )

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(GUARD), args)

    assert "waits for disconnect_guard of CustomKeyStoreConnection 'conn'" in deferred.value.message
    assert validate(policy(GUARD), allowed).reported == []


def test_disconnect_guard_reports_the_default_at_once_when_the_store_id_is_unknown() -> None:
    args = connection_args({"custom_key_store_id": UNKNOWN}, name="ledger-connection")

    (message,) = validate(policy(GUARD), args).messages

    assert "'ledger-connection'" in message and "disconnect_guard='warn'" in message


# --- connection-timeouts-within-bounds --------------------------------------------------------------------------


def test_timeouts_pass_the_provider_defaults() -> None:
    args = connection_args({"custom_key_store_id": STORE})

    assert validate(policy(TIMEOUTS), args).reported == []


def test_timeouts_report_a_connect_timeout_below_the_default_minimum() -> None:
    args = connection_args({"custom_key_store_id": STORE, "connect_timeout_seconds": 30}, name="payments")

    (message,) = validate(policy(TIMEOUTS), args).messages

    assert "'payments'" in message and STORE in message
    assert "connect_timeout_seconds=30 s" in message and "60..7200 s" in message


@pytest.mark.parametrize("seconds", [120, 300], ids=["local-xks", "local-hsm"])
def test_timeouts_default_bounds_pass_the_connect_timeouts_of_the_local_stack(seconds: int) -> None:
    args = connection_args({"custom_key_store_id": STORE, "connect_timeout_seconds": seconds})

    assert validate(policy(TIMEOUTS), args).reported == []


def test_timeouts_report_a_connect_timeout_shorter_than_a_cloudhsm_connect_when_configured() -> None:
    args = connection_args(
        {"custom_key_store_id": STORE, "connect_timeout_seconds": 600}, config={"minConnectTimeoutSeconds": 1200}
    )

    (message,) = validate(policy(TIMEOUTS), args).messages

    assert "connect_timeout_seconds=600 s" in message and "1200..7200 s" in message


def test_timeouts_give_the_connect_reason_for_the_connect_timeout() -> None:
    args = connection_args({"custom_key_store_id": STORE, "connect_timeout_seconds": 30})

    (message,) = validate(policy(TIMEOUTS), args).messages

    assert "still connecting (a CloudHSM key store can take about 20 minutes" in message
    assert "disconnecting" not in message


def test_timeouts_give_the_disconnect_reason_for_the_disconnect_timeout() -> None:
    args = connection_args({"custom_key_store_id": STORE, "disconnect_timeout_seconds": 7200})

    (message,) = validate(policy(TIMEOUTS), args).messages

    assert "still disconnecting" in message and "a store that will not disconnect" in message
    assert "still connecting" not in message and "CloudHSM" not in message


def test_timeouts_report_a_disconnect_timeout_above_the_bound() -> None:
    args = connection_args({"custom_key_store_id": STORE, "disconnect_timeout_seconds": 7200})

    (message,) = validate(policy(TIMEOUTS), args).messages

    assert "disconnect_timeout_seconds=7200 s" in message and "60..3600 s" in message


def test_timeouts_report_both_timeouts_when_both_are_out_of_bounds() -> None:
    args = connection_args(
        {"custom_key_store_id": STORE, "connect_timeout_seconds": 9000, "disconnect_timeout_seconds": 10}
    )

    assert len(validate(policy(TIMEOUTS), args).reported) == 2


def test_timeouts_accept_the_bounds_themselves() -> None:
    args = connection_args(
        {"custom_key_store_id": STORE, "connect_timeout_seconds": 1200, "disconnect_timeout_seconds": 3600}
    )

    assert validate(policy(TIMEOUTS), args).reported == []


def test_timeouts_use_the_configured_bounds() -> None:
    config = {"minConnectTimeoutSeconds": 60, "maxConnectTimeoutSeconds": 300}
    args = connection_args({"custom_key_store_id": STORE, "connect_timeout_seconds": 120}, config=config)
    default = connection_args({"custom_key_store_id": STORE}, config=config)

    assert validate(policy(TIMEOUTS), args).reported == []
    (message,) = validate(policy(TIMEOUTS), default).messages
    assert "connect_timeout_seconds=1800 s" in message and "60..300 s" in message


def test_timeouts_report_a_timeout_that_is_not_a_number() -> None:
    args = connection_args({"custom_key_store_id": STORE, "connect_timeout_seconds": "half an hour"})

    (message,) = validate(policy(TIMEOUTS), args).messages

    assert "connect_timeout_seconds='half an hour'" in message


def test_timeouts_name_an_unknown_store_id_without_failing() -> None:
    args = connection_args({"custom_key_store_id": UNKNOWN, "connect_timeout_seconds": 30})

    (message,) = validate(policy(TIMEOUTS), args).messages

    assert "known once the key store exists" in message


def test_timeouts_defer_a_timeout_unknown_during_preview() -> None:
    args = connection_args({"custom_key_store_id": STORE, "connect_timeout_seconds": UNKNOWN})

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(TIMEOUTS), args)

    assert deferred.value.props == ["connect_timeout_seconds"]
    assert deferred.value.message.startswith("waits for connect_timeout_seconds of CustomKeyStoreConnection")


def test_timeouts_report_a_known_timeout_out_of_bounds_before_deferring_an_unknown_one() -> None:
    args = connection_args(
        {"custom_key_store_id": STORE, "connect_timeout_seconds": UNKNOWN, "disconnect_timeout_seconds": 5}
    )
    violations = Violations()

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(TIMEOUTS), args, violations)

    (message,) = violations.messages
    assert "disconnect_timeout_seconds=5 s" in message
    assert deferred.value.props == ["connect_timeout_seconds"]


# --- CustomKeyStoreConnectionSet: connection-desired-connected-in-protected-stacks ------------------------------


def test_set_desired_connected_passes_a_connected_set() -> None:
    connected = set_args({"custom_key_store_ids": [STORE, OTHER_STORE], "desired_state": "connected"})
    defaulted = set_args({"custom_key_store_ids": [STORE, OTHER_STORE]})

    assert validate(policy(DESIRED_CONNECTED), connected).reported == []
    assert validate(policy(DESIRED_CONNECTED), defaulted).reported == []


def test_set_desired_connected_reports_a_disconnected_set_naming_the_set_and_its_stores() -> None:
    args = set_args(
        {"custom_key_store_ids": [STORE, OTHER_STORE], "desired_state": "disconnected"}, name="dr", stack="prod-eu"
    )

    (message,) = validate(policy(DESIRED_CONNECTED, stack="prod-eu"), args).messages

    assert message.startswith(f"CustomKeyStoreConnectionSet 'dr' ({args.urn})")
    assert f"key stores {STORE}, {OTHER_STORE} in stack 'prod-eu'" in message
    assert "desired_state='disconnected'" in message and "desired_state='CONNECTED'" in message


def test_set_desired_connected_ignores_a_stack_that_no_pattern_protects() -> None:
    args = set_args({"custom_key_store_ids": [STORE], "desired_state": "DISCONNECTED"}, stack="dev")

    assert validate(policy(DESIRED_CONNECTED, stack="dev"), args).reported == []


def test_set_desired_connected_allows_a_set_whose_stores_are_all_allow_listed() -> None:
    args = set_args(
        {"custom_key_store_ids": [STORE, OTHER_STORE], "desired_state": "DISCONNECTED"},
        config={"allowedKeyStores": [OTHER_STORE, STORE]},
    )

    assert validate(policy(DESIRED_CONNECTED), args).reported == []


def test_set_desired_connected_names_only_the_stores_not_allow_listed() -> None:
    args = set_args(
        {"custom_key_store_ids": [STORE, OTHER_STORE, THIRD_STORE], "desired_state": "DISCONNECTED"},
        config={"allowedKeyStores": [OTHER_STORE]},
    )

    (message,) = validate(policy(DESIRED_CONNECTED), args).messages

    assert f"key stores {STORE}, {THIRD_STORE} in" in message and OTHER_STORE not in message


def test_set_desired_connected_decides_a_connected_set_without_its_unknown_store_ids() -> None:
    args = set_args({"custom_key_store_ids": UNKNOWN, "desired_state": "CONNECTED"})

    assert validate(policy(DESIRED_CONNECTED), args).reported == []


def test_set_desired_connected_reports_a_disconnected_set_whose_store_ids_are_all_unknown_at_once() -> None:
    whole = set_args({"custom_key_store_ids": UNKNOWN, "desired_state": "DISCONNECTED"})
    each = set_args({"custom_key_store_ids": [UNKNOWN, UNKNOWN], "desired_state": "DISCONNECTED"})

    (whole_message,) = validate(policy(DESIRED_CONNECTED), whole).messages
    (each_message,) = validate(policy(DESIRED_CONNECTED), each).messages

    assert "for key stores (known once the key store exists) in stack" in whole_message
    assert "for key stores (known once the key store exists) in stack" in each_message


def test_set_desired_connected_defers_unknown_store_ids_that_the_allow_list_could_hold() -> None:
    args = set_args(
        {"custom_key_store_ids": UNKNOWN, "desired_state": "DISCONNECTED"}, config={"allowedKeyStores": [STORE]}
    )

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(DESIRED_CONNECTED), args)

    assert deferred.value.props == ["custom_key_store_ids"]


def test_set_desired_connected_reports_an_empty_list_of_store_ids() -> None:
    args = set_args({"custom_key_store_ids": [], "desired_state": "DISCONNECTED"}, config={"allowedKeyStores": [STORE]})

    (message,) = validate(policy(DESIRED_CONNECTED), args).messages

    assert "for no key store (custom_key_store_ids is an empty list)" in message
    assert "name the key stores in custom_key_store_ids" in message


def test_set_desired_connected_shows_store_ids_of_the_wrong_shape_as_written() -> None:
    args = set_args({"custom_key_store_ids": [STORE, 42, None, [OTHER_STORE]], "desired_state": "DISCONNECTED"})

    (message,) = validate(policy(DESIRED_CONNECTED), args).messages

    assert f"for key stores {STORE} and 42 (not a key store id) and (not set) (not a key store id) and " in message
    assert f'["{OTHER_STORE}"] (not a key store id) in stack' in message
    assert "Proxy" not in message


def test_set_desired_connected_defers_when_only_an_unknown_store_id_could_be_outside_the_allow_list() -> None:
    args = set_args(
        {"custom_key_store_ids": [STORE, UNKNOWN], "desired_state": "DISCONNECTED"},
        config={"allowedKeyStores": [STORE]},
    )

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(DESIRED_CONNECTED), args)

    assert deferred.value.props == ["custom_key_store_ids", "1"]
    assert deferred.value.message.startswith("waits for custom_key_store_ids[1] of CustomKeyStoreConnectionSet")


def test_set_desired_connected_reports_known_stores_at_once_beside_unknown_ones() -> None:
    args = set_args({"custom_key_store_ids": [UNKNOWN, STORE], "desired_state": "DISCONNECTED"})

    (message,) = validate(policy(DESIRED_CONNECTED), args).messages

    assert f"key stores {STORE} and 1 more (known once the key store exists)" in message


# --- CustomKeyStoreConnectionSet: no-disconnect-on-delete-in-protected-stacks ------------------------------------


def test_set_retain_on_delete_passes_retain() -> None:
    args = set_args({"custom_key_store_ids": [STORE, OTHER_STORE], "on_delete": "Retain"})

    assert validate(policy(RETAIN_ON_DELETE), args).reported == []


def test_set_retain_on_delete_reports_the_default_naming_the_set_and_its_stores() -> None:
    args = set_args({"custom_key_store_ids": [STORE, OTHER_STORE]}, name="dr")

    (message,) = validate(policy(RETAIN_ON_DELETE), args).messages

    assert message.startswith(f"CustomKeyStoreConnectionSet 'dr' ({args.urn})")
    assert f"on_delete='disconnect' for key stores {STORE}, {OTHER_STORE}" in message
    assert "removing a store from a set" in message and "on_delete='retain'" in message


def test_set_retain_on_delete_allows_a_set_whose_stores_are_all_allow_listed() -> None:
    args = set_args(
        {"custom_key_store_ids": [STORE, OTHER_STORE], "on_delete": "disconnect"},
        config={"allowedKeyStores": [STORE, OTHER_STORE]},
    )

    assert validate(policy(RETAIN_ON_DELETE), args).reported == []


def test_set_retain_on_delete_reports_a_set_of_unknown_store_ids_at_once() -> None:
    args = set_args({"custom_key_store_ids": [UNKNOWN], "on_delete": "disconnect"})

    (message,) = validate(policy(RETAIN_ON_DELETE), args).messages

    assert "on_delete='disconnect' for key stores (known once the key store exists)" in message


def test_set_retain_on_delete_defers_unknown_store_ids_that_the_allow_list_could_hold() -> None:
    args = set_args(
        {"custom_key_store_ids": [UNKNOWN], "on_delete": "disconnect"}, config={"allowedKeyStores": [STORE]}
    )

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(RETAIN_ON_DELETE), args)

    assert deferred.value.props == ["custom_key_store_ids", "0"]


def test_set_retain_on_delete_reports_an_empty_list_of_store_ids() -> None:
    args = set_args({"custom_key_store_ids": []})

    (message,) = validate(policy(RETAIN_ON_DELETE), args).messages

    assert "for no key store (custom_key_store_ids is an empty list)" in message


# --- CustomKeyStoreConnectionSet: connection-timeouts-within-bounds ----------------------------------------------


def test_set_timeouts_pass_the_provider_defaults_and_the_bounds() -> None:
    defaults = set_args({"custom_key_store_ids": [STORE, OTHER_STORE]})
    bounds = set_args(
        {"custom_key_store_ids": [STORE], "connect_timeout_seconds": 7200, "disconnect_timeout_seconds": 60}
    )

    assert validate(policy(TIMEOUTS), defaults).reported == []
    assert validate(policy(TIMEOUTS), bounds).reported == []


def test_set_timeouts_report_a_short_connect_timeout_naming_the_set_and_its_stores() -> None:
    args = set_args({"custom_key_store_ids": [STORE, OTHER_STORE], "connect_timeout_seconds": 30}, name="dr")

    (message,) = validate(policy(TIMEOUTS), args).messages

    assert message.startswith(f"CustomKeyStoreConnectionSet 'dr' ({args.urn}) for key stores {STORE}, {OTHER_STORE}")
    assert "connect_timeout_seconds=30 s" in message and "60..7200 s" in message


def test_set_timeouts_use_the_configured_bounds() -> None:
    args = set_args(
        {"custom_key_store_ids": [STORE], "disconnect_timeout_seconds": 30}, config={"minDisconnectTimeoutSeconds": 10}
    )

    assert validate(policy(TIMEOUTS), args).reported == []


def test_set_timeouts_name_unknown_store_ids_without_failing() -> None:
    whole = set_args({"custom_key_store_ids": UNKNOWN, "connect_timeout_seconds": 30})
    partly = set_args({"custom_key_store_ids": [STORE, UNKNOWN], "connect_timeout_seconds": 30})

    (whole_message,) = validate(policy(TIMEOUTS), whole).messages
    (partly_message,) = validate(policy(TIMEOUTS), partly).messages

    assert "for key stores (known once the key store exists) has" in whole_message
    assert f"for key stores {STORE} and 1 more (known once the key store exists) has" in partly_message
