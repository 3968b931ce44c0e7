"""One store, several resources: what a deployment may and may not do to a store another of its resources declares.

Every deployment runs in a provider server process of its own (``python -u -m pulumi.dynamic``), as the engine
runs one per ``preview`` or ``up``, with the registrations the stack program makes: ``__main__.py``, or
``tests/programs/free_stack.py`` where several resources name one store (``__main__.py`` refuses that). Steps run
in the engine's order (:meth:`Stack.up_parallel`: Check and Diff in program order, each step on a thread of its
own, deletes last) or in an order a test forces with the emulator's door. Each test asserts on KMS's final state,
the recorded outputs and the call log: above all, no Disconnect of a store once a resource of the deployment has
declared it CONNECTED to the provider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kms_connection.emulator import Emulator, FakeClock
from seam.engine import CheckFailuresError, ProviderError, Registration, Stack, StepResult
from tests.deployments import (
    FREE_PROGRAM,
    Deployments,
    Door,
    assert_no_disconnect_after,
    background,
    connection,
    connection_set,
    disconnects,
    free_config,
    main_config,
    mark,
    run_in_background,
    states,
)
from tests.lifecycle_fixtures import (
    CONNECT,
    DISCONNECT,
    RegistrationCache,
    count_by_store,
    mutating_calls,
    wait_until,
)

pytestmark = pytest.mark.timeout(90)

X = "cks-1111111111111111a"
Y = "cks-2222222222222222b"
TIMEOUTS = {"connectTimeoutSeconds": 30, "disconnectTimeoutSeconds": 30}

# free_stack.py: a connection and a set that both declare X.
BOTH = free_config(connection("hsm", X, **TIMEOUTS), connection_set("fleet", [X, Y], **TIMEOUTS))
FLEET_ONLY = free_config(connection_set("fleet", [X, Y], **TIMEOUTS))
HSM_ONLY = free_config(connection("hsm", X, **TIMEOUTS))
CONFLICT = free_config(
    connection("hsm", X, **TIMEOUTS), connection_set("fleet", [X, Y], desiredState="DISCONNECTED", **TIMEOUTS)
)
# __main__.py: X moves between a set and a connection.
SET_OF_BOTH = main_config(key_store_sets=[{"name": "fleet", "ids": [X, Y], **TIMEOUTS}])
X_MOVED_OUT = main_config(
    key_stores=[{"id": X, "name": "hsm", **TIMEOUTS}], key_store_sets=[{"name": "fleet", "ids": [Y], **TIMEOUTS}]
)
X_ALONE = main_config(key_stores=[{"id": X, "name": "hsm", **TIMEOUTS}])
X_MOVED_IN = main_config(key_store_sets=[{"name": "fleet", "ids": [X], **TIMEOUTS}])

FREE_CONFIGS = (BOTH, FLEET_ONLY, HSM_ONLY, CONFLICT)
MAIN_CONFIGS = (SET_OF_BOTH, X_MOVED_OUT, X_ALONE, X_MOVED_IN)


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


class Programs:
    """The registrations of both programs per config, captured once for the module."""

    def __init__(self) -> None:
        self.main = RegistrationCache()
        self.free = RegistrationCache(FREE_PROGRAM)
        self.main.prefetch(MAIN_CONFIGS)
        self.free.prefetch(FREE_CONFIGS)

    def __call__(self, config: dict[str, Any]) -> list[Registration]:
        cache = self.free if "kms-connection:resources" in config else self.main
        return [registration for registration in cache.all(config) if registration.is_dynamic]

    def by_name(self, config: dict[str, Any]) -> dict[str, Registration]:
        return {registration.name: registration for registration in self(config)}


@pytest.fixture(scope="module")
def programs() -> Programs:
    return Programs()


@pytest.fixture
def emu(kms_emulator: Emulator) -> Emulator:
    """X and Y, both DISCONNECTED; connects take 0.2 s, disconnects 0.1 s."""
    kms_emulator.create_store("x", store_id=X)
    kms_emulator.create_store("y", store_id=Y)
    return kms_emulator


@pytest.fixture
def deployments(emu: Emulator, make_deployments: Callable[[Emulator], Deployments]) -> Deployments:
    return make_deployments(emu)


@pytest.fixture
def door(emu: Emulator) -> Iterator[Door]:
    door = Door(emu)
    yield door
    door.close()


def up(deployments: Deployments, programs: Programs, config: dict[str, Any]) -> tuple[Stack, list[StepResult]]:
    """A deployment of ``config`` in the engine's order that must succeed."""
    stack = deployments.start(config)
    outcome = stack.up_parallel(programs(config))
    assert outcome.errors == [], outcome.errors
    return stack, outcome.results


