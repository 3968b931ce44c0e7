"""A set whose create or update fails part-way, and a set member deleted out of band, through the provider server.

The Python dynamic provider cannot hand the engine outputs along with a failure, so after a failed create the state
records no resource and after a failed update it keeps the old outputs. The choice (see the README's "One store,
several resources"): a failed operation names each store it connected that the state will therefore not record,
with the AWS CLI command that disconnects it, and the next ``up`` of the same program records it. One provider
process per deployment, steps in the engine's order; assertions on KMS, the recorded outputs and the call log.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kms_connection.emulator import Emulator
from seam.engine import ProviderError, Stack
from tests.deployments import Deployments, main_config, states
from tests.lifecycle_fixtures import (
    AMBIENT_AWS_VARIABLES,
    CONNECT,
    RegistrationCache,
    count_by_store,
    delete_out_of_band,
    mutating_calls,
    provider_env,
)

pytestmark = pytest.mark.timeout(90)

A = "cks-aaaaaaaaaaaaaaaa1"
B = "cks-bbbbbbbbbbbbbbbb2"
C = "cks-cccccccccccccccc3"
TIMEOUTS = {"connectTimeoutSeconds": 30, "disconnectTimeoutSeconds": 30}


def fleet(*store_ids: str) -> dict[str, Any]:
    return main_config(key_store_sets=[{"name": "fleet", "ids": list(store_ids), **TIMEOUTS}])


CONFIGS = (fleet(A), fleet(A, B, C), fleet(A, C), fleet(A, B))


@pytest.fixture(scope="module")
def registrations() -> RegistrationCache:
    cache = RegistrationCache()
    cache.prefetch(CONFIGS)
    return cache


@pytest.fixture
def emu(kms_emulator: Emulator) -> Emulator:
    """A, B and C, DISCONNECTED; C's connects end FAILED (USER_LOCKED_OUT) until a test says otherwise."""
    for name, store_id in (("a", A), ("b", B), ("c", C)):
        kms_emulator.create_store(name, store_id=store_id)
    kms_emulator.set_connect_outcome(C, "fail", "USER_LOCKED_OUT")
    return kms_emulator


@pytest.fixture
def deployments(emu: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Deployments]:
    for name in AMBIENT_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    deployments = Deployments(emu, tmp_path)
    yield deployments
    deployments.close()


def up(deployments: Deployments, registrations: RegistrationCache, config: dict[str, Any]) -> tuple[Stack, list[Any]]:
    """A deployment of ``config`` in the engine's order; the stack and the failures."""
    stack = deployments.start(config)
    outcome = stack.up_parallel([r for r in registrations.all(config) if r.is_dynamic])
    return stack, outcome.errors


def recorded(stack: Stack) -> dict[str, str]:
    (state,) = stack.resources.values()
    states: dict[str, str] = state.outputs["connection_states"]
    return states


def only_failure(errors: list[Any], method: str) -> str:
    (error,) = errors
    assert isinstance(error, ProviderError) and error.method == method, error
    return error.details


def grown_and_failed(deployments: Deployments, registrations: RegistrationCache) -> tuple[Stack, str]:
    """[A] recorded, then an update to [A, B, C] that connects B and fails on C: the stack and the error."""
    _, errors = up(deployments, registrations, fleet(A))
    assert errors == []
    stack, errors = up(deployments, registrations, fleet(A, B, C))
    return stack, only_failure(errors, "Update")


# --------------------------------------------------------------------------------------------------
# A set that fails part-way
# --------------------------------------------------------------------------------------------------


def test_a_set_update_that_fails_part_way_names_the_store_it_connected_with_the_command_that_disconnects_it(
    emu: Emulator, deployments: Deployments, registrations: RegistrationCache
) -> None:
    stack, details = grown_and_failed(deployments, registrations)

    assert f"custom key store {C} in us-east-1: connecting failed with ConnectionErrorCode USER_LOCKED_OUT" in details
    assert (
        f"This operation connected {B} before it failed, so the stack's state does not record it (the set's state "
        f"still lists {A}). The next `pulumi up` of the same program records it."
    ) in details
    assert f"  aws kms disconnect-custom-key-store --custom-key-store-id {B} --region us-east-1" in details
    assert f"--custom-key-store-id {A}" not in details and f"--custom-key-store-id {C}" not in details
    assert recorded(stack) == {A: "CONNECTED"}  # the engine keeps the old outputs
    assert states(emu, A, B, C) == {A: "CONNECTED", B: "CONNECTED", C: "FAILED"}


def test_the_command_named_for_a_store_the_state_does_not_record_disconnects_it(
    emu: Emulator, deployments: Deployments, registrations: RegistrationCache, tmp_path: Path
) -> None:
    _, details = grown_and_failed(deployments, registrations)
    # The message shows twice in the details (first, and again at the end of the provider's traceback).
    (command,) = set(re.findall(r"^  (aws kms disconnect-custom-key-store .*)$", details, re.M))
    # The user's shell: the same credentials and endpoint the stack's provider had, from the environment.
    env = {**os.environ, **provider_env(emu.endpoint_url, tmp_path)}

    subprocess.run(shlex.split(command), env=env, check=True, capture_output=True, timeout=60)

    assert emu.state_of(B) in ("DISCONNECTING", "DISCONNECTED")


