"""Reads that contradict a request, and spurious NotFounds, through the SDK's provider server.

KMS is eventually consistent, so a read right after a request may not show it; but the store may also have been
changed back by another client before we looked. A contradicting read is looked at again for 3 more reads and at
least 5 seconds (``plan.CONSISTENCY_LOOKS``, ``plan.CONSISTENCY_SECONDS``), then believed: the request is sent again
once, and a second time the operation fails saying what changed and what the next ``up`` does. The emulator runs on
a fake clock, so a transition happens only when a test moves it; the emulator's door holds the provider's read
while another client acts. One provider process per deployment, as the engine runs them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kms_connection.emulator import Emulator, FakeClock
from kms_connection.plan import CONSISTENCY_SECONDS
from seam.engine import Registration, Stack
from tests.deployments import Deployments, Door, Running, disconnects, main_config, run_in_background
from tests.lifecycle_fixtures import (
    CONNECT,
    DESCRIBE,
    DISCONNECT,
    RegistrationCache,
    count_by_store,
    mutating_calls,
    wait_until,
)

pytestmark = pytest.mark.timeout(90)

X = "cks-1111111111111111a"
TRANSITION = 5.0  # seconds of the fake clock a connect or disconnect takes
ENTRY = {"id": X, "name": "hsm", "connectTimeoutSeconds": 60, "disconnectTimeoutSeconds": 60}
WANT_CONNECTED = main_config([ENTRY])
WANT_DISCONNECTED = main_config([{**ENTRY, "desiredState": "DISCONNECTED"}])
NOTHING = main_config()


@pytest.fixture(scope="module")
def registrations() -> RegistrationCache:
    cache = RegistrationCache()
    cache.prefetch([WANT_CONNECTED, WANT_DISCONNECTED])
    return cache


class Slow:
    """An emulator on a fake clock holding X, the provider deployments against it, and its door."""

    def __init__(self, emulator: Emulator, clock: FakeClock, deployments: Deployments) -> None:
        self.emu = emulator
        self.clock = clock
        self.deployments = deployments
        self.door = Door(emulator)
        self.other = emulator.client()  # another client: the console, a script, a colleague

    def settle(self) -> None:
        """Let the transition under way finish."""
        self.clock.advance(TRANSITION)


@pytest.fixture
def slow(
    make_emulator: Callable[..., Emulator], make_deployments: Callable[[Emulator], Deployments]
) -> Iterator[Slow]:
    clock = FakeClock()
    emulator = make_emulator(clock=clock, connect_seconds=TRANSITION, disconnect_seconds=TRANSITION)
    world = Slow(emulator, clock, make_deployments(emulator))
    yield world
    world.door.close()


@pytest.fixture
def emu(kms_emulator: Emulator) -> Emulator:
    """X CONNECTED, on the real clock (connects 0.2 s, disconnects 0.1 s)."""
    kms_emulator.create_store("hsm", store_id=X, connection_state="CONNECTED")
    return kms_emulator


def the(registrations: RegistrationCache, config: dict[str, Any]) -> Registration:
    (registration,) = registrations(config).values()
    return registration


def connected_stack(slow: Slow, registrations: RegistrationCache) -> None:
    """A first deployment that records X as CONNECTED (X is CONNECTED already: one read)."""
    slow.emu.create_store("hsm", store_id=X, connection_state="CONNECTED")
    slow.deployments.start(WANT_CONNECTED).up(the(registrations, WANT_CONNECTED))
    slow.emu.clear_calls()


def disconnect_undone_before_our_read(slow: Slow, registrations: RegistrationCache) -> tuple[Stack, Running]:
    """Start an update to DISCONNECTED whose Disconnect another client undoes before the provider's next read;
    return the stack and the running update, the read let through once the store is CONNECTED again."""
    stack = slow.deployments.start(WANT_DISCONNECTED)
    planned = stack.plan_step(the(registrations, WANT_DISCONNECTED))
    after_disconnect = slow.door.hold(DESCRIBE, X, skip=1)  # the update's first read goes through
    running = run_in_background(stack, planned)
    after_disconnect.wait_arrived()
    slow.settle()
    slow.other.connect_custom_key_store(CustomKeyStoreId=X)
    slow.settle()
    assert slow.emu.state_of(X) == "CONNECTED"
    after_disconnect.open()
    return stack, running


# --------------------------------------------------------------------------------------------------
# A request undone before we looked
# --------------------------------------------------------------------------------------------------


def test_a_store_reconnected_between_our_disconnect_and_our_first_read_is_disconnected_again_within_seconds(
    slow: Slow, registrations: RegistrationCache
) -> None:
    connected_stack(slow, registrations)
    opened = time.monotonic()
    _, running = disconnect_undone_before_our_read(slow, registrations)

    wait_until(lambda: len(disconnects(slow.emu, X)) == 2, 30, "the Disconnect sent again")
    believed_after = time.monotonic() - opened
    slow.settle()
    result = running.result()

    assert result.new is not None and result.new.outputs["connection_state"] == "DISCONNECTED"
    assert slow.emu.state_of(X) == "DISCONNECTED"
    # Believed once the window had passed: seconds, not the 60 s timeout it used to wait out.
    assert CONSISTENCY_SECONDS <= believed_after < 4 * CONSISTENCY_SECONDS


def test_a_store_disconnected_between_our_connect_and_our_first_read_is_connected_again_within_seconds(
    slow: Slow, registrations: RegistrationCache
) -> None:
    slow.emu.create_store("hsm", store_id=X)
    stack = slow.deployments.start(WANT_CONNECTED)
    planned = stack.plan_step(the(registrations, WANT_CONNECTED))
    after_connect = slow.door.hold(DESCRIBE, X, skip=1)
    running = run_in_background(stack, planned)
    after_connect.wait_arrived()
    slow.other.disconnect_custom_key_store(CustomKeyStoreId=X)  # KMS accepts it while CONNECTING
    slow.settle()
    opened = time.monotonic()
    after_connect.open()

    wait_until(lambda: count_by_store(slow.emu, CONNECT)[X] == 2, 30, "the Connect sent again")
    believed_after = time.monotonic() - opened
    slow.settle()
    result = running.result()

    assert result.new is not None and result.new.outputs["connection_state"] == "CONNECTED"
    assert slow.emu.state_of(X) == "CONNECTED"
    assert CONSISTENCY_SECONDS <= believed_after < 4 * CONSISTENCY_SECONDS


def undone_twice(slow: Slow, registrations: RegistrationCache) -> str:
    """An update to DISCONNECTED whose Disconnect another client undoes before our read, twice: its error."""
    connected_stack(slow, registrations)
    second_disconnect = slow.door.hold(DISCONNECT, X, skip=1)
    _, running = disconnect_undone_before_our_read(slow, registrations)
    second_disconnect.wait_arrived(30)
    after_it = slow.door.hold(DESCRIBE, X)
    second_disconnect.open()
    after_it.wait_arrived()
    slow.settle()
    slow.other.connect_custom_key_store(CustomKeyStoreId=X)
    slow.settle()
    after_it.open()
    error = running.error()
    assert error.method == "Update"
    return error.details


def test_a_disconnect_undone_twice_fails_saying_what_changed_and_what_the_next_up_does(
    slow: Slow, registrations: RegistrationCache
) -> None:
    details = undone_twice(slow, registrations)

    assert "kms_connection.errors.RequestNotSeenError" in details
    assert (
        f"custom key store {X} in us-east-1: KMS accepted DisconnectCustomKeyStore twice, but the store still "
        "showed CONNECTED"
    ) in details
    assert (
        "Check who manages this store: the next `pulumi up` reads it again and, if it is still CONNECTED, "
        "disconnects it."
    ) in details
    assert count_by_store(slow.emu, DISCONNECT) == {X: 2}
    assert slow.emu.state_of(X) == "CONNECTED"


def test_the_next_up_after_a_disconnect_undone_twice_does_what_the_message_said(
    slow: Slow, registrations: RegistrationCache
) -> None:
    undone_twice(slow, registrations)
    slow.emu.clear_calls()
    stack = slow.deployments.start(WANT_DISCONNECTED)
    running = run_in_background(stack, stack.plan_step(the(registrations, WANT_DISCONNECTED)))

    wait_until(lambda: count_by_store(slow.emu, DISCONNECT)[X] == 1, 30, "the next up's Disconnect")
    slow.settle()
    result = running.result()

    assert result.new is not None and result.new.outputs["connection_state"] == "DISCONNECTED"
    assert [call.operation for call in mutating_calls(slow.emu)] == [DISCONNECT]


# --------------------------------------------------------------------------------------------------
# A spurious NotFound of a store the state records
# --------------------------------------------------------------------------------------------------


def test_an_update_whose_first_read_answers_not_found_looks_again(
    emu: Emulator, make_deployments: Callable[[Emulator], Deployments], registrations: RegistrationCache
) -> None:
    deployments = make_deployments(emu)
    deployments.start(WANT_CONNECTED).up(the(registrations, WANT_CONNECTED))
    stack = deployments.start(WANT_DISCONNECTED)
    planned = stack.plan_step(the(registrations, WANT_DISCONNECTED))
    door = Door(emu)
    spurious = door.not_found_once(X)

    result = stack.run_step(planned)
    door.close()

    assert spurious.arrived.is_set()
    assert result.new is not None and result.new.outputs["connection_state"] == "DISCONNECTED"
    assert count_by_store(emu, DISCONNECT) == {X: 1}


def test_a_delete_whose_first_read_answers_not_found_looks_again_and_disconnects(
    emu: Emulator, make_deployments: Callable[[Emulator], Deployments], registrations: RegistrationCache
) -> None:
    deployments = make_deployments(emu)
    deployments.start(WANT_CONNECTED).up(the(registrations, WANT_CONNECTED))
    stack = deployments.start(NOTHING)
    door = Door(emu)
    spurious = door.not_found_once(X)

    outcome = stack.up_parallel([])  # the program no longer declares the connection
    door.close()

    assert outcome.errors == [] and [result.op for result in outcome.results] == ["delete"]
    assert spurious.arrived.is_set()
    assert emu.state_of(X) == "DISCONNECTED"
    assert not [line for line in stack.server.stderr_lines() if "not found" in line]


def test_a_refresh_whose_first_read_answers_not_found_looks_again_and_keeps_the_resource(
    emu: Emulator, make_deployments: Callable[[Emulator], Deployments], registrations: RegistrationCache
) -> None:
    deployments = make_deployments(emu)
    registration = the(registrations, WANT_CONNECTED)
    deployments.start(WANT_CONNECTED).up(registration)
    stack = deployments.start(WANT_CONNECTED)
    door = Door(emu)
    spurious = door.not_found_once(X)

    result = stack.refresh(registration.urn)
    door.close()

    assert spurious.arrived.is_set()
    assert result.new is not None and result.new.outputs["connection_state"] == "CONNECTED"
    assert registration.urn in stack.resources
