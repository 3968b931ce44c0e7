"""Lifecycle scenarios of the kms-connection stack, end to end without the Pulumi CLI.

Each scenario drives the SDK's real provider server (``python -u -m pulumi.dynamic``, as the engine starts
it) through ``seam/engine.py`` with the registrations the real stack program (``__main__.py``) makes for a
stack config naming stores of an in-process KMS emulator, and asserts on the gRPC answers, on what the
provider printed (the engine shows it to the user) and on the emulator's call log.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kms_connection.emulator import Emulator, FakeClock
from kms_connection.states import CONNECTION_ERROR_REMEDIES
from seam.engine import (
    PROVIDER_KEY,
    CheckFailuresError,
    ProviderError,
    ProviderServer,
    Registration,
    Stack,
    StepResult,
    decode_provider,
    is_secret,
    unwrap_secrets,
)
from tests.lifecycle_fixtures import (
    ACCESS_KEY_ID,
    AMBIENT_AWS_VARIABLES,
    CONNECT,
    CONNECTION_TYPE,
    DESCRIBE,
    DISCONNECT,
    OTHER_REGION,
    REGION,
    SECRET_ACCESS_KEY,
    RegistrationCache,
    count_by_store,
    delete_out_of_band,
    disconnect_out_of_band,
    exception_line,
    mutating_calls,
    operations,
    provider_env,
    stack_config,
    wait_for_state,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)

# --------------------------------------------------------------------------------------------------
# The stacks the scenarios run
# --------------------------------------------------------------------------------------------------

HSM = "cks-1111111111111111a"
XKS = "cks-2222222222222222b"
OTHER = "cks-3333333333333333c"
SCALE_IDS = [f"cks-5000000000000000{index}" for index in range(8)]

HSM_ENTRY = {"id": HSM, "name": "hsm", "connectTimeoutSeconds": 30, "disconnectTimeoutSeconds": 30}
# Lower-case on purpose: check normalises it.
XKS_ENTRY = {"id": XKS, "name": "xks", "desiredState": "connected", "onDelete": "retain", "connectTimeoutSeconds": 30}

BASE = stack_config(HSM_ENTRY, XKS_ENTRY)
HSM_DISCONNECTED = stack_config({**HSM_ENTRY, "desiredState": "DISCONNECTED"}, XKS_ENTRY)
HSM_OTHER_STORE = stack_config({**HSM_ENTRY, "id": OTHER}, XKS_ENTRY)
HSM_OTHER_REGION = stack_config({**HSM_ENTRY, "region": OTHER_REGION}, XKS_ENTRY)
SCALE = stack_config(
    *(
        {"id": store_id, "name": f"store-{index}", "connectTimeoutSeconds": 60}
        for index, store_id in enumerate(SCALE_IDS)
    )
)
# What a user's own program may send (the stack program refuses these in its config, naming the config keys).
BAD_INPUTS = {
    "custom_key_store_id": "my-key-store",  # a name, not an id
    "desired_state": "connecting",  # a KMS state, lower case, but not a desired state
    "connect_timeout_seconds": "30m",
    "region": "us-east-9",
    "regoin": "us-east-1",  # a typo'd property
}
HSM_QUICK_TIMEOUT = stack_config({**HSM_ENTRY, "connectTimeoutSeconds": 1}, XKS_ENTRY)
XKS_ONLY = stack_config(XKS_ENTRY)
# The same store under a new resource name, or moved into a CustomKeyStoreConnectionSet.
HSM_RENAMED = stack_config({**HSM_ENTRY, "name": "primary-hsm"}, XKS_ENTRY)
HSM_IN_A_SET = {
    **stack_config(XKS_ENTRY),
    "kms-connection:keyStoreSets": [
        {"name": "hsms", "ids": [HSM], "connectTimeoutSeconds": 30, "disconnectTimeoutSeconds": 30}
    ],
}
ALL_CONFIGS = (
    BASE,
    HSM_DISCONNECTED,
    HSM_OTHER_STORE,
    HSM_OTHER_REGION,
    HSM_QUICK_TIMEOUT,
    XKS_ONLY,
    HSM_RENAMED,
    HSM_IN_A_SET,
    SCALE,
)

HSM_INPUTS = {
    "custom_key_store_id": HSM,
    "desired_state": "CONNECTED",
    "on_delete": "disconnect",
    "connect_timeout_seconds": 30,
    "disconnect_timeout_seconds": 30,
    "region": REGION,
    "resource_name": "hsm",  # set by the resource class: the provider tells resources apart by it
}
XKS_INPUTS = {
    "custom_key_store_id": XKS,
    "desired_state": "CONNECTED",
    "on_delete": "retain",
    "connect_timeout_seconds": 30,
    "disconnect_timeout_seconds": 900,
    "region": REGION,
    "resource_name": "xks",
}


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registrations() -> RegistrationCache:
    """``__main__.py``'s registrations per config; every config of this module is captured up front, 4 at once."""
    cache = RegistrationCache()
    cache.prefetch(ALL_CONFIGS)
    return cache


