"""``scripts/up``, the README's main command, as a newcomer runs it: a real `pulumi up` of the `local` stack.

The script keeps its state in the checkout's ``.local/`` and starts its emulator where ``Pulumi.local.yaml`` points
(port 4599): these tests run a copy of the scripts and the stack's files, so each has a scratch ``.local/`` and an
emulator on a free port (another test run, or a newcomer's ``scripts/up``, may hold 4599 meanwhile).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from bench.pulumi_cli import ROOT

pytestmark = pytest.mark.timeout(900)


@pytest.fixture
def checkout(tmp_path: Path, pulumi_bin_dir: Path) -> Path:
    """A copy of what scripts/up reads, with the checkout's virtualenv linked in (so nothing is installed again)."""
    copy = tmp_path / "checkout"
    copy.mkdir()
    for name in ("scripts", "engine", "local", "kms_connection"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Pulumi.yaml", "Pulumi.local.yaml", "__main__.py", "requirements.txt", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, copy / name)
    (copy / ".venv").symlink_to(ROOT / ".venv")
    stack = copy / "Pulumi.local.yaml"
    default = "kms: http://127.0.0.1:4599"
    assert default in stack.read_text()
    stack.write_text(stack.read_text().replace(default, f"kms: http://127.0.0.1:{free_port()}"))
    return copy


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def up(checkout: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "PULUMI_"))}
    return subprocess.run(
        ["bash", str(checkout / "scripts" / "up"), *args], cwd=checkout, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=600, check=False,
    )


def test_scripts_up_runs_a_real_pulumi_up_and_prints_the_engines_summary(checkout: Path) -> None:
    result = up(checkout)

    assert result.returncode == 0, result.stdout
    assert "Updating (local)" in result.stdout
    assert "Resources:\n    + 3 created" in result.stdout
    assert 'local-hsm: "CONNECTED"' in result.stdout


def test_scripts_up_twice_changes_nothing_the_second_time(checkout: Path) -> None:
    up(checkout)

    result = up(checkout)

    assert result.returncode == 0, result.stdout
    assert "3 unchanged" in result.stdout


def test_scripts_up_destroy_follows_on_delete(checkout: Path) -> None:
    up(checkout)

    result = up(checkout, "destroy")

    assert result.returncode == 0, result.stdout
    assert "cks-0fedcba9876543210: on_delete is 'retain': leaving the store as it is" in result.stdout
    assert "- 3 deleted" in result.stdout


def test_the_failed_drill_shows_the_store_the_code_and_the_fix_then_a_plain_up_converges(checkout: Path) -> None:
    drilled = up(checkout, "--drill", "failed")

    assert drilled.returncode != 0
    assert "cks-0123456789abcdef0" in drilled.stdout and "USER_LOCKED_OUT" in drilled.stdout
    assert "that failure was the 'failed' drill" in drilled.stdout
    assert up(checkout).returncode == 0


@pytest.mark.parametrize("arguments", [["prevew"], ["--dril", "failed"], ["up", "extra"], ["--drill", "nope"]])
def test_scripts_up_refuses_what_it_does_not_know_before_running_anything(
    checkout: Path, arguments: list[str]
) -> None:
    result = up(checkout, *arguments)

    assert result.returncode == 2
    assert "usage: scripts/up" in result.stdout
    assert not (checkout / ".local").exists()


def test_scripts_up_help_prints_the_usage_and_runs_nothing(checkout: Path) -> None:
    result = up(checkout, "--help")

    assert result.returncode == 0
    assert result.stdout.startswith("usage: scripts/up")
    assert "--drill failed" in result.stdout
    assert not (checkout / ".local").exists()
