"""The main job without the Pulumi CLI: `scripts/up`'s fallback runs the `local` stack to convergence and back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kms_connection.emulator import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, Emulator
from tests.engine import PROJECT_ROOT
from tests.local_stack import main

HSM = "cks-0123456789abcdef0"
XKS = "cks-0fedcba9876543210"


@pytest.fixture
def seeded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    # As scripts/up does: credentials that only ever reach the emulator, inherited by the provider server.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", DUMMY_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", DUMMY_SECRET_ACCESS_KEY)
    with Emulator(connect_seconds=0.2, disconnect_seconds=0.1, seed=str(PROJECT_ROOT / "local" / "seed.json")) as emu:
        yield emu


def test_the_local_stack_converges_is_idempotent_and_destroys_by_its_on_delete_settings(
    seeded: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ["--state", str(tmp_path / "checkpoint.json"), "--endpoint", seeded.endpoint_url]

    assert main(["up", *state]) == 0
    assert (seeded.state_of(HSM), seeded.state_of(XKS)) == ("CONNECTED", "CONNECTED")
    assert "create   local-hsm  CONNECTED" in capsys.readouterr().out

    seeded.clear_calls()
    assert main(["up", *state]) == 0
    assert "same     local-hsm  CONNECTED" in capsys.readouterr().out
    assert {call.operation for call in seeded.calls} == {"DescribeCustomKeyStores"}

    assert main(["destroy", *state]) == 0
    # local-hsm disconnects on delete; local-xks is configured to be retained.
    assert (seeded.state_of(HSM), seeded.state_of(XKS)) == ("DISCONNECTED", "CONNECTED")
