"""The pack's stack policies, called with the arguments pulumi-policy's analyzer server builds (outputs)."""

from __future__ import annotations

import pytest
from kms_policy_testkit import (
    UNKNOWN,
    Violations,
    policies,
    policy,
    remedy,
    stack_args,
    stack_resource,
    urn,
    validate,
)
from pulumi_policy import PolicyResource
from pulumi_policy.proxy import UnknownValueError

STORE = "cks-1234567890abcdef0"
OTHER_STORE = "cks-0fedcba9876543210"
THIRD_STORE = "cks-00112233445566778"

EVERY_STORE = policies.EVERY_STORE_CONNECTED
NO_FAILED = policies.NO_FAILED_CONNECTIONS


def key_store(name: str = "hsm-store", store_id: str = STORE, store_name: str = "payments-hsm") -> PolicyResource:
    return stack_resource(
        policies.KEY_STORE_TYPE,
        name,
        {"id": store_id, "customKeyStoreName": store_name, "customKeyStoreType": "AWS_CLOUDHSM"},
    )


def connection(name: str = "hsm-connection", store_id: str = STORE, **outputs: object) -> PolicyResource:
    return stack_resource(policies.CONNECTION_TYPE, name, {"custom_key_store_id": store_id, **outputs})


def connection_set(name: str = "stores", store_ids: object = (STORE, OTHER_STORE), **outputs: object) -> PolicyResource:
    ids = list(store_ids) if isinstance(store_ids, tuple | list) else store_ids
    return stack_resource(policies.CONNECTION_SET_TYPE, name, {"custom_key_store_ids": ids, **outputs})


def depends_on_store(conn: str = "hsm-connection", store: str = "hsm-store") -> dict[str, dict[str, list[str]]]:
    """``custom_key_store_id`` of connection ``conn`` was computed from store ``store`` (``store.id``)."""
    return {
        urn(policies.CONNECTION_TYPE, conn): {"custom_key_store_id": [urn(policies.KEY_STORE_TYPE, store)]},
    }


def set_depends_on_stores(*stores: str, name: str = "stores") -> dict[str, dict[str, list[str]]]:
    """``custom_key_store_ids`` of set ``name`` was computed from ``stores`` (``[store.id, ...]``)."""
    return {
        urn(policies.CONNECTION_SET_TYPE, name): {
            "custom_key_store_ids": [urn(policies.KEY_STORE_TYPE, store) for store in stores]
        },
    }


# --- every-custom-key-store-has-a-connection --------------------------------------------------------------------


def test_every_store_connected_passes_a_store_whose_id_a_connection_names() -> None:
    args = stack_args([key_store(), connection()])

    assert validate(policy(EVERY_STORE), args).reported == []


def test_every_store_connected_reports_a_store_without_connection_against_the_store() -> None:
    store = key_store()

    (reported,) = validate(policy(EVERY_STORE), stack_args([store])).reported

    message, reported_urn = reported
    assert reported_urn == store.urn
    assert "'hsm-store'" in message and STORE in message and "payments-hsm" in message
    assert "CustomKeyStoreConnection" in message and "allowedKeyStores" in message


def test_every_store_connected_reports_a_store_when_the_connection_names_another_store() -> None:
    args = stack_args([key_store(), connection(store_id=OTHER_STORE)])

    assert len(validate(policy(EVERY_STORE), args).reported) == 1


def test_every_store_connected_reports_each_unconnected_store() -> None:
    args = stack_args([key_store(), key_store("second", OTHER_STORE, "second-hsm")])

    assert len(validate(policy(EVERY_STORE), args).reported) == 2


def test_every_store_connected_allows_a_store_allow_listed_by_id() -> None:
    args = stack_args([key_store()], config={"allowedKeyStores": [STORE]})

    assert validate(policy(EVERY_STORE), args).reported == []


def test_every_store_connected_allows_a_store_allow_listed_by_name() -> None:
    args = stack_args([key_store()], config={"allowedKeyStores": ["payments-hsm"]})

    assert validate(policy(EVERY_STORE), args).reported == []