def test_the_next_up_of_the_same_program_records_what_a_failed_set_update_connected(
    emu: Emulator, deployments: Deployments, registrations: RegistrationCache
) -> None:
    grown_and_failed(deployments, registrations)
    emu.set_connect_outcome(C, "succeed")  # the kmsuser password is fixed
    emu.clear_calls()

    stack, errors = up(deployments, registrations, fleet(A, B, C))

    assert errors == []
    assert recorded(stack) == {A: "CONNECTED", B: "CONNECTED", C: "CONNECTED"}
    assert states(emu, A, B, C) == {A: "CONNECTED", B: "CONNECTED", C: "CONNECTED"}
    assert count_by_store(emu, CONNECT) == {C: 1}  # B was connected already: only read


def test_a_destroy_after_that_up_disconnects_every_store_the_set_connected(
    emu: Emulator, deployments: Deployments, registrations: RegistrationCache
) -> None:
    grown_and_failed(deployments, registrations)
    emu.set_connect_outcome(C, "succeed")
    up(deployments, registrations, fleet(A, B, C))

    deployments.start(main_config()).destroy_all()

    assert states(emu, A, B, C) == {A: "DISCONNECTED", B: "DISCONNECTED", C: "DISCONNECTED"}


def test_a_destroy_right_after_a_failed_set_update_leaves_connected_only_the_stores_the_error_named(
    emu: Emulator, deployments: Deployments, registrations: RegistrationCache
) -> None:
    _, details = grown_and_failed(deployments, registrations)

    deployments.start(main_config()).destroy_all()

    named = set(re.findall(r"--custom-key-store-id (\S+)", details))
    assert named == {B}
    assert {store_id for store_id in (A, B, C) if emu.state_of(store_id) == "CONNECTED"} == named


def test_a_set_create_that_fails_part_way_names_each_store_it_connected(
    emu: Emulator, deployments: Deployments, registrations: RegistrationCache
) -> None:
    stack, errors = up(deployments, registrations, fleet(A, C))

    details = only_failure(errors, "Create")
    assert (
        f"This operation connected {A} before it failed, so the stack's state does not record it (a failed create "
        "records no resource)."
    ) in details
    assert f"  aws kms disconnect-custom-key-store --custom-key-store-id {A} --region us-east-1" in details
    assert stack.resources == {}
    assert states(emu, A, C) == {A: "CONNECTED", C: "FAILED"}


# --------------------------------------------------------------------------------------------------
# A set member deleted out of band
# --------------------------------------------------------------------------------------------------


def test_a_set_member_deleted_out_of_band_is_previewed_naming_custom_key_store_ids_and_the_fix(
    emu: Emulator, deployments: Deployments, registrations: RegistrationCache
) -> None:
    assert up(deployments, registrations, fleet(A, B))[1] == []
    delete_out_of_band(emu, B)
    stack = deployments.start(fleet(A, B))
    (registration,) = [r for r in registrations.all(fleet(A, B)) if r.is_dynamic]

    planned = stack.plan_step(registration, preview=True)

    assert planned.op == "update"
    line = stack.server.wait_for_stderr(f"{B}: not found in us-east-1, desired CONNECTED: the update will fail")
    assert "remove it from the set's custom_key_store_ids: the next `pulumi up` then drops it from the set" in line
    assert "custom_key_store_id and" not in line


def test_an_up_of_a_set_whose_member_was_deleted_fails_naming_custom_key_store_ids_and_the_fix(
    emu: Emulator, deployments: Deployments, registrations: RegistrationCache
) -> None:
    assert up(deployments, registrations, fleet(A, B))[1] == []
    delete_out_of_band(emu, B)

    stack, errors = up(deployments, registrations, fleet(A, B))

    details = only_failure(errors, "Update")
    assert f"custom key store {B} in us-east-1: not found (CustomKeyStoreNotFoundException)" in details
    assert "check custom_key_store_ids and region; if the store was deleted, remove it from the set's" in details
    assert "`pulumi refresh` does not, since the set still lists it" in details
    assert recorded(stack) == {A: "CONNECTED", B: "CONNECTED"}  # the old outputs, as the engine keeps them


def test_removing_a_deleted_member_from_the_set_lets_the_next_up_converge(
    emu: Emulator, deployments: Deployments, registrations: RegistrationCache
) -> None:
    assert up(deployments, registrations, fleet(A, B))[1] == []
    delete_out_of_band(emu, B)
    emu.clear_calls()

    stack, errors = up(deployments, registrations, fleet(A))

    assert errors == []
    assert recorded(stack) == {A: "CONNECTED"}
    assert mutating_calls(emu) == []
    stack.server.wait_for_stderr(f"warning: {B}: not found in us-east-1 (deleted?); nothing left to disconnect")
