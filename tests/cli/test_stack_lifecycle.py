"""The stack program through the real Pulumi CLI: up, a second up, drift, refresh, config changes, destroy,
replacements, renames and moves, each asserting on KMS's state and the emulator's call log."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.cli.conftest import CONNECTION_TYPE, SET_TYPE, CliStack, store_entry

pytestmark = pytest.mark.timeout(900)

HSM = "cks-1111111111111111a"
XKS = "cks-2222222222222222b"


@pytest.fixture
def two_stores(make_stack: Callable[..., CliStack]) -> CliStack:
    stack = make_stack({HSM: "primary", XKS: "standby"})
    stack.write_config(keyStores=[store_entry(HSM, "primary"), store_entry(XKS, "standby", onDelete="retain")])
    return stack


def test_up_of_a_new_stack_connects_every_store_and_exports_their_states(two_stores: CliStack) -> None:
    result = two_stores.up()

    assert result.summary.result == "succeeded"
    assert result.summary.resource_changes == {"create": 3}
    assert two_stores.outputs()["connection_states"] == {"primary": "CONNECTED", "standby": "CONNECTED"}
    assert two_stores.emulator.state_of(HSM) == two_stores.emulator.state_of(XKS) == "CONNECTED"
    assert sorted(two_stores.mutating_calls()) == [("ConnectCustomKeyStore", HSM), ("ConnectCustomKeyStore", XKS)]


def test_a_second_up_changes_nothing_and_only_reads(two_stores: CliStack) -> None:
    two_stores.up()
    before = len(two_stores.calls())

    result = two_stores.up()

    assert result.summary.resource_changes == {"same": 3}
    calls = two_stores.calls(before)
    assert {call.operation for call in calls} == {"DescribeCustomKeyStores"}
    assert sorted(str(call.store_id) for call in calls) == sorted([HSM, XKS])


def test_preview_of_drift_shows_the_update_and_our_plan_line_with_no_mutating_call(two_stores: CliStack) -> None:
    two_stores.up()
    two_stores.emulator.client().disconnect_custom_key_store(CustomKeyStoreId=HSM)
    before = len(two_stores.calls())

    preview = two_stores.cli("preview")

    assert "~ 1 to update" in preview.stdout
    assert f"{HSM}: observed DISCONNECTED, desired CONNECTED: will connect" in preview.stdout
    assert two_stores.mutating_calls(before) == []
    assert two_stores.emulator.state_of(HSM) == "DISCONNECTED"


def test_up_repairs_drift(two_stores: CliStack) -> None:
    two_stores.up()
    two_stores.emulator.client().disconnect_custom_key_store(CustomKeyStoreId=HSM)
    before = len(two_stores.calls())

    result = two_stores.up()

    assert result.summary.resource_changes == {"update": 1, "same": 2}
    assert two_stores.mutating_calls(before) == [("ConnectCustomKeyStore", HSM)]
    assert two_stores.emulator.state_of(HSM) == "CONNECTED"


def test_refresh_records_the_observed_state_with_no_mutating_call(two_stores: CliStack) -> None:
    two_stores.up()
    two_stores.emulator.client().disconnect_custom_key_store(CustomKeyStoreId=HSM)
    before = len(two_stores.calls())

    two_stores.stack.refresh(color="never")

    assert two_stores.mutating_calls(before) == []
    recorded = two_stores.resources(CONNECTION_TYPE)["primary"]["outputs"]
    assert recorded["connection_state"] == "DISCONNECTED"
    assert two_stores.emulator.state_of(HSM) == "DISCONNECTED"


def test_flipping_desired_state_in_config_disconnects_on_the_next_up(two_stores: CliStack) -> None:
    two_stores.up()
    two_stores.write_config(
        keyStores=[
            store_entry(HSM, "primary", desiredState="DISCONNECTED"),
            store_entry(XKS, "standby", onDelete="retain"),
        ]
    )
    before = len(two_stores.calls())

    result = two_stores.up()

    assert result.summary.resource_changes == {"update": 1, "same": 2}
    assert two_stores.mutating_calls(before) == [("DisconnectCustomKeyStore", HSM)]
    assert two_stores.outputs()["connection_states"]["primary"] == "DISCONNECTED"
    assert two_stores.emulator.state_of(HSM) == "DISCONNECTED"


def test_destroy_disconnects_by_default_and_retains_where_asked(two_stores: CliStack) -> None:
    two_stores.up()
    before = len(two_stores.calls())

    two_stores.stack.destroy(color="never")

    assert two_stores.mutating_calls(before) == [("DisconnectCustomKeyStore", HSM)]
    assert two_stores.emulator.state_of(HSM) == "DISCONNECTED"
    assert two_stores.emulator.state_of(XKS) == "CONNECTED"
    assert two_stores.resources(CONNECTION_TYPE) == {}


def test_a_changed_store_id_replaces_the_connection(make_stack: Callable[..., CliStack]) -> None:
    other = "cks-3333333333333333c"
    stack = make_stack({HSM: "primary", other: "other"})
    stack.write_config(keyStores=[store_entry(HSM, "primary")])
    stack.up()
    stack.write_config(keyStores=[store_entry(other, "primary")])
    before = len(stack.calls())

    result = stack.up()

    assert result.summary.resource_changes == {"replace": 1, "same": 1}
    assert stack.mutating_calls(before) == [("ConnectCustomKeyStore", other), ("DisconnectCustomKeyStore", HSM)]
    assert stack.resources(CONNECTION_TYPE)["primary"]["outputs"]["custom_key_store_id"] == other
    assert (stack.emulator.state_of(other), stack.emulator.state_of(HSM)) == ("CONNECTED", "DISCONNECTED")


def test_renaming_a_connection_without_an_alias_leaves_its_store_connected(two_stores: CliStack) -> None:
    two_stores.up()
    two_stores.write_config(keyStores=[store_entry(HSM, "main-hsm"), store_entry(XKS, "standby", onDelete="retain")])
    before = len(two_stores.calls())

    result = two_stores.up()

    assert result.summary.resource_changes == {"create": 1, "delete": 1, "same": 2}
    assert two_stores.mutating_calls(before) == []
    assert two_stores.emulator.state_of(HSM) == "CONNECTED"
    assert set(two_stores.resources(CONNECTION_TYPE)) == {"main-hsm", "standby"}


RENAMED_WITH_ALIAS = """
import pulumi
from kms_connection import CustomKeyStoreConnection