def test_every_store_connected_passes_a_stack_without_key_stores() -> None:
    args = stack_args([connection()])

    assert validate(policy(EVERY_STORE), args).reported == []


def test_every_store_connected_matches_unknown_ids_through_property_dependencies() -> None:
    args = stack_args(
        [key_store(store_id=UNKNOWN), connection(store_id=UNKNOWN)], property_dependencies=depends_on_store()
    )

    assert validate(policy(EVERY_STORE), args).reported == []


def test_every_store_connected_reports_a_new_store_that_no_connection_can_name_in_preview() -> None:
    store = key_store(store_id=UNKNOWN)

    (reported,) = validate(policy(EVERY_STORE), stack_args([store, connection(store_id=OTHER_STORE)])).reported

    assert reported[1] == store.urn and "known once the key store exists" in reported[0]


def test_every_store_connected_defers_when_an_untraceable_connection_id_is_unknown() -> None:
    args = stack_args([key_store(), connection(store_id=UNKNOWN)])

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(EVERY_STORE), args)

    assert deferred.value.props == ["custom_key_store_id"]


def test_every_store_connected_does_not_defer_for_stores_already_matched() -> None:
    args = stack_args([key_store(), connection(), connection("later", store_id=UNKNOWN)])

    assert validate(policy(EVERY_STORE), args).reported == []


# --- every-custom-key-store-has-a-connection: CustomKeyStoreConnectionSet --------------------------------------


def test_every_store_connected_passes_stores_whose_ids_a_set_names() -> None:
    args = stack_args([key_store(), key_store("second", OTHER_STORE, "second-hsm"), connection_set()])

    assert validate(policy(EVERY_STORE), args).reported == []


def test_every_store_connected_passes_stores_named_by_a_set_or_a_connection() -> None:
    stores = [key_store(), key_store("second", OTHER_STORE, "second-hsm")]
    args = stack_args([*stores, connection(), connection_set(store_ids=[OTHER_STORE, THIRD_STORE])])

    assert validate(policy(EVERY_STORE), args).reported == []


def test_every_store_connected_reports_a_store_that_no_set_names() -> None:
    second = key_store("second", THIRD_STORE, "second-hsm")

    (reported,) = validate(policy(EVERY_STORE), stack_args([key_store(), second, connection_set()])).reported

    assert reported[1] == second.urn and "CustomKeyStoreConnectionSet" in reported[0]


def test_every_store_connected_allows_an_allow_listed_store_beside_a_set() -> None:
    args = stack_args(
        [key_store(), key_store("second", THIRD_STORE, "second-hsm"), connection_set()],
        config={"allowedKeyStores": ["second-hsm"]},
    )

    assert validate(policy(EVERY_STORE), args).reported == []


def test_every_store_connected_matches_a_sets_unknown_element_through_property_dependencies() -> None:
    new_store = key_store(store_id=UNKNOWN)
    args = stack_args(
        [new_store, key_store("second", OTHER_STORE, "second-hsm"), connection_set(store_ids=[UNKNOWN, OTHER_STORE])],
        property_dependencies=set_depends_on_stores("hsm-store"),
    )

    assert validate(policy(EVERY_STORE), args).reported == []


def test_every_store_connected_matches_a_sets_wholly_unknown_ids_through_property_dependencies() -> None:
    stores = [key_store(store_id=UNKNOWN), key_store("second", UNKNOWN, "second-hsm")]
    args = stack_args(
        [*stores, connection_set(store_ids=UNKNOWN)],
        property_dependencies=set_depends_on_stores("hsm-store", "second"),
    )

    assert validate(policy(EVERY_STORE), args).reported == []


def test_every_store_connected_defers_when_a_set_has_more_unknown_ids_than_stores_they_come_from() -> None:
    # Two unknown ids, one traced to hsm-store: the other could be orphan's.
    orphan = key_store("orphan", THIRD_STORE, "orphan-hsm")
    args = stack_args(
        [key_store(store_id=UNKNOWN), orphan, connection_set(store_ids=[UNKNOWN, UNKNOWN])],
        property_dependencies=set_depends_on_stores("hsm-store"),
    )

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(EVERY_STORE), args)

    assert deferred.value.props == ["custom_key_store_ids", "0"]