@pytest.fixture
def emu(kms_emulator: Emulator) -> Emulator:
    """The emulator holding the two stores of ``BASE`` (both DISCONNECTED)."""
    kms_emulator.create_store("hsm", store_id=HSM)
    kms_emulator.create_store("xks", store_type="EXTERNAL_KEY_STORE", store_id=XKS)
    return kms_emulator


ServerFactory = Callable[..., ProviderServer]


@pytest.fixture
def servers(kms_emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ServerFactory]:
    """Start configured provider servers like the engine does; every one is stopped after the test.

    ``servers(config)`` starts ``python -u -m pulumi.dynamic`` with dummy credentials, ``AWS_REGION`` and
    ``AWS_ENDPOINT_URL_KMS`` pointing at the emulator, then sends ``Configure`` with the stack config.
    """
    for name in AMBIENT_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    started: list[ProviderServer] = []

    def start(
        config: Mapping[str, Any] = BASE, *, emulator: Emulator | None = None, endpoint_in_env: bool = True
    ) -> ProviderServer:
        endpoint = (emulator or kms_emulator).endpoint_url if endpoint_in_env else None
        server = ProviderServer(env=provider_env(endpoint, tmp_path))
        started.append(server)
        server.start()
        server.configure(config)
        return server

    yield start
    for server in started:
        server.close()


def up_base(stack: Stack, registrations: RegistrationCache, emu: Emulator) -> dict[str, Registration]:
    """``pulumi up`` of ``BASE`` (both stores CONNECTED), then an empty call log; returns the registrations."""
    regs = registrations(BASE)
    # Independent resources: the engine steps them at once, and so does this (it halves the wait).
    with ThreadPoolExecutor(max_workers=len(regs)) as pool:
        results = list(pool.map(stack.up, regs.values()))
    for result in results:
        assert result.new is not None and result.new.outputs["connection_state"] == "CONNECTED", result
    stack.resources = {reg.urn: stack.resources[reg.urn] for reg in regs.values()}  # program order
    emu.clear_calls()
    return regs


