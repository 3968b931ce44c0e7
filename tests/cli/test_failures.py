"""Failures through the real Pulumi CLI: a connect KMS fails, and an `up` interrupted during a long wait."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from kms_connection.emulator.clock import FakeClock
from tests.cli.conftest import CONNECTION_TYPE, CliStack, store_entry

pytestmark = pytest.mark.timeout(900)

HSM = "cks-1111111111111111a"


@pytest.fixture
def locked_out(make_stack: Callable[..., CliStack]) -> CliStack:
    """One CloudHSM store whose connects end FAILED with USER_LOCKED_OUT."""
    stack = make_stack({HSM: "primary"})
    stack.emulator.set_connect_outcome(HSM, "fail", "USER_LOCKED_OUT")
    stack.write_config(keyStores=[store_entry(HSM, "primary")])
    return stack


def test_a_failed_connect_fails_up_and_names_the_store_the_code_and_the_remedy(locked_out: CliStack) -> None:
    result = locked_out.cli("up", "--yes", check=False)

    assert result.returncode != 0
    assert HSM in result.stdout
    assert "USER_LOCKED_OUT" in result.stdout
    assert "change the kmsuser password in the cluster" in result.stdout


def test_a_failed_connect_reads_answer_first_before_any_frame(locked_out: CliStack) -> None:
    output = locked_out.cli("up", "--yes", check=False).stdout

    # The first line of the resource's error, in the progress view and in the diagnostics, is the answer.
    error_lines = [line for line in output.splitlines() if "error:" in line and HSM in line]
    assert error_lines, output
    assert all("Traceback" not in line for line in error_lines)
    assert output.index("USER_LOCKED_OUT") < output.index("Traceback (most recent call last)")


def test_a_failed_connect_leaves_no_resource_in_the_state(locked_out: CliStack) -> None:
    locked_out.cli("up", "--yes", check=False)

    assert locked_out.resources(CONNECTION_TYPE) == {}
    assert locked_out.emulator.state_of(HSM) == "FAILED"


def test_the_next_up_after_the_fault_is_cleared_converges(locked_out: CliStack) -> None:
    locked_out.cli("up", "--yes", check=False)
    locked_out.emulator.set_connect_outcome(HSM, "succeed")
    before = len(locked_out.calls())

    result = locked_out.up()

    assert result.summary.resource_changes == {"create": 1, "same": 1}
    # A FAILED store is disconnected first, then connected: KMS refuses to connect a FAILED store.
    assert locked_out.mutating_calls(before) == [("DisconnectCustomKeyStore", HSM), ("ConnectCustomKeyStore", HSM)]
    assert locked_out.emulator.state_of(HSM) == "CONNECTED"
    assert locked_out.resources(CONNECTION_TYPE)["primary"]["outputs"]["connection_state"] == "CONNECTED"


def _one_store_connecting_for_15_s(make_stack: Callable[..., CliStack], **emulator_kwargs: Any) -> CliStack:
    stack = make_stack({HSM: "primary"}, emulator_kwargs={"connect_seconds": 15, **emulator_kwargs})
    stack.write_config(keyStores=[store_entry(HSM, "primary", connectTimeoutSeconds=120)])
    return stack


@pytest.fixture
def slow_connect(make_stack: Callable[..., CliStack]) -> CliStack:
    """One store whose connect takes 15 s: long enough to interrupt `up` while the provider waits."""
    return _one_store_connecting_for_15_s(make_stack)


@pytest.fixture
def held_connect(make_stack: Callable[..., CliStack]) -> CliStack:
    """One store whose connect never ends on its own: the emulator's clock moves only when the test moves it, so the
    store is still CONNECTING however long the CLI takes to exit on a loaded machine."""
    return _one_store_connecting_for_15_s(make_stack, clock=FakeClock())


def _interrupt_during_the_wait(stack: CliStack, presses: int) -> int:
    """Start `pulumi up`, press Ctrl-C ``presses`` times once the Connect is sent; the CLI's exit code."""
    process = stack.popen("up", "--yes")
    deadline = time.monotonic() + 120
    while not stack.mutating_calls() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stack.mutating_calls() == [("ConnectCustomKeyStore", HSM)]
    for _ in range(presses):
        # Ctrl-C in a terminal signals the foreground process group: the CLI and what it started with it.
        time.sleep(1)
        os.killpg(process.pid, signal.SIGINT)
    return process.wait(timeout=180)


def test_one_ctrl_c_lets_the_wait_finish_and_records_the_truth(slow_connect: CliStack) -> None:
    exit_code = _interrupt_during_the_wait(slow_connect, presses=1)

    output = (slow_connect.project_dir / "pulumi-output.txt").read_text()
    assert "^C received; cancelling" in output
    assert exit_code != 0
    assert slow_connect.pending_operations() == []
    recorded = slow_connect.resources(CONNECTION_TYPE)
    assert recorded["primary"]["outputs"]["connection_state"] == slow_connect.emulator.state_of(HSM) == "CONNECTED"


def test_two_ctrl_c_leave_a_pending_create_and_no_claim_of_connected(held_connect: CliStack) -> None:
    _interrupt_during_the_wait(held_connect, presses=2)

    assert [operation["type"] for operation in held_connect.pending_operations()] == ["creating"]
    assert held_connect.resources(CONNECTION_TYPE) == {}
    assert held_connect.emulator.state_of(HSM) == "CONNECTING"


def test_after_two_ctrl_c_refresh_clears_the_pending_create_and_up_converges_without_a_second_connect(
    slow_connect: CliStack,
) -> None:
    _interrupt_during_the_wait(slow_connect, presses=2)

    slow_connect.cli("refresh", "--clear-pending-creates", "--yes")
    result = slow_connect.up()

    assert slow_connect.pending_operations() == []
    assert result.summary.resource_changes == {"create": 1, "same": 1}
    assert slow_connect.mutating_calls() == [("ConnectCustomKeyStore", HSM)]
    assert slow_connect.emulator.state_of(HSM) == "CONNECTED"
    assert slow_connect.resources(CONNECTION_TYPE)["primary"]["outputs"]["connection_state"] == "CONNECTED"


def test_a_config_typo_stops_preview_with_one_message_naming_the_key_as_written(
    make_stack: Callable[..., CliStack],
) -> None:
    stack = make_stack({HSM: "primary"})
    stack.write_config(keyStores=[{"id": HSM, "desiredStat": "CONNECTED"}])

    result = stack.cli("preview", check=False)

    assert result.returncode != 0
    typo = "kms-connection:keyStores[0] has an unknown key `desiredStat` (did you mean `desiredState`?)"
    assert typo in result.stdout
    assert "Traceback" not in result.stdout
    assert stack.calls() == []


def test_a_stack_using_an_aws_resource_says_its_plugin_cannot_be_downloaded_here(
    make_stack: Callable[..., CliStack],
) -> None:
    stack = make_stack()
    stack.write_config(
        newCloudHsmKeyStore={"name": "new-hsm", "cloudHsmClusterId": "cluster-1234567890a",
                             "trustAnchorCertificate": "-----BEGIN CERTIFICATE-----"},
        newCloudHsmKeyStorePassword="not-a-real-password",
    )

    result = stack.cli("preview", check=False)

    assert result.returncode != 0
    assert "pulumi-resource-aws" in result.stdout and "downloads no plugins" in result.stdout
    assert "Traceback" not in result.stdout