def ops(results: list[StepResult]) -> list[tuple[str, str]]:
    return [(result.op, result.urn.split("::")[-1]) for result in results]


def outputs(stack: Stack, name: str) -> dict[str, Any]:
    (found,) = [state.outputs for urn, state in stack.resources.items() if urn.endswith(f"::{name}")]
    return found


# --------------------------------------------------------------------------------------------------
# A store two resources declare CONNECTED
# --------------------------------------------------------------------------------------------------


def test_removing_a_connection_leaves_connected_a_store_an_unchanged_set_declares(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, BOTH)
    emu.clear_calls()

    stack, results = up(deployments, programs, FLEET_ONLY)

    assert ops(results) == [("same", "fleet"), ("delete", "hsm")]
    assert states(emu, X, Y) == {X: "CONNECTED", Y: "CONNECTED"}
    assert outputs(stack, "fleet")["connection_states"] == {X: "CONNECTED", Y: "CONNECTED"}
    assert_no_disconnect_after(emu, X, 0)
    assert mutating_calls(emu) == []
    stack.server.wait_for_stderr(f"{X}: declared CONNECTED by CustomKeyStoreConnectionSet 'fleet' in this stack")


def test_removing_a_set_leaves_connected_the_store_a_connection_declares_and_disconnects_the_rest(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, BOTH)
    emu.clear_calls()

    stack, results = up(deployments, programs, HSM_ONLY)

    assert ops(results) == [("same", "hsm"), ("delete", "fleet")]
    assert states(emu, X, Y) == {X: "CONNECTED", Y: "DISCONNECTED"}
    assert outputs(stack, "hsm")["connection_state"] == "CONNECTED"
    assert [(call.operation, call.store_id) for call in mutating_calls(emu)] == [(DISCONNECT, Y)]


def test_two_resources_that_create_one_store_send_one_connect(
    emu: Emulator, deployments: Deployments, programs: Programs, door: Door
) -> None:
    held = door.hold(CONNECT, X)
    stack = deployments.start(BOTH)
    running = background(lambda: stack.up_parallel(programs(BOTH)), "up")
    held.wait_arrived()
    # The other resource reads X DISCONNECTED too, and waits for the first instead of sending its own Connect.
    stack.server.wait_for_stderr(f"{X}: another resource of this stack is sending requests for it")
    held.open()
    running.thread.join(60)

    assert running.outcome["result"].errors == []
    assert count_by_store(emu, CONNECT) == {X: 1, Y: 1}
    assert states(emu, X, Y) == {X: "CONNECTED", Y: "CONNECTED"}
    assert outputs(stack, "hsm")["connection_state"] == "CONNECTED"
    assert outputs(stack, "fleet")["connection_states"] == {X: "CONNECTED", Y: "CONNECTED"}


def test_two_resources_that_want_a_failed_store_connected_repair_it_once(
    kms_emulator: Emulator, make_deployments: Callable[[Emulator], Deployments], programs: Programs
) -> None:
    emu = kms_emulator
    emu.create_store("x", store_id=X, connection_state="FAILED", error_code="INTERNAL_ERROR")
    emu.create_store("y", store_id=Y, connection_state="CONNECTED")
    door = Door(emu)
    held = door.hold(DISCONNECT, X)
    stack = make_deployments(emu).start(BOTH)
    running = background(lambda: stack.up_parallel(programs(BOTH)), "up")
    held.wait_arrived()
    # While one resource's repair Disconnect is on its way, the other must not send one of its own: sent on its
    # read of FAILED, it could land after the first repair's Connect and undo it.
    stack.server.wait_for_stderr(f"{X}: another resource of this stack is sending requests for it")
    held.open()
    running.thread.join(60)
    door.close()

    assert running.outcome["result"].errors == []
    assert count_by_store(emu, DISCONNECT) == {X: 1}
    assert count_by_store(emu, CONNECT) == {X: 1}
    assert emu.state_of(X) == "CONNECTED"
    assert outputs(stack, "hsm")["connection_state"] == "CONNECTED"