def inputs_of(props: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values without ``__provider``."""
    plain: dict[str, Any] = unwrap_secrets({k: v for k, v in props.items() if k != PROVIDER_KEY})
    return plain


def settle_stderr() -> None:
    """Let the stderr pump catch up before asserting that a line was NOT printed."""
    time.sleep(0.2)


# --------------------------------------------------------------------------------------------------
# 1-3: preview, up, preview
# --------------------------------------------------------------------------------------------------


def test_the_program_registers_one_dynamic_connection_per_configured_store(registrations: RegistrationCache) -> None:
    regs = registrations(BASE)

    assert list(regs) == ["hsm", "xks"]
    for reg in regs.values():
        assert reg.type_ == CONNECTION_TYPE and reg.is_dynamic
        assert is_secret(reg.inputs[PROVIDER_KEY])  # the SDK always registers the pickled provider as a secret
    assert inputs_of(regs["hsm"].inputs) == {
        "custom_key_store_id": HSM,
        "connect_timeout_seconds": 30,
        "disconnect_timeout_seconds": 30,
        "resource_name": "hsm",
    }


def test_preview_of_a_new_stack_reads_each_store_once_and_says_what_up_will_do(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    regs = registrations(BASE)
    server = servers(BASE)
    stack = Stack(server)

    results = [stack.preview(reg) for reg in regs.values()]

    assert [result.op for result in results] == ["create", "create"]
    assert [result.diff for result in results] == [None, None]  # a new resource gets Check only
    hsm, xks = (result.check for result in results)
    assert hsm is not None and xks is not None
    # Defaults and the stack's Region are filled in, the desired state is canonical.
    assert inputs_of(hsm.inputs) == HSM_INPUTS
    assert inputs_of(xks.inputs) == XKS_INPUTS
    assert stack.resources == {}
    # The engine shows a new resource nothing but Check: Check reads its store, once, to say what up will do.
    assert sorted((call.operation, str(call.store_id)) for call in emu.calls) == [
        ("DescribeCustomKeyStores", HSM),
        ("DescribeCustomKeyStores", XKS),
    ]
    assert emu.state_of(HSM) == emu.state_of(XKS) == "DISCONNECTED"
    settle_stderr()
    lines = server.stderr_lines()
    assert f"{HSM}: observed DISCONNECTED, desired CONNECTED: will connect" in lines
    assert f"{XKS}: observed DISCONNECTED, desired CONNECTED: will connect" in lines


def test_up_creates_by_connecting_each_store_once(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    regs = registrations(BASE)
    stack = Stack(servers(BASE))

    results = stack.up_all(list(regs.values()))

    assert [result.op for result in results] == ["create", "create"]
    for name, store_id, store_type in (("hsm", HSM, "AWS_CLOUDHSM"), ("xks", XKS, "EXTERNAL_KEY_STORE")):
        state = stack.state(regs[name].urn)
        assert state.id.startswith(f"{store_id}/")
        assert state.outputs["connection_state"] == "CONNECTED"
        assert state.outputs["custom_key_store_type"] == store_type
        assert state.outputs["custom_key_store_name"] == name
        assert "connection_error_code" not in state.outputs  # None values are dropped
        assert emu.state_of(store_id) == "CONNECTED"
    assert inputs_of(stack.state(regs["hsm"].urn).outputs).items() >= HSM_INPUTS.items()  # full outputs
    assert count_by_store(emu, CONNECT) == {HSM: 1, XKS: 1}
    assert DISCONNECT not in operations(emu)


def test_preview_after_up_reports_no_change_with_one_describe_per_resource(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    server = servers(BASE)
    stack = Stack(server)
    regs = up_base(stack, registrations, emu)
    stderr_before = len(server.stderr_lines())

    results = [stack.preview(reg) for reg in regs.values()]

    assert [result.op for result in results] == ["same", "same"]
    assert all(result.diff is not None and result.diff.changes is False for result in results)
    assert sorted(operations(emu)) == [DESCRIBE, DESCRIBE]
    assert count_by_store(emu, DESCRIBE) == {HSM: 1, XKS: 1}
    assert mutating_calls(emu) == []
    settle_stderr()
    assert server.stderr_lines()[stderr_before:] == []  # nothing to do, nothing said


# --------------------------------------------------------------------------------------------------
# 4-6: drift, a desired-state change, FAILED stores
# --------------------------------------------------------------------------------------------------


def test_drift_disconnected_out_of_band_is_previewed_then_reconnected_by_up(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    server = servers(BASE)
    stack = Stack(server)
    regs = up_base(stack, registrations, emu)
    disconnect_out_of_band(emu, HSM)
    emu.clear_calls()

    preview = stack.preview(regs["hsm"])

    assert preview.op == "update"
    assert preview.diff is not None and preview.diff.changes is True and preview.diff.replaces == []
    server.wait_for_stderr(f"{HSM}: observed DISCONNECTED, desired CONNECTED: will connect")
    assert operations(emu) == [DESCRIBE]

    emu.clear_calls()
    result = stack.up(regs["hsm"])

    assert result.op == "update"
    assert result.new is not None and result.new.outputs["connection_state"] == "CONNECTED"
    assert stack.state(regs["hsm"].urn).outputs["connection_state"] == "CONNECTED"
    assert emu.state_of(HSM) == "CONNECTED"
    # Diff's read, then the update's: read, connect, polls until CONNECTED.
    assert count_by_store(emu, CONNECT) == {HSM: 1}
    assert DISCONNECT not in operations(emu)


def test_desired_disconnected_in_config_updates_by_disconnecting_and_waiting(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    server = servers(HSM_DISCONNECTED)
    stack = Stack(server)
    up_base(stack, registrations, emu)
    regs = registrations(HSM_DISCONNECTED)
    emu.disconnect_seconds = 0.6  # long enough that not waiting would show

    preview = stack.preview(regs["hsm"])
    assert preview.op == "update"
    server.wait_for_stderr(f"{HSM}: observed CONNECTED, desired DISCONNECTED: will disconnect")
    assert mutating_calls(emu) == []

    emu.clear_calls()
    started = time.monotonic()
    results = stack.up_all(list(regs.values()))
    elapsed = time.monotonic() - started

    assert [result.op for result in results] == ["update", "same"]
    outputs = stack.state(regs["hsm"].urn).outputs
    assert outputs["connection_state"] == "DISCONNECTED"
    assert outputs["desired_state"] == "DISCONNECTED"
    assert emu.state_of(HSM) == "DISCONNECTED"  # it returned after the store settled, not when asked
    assert elapsed >= 0.6
    assert count_by_store(emu, DISCONNECT) == {HSM: 1}
    assert CONNECT not in operations(emu)
    assert emu.state_of(XKS) == "CONNECTED"


def test_up_repairs_a_failed_store_by_disconnecting_then_connecting(
    kms_emulator: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    emu = kms_emulator
    emu.create_store("hsm", store_id=HSM, connection_state="FAILED", error_code="USER_LOCKED_OUT")
    server = servers(BASE)
    stack = Stack(server)

    result = stack.up(registrations(BASE)["hsm"])

    assert result.op == "create"
    assert result.new is not None and result.new.outputs["connection_state"] == "CONNECTED"
    assert "connection_error_code" not in result.new.outputs
    assert emu.state_of(HSM) == "CONNECTED"
    mutations = [call.operation for call in mutating_calls(emu)]
    assert mutations == [DISCONNECT, CONNECT]  # KMS refuses to connect a FAILED store
    server.wait_for_stderr(f"{HSM}: FAILED (USER_LOCKED_OUT), desired CONNECTED: disconnecting")


def test_up_of_a_store_that_keeps_failing_reports_the_store_the_code_and_the_remedy(
    kms_emulator: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    emu = kms_emulator
    emu.create_store("hsm", store_id=HSM, connection_state="FAILED", error_code="USER_NOT_FOUND")
    emu.set_connect_outcome(HSM, "fail", "USER_NOT_FOUND")
    stack = Stack(servers(BASE))
    reg = registrations(BASE)["hsm"]

    with pytest.raises(ProviderError) as raised:
        stack.up(reg)

    error = raised.value
    assert error.method == "Create"
    message = exception_line(error.details)
    assert message.startswith("kms_connection.errors.ConnectFailedError: "), error.details
    assert f"custom key store {HSM} in {REGION}" in message
    assert "ConnectionErrorCode USER_NOT_FOUND" in message
    assert CONNECTION_ERROR_REMEDIES["USER_NOT_FOUND"] in message
    assert reg.urn not in stack.resources
    assert emu.state_of(HSM) == "FAILED"
    # One repair attempt, no loop: a failed connect is reported, not retried until a timeout.
    assert [call.operation for call in mutating_calls(emu)] == [DISCONNECT, CONNECT]


def test_store_failed_out_of_band_is_previewed_and_repaired_by_update(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    server = servers(BASE)
    stack = Stack(server)
    regs = up_base(stack, registrations, emu)
    # Something breaks the backing store; another client reconnects it and it ends FAILED.
    disconnect_out_of_band(emu, HSM)
    emu.set_connect_outcome(HSM, "fail", "NETWORK_ERRORS")
    emu.client().connect_custom_key_store(CustomKeyStoreId=HSM)
    wait_for_state(emu, HSM, "FAILED")
    emu.set_connect_outcome(HSM, "succeed")  # the backing store is healthy again
    emu.clear_calls()

    preview = stack.preview(regs["hsm"])

    assert preview.op == "update"
    server.wait_for_stderr(f"{HSM}: observed FAILED (NETWORK_ERRORS), desired CONNECTED: will disconnect, then connect")
    assert mutating_calls(emu) == []

    result = stack.up(regs["hsm"])

    assert result.new is not None and result.new.outputs["connection_state"] == "CONNECTED"
    assert [call.operation for call in mutating_calls(emu)] == [DISCONNECT, CONNECT]


def test_a_store_deleted_out_of_band_is_previewed_as_failing_and_up_names_the_fix_that_works(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    server = servers(BASE)
    stack = Stack(server)
    up_base(stack, registrations, emu)
    delete_out_of_band(emu, HSM)
    emu.clear_calls()

    # A 1 s timeout: the update looks for a store it does not find for up to 10 s (or the timeout, if shorter)
    # before it believes NotFound, since a store created a moment ago may not show yet.
    reg = registrations(HSM_QUICK_TIMEOUT)["hsm"]

    preview = stack.preview(reg)

    assert preview.op == "update"
    server.wait_for_stderr(f"{HSM}: not found in {REGION}, desired CONNECTED: the update will fail")
    with pytest.raises(ProviderError) as raised:
        stack.up(reg)
    message = exception_line(raised.value.details)
    assert raised.value.method == "Update"
    assert message.startswith("kms_connection.errors.KeyStoreNotFoundError: "), raised.value.details
    assert f"custom key store {HSM} in {REGION}: not found" in message
    assert "remove the resource from the program: the next `pulumi up` then drops it from the stack" in message
    assert mutating_calls(emu) == []


def test_removing_the_connection_of_a_store_deleted_out_of_band_lets_the_next_up_drop_it(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    stack = Stack(servers(BASE))
    regs = up_base(stack, registrations, emu)
    delete_out_of_band(emu, HSM)
    emu.clear_calls()

    results = stack.up_all(list(registrations(XKS_ONLY).values()))

    assert [(result.op, result.urn) for result in results] == [("same", regs["xks"].urn), ("delete", regs["hsm"].urn)]
    assert regs["hsm"].urn not in stack.resources
    assert mutating_calls(emu) == []


@pytest.mark.timeout(30)
def test_a_timed_out_up_says_run_up_again_and_the_next_up_waits_without_a_new_connect(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    emu.set_connect_outcome(HSM, "hang")  # e.g. a CloudHSM connect that takes longer than the timeout
    reg = registrations(HSM_QUICK_TIMEOUT)["hsm"]
    stack = Stack(servers(HSM_QUICK_TIMEOUT))

    with pytest.raises(ProviderError) as first:
        stack.up(reg)

    message = first.value.details
    # The failed create records no resource, so the timeout comes with what that leaves (see below).
    assert "kms_connection.errors.UnrecordedConnectionsError: " in message
    assert re.search(
        rf"custom key store {HSM} in {REGION}: still CONNECTING after waiting \d+ s for CONNECTED", message
    )
    assert "run `pulumi up` again to keep waiting without a new request" in message
    assert "connect_timeout_seconds" in message
    # The failed create records no resource: the store it left connecting is named with its undo command.
    assert f"aws kms disconnect-custom-key-store --custom-key-store-id {HSM} --region {REGION}" in message
    assert emu.state_of(HSM) == "CONNECTING"  # nothing was undone

    with pytest.raises(ProviderError) as second:
        stack.up(reg)  # the failed Create left nothing in the checkpoint: Create again

    assert "still CONNECTING" in second.value.details
    assert count_by_store(emu, CONNECT) == {HSM: 1}  # as promised: no new request
    assert DISCONNECT not in operations(emu)


# --------------------------------------------------------------------------------------------------
# 7: refresh
# --------------------------------------------------------------------------------------------------


def test_refresh_reads_the_observed_state_and_returns_the_inputs(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    server = servers(BASE)
    stack = Stack(server)
    regs = up_base(stack, registrations, emu)
    urn = regs["hsm"].urn
    before = stack.state(urn)
    disconnect_out_of_band(emu, HSM)
    emu.clear_calls()

    # Read as `pulumi refresh` sends it: the old outputs and the old inputs.
    id_, outputs, inputs = server.read(urn, before.id, before.outputs, before.inputs)
    assert id_ == before.id
    assert outputs["connection_state"] == "DISCONNECTED"
    assert inputs is not None, "Read returned no inputs: the next diff would run against stale ones"
    assert inputs_of(inputs) == HSM_INPUTS
    assert operations(emu) == [DESCRIBE]

    emu.clear_calls()
    result = stack.refresh(urn)

    assert result.new is not None
    assert result.new.id.startswith(f"{HSM}/")
    assert result.new.outputs["connection_state"] == "DISCONNECTED"
    assert inputs_of(result.new.inputs) == HSM_INPUTS  # the inputs come back: the next diff is against them
    assert unwrap_secrets(result.new.inputs[PROVIDER_KEY]) == unwrap_secrets(before.inputs[PROVIDER_KEY])
    assert operations(emu) == [DESCRIBE]
    # The refreshed state makes the next preview see the drift.
    assert stack.preview(regs["hsm"]).op == "update"


def test_refresh_drops_a_store_deleted_out_of_band(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    server = servers(BASE)
    stack = Stack(server)
    regs = up_base(stack, registrations, emu)
    delete_out_of_band(emu, HSM)
    emu.clear_calls()

    result = stack.refresh(regs["hsm"].urn)

    assert result.new is None  # Read answered an empty id
    assert regs["hsm"].urn not in stack.resources
    assert regs["xks"].urn in stack.resources
    assert operations(emu) == [DESCRIBE] * 4  # a NotFound is looked at three more times before it is believed
    server.wait_for_stderr(f"{HSM}: not found in {REGION}")


# --------------------------------------------------------------------------------------------------
# 8: destroy
# --------------------------------------------------------------------------------------------------


def test_destroy_disconnects_and_waits(emu: Emulator, servers: ServerFactory, registrations: RegistrationCache) -> None:
    stack = Stack(servers(BASE))
    regs = up_base(stack, registrations, emu)
    emu.disconnect_seconds = 0.5

    started = time.monotonic()
    stack.destroy(regs["hsm"].urn)
    elapsed = time.monotonic() - started

    assert regs["hsm"].urn not in stack.resources
    assert emu.state_of(HSM) == "DISCONNECTED"
    assert elapsed >= 0.5
    assert count_by_store(emu, DISCONNECT) == {HSM: 1}
    assert CONNECT not in operations(emu)


def test_destroy_with_on_delete_retain_makes_no_call(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    server = servers(BASE)
    stack = Stack(server)
    regs = up_base(stack, registrations, emu)

    stack.destroy(regs["xks"].urn)

    assert regs["xks"].urn not in stack.resources
    assert emu.calls == []
    assert emu.state_of(XKS) == "CONNECTED"
    server.wait_for_stderr(f"{XKS}: on_delete is 'retain'")


def test_destroy_of_a_store_already_gone_succeeds_with_a_warning(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    server = servers(BASE)
    stack = Stack(server)
    regs = up_base(stack, registrations, emu)
    delete_out_of_band(emu, HSM)
    emu.clear_calls()

    results = stack.destroy_all()

    assert [result.urn for result in results] == [regs["xks"].urn, regs["hsm"].urn]
    assert stack.resources == {}
    assert mutating_calls(emu) == []
    assert set(operations(emu)) == {DESCRIBE}
    server.wait_for_stderr(f"warning: {HSM}: not found in {REGION}")


# --------------------------------------------------------------------------------------------------
# 9: replacement
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "replaced"),
    [(HSM_OTHER_STORE, "custom_key_store_id"), (HSM_OTHER_REGION, "region")],
    ids=["store-id", "region"],
)
def test_a_changed_store_id_or_region_is_a_replacement_whose_preview_only_reads_the_new_store(
    emu: Emulator,
    servers: ServerFactory,
    registrations: RegistrationCache,
    config: dict[str, Any],
    replaced: str,
) -> None:
    server = servers(BASE)
    stack = Stack(server)
    up_base(stack, registrations, emu)
    reg = registrations(config)["hsm"]
    old = stack.state(reg.urn)

    diff = server.diff(reg.urn, old.id, old.outputs, server.check(reg.urn, old.inputs, reg.inputs).inputs)
    preview = stack.preview(reg)

    assert diff.changes is True
    assert diff.replaces == [replaced]
    assert diff.delete_before_replace is False  # the new connection is made before the old one goes
    assert preview.op == "replace"
    # The engine checks a replacement as a new resource: Check reads the store it will connect, once, and the
    # old one is not read at all.
    new_store = reg.inputs["custom_key_store_id"]
    new_region = reg.inputs.get("region", REGION)
    assert [(c.operation, c.store_id, c.region) for c in emu.calls] == [(DESCRIBE, new_store, new_region)]


def test_replacement_up_connects_the_new_store_before_disconnecting_the_old(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    emu.create_store("other", store_id=OTHER)
    stack = Stack(servers(HSM_OTHER_STORE))
    up_base(stack, registrations, emu)
    regs = registrations(HSM_OTHER_STORE)

    results = stack.up_all(list(regs.values()))

    assert [result.op for result in results] == ["replace", "same"]
    assert stack.state(regs["hsm"].urn).id.startswith(f"{OTHER}/")
    assert emu.state_of(OTHER) == "CONNECTED"
    assert emu.state_of(HSM) == "DISCONNECTED"  # the replaced connection's delete disconnected it
    mutations = [(call.operation, call.store_id) for call in mutating_calls(emu)]
    assert mutations == [(CONNECT, OTHER), (DISCONNECT, HSM)]


# The engine creates a renamed resource (or the set a store moved into) before it deletes the old one: the old
# one's delete must not disconnect a store the new one has just connected.
def test_renaming_a_connection_leaves_its_store_connected(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    stack = Stack(servers(HSM_RENAMED))
    old = up_base(stack, registrations, emu)["hsm"]
    regs = registrations(HSM_RENAMED)  # `name: primary-hsm` added to the entry: a new URN for the same store

    results = stack.up_all(list(regs.values()))

    assert [(result.op, result.urn) for result in results] == [
        ("create", regs["primary-hsm"].urn),
        ("same", regs["xks"].urn),
        ("delete", old.urn),
    ]
    assert stack.state(regs["primary-hsm"].urn).outputs["connection_state"] == "CONNECTED"
    assert emu.state_of(HSM) == "CONNECTED", f"the state says CONNECTED; KMS says {emu.state_of(HSM)}"


def test_moving_a_store_into_a_connection_set_leaves_it_connected(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    stack = Stack(servers(HSM_IN_A_SET))
    old = up_base(stack, registrations, emu)["hsm"]
    regs = [reg for reg in registrations.all(HSM_IN_A_SET) if reg.is_dynamic]

    results = stack.up_all(regs)

    assert [(result.op, result.urn.split("::")[-1]) for result in results] == [
        ("same", "xks"),
        ("create", "hsms"),
        ("delete", old.name),
    ]
    (set_state,) = [state for state in stack.resources.values() if state.urn.endswith("::hsms")]
    assert set_state.outputs["connection_states"] == {HSM: "CONNECTED"}
    assert emu.state_of(HSM) == "CONNECTED", f"the state says CONNECTED; KMS says {emu.state_of(HSM)}"


# --------------------------------------------------------------------------------------------------
# 10: an interrupted up
# --------------------------------------------------------------------------------------------------


def _create_in_background(stack: Stack, reg: Registration) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = stack.up(reg)
        except ProviderError as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, name="interrupted-create", daemon=True)
    thread.start()
    return thread, outcome


def _connect_then_wait_seen(emu: Emulator, store_id: str) -> Callable[[], bool]:
    """True once the log shows a Connect of ``store_id`` followed by a poll: Create is waiting in CONNECTING."""

    def seen() -> bool:
        ops = operations(emu, store_id)
        return CONNECT in ops and DESCRIBE in ops[ops.index(CONNECT) + 1 :]

    return seen


@pytest.fixture
def slow_emu() -> Iterator[tuple[Emulator, FakeClock]]:
    """An emulator on a clock the test moves: a connect stays CONNECTING until the test advances 600 s."""
    clock = FakeClock()
    with Emulator(clock=clock, connect_seconds=600, disconnect_seconds=1) as emulator:
        emulator.create_store("hsm", store_id=HSM)
        yield emulator, clock


def _kill_while_connecting(emu: Emulator, servers: ServerFactory, reg: Registration) -> None:
    """Run ``up`` for ``reg`` and SIGKILL the provider once Create waits in CONNECTING; the engine sees it fail."""
    first = servers(BASE, emulator=emu)
    thread, outcome = _create_in_background(Stack(first), reg)
    wait_until(_connect_then_wait_seen(emu, HSM), 10, "Create to wait in CONNECTING")

    first.kill()  # kill -9 of `pulumi up`, or of the provider alone
    thread.join(10)

    assert not thread.is_alive()
    assert isinstance(outcome.get("error"), ProviderError), outcome  # the engine lost the Create
    assert emu.state_of(HSM) == "CONNECTING"
    assert count_by_store(emu, CONNECT) == {HSM: 1}


@pytest.mark.timeout(30)
def test_up_killed_while_connecting_resumes_waiting_without_a_second_connect(
    slow_emu: tuple[Emulator, FakeClock], servers: ServerFactory, registrations: RegistrationCache
) -> None:
    emu, clock = slow_emu
    reg = registrations(BASE)["hsm"]
    _kill_while_connecting(emu, servers, reg)
    emu.clear_calls()

    second = servers(BASE, emulator=emu)
    # The engine recorded no id, so the next `up` creates again, while the first connect is still under way.
    thread, outcome = _create_in_background(Stack(second), reg)
    wait_until(lambda: DESCRIBE in operations(emu, HSM), 10, "the new Create to read the CONNECTING store")
    assert thread.is_alive() and emu.state_of(HSM) == "CONNECTING"
    clock.advance(600)  # the pending connect completes
    thread.join(20)

    result = outcome.get("result")
    assert isinstance(result, StepResult), outcome
    assert result.op == "create"
    assert result.new is not None and result.new.id.startswith(f"{HSM}/")
    assert result.new.outputs["connection_state"] == "CONNECTED"
    assert mutating_calls(emu) == []  # it waited for the pending connect instead of asking again
    settle_stderr()
    assert not [line for line in second.stderr_lines() if "connecting" in line]


@pytest.mark.timeout(30)
def test_up_killed_while_connecting_then_settled_resumes_with_reads_only(
    slow_emu: tuple[Emulator, FakeClock], servers: ServerFactory, registrations: RegistrationCache
) -> None:
    emu, clock = slow_emu
    reg = registrations(BASE)["hsm"]
    _kill_while_connecting(emu, servers, reg)
    clock.advance(600)  # the store finished connecting while no provider watched
    assert emu.state_of(HSM) == "CONNECTED"
    emu.clear_calls()

    result = Stack(servers(BASE, emulator=emu)).up(reg)

    assert result.new is not None and result.new.outputs["connection_state"] == "CONNECTED"
    # Check's read (its plan line: nothing to do) and Create's, which finds the store CONNECTED: no request.
    assert operations(emu) == [DESCRIBE, DESCRIBE]


# --------------------------------------------------------------------------------------------------
# 11: many resources through one server
# --------------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_eight_resources_through_one_server_wait_in_turns_of_four_workers(
    kms_emulator: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    emu = kms_emulator
    for index, store_id in enumerate(SCALE_IDS):
        emu.create_store(f"store-{index}", store_id=store_id)
    regs = list(registrations(SCALE).values())
    server = servers(SCALE)
    stack = Stack(server)
    stack.preview(regs[0])  # warm up: the provider is unpickled and configured on the first call
    # T: long against the provider's ~0.5 s poll lag, so the figure shows the waves, not the lag.
    transition = 1.5
    emu.connect_seconds = transition
    workers = 4  # the SDK server's thread pool

    with ThreadPoolExecutor(max_workers=len(regs)) as pool:  # the engine steps independent resources at once
        results = list(pool.map(stack.up, regs))

    assert all(r.new is not None and r.new.outputs["connection_state"] == "CONNECTED" for r in results)
    assert {store_id: emu.state_of(store_id) for store_id in SCALE_IDS} == dict.fromkeys(SCALE_IDS, "CONNECTED")
    assert count_by_store(emu, CONNECT) == dict.fromkeys(SCALE_IDS, 1)
    # Each Create holds a worker until its store is CONNECTED, so the fifth Connect waits for a first store.
    connect_times = sorted(call.time for call in emu.calls if call.operation == CONNECT)
    assert connect_times[workers] - connect_times[0] >= transition * 0.95
    # The wall time this costs (about ceil(N/4) x T) is measured side by side with a set in `python -m bench`.


# --------------------------------------------------------------------------------------------------
# 12: bad input
# --------------------------------------------------------------------------------------------------


def test_check_of_bad_inputs_names_each_property_and_calls_no_kms(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    reg = registrations(BASE)["hsm"]
    bad = dataclasses.replace(reg, name="bad", inputs={**reg.inputs, **BAD_INPUTS})
    server = servers(BASE)

    result = server.check(bad.urn, {}, bad.inputs)

    reasons = {failure.property: failure.reason for failure in result.failures}
    assert set(reasons) == {"custom_key_store_id", "desired_state", "connect_timeout_seconds", "region", "regoin"}
    assert len(result.failures) == len(reasons)  # one failure per property
    for prop, reason in reasons.items():
        assert prop in reason, reason
    assert "'my-key-store'" in reasons["custom_key_store_id"]
    assert "'connecting'" in reasons["desired_state"] and "'CONNECTED'" in reasons["desired_state"]
    assert "write 1800" in reasons["connect_timeout_seconds"]
    assert "us-east-9" in reasons["region"]
    assert "Did you mean 'region'?" in reasons["regoin"]
    # The engine stops the step on check failures: no Diff, no Create.
    with pytest.raises(CheckFailuresError):
        Stack(server).up(bad)
    assert emu.calls == []


# --------------------------------------------------------------------------------------------------
# 13: secrets
# --------------------------------------------------------------------------------------------------


def _payloads(result: StepResult) -> list[Any]:
    found: list[Any] = []
    if result.check is not None:
        found.append(result.check.inputs)
    if result.new is not None:
        found += [result.new.inputs, result.new.outputs]
    return found


def _provider_blobs(value: Any) -> list[bytes]:
    """The pickled providers (``__provider``) anywhere in ``value``, decoded from base64."""
    if isinstance(value, Mapping):
        blobs = [base64.b64decode(unwrap_secrets(value[PROVIDER_KEY]))] if PROVIDER_KEY in value else []
        return blobs + [blob for k, v in value.items() if k != PROVIDER_KEY for blob in _provider_blobs(v)]
    if isinstance(value, list):
        return [blob for item in value for blob in _provider_blobs(item)]
    return []


@pytest.mark.timeout(60)
def test_credentials_never_reach_inputs_outputs_the_pickled_provider_or_stderr(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    server = servers(BASE)
    stack = Stack(server)
    regs = registrations(BASE)
    reg = regs["hsm"]
    assert is_secret(reg.inputs[PROVIDER_KEY])
    assert server.protocol is not None and server.protocol.accept_secrets is False  # so the engine unwraps it

    results = [stack.preview(reg), stack.up(reg)]
    disconnect_out_of_band(emu, HSM)
    results += [stack.preview(reg), stack.refresh(reg.urn), stack.up(reg)]
    results.append(stack.up(registrations(HSM_DISCONNECTED)["hsm"]))
    old = stack.state(reg.urn)
    results.append(stack.destroy(reg.urn))
    payloads = [payload for result in results for payload in _payloads(result)] + [old.inputs, old.outputs]

    # The provider got __provider (it answered every call) and handed it back; the engine re-marks it secret.
    assert is_secret(old.outputs[PROVIDER_KEY]) and is_secret(old.inputs[PROVIDER_KEY])
    assert unwrap_secrets(old.outputs[PROVIDER_KEY]) == unwrap_secrets(reg.inputs[PROVIDER_KEY])
    blobs = _provider_blobs(payloads)
    assert blobs and len(set(blobs)) == 1  # one provider, pickled by reference
    provider = decode_provider(old.outputs[PROVIDER_KEY])
    assert type(provider).__name__ == "CustomKeyStoreConnectionProvider"
    texts = [json.dumps(unwrap_secrets(payloads), default=repr), repr(vars(provider))]
    texts += server.stderr_lines()
    for secret in (ACCESS_KEY_ID, SECRET_ACCESS_KEY):
        assert not [text for text in texts if secret in text]
        assert not [blob for blob in blobs if secret.encode() in blob]
    assert server.stderr_lines()  # the scenario did print (plan lines, warnings), so the check above saw text


# --------------------------------------------------------------------------------------------------
# The endpoint from stack config
# --------------------------------------------------------------------------------------------------


def test_the_kms_endpoint_can_come_from_aws_endpoints_stack_config(
    emu: Emulator, servers: ServerFactory, registrations: RegistrationCache
) -> None:
    # As in Pulumi.local.yaml: no AWS_ENDPOINT_URL_KMS, the endpoint is `aws:endpoints: [{kms: URL}]`.
    config = {**BASE, "aws:endpoints": [{"kms": emu.endpoint_url}]}
    stack = Stack(servers(config, endpoint_in_env=False))

    result = stack.up(registrations(BASE)["hsm"])

    assert result.new is not None and result.new.outputs["connection_state"] == "CONNECTED"
    assert count_by_store(emu, CONNECT) == {HSM: 1}
