"""What a disconnect breaks, through the provider server: the preview's blast-radius line, its absence from steady
previews, ``disconnect_guard`` (``warn``, ``refuse``, ``off``) in up, delete and a store leaving a set, and denied
key calls handled both ways.

Every deployment runs in a provider server process of its own (``python -u -m pulumi.dynamic``, as the engine runs
one per ``preview`` or ``up``; ``tests/deployments.py``) with the registrations ``tests/programs/free_stack.py``
makes, against an in-process emulator whose Region holds the stores' keys and keys of no store. Each test asserts on
what the provider printed (the engine shows it to the user), on the error the engine gets, and on the emulator's call
log: which key calls were made, and above all that a refused disconnect sent no DisconnectCustomKeyStore.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kms_connection.emulator import Emulator
from seam.engine import ProviderError, Registration, Stack
from tests.deployments import FREE_PROGRAM, Deployments, connection, connection_set, free_config
from tests.lifecycle_fixtures import (
    AMBIENT_AWS_VARIABLES,
    DISCONNECT,
    RegistrationCache,
    mutating_calls,
    wait_for_state,
)

pytestmark = pytest.mark.timeout(90)

X = "cks-1111111111111111a"
Y = "cks-2222222222222222b"
PAYMENTS = "1a1a1a1a-0000-4000-8000-000000000001"
LEDGER = "2b2b2b2b-0000-4000-8000-000000000002"
RETIRED = "3c3c3c3c-0000-4000-8000-000000000003"
IN_Y = "4d4d4d4d-0000-4000-8000-000000000004"
KEY_CALLS = ("ListKeys", "DescribeKey", "ListAliases")
TIMEOUTS = {"connectTimeoutSeconds": 30, "disconnectTimeoutSeconds": 30}
BREAKS_X = f"will disconnect; 2 enabled keys become unusable: alias/payments ({PAYMENTS}), {LEDGER}"

CONNECTED = free_config(connection("hsm", X, **TIMEOUTS))
CONNECTED_REFUSE = free_config(connection("hsm", X, disconnectGuard="refuse", **TIMEOUTS))
DISCONNECTED = free_config(connection("hsm", X, desiredState="DISCONNECTED", **TIMEOUTS))
DISCONNECTED_REFUSE = free_config(
    connection("hsm", X, desiredState="DISCONNECTED", disconnectGuard="refuse", **TIMEOUTS)
)
DISCONNECTED_OFF = free_config(connection("hsm", X, desiredState="DISCONNECTED", disconnectGuard="OFF", **TIMEOUTS))
NOTHING = free_config()
FLEET = free_config(connection_set("fleet", [X, Y], **TIMEOUTS))
FLEET_REFUSE = free_config(connection_set("fleet", [X, Y], disconnectGuard="refuse", **TIMEOUTS))
FLEET_WITHOUT_X = free_config(connection_set("fleet", [Y], **TIMEOUTS))
FLEET_WITHOUT_X_REFUSE = free_config(connection_set("fleet", [Y], disconnectGuard="refuse", **TIMEOUTS))
FLEET_DISCONNECTED = free_config(connection_set("fleet", [X, Y], desiredState="DISCONNECTED", **TIMEOUTS))
CONFIGS = (
    CONNECTED,
    CONNECTED_REFUSE,
    DISCONNECTED,
    DISCONNECTED_REFUSE,
    DISCONNECTED_OFF,
    NOTHING,
    FLEET,
    FLEET_REFUSE,
    FLEET_WITHOUT_X,
    FLEET_WITHOUT_X_REFUSE,
    FLEET_DISCONNECTED,
)


@pytest.fixture(scope="module")
def programs() -> Callable[[dict[str, Any]], list[Registration]]:
    """The registrations of ``free_stack.py`` per config, captured once for the module (4 at a time)."""
    cache = RegistrationCache(FREE_PROGRAM)
    cache.prefetch(CONFIGS)
    return lambda config: [registration for registration in cache.all(config) if registration.is_dynamic]


@pytest.fixture
def emu(kms_emulator: Emulator) -> Emulator:
    """X and Y CONNECTED. X holds two enabled keys (one named alias/payments) and a disabled one, Y one key; the
    Region also holds two keys of no store."""
    kms_emulator.create_store("x", store_id=X, connection_state="CONNECTED")
    kms_emulator.create_store("y", store_id=Y, connection_state="CONNECTED")
    kms_emulator.create_key(aliases=["alias/app"])
    kms_emulator.create_key(X, key_id=PAYMENTS, aliases=["alias/payments"])
    kms_emulator.create_key(X, key_id=LEDGER)
    kms_emulator.create_key(X, key_id=RETIRED, enabled=False)
    kms_emulator.create_key(Y, key_id=IN_Y)
    kms_emulator.create_key()
    return kms_emulator


@pytest.fixture
def deployments(emu: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Deployments]:
    """Deployments of one stack against ``emu``, each in its own provider process."""
    for name in AMBIENT_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    made = Deployments(emu, tmp_path)
    yield made
    made.close()


Programs = Callable[[dict[str, Any]], list[Registration]]


def up(deployments: Deployments, programs: Programs, config: dict[str, Any]) -> Stack:
    """A deployment of ``config`` that must succeed; the call log is emptied after it."""
    stack = deployments.start(config)
    outcome = stack.up_parallel(programs(config))
    assert outcome.errors == [], outcome.errors
    deployments.emulator.clear_calls()
    return stack


def preview(deployments: Deployments, programs: Programs, config: dict[str, Any]) -> Stack:
    """A ``pulumi preview`` of ``config``: Check and Diff of every resource, nothing run."""
    stack = deployments.start(config)
    for registration in programs(config):
        stack.preview(registration)
    return stack


def fail_out_of_band(emu: Emulator, store_id: str) -> None:
    """Make a CONNECTED store FAILED (USER_LOCKED_OUT) as a reconnect by another client would, then empty the log."""
    emu.set_connect_outcome(store_id, "fail", "USER_LOCKED_OUT")
    client = emu.client()
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    wait_for_state(emu, store_id, "DISCONNECTED")
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    wait_for_state(emu, store_id, "FAILED")
    emu.clear_calls()


def key_calls(emu: Emulator) -> dict[str, int]:
    counts = {operation: 0 for operation in KEY_CALLS}
    for call in emu.calls:
        if call.operation in counts:
            counts[call.operation] += 1
    return counts


def failure(deployments: Deployments, programs: Programs, config: dict[str, Any]) -> ProviderError:
    """A deployment of ``config`` that must fail with one provider error; that error."""
    stack = deployments.start(config)
    outcome = stack.up_parallel(programs(config))
    assert len(outcome.errors) == 1, outcome.errors
    error = outcome.errors[0]
    assert isinstance(error, ProviderError), error
    return error


# --------------------------------------------------------------------------------------------------
# warn (the default): the preview, the up, the delete
# --------------------------------------------------------------------------------------------------


def test_preview_of_a_disconnect_names_the_enabled_keys_that_become_unusable(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, CONNECTED)

    stack = preview(deployments, programs, DISCONNECTED)

    line = stack.server.wait_for_stderr(BREAKS_X)
    assert line.startswith(X) and "observed CONNECTED, desired DISCONNECTED" in line
    assert RETIRED not in line  # a disabled key breaks nothing
    # One listing of the Region's keys (six) and one of its aliases.
    assert key_calls(emu) == {"ListKeys": 1, "DescribeKey": 6, "ListAliases": 1}
    assert mutating_calls(emu) == []
    assert emu.state_of(X) == "CONNECTED"


def test_a_steady_preview_makes_no_key_call(emu: Emulator, deployments: Deployments, programs: Programs) -> None:
    up(deployments, programs, CONNECTED)

    preview(deployments, programs, CONNECTED)

    assert key_calls(emu) == {"ListKeys": 0, "DescribeKey": 0, "ListAliases": 0}
    assert {call.operation for call in emu.calls} == {"DescribeCustomKeyStores"}


def test_a_preview_of_a_store_already_disconnected_makes_no_key_call(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, DISCONNECTED)

    preview(deployments, programs, DISCONNECTED)

    assert key_calls(emu) == {"ListKeys": 0, "DescribeKey": 0, "ListAliases": 0}


def test_up_of_a_disconnect_says_what_it_breaks_then_disconnects(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, CONNECTED)
    stack = deployments.start(DISCONNECTED)

    outcome = stack.up_parallel(programs(DISCONNECTED))

    assert outcome.errors == []
    stack.server.wait_for_stderr(
        f"CONNECTED, desired DISCONNECTED: disconnecting; 2 enabled keys become unusable: alias/payments ({PAYMENTS})"
    )
    assert emu.state_of(X) == "DISCONNECTED"
    assert [(call.operation, call.store_id) for call in mutating_calls(emu)] == [(DISCONNECT, X)]


def test_destroy_with_on_delete_disconnect_says_what_it_breaks(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, CONNECTED)
    stack = deployments.start(NOTHING)

    outcome = stack.up_parallel(programs(NOTHING))

    assert outcome.errors == []
    stack.server.wait_for_stderr(
        f"disconnecting; 2 enabled keys become unusable: alias/payments ({PAYMENTS}), {LEDGER}"
    )
    assert emu.state_of(X) == "DISCONNECTED"


def test_the_repair_of_a_failed_store_lists_no_key_and_no_guard_stops_it(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, CONNECTED_REFUSE)
    fail_out_of_band(emu, X)
    stack = preview(deployments, programs, CONNECTED_REFUSE)
    stack.server.wait_for_stderr("observed FAILED (USER_LOCKED_OUT), desired CONNECTED: will disconnect, then connect")
    emu.set_connect_outcome(X, "succeed")

    outcome = stack.up_parallel(programs(CONNECTED_REFUSE))

    assert outcome.errors == []
    assert emu.state_of(X) == "CONNECTED"
    assert key_calls(emu) == {"ListKeys": 0, "DescribeKey": 0, "ListAliases": 0}


# --------------------------------------------------------------------------------------------------
# refuse
# --------------------------------------------------------------------------------------------------


def test_preview_of_a_guarded_disconnect_says_up_will_refuse_it(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, CONNECTED)

    stack = preview(deployments, programs, DISCONNECTED_REFUSE)

    stack.server.wait_for_stderr(
        "will refuse to disconnect (disconnect_guard is 'refuse'); 2 enabled keys would become unusable: "
        f"alias/payments ({PAYMENTS}), {LEDGER}"
    )


def test_a_guarded_disconnect_of_a_store_with_enabled_keys_fails_with_no_disconnect_call(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, CONNECTED)

    error = failure(deployments, programs, DISCONNECTED_REFUSE)

    assert (
        f"custom key store {X} in us-east-1: refused to disconnect: disconnect_guard is 'refuse' and the store holds "
        f"2 enabled KMS keys that a disconnect makes unusable: alias/payments ({PAYMENTS}), {LEDGER}. No "
        "DisconnectCustomKeyStore was sent: the store stays CONNECTED. To fix: to disconnect it anyway, set "
        "disconnect_guard to 'warn'"
    ) in error.details
    assert mutating_calls(emu) == []
    assert emu.state_of(X) == "CONNECTED"


def test_a_guarded_disconnect_of_a_store_without_enabled_keys_goes_on(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, CONNECTED)
    emu.client().disable_key(KeyId=PAYMENTS)
    emu.client().schedule_key_deletion(KeyId=LEDGER)
    emu.clear_calls()
    stack = deployments.start(DISCONNECTED_REFUSE)

    outcome = stack.up_parallel(programs(DISCONNECTED_REFUSE))

    assert outcome.errors == []
    stack.server.wait_for_stderr(
        "disconnecting; no enabled key becomes unusable (the store holds 3 keys: 2 Disabled, 1 PendingDeletion)"
    )
    assert emu.state_of(X) == "DISCONNECTED"


def test_a_guarded_delete_is_refused_and_the_resource_kept(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, CONNECTED_REFUSE)
    stack = deployments.start(NOTHING)
    (urn,) = stack.resources

    with pytest.raises(ProviderError) as raised:
        stack.destroy(urn)

    assert "refused to disconnect: disconnect_guard is 'refuse' and the store holds 2 enabled KMS keys" in str(
        raised.value
    )
    assert mutating_calls(emu) == []
    assert emu.state_of(X) == "CONNECTED"
    assert urn in stack.resources


def test_a_store_leaving_a_guarded_set_is_refused_and_the_rest_of_the_set_stays(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, FLEET_REFUSE)

    preview(deployments, programs, FLEET_WITHOUT_X_REFUSE).server.wait_for_stderr(
        f"{X}: observed CONNECTED, desired DISCONNECTED: will refuse to disconnect"
    )
    emu.clear_calls()
    error = failure(deployments, programs, FLEET_WITHOUT_X_REFUSE)

    assert f"custom key store {X} in us-east-1: refused to disconnect" in error.details
    assert mutating_calls(emu) == []
    assert emu.state_of(X) == emu.state_of(Y) == "CONNECTED"


def test_a_store_leaving_a_set_says_what_it_breaks(emu: Emulator, deployments: Deployments, programs: Programs) -> None:
    up(deployments, programs, FLEET)

    stack = preview(deployments, programs, FLEET_WITHOUT_X)

    stack.server.wait_for_stderr(BREAKS_X)
    assert key_calls(emu)["ListKeys"] == 1


def test_a_set_disconnecting_two_stores_lists_the_regions_keys_once_per_operation(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, FLEET)
    stack = deployments.start(FLEET_DISCONNECTED)

    outcome = stack.up_parallel(programs(FLEET_DISCONNECTED))

    assert outcome.errors == []
    stack.server.wait_for_stderr(f"{Y}: observed CONNECTED, desired DISCONNECTED: will disconnect; 1 enabled key")
    stack.server.wait_for_stderr(f"disconnecting; 1 enabled key becomes unusable: {IN_Y}")
    # Two operations, the Diff and the Update, each listing the Region's six keys and its aliases once for both
    # stores.
    assert key_calls(emu) == {"ListKeys": 2, "DescribeKey": 12, "ListAliases": 2}
    assert emu.state_of(X) == emu.state_of(Y) == "DISCONNECTED"


# --------------------------------------------------------------------------------------------------
# off
# --------------------------------------------------------------------------------------------------


def test_off_makes_no_key_call_and_says_nothing_of_keys(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, CONNECTED)
    stack = preview(deployments, programs, DISCONNECTED_OFF)
    line = stack.server.wait_for_stderr("observed CONNECTED, desired DISCONNECTED")

    outcome = stack.up_parallel(programs(DISCONNECTED_OFF))

    assert line.endswith("observed CONNECTED, desired DISCONNECTED: will disconnect")
    assert outcome.errors == []
    assert key_calls(emu) == {"ListKeys": 0, "DescribeKey": 0, "ListAliases": 0}
    assert emu.state_of(X) == "DISCONNECTED"


# --------------------------------------------------------------------------------------------------
# denied key calls
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("denied", ["ListKeys", "DescribeKey"])
def test_with_key_calls_denied_the_preview_says_the_keys_were_not_counted_and_why_and_up_goes_on(
    emu: Emulator, deployments: Deployments, programs: Programs, denied: str
) -> None:
    up(deployments, programs, CONNECTED)
    emu.deny(denied)

    stack = preview(deployments, programs, DISCONNECTED)
    line = stack.server.wait_for_stderr("keys not counted")
    outcome = stack.up_parallel(programs(DISCONNECTED))

    assert (
        f"will disconnect; keys not counted: kms:{denied} is denied to these credentials (AccessDeniedException: "
        f"User: arn:aws:iam::000000000000:root is not authorized to perform: kms:{denied}"
    ) in line
    assert outcome.errors == []
    assert emu.state_of(X) == "DISCONNECTED"


@pytest.mark.parametrize("denied", ["ListKeys", "DescribeKey"])
def test_a_guarded_disconnect_with_key_calls_denied_fails_closed_with_no_disconnect_call(
    emu: Emulator, deployments: Deployments, programs: Programs, denied: str
) -> None:
    up(deployments, programs, CONNECTED)
    emu.deny(denied)

    error = failure(deployments, programs, DISCONNECTED_REFUSE)

    assert (
        f"refused to disconnect: disconnect_guard is 'refuse' and the keys in the store could not be counted "
        f"(kms:{denied} is denied to these credentials"
    ) in error.details
    assert "so it fails closed" in error.details
    assert "grant the read-only kms:ListKeys, kms:DescribeKey and kms:ListAliases" in error.details
    assert mutating_calls(emu) == []
    assert emu.state_of(X) == "CONNECTED"


def test_with_list_aliases_denied_the_keys_are_named_by_id(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, CONNECTED)
    emu.deny("ListAliases")

    stack = preview(deployments, programs, DISCONNECTED)

    line = stack.server.wait_for_stderr("2 enabled keys become unusable")
    assert f"2 enabled keys become unusable: {PAYMENTS}, {LEDGER} (aliases not read: kms:ListAliases is denied" in line