# --------------------------------------------------------------------------------------------------
# A store that moves between resources
# --------------------------------------------------------------------------------------------------


def test_moving_a_store_out_of_a_set_into_a_connection_leaves_it_connected(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, SET_OF_BOTH)
    emu.clear_calls()

    stack, results = up(deployments, programs, X_MOVED_OUT)

    assert sorted(ops(results)) == [("create", "hsm"), ("update", "fleet")]
    assert states(emu, X, Y) == {X: "CONNECTED", Y: "CONNECTED"}
    assert outputs(stack, "hsm")["connection_state"] == "CONNECTED"
    assert outputs(stack, "fleet")["connection_states"] == {Y: "CONNECTED"}
    assert mutating_calls(emu) == []


def test_the_preview_of_a_move_out_of_a_set_says_the_store_stays_connected(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, SET_OF_BOTH)
    emu.clear_calls()
    stack = deployments.start(X_MOVED_OUT)

    planned = [stack.plan_step(registration, preview=True) for registration in programs(X_MOVED_OUT)]

    assert [(step.op, step.registration.name) for step in planned] == [("create", "hsm"), ("update", "fleet")]
    stack.server.wait_for_stderr(
        f"{X}: leaves the set; declared CONNECTED by CustomKeyStoreConnection 'hsm' in this stack: will leave it "
        "connected"
    )
    assert not [line for line in stack.server.stderr_lines() if line.startswith(X) and "will disconnect" in line]
    assert mutating_calls(emu) == []


@pytest.mark.parametrize("first", ["fleet", "hsm"], ids=["set-update-first", "connection-create-first"])
def test_a_move_out_of_a_set_leaves_the_store_connected_whichever_step_runs_first(
    emu: Emulator, deployments: Deployments, programs: Programs, first: str
) -> None:
    up(deployments, programs, SET_OF_BOTH)
    emu.clear_calls()
    stack = deployments.start(X_MOVED_OUT)
    regs = programs.by_name(X_MOVED_OUT)
    # The engine generates both steps (Check, Diff) in program order; the executor may run either first.
    planned = {name: stack.plan_step(regs[name]) for name in ("hsm", "fleet")}

    for name in (first, "hsm" if first == "fleet" else "fleet"):
        stack.run_step(planned[name])

    assert states(emu, X, Y) == {X: "CONNECTED", Y: "CONNECTED"}
    assert outputs(stack, "hsm")["connection_state"] == "CONNECTED"
    assert outputs(stack, "fleet")["connection_states"] == {Y: "CONNECTED"}
    assert mutating_calls(emu) == []


def test_a_set_that_disconnects_a_store_before_the_connection_it_moved_to_is_shown_lets_that_connection_have_it(
    make_emulator: Callable[..., Emulator], make_deployments: Callable[[Emulator], Deployments], programs: Programs
) -> None:
    # A program that registers the set first: the set's update may disconnect X before the engine has shown the
    # provider the connection X moved to. From then on the set must leave X to it, and it must end CONNECTED.
    clock = FakeClock()
    emu = make_emulator(clock=clock, connect_seconds=5, disconnect_seconds=5)
    emu.create_store("x", store_id=X, connection_state="CONNECTED")
    emu.create_store("y", store_id=Y, connection_state="CONNECTED")
    deployments = make_deployments(emu)
    up(deployments, programs, SET_OF_BOTH)
    stack = deployments.start(X_MOVED_OUT)
    regs = programs.by_name(X_MOVED_OUT)

    fleet = run_in_background(stack, stack.plan_step(regs["fleet"]))
    wait_until(lambda: bool(disconnects(emu, X)), 20, "the set's Disconnect of X")
    declared = mark(emu)
    hsm = run_in_background(stack, stack.plan_step(regs["hsm"]))  # Check declares X CONNECTED
    fleet_result = fleet.result()  # the set leaves X at its next look instead of waiting for DISCONNECTED
    clock.advance(5)  # X is DISCONNECTED
    wait_until(lambda: count_by_store(emu, CONNECT)[X] == 1, 20, "the connection's Connect of X")
    clock.advance(5)  # X is CONNECTED
    hsm_result = hsm.result()

    assert fleet_result.new is not None and fleet_result.new.outputs["connection_states"] == {Y: "CONNECTED"}
    assert hsm_result.new is not None and hsm_result.new.outputs["connection_state"] == "CONNECTED"
    assert states(emu, X, Y) == {X: "CONNECTED", Y: "CONNECTED"}
    assert len(disconnects(emu, X)) == 1
    assert_no_disconnect_after(emu, X, declared)
    stack.server.wait_for_stderr(f"{X}: declared CONNECTED by CustomKeyStoreConnection 'hsm' in this stack")