connection = CustomKeyStoreConnection(
    "main-hsm",
    custom_key_store_id="{store}",
    opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="primary")]),
)
pulumi.export("connection_states", {{"main-hsm": connection.connection_state}})
"""


def test_renaming_a_connection_with_an_alias_changes_nothing_in_kms(make_stack: Callable[..., CliStack]) -> None:
    stack = make_stack({HSM: "primary"})
    stack.write_config(keyStores=[store_entry(HSM, "primary")])
    stack.up()
    stack.write_program(RENAMED_WITH_ALIAS.format(store=HSM))
    before = len(stack.calls())

    result = stack.up()

    assert result.summary.resource_changes == {"same": 2}
    assert stack.mutating_calls(before) == []
    assert stack.emulator.state_of(HSM) == "CONNECTED"
    assert set(stack.resources(CONNECTION_TYPE)) == {"main-hsm"}


def test_moving_a_store_into_a_set_leaves_it_connected(two_stores: CliStack) -> None:
    two_stores.up()
    two_stores.write_config(
        keyStores=[store_entry(XKS, "standby", onDelete="retain")],
        keyStoreSets=[{"name": "hsms", "ids": [HSM]}],
    )
    before = len(two_stores.calls())

    result = two_stores.up()

    assert result.summary.resource_changes == {"create": 1, "delete": 1, "same": 2}
    assert two_stores.mutating_calls(before) == []
    assert two_stores.emulator.state_of(HSM) == "CONNECTED"
    assert set(two_stores.resources(SET_TYPE)) == {"hsms"}


def test_preview_of_a_new_connection_says_what_up_will_do_to_an_existing_store(
    make_stack: Callable[..., CliStack],
) -> None:
    stack = make_stack({HSM: "primary"})
    stack.emulator.client().connect_custom_key_store(CustomKeyStoreId=HSM)
    stack.write_config(keyStores=[store_entry(HSM, "primary", desiredState="DISCONNECTED")])

    preview = stack.cli("preview")

    assert f"{HSM}: observed CONNECTED, desired DISCONNECTED: will disconnect" in preview.stdout
    assert stack.mutating_calls(1) == []


def test_preview_of_a_new_connection_to_a_missing_store_warns_before_up_fails(
    make_stack: Callable[..., CliStack],
) -> None:
    stack = make_stack()
    stack.write_config(keyStores=[store_entry(HSM, "primary")])

    preview = stack.cli("preview")

    assert f"{HSM}: not found in us-east-1" in preview.stdout


SET_AND_CONNECTION = """
import pulumi
from kms_connection import CustomKeyStoreConnection, CustomKeyStoreConnectionSet

stores = CustomKeyStoreConnectionSet("stores", custom_key_store_ids={set_ids!r})
{connection}
"""


def test_removing_a_connection_whose_store_a_set_declares_leaves_the_store_connected(
    make_stack: Callable[..., CliStack],
) -> None:
    stack = make_stack({HSM: "primary", XKS: "standby"})
    stack.write_config()
    stack.write_program(SET_AND_CONNECTION.format(
        set_ids=[HSM, XKS], connection=f'CustomKeyStoreConnection("primary", custom_key_store_id="{HSM}")'
    ))
    stack.up()
    stack.write_program(SET_AND_CONNECTION.format(set_ids=[HSM, XKS], connection=""))
    before = len(stack.calls())

    result = stack.up()

    assert result.summary.resource_changes == {"delete": 1, "same": 2}
    assert stack.mutating_calls(before) == []
    assert stack.emulator.state_of(HSM) == "CONNECTED"


def test_moving_a_store_out_of_a_set_that_stays_into_a_connection_leaves_it_connected(
    make_stack: Callable[..., CliStack],
) -> None:
    stack = make_stack({HSM: "primary", XKS: "standby"})
    stack.write_config()
    stack.write_program(SET_AND_CONNECTION.format(set_ids=[HSM, XKS], connection=""))
    stack.up()
    # The receiving connection is declared first, as the README advises: the engine then shows it first.
    stack.write_program(
        f'import pulumi\nfrom kms_connection import CustomKeyStoreConnection, CustomKeyStoreConnectionSet\n'
        f'CustomKeyStoreConnection("primary", custom_key_store_id="{HSM}")\n'
        f'CustomKeyStoreConnectionSet("stores", custom_key_store_ids=["{XKS}"])\n'
    )
    before = len(stack.calls())

    result = stack.up()

    assert result.summary.resource_changes == {"create": 1, "update": 1, "same": 1}
    assert stack.mutating_calls(before) == []
    assert stack.emulator.state_of(HSM) == stack.emulator.state_of(XKS) == "CONNECTED"