def test_every_store_connected_defers_when_a_sets_ids_are_unknown_and_untraceable() -> None:
    args = stack_args([key_store(), connection_set(store_ids=UNKNOWN)])

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(EVERY_STORE), args)

    assert deferred.value.props == ["custom_key_store_ids"]


# --- every-custom-key-store-has-a-connection: known ids decide, dependencies only trace unknown ones ------------

PARAMETER_TYPE = "aws:ssm/parameter:Parameter"


def parameter(name: str = "new-store-id", value: str = UNKNOWN) -> PolicyResource:
    return stack_resource(PARAMETER_TYPE, name, {"type": "String", "insecureValue": value})


def set_depends_on(deps: dict[str, list[str]], name: str = "stores") -> dict[str, dict[str, list[str]]]:
    """``custom_key_store_ids`` of set ``name`` was computed from the resources ``deps`` (type -> names)."""
    urns = [urn(resource_type, dep) for resource_type, names in deps.items() for dep in names]
    return {urn(policies.CONNECTION_SET_TYPE, name): {"custom_key_store_ids": urns}}


def test_every_store_connected_defers_a_new_store_whose_id_may_come_through_a_non_store_resource() -> None:
    # A set lists [old.id, param.insecure_value], the parameter holding the new store's id: the dependency on the
    # known store old cannot be where the unknown id came from, and the parameter could hold any store's id.
    old, new = key_store("old-store", STORE, "old-hsm"), key_store("new-store", UNKNOWN, "new-hsm")
    args = stack_args(
        [old, new, parameter(), connection_set(store_ids=[STORE, UNKNOWN], on_delete="retain")],
        property_dependencies=set_depends_on(
            {policies.KEY_STORE_TYPE: ["old-store"], PARAMETER_TYPE: ["new-store-id"]}
        ),
    )
    violations = Violations()

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(EVERY_STORE), args, violations)

    assert violations.reported == []
    assert deferred.value.props == ["custom_key_store_ids", "1"]
    assert deferred.value.message == (
        f"waits for custom_key_store_ids[1] of CustomKeyStoreConnectionSet 'stores' "
        f"({urn(policies.CONNECTION_SET_TYPE, 'stores')}) (computed from {policies.KEY_STORE_TYPE} 'old-store', "
        f"{PARAMETER_TYPE} 'new-store-id'), unknown during preview, which may be the id of key store 'new-store' "
        f"(id known once it exists): no known id connects it."
    )


def test_every_store_connected_defers_a_wholly_unknown_id_list_computed_through_a_non_store_resource() -> None:
    old, new = key_store("old-store", STORE, "old-hsm"), key_store("new-store", UNKNOWN, "new-hsm")
    args = stack_args(
        [old, new, parameter(), connection_set(store_ids=UNKNOWN)],
        property_dependencies=set_depends_on(
            {policies.KEY_STORE_TYPE: ["old-store"], PARAMETER_TYPE: ["new-store-id"]}
        ),
    )
    violations = Violations()

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(EVERY_STORE), args, violations)

    assert violations.reported == []
    assert "which may be the id of key store 'old-store' (id cks-1234567890abcdef0), key store 'new-store'" in (
        deferred.value.message
    )


def test_every_store_connected_passes_the_same_set_once_every_id_is_known() -> None:
    new_id = OTHER_STORE
    old, new = key_store("old-store", STORE, "old-hsm"), key_store("new-store", new_id, "new-hsm")
    args = stack_args(
        [old, new, parameter(value=new_id), connection_set(store_ids=[STORE, new_id])],
        property_dependencies=set_depends_on(
            {policies.KEY_STORE_TYPE: ["old-store"], PARAMETER_TYPE: ["new-store-id"]}
        ),
    )

    assert validate(policy(EVERY_STORE), args).reported == []