def test_moving_a_store_from_a_connection_into_a_set_leaves_it_connected(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    up(deployments, programs, X_ALONE)
    emu.clear_calls()

    stack, results = up(deployments, programs, X_MOVED_IN)

    assert ops(results) == [("create", "fleet"), ("delete", "hsm")]
    assert emu.state_of(X) == "CONNECTED"
    assert outputs(stack, "fleet")["connection_states"] == {X: "CONNECTED"}
    assert mutating_calls(emu) == []


# --------------------------------------------------------------------------------------------------
# One store declared CONNECTED by one resource and DISCONNECTED by another
# --------------------------------------------------------------------------------------------------

CONFLICT_TEXT = (
    f"custom key store {X} in us-east-1 is declared DISCONNECTED by CustomKeyStoreConnectionSet 'fleet' and "
    "CONNECTED by CustomKeyStoreConnection 'hsm'"
)


def test_preview_refuses_one_store_declared_connected_and_disconnected_naming_both(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    stack = deployments.start(CONFLICT)
    hsm, fleet = programs(CONFLICT)

    stack.plan_step(hsm, preview=True)
    with pytest.raises(CheckFailuresError) as raised:
        stack.plan_step(fleet, preview=True)

    (failure,) = raised.value.failures
    assert failure.property == "desired_state"
    assert failure.reason.startswith(CONFLICT_TEXT)
    # Only the first resource's Check read its store (its plan line); the refused one made no call at all.
    assert [(call.operation, call.store_id) for call in emu.calls] == [("DescribeCustomKeyStores", X)]


def test_up_refuses_conflicting_declarations_and_stops_the_other_resource_before_any_request(
    emu: Emulator, deployments: Deployments, programs: Programs, door: Door
) -> None:
    # The first read of X is hsm's Check (its plan line); the second, held, is its Create's.
    held = door.hold("DescribeCustomKeyStores", X, skip=1)
    stack = deployments.start(CONFLICT)
    hsm, fleet = programs(CONFLICT)

    running = run_in_background(stack, stack.plan_step(hsm))  # the engine runs hsm's create...
    held.wait_arrived()
    with pytest.raises(CheckFailuresError) as refused:  # ...while it checks fleet
        stack.plan_step(fleet)
    held.open()
    error = running.error()

    assert refused.value.failures[0].reason.startswith(CONFLICT_TEXT)
    assert error.method == "Create"
    assert "kms_connection.errors.DeclarationConflictError" in error.details
    assert (
        f"custom key store {X} in us-east-1: stopped converging: the store is declared CONNECTED by "
        "CustomKeyStoreConnection 'hsm' and DISCONNECTED by CustomKeyStoreConnectionSet 'fleet'"
    ) in error.details
    assert mutating_calls(emu) == []
    assert stack.resources == {}


def test_ups_of_conflicting_declarations_fail_every_time_instead_of_flipping_the_store(
    emu: Emulator, deployments: Deployments, programs: Programs
) -> None:
    for _ in range(2):
        outcome = deployments.start(CONFLICT).up_parallel(programs(CONFLICT))
        (refusal,) = [error for error in outcome.errors if isinstance(error, CheckFailuresError)]
        assert refusal.failures[0].reason.startswith(CONFLICT_TEXT)
        assert all(isinstance(error, CheckFailuresError | ProviderError) for error in outcome.errors)

    # The connection may have connected X before the set's Check reached the provider; nothing ever disconnects it.
    assert count_by_store(emu, DISCONNECT) == {}
    assert count_by_store(emu, CONNECT)[X] <= 1
