"""The policy pack through the real CLI: `pulumi preview --policy-pack policy`, with the pack's own virtualenv."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bench.pulumi_cli import ROOT
from tests.cli.conftest import CliStack, store_entry

pytestmark = pytest.mark.timeout(900)

HSM = "cks-1111111111111111a"
POLICY_PACK = str(ROOT / "policy")


def test_a_compliant_stack_passes_the_pack(make_stack: Callable[..., CliStack], policy_venv: Path) -> None:
    stack = make_stack({HSM: "primary"})
    stack.write_config(keyStores=[store_entry(HSM, "primary")])

    result = stack.cli("preview", "--policy-pack", POLICY_PACK)

    assert "Policies:" in result.stdout
    assert "mandatory" not in result.stdout
    assert stack.mutating_calls() == []


def test_a_protected_stack_asking_for_disconnected_fails_preview_naming_the_policy(
    make_stack: Callable[..., CliStack], policy_venv: Path
) -> None:
    stack = make_stack({HSM: "primary"}, name="prod")
    stack.write_config(keyStores=[store_entry(HSM, "primary", desiredState="DISCONNECTED", onDelete="retain")])

    result = stack.cli("preview", "--policy-pack", POLICY_PACK, check=False)

    assert result.returncode != 0
    assert "connection-desired-connected-in-protected-stacks" in result.stdout
    assert "mandatory" in result.stdout
    assert stack.mutating_calls() == []


def test_a_protected_stack_disconnecting_on_delete_fails_in_preview_before_anything_is_created(
    make_stack: Callable[..., CliStack], policy_venv: Path
) -> None:
    stack = make_stack({HSM: "primary"}, name="prod")
    stack.write_config(keyStores=[store_entry(HSM, "primary")])

    result = stack.cli("up", "--yes", "--policy-pack", POLICY_PACK, check=False)

    assert result.returncode != 0
    assert "no-disconnect-on-delete-in-protected-stacks" in result.stdout
    assert stack.resources() == {}
    assert stack.mutating_calls() == []


def test_advisory_findings_show_as_warnings_and_do_not_fail_preview(
    make_stack: Callable[..., CliStack], policy_venv: Path
) -> None:
    stack = make_stack({HSM: "primary"})
    stack.write_config(keyStores=[store_entry(HSM, "primary", connectTimeoutSeconds=10)])

    result = stack.cli("preview", "--policy-pack", POLICY_PACK)

    assert "connection-timeouts-within-bounds" in result.stdout
    assert "advisory" in result.stdout
    assert "mandatory" not in result.stdout