def test_every_store_connected_compares_known_ids_rather_than_dependencies() -> None:
    # custom_key_store_id=Output.all(primary.id, standby.id).apply(lambda ids: ids[0]): it depends on both stores,
    # but names only primary.
    primary, standby = key_store("primary", STORE, "primary-hsm"), key_store("standby", OTHER_STORE, "standby-hsm")
    conn = connection(store_id=STORE)
    deps = {conn.urn: {"custom_key_store_id": [primary.urn, standby.urn]}}

    (reported,) = validate(
        policy(EVERY_STORE), stack_args([primary, standby, conn], property_dependencies=deps)
    ).reported

    assert reported[1] == standby.urn and OTHER_STORE in reported[0]


def test_every_store_connected_defers_one_unknown_id_that_may_be_either_of_two_new_stores() -> None:
    primary, standby = key_store("primary", UNKNOWN, "primary-hsm"), key_store("standby", UNKNOWN, "standby-hsm")
    conn = connection(store_id=UNKNOWN)
    deps = {conn.urn: {"custom_key_store_id": [primary.urn, standby.urn]}}
    violations = Violations()

    with pytest.raises(UnknownValueError) as deferred:
        validate(policy(EVERY_STORE), stack_args([primary, standby, conn], property_dependencies=deps), violations)

    assert violations.reported == []
    assert "which may be the id of key store 'primary' (id known once it exists), key store 'standby'" in (
        deferred.value.message
    )


def test_every_store_connected_does_not_trace_an_unknown_id_to_a_store_whose_id_is_known() -> None:
    # The connection depends on the existing store and on the new one; its unknown id can only be the new store's
    # own id, so the existing store, which no known id names, has no connection.
    existing, new = key_store("existing", STORE, "existing-hsm"), key_store("new", UNKNOWN, "new-hsm")
    conn = connection(store_id=UNKNOWN)
    deps = {conn.urn: {"custom_key_store_id": [existing.urn, new.urn]}}

    (reported,) = validate(policy(EVERY_STORE), stack_args([existing, new, conn], property_dependencies=deps)).reported

    assert reported[1] == existing.urn


def test_every_store_connected_reports_certain_violations_before_deferring_the_undecided_ones() -> None:
    orphan = key_store("orphan", THIRD_STORE, "orphan-hsm")
    primary, standby = key_store("primary", UNKNOWN, "primary-hsm"), key_store("standby", UNKNOWN, "standby-hsm")
    conn = connection(store_id=UNKNOWN)
    deps = {conn.urn: {"custom_key_store_id": [primary.urn, standby.urn]}}
    violations = Violations()

    with pytest.raises(UnknownValueError):
        validate(
            policy(EVERY_STORE), stack_args([orphan, primary, standby, conn], property_dependencies=deps), violations
        )

    assert [reported_urn for _, reported_urn in violations.reported] == [orphan.urn]


def test_every_store_connected_names_a_store_without_an_id_readably() -> None:
    store = stack_resource(policies.KEY_STORE_TYPE, "odd", {"customKeyStoreName": "odd-hsm"})

    (message,) = validate(policy(EVERY_STORE), stack_args([store])).messages

    assert "id (not set), name odd-hsm" in message


# --- no-failed-connections --------------------------------------------------------------------------------------


def test_no_failed_connections_reports_a_failed_connection_with_its_error_code_and_remedy() -> None:
    failed = connection(connection_state="FAILED", connection_error_code="USER_LOGGED_IN")

    (reported,) = validate(policy(NO_FAILED), stack_args([failed])).reported

    message, reported_urn = reported
    assert reported_urn == failed.urn
    assert "'hsm-connection'" in message and STORE in message and "USER_LOGGED_IN" in message
    assert remedy("USER_LOGGED_IN") in message


def test_no_failed_connections_gives_the_generic_remedy_without_an_error_code() -> None:
    failed = connection(connection_state="FAILED")

    (message,) = validate(policy(NO_FAILED), stack_args([failed])).messages

    assert remedy(None) in message


