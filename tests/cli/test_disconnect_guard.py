"""What a disconnect breaks, through the real Pulumi CLI and the project's stack program: the blast-radius line of
``pulumi preview``, none (and no key call) in a steady preview, ``disconnectGuard: refuse`` stopping ``up`` and
``destroy`` before any DisconnectCustomKeyStore, and denied key calls handled both ways; and the provider plugin's
``disconnectGuard`` from a YAML program."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml

from tests.cli.conftest import CONNECTION_TYPE, CliStack, store_entry

pytestmark = pytest.mark.timeout(900)

HSM = "cks-1111111111111111a"
PAYMENTS = "1a1a1a1a-0000-4000-8000-000000000001"
LEDGER = "2b2b2b2b-0000-4000-8000-000000000002"
KEY_CALLS = frozenset({"ListKeys", "DescribeKey", "ListAliases"})
BREAKS = f"2 enabled keys become unusable: alias/payments ({PAYMENTS}), {LEDGER}"


@pytest.fixture
def connected(make_stack: Callable[..., CliStack]) -> CliStack:
    """A stack whose `up` connected HSM; HSM then holds two enabled keys and a disabled one, and the Region a key
    of no store."""
    stack = make_stack({HSM: "primary"})
    stack.write_config(keyStores=[store_entry(HSM, "primary")])
    stack.up()
    stack.emulator.create_key(HSM, key_id=PAYMENTS, aliases=["alias/payments"])
    stack.emulator.create_key(HSM, key_id=LEDGER)
    stack.emulator.create_key(HSM, enabled=False)
    stack.emulator.create_key()
    return stack


def key_calls(stack: CliStack, since: int) -> list[str]:
    return [call.operation for call in stack.calls(since) if call.operation in KEY_CALLS]


def test_preview_of_a_disconnect_names_the_enabled_keys_that_become_unusable(connected: CliStack) -> None:
    connected.write_config(keyStores=[store_entry(HSM, "primary", desiredState="DISCONNECTED")])
    before = len(connected.calls())

    preview = connected.cli("preview")

    assert "~ 1 to update" in preview.stdout
    assert f"observed CONNECTED, desired DISCONNECTED: will disconnect; {BREAKS}" in preview.stdout
    assert sorted(set(key_calls(connected, before))) == ["DescribeKey", "ListAliases", "ListKeys"]
    assert connected.mutating_calls(before) == []
    assert connected.emulator.state_of(HSM) == "CONNECTED"


def test_a_steady_preview_lists_no_key(connected: CliStack) -> None:
    before = len(connected.calls())

    preview = connected.cli("preview")

    assert "unusable" not in preview.stdout
    assert key_calls(connected, before) == []
    assert {call.operation for call in connected.calls(before)} == {"DescribeCustomKeyStores"}


def test_up_of_a_disconnect_says_what_it_breaks_then_disconnects(connected: CliStack) -> None:
    connected.write_config(keyStores=[store_entry(HSM, "primary", desiredState="DISCONNECTED")])
    before = len(connected.calls())

    result = connected.cli("up", "--yes")

    assert f"disconnecting; {BREAKS}" in result.stdout
    assert connected.mutating_calls(before) == [("DisconnectCustomKeyStore", HSM)]
    assert connected.emulator.state_of(HSM) == "DISCONNECTED"


def test_a_guarded_up_refuses_to_disconnect_naming_the_keys_and_the_input_with_no_disconnect_call(
    connected: CliStack,
) -> None:
    connected.write_config(
        keyStores=[store_entry(HSM, "primary", desiredState="DISCONNECTED", disconnectGuard="refuse")]
    )
    before = len(connected.calls())

    result = connected.cli("up", "--yes", check=False)

    assert result.returncode != 0
    assert "will refuse to disconnect (disconnect_guard is 'refuse')" in result.stdout  # the preview up starts with
    assert "refused to disconnect: disconnect_guard is 'refuse' and the store holds 2 enabled KMS keys" in result.stdout
    assert f"alias/payments ({PAYMENTS})" in result.stdout
    assert "set disconnect_guard to 'warn'" in result.stdout
    assert connected.mutating_calls(before) == []
    assert connected.emulator.state_of(HSM) == "CONNECTED"
    assert connected.resources(CONNECTION_TYPE)["primary"]["outputs"]["connection_state"] == "CONNECTED"


def test_a_guarded_destroy_refuses_and_keeps_the_resource(connected: CliStack) -> None:
    connected.write_config(keyStores=[store_entry(HSM, "primary", disconnectGuard="refuse")])
    connected.up()
    before = len(connected.calls())

    result = connected.cli("destroy", "--yes", check=False)

    assert result.returncode != 0
    assert "refused to disconnect: disconnect_guard is 'refuse'" in result.stdout
    assert connected.mutating_calls(before) == []
    assert connected.emulator.state_of(HSM) == "CONNECTED"
    assert "primary" in connected.resources(CONNECTION_TYPE)


def test_with_list_keys_denied_up_says_the_keys_were_not_counted_and_disconnects(connected: CliStack) -> None:
    connected.emulator.deny("ListKeys")
    connected.write_config(keyStores=[store_entry(HSM, "primary", desiredState="DISCONNECTED")])

    result = connected.cli("up", "--yes")

    assert "will disconnect; keys not counted: kms:ListKeys is denied to these credentials" in result.stdout
    assert "AccessDeniedException" in result.stdout
    assert connected.emulator.state_of(HSM) == "DISCONNECTED"


def test_with_describe_key_denied_a_guarded_up_fails_closed_with_no_disconnect_call(connected: CliStack) -> None:
    connected.emulator.deny("DescribeKey")
    connected.write_config(
        keyStores=[store_entry(HSM, "primary", desiredState="DISCONNECTED", disconnectGuard="refuse")]
    )
    before = len(connected.calls())

    result = connected.cli("up", "--yes", check=False)

    assert result.returncode != 0
    assert "the keys in the store could not be counted (kms:DescribeKey is denied" in result.stdout
    assert "so it fails closed" in result.stdout
    assert connected.mutating_calls(before) == []
    assert connected.emulator.state_of(HSM) == "CONNECTED"


def test_the_plugins_native_resource_refuses_with_disconnect_guard_in_its_users_names(
    make_stack: Callable[..., CliStack],
) -> None:
    from tests.cli.programs import connection, use_yaml_program

    stack = use_yaml_program(make_stack({HSM: "primary"}), {"primary": connection(HSM)})
    stack.cli("up", "--yes")
    stack.emulator.create_key(HSM, key_id=PAYMENTS, aliases=["alias/payments"])
    project = stack.project_dir / "Pulumi.yaml"
    program = yaml.safe_load(project.read_text())
    program["resources"] = {"primary": connection(HSM, desiredState="DISCONNECTED", disconnectGuard="refuse")}
    project.write_text(yaml.safe_dump(program, sort_keys=False))
    before = len(stack.calls())

    result = stack.cli("up", "--yes", check=False)

    assert result.returncode != 0
    assert (
        "will refuse to disconnect (disconnectGuard is 'refuse'); 1 enabled key would become unusable" in result.stdout
    )
    assert "disconnectGuard is 'refuse' and the store holds 1 enabled KMS key" in result.stdout
    assert "set disconnectGuard to 'warn'" in result.stdout and "disconnect_guard" not in result.stdout
    assert stack.mutating_calls(before) == []
    assert stack.emulator.state_of(HSM) == "CONNECTED"