@pytest.mark.parametrize("state", ["CONNECTED", "CONNECTING", "DISCONNECTED", "DISCONNECTING"])
def test_no_failed_connections_passes_every_other_state(state: str) -> None:
    args = stack_args([connection(connection_state=state)])

    assert validate(policy(NO_FAILED), args).reported == []


def test_no_failed_connections_skips_a_connection_not_yet_created() -> None:
    args = stack_args([connection(store_id=UNKNOWN), connection("unknown-state", connection_state=UNKNOWN)])

    assert validate(policy(NO_FAILED), args).reported == []


def test_no_failed_connections_allows_an_allow_listed_key_store() -> None:
    failed = connection(connection_state="FAILED", connection_error_code="NETWORK_ERRORS")

    assert validate(policy(NO_FAILED), stack_args([failed], config={"allowedKeyStores": [STORE]})).reported == []


def test_no_failed_connections_ignores_key_stores_themselves() -> None:
    store = stack_resource(policies.KEY_STORE_TYPE, "hsm-store", {"id": STORE, "connection_state": "FAILED"})

    assert validate(policy(NO_FAILED), stack_args([store])).reported == []


# --- no-failed-connections: CustomKeyStoreConnectionSet ---------------------------------------------------------


def test_no_failed_connections_reports_each_failed_store_of_a_set_with_its_code_and_remedy() -> None:
    failed = connection_set(
        "dr",
        [STORE, OTHER_STORE, THIRD_STORE],
        connection_states={STORE: "FAILED", OTHER_STORE: "CONNECTED", THIRD_STORE: "FAILED"},
        connection_error_codes={STORE: "USER_LOGGED_IN", THIRD_STORE: "XKS_PROXY_TIMED_OUT"},
    )

    reported = validate(policy(NO_FAILED), stack_args([failed])).reported

    assert [reported_urn for _, reported_urn in reported] == [failed.urn, failed.urn]
    first, second = (message for message, _ in reported)
    assert first.startswith(f"CustomKeyStoreConnectionSet 'dr' ({failed.urn}) observed key store {STORE}")
    assert "USER_LOGGED_IN" in first and remedy("USER_LOGGED_IN") in first
    assert THIRD_STORE in second and remedy("XKS_PROXY_TIMED_OUT") in second
    assert OTHER_STORE not in first + second


def test_no_failed_connections_gives_the_generic_remedy_for_a_set_store_without_an_error_code() -> None:
    failed = connection_set(connection_states={STORE: "FAILED", OTHER_STORE: "CONNECTED"}, connection_error_codes={})

    (message,) = validate(policy(NO_FAILED), stack_args([failed])).messages

    assert STORE in message and remedy(None) in message


def test_no_failed_connections_passes_a_set_whose_stores_are_not_failed() -> None:
    healthy = connection_set(connection_states={STORE: "CONNECTED", OTHER_STORE: "CONNECTING"})

    assert validate(policy(NO_FAILED), stack_args([healthy])).reported == []


def test_no_failed_connections_allows_an_allow_listed_store_of_a_set() -> None:
    failed = connection_set(
        connection_states={STORE: "FAILED", OTHER_STORE: "FAILED"},
        connection_error_codes={STORE: "NETWORK_ERRORS", OTHER_STORE: "USER_NOT_FOUND"},
    )

    (message,) = validate(policy(NO_FAILED), stack_args([failed], config={"allowedKeyStores": [STORE]})).messages

    assert OTHER_STORE in message and "USER_NOT_FOUND" in message and STORE not in message


def test_no_failed_connections_skips_a_set_not_yet_created() -> None:
    args = stack_args(
        [
            connection_set("unknown-ids", UNKNOWN),
            connection_set("unknown-states", connection_states=UNKNOWN, connection_error_codes=UNKNOWN),
            connection_set("unknown-one", connection_states={STORE: UNKNOWN, OTHER_STORE: "CONNECTED"}),
        ]
    )

    assert validate(policy(NO_FAILED), args).reported == []
