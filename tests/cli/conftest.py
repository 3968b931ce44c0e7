"""Fixtures for the real Pulumi CLI against the KMS emulator.

Each test gets its own emulator (in this process, on a free loopback port, so the test reads its call log and sets
its faults directly), its own copy of the project, its own file backend and Pulumi home, and its own stack. The CLI
is the project's (``scripts/engine.sh``: a ``pulumi`` on PATH, else the pinned build from ``engine/``, built here on
first use). The tests drive it with the SDK's Automation API where structured results serve, and with the plain
command line where what a user reads is the point.

These tests skip only on a machine with neither ``pulumi`` nor ``go`` (no CLI can exist there), never in CI.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from bench.pulumi_cli import (
    ROOT,
    CliUnavailableError,
    cli_env,
    copy_project,
    run_pulumi,
    write_stack_config,
)
from bench.pulumi_cli import (
    pulumi_bin_dir as project_pulumi_bin_dir,
)
from kms_connection.emulator import Emulator
from kms_connection.emulator.calls import Call

CONNECTION_TYPE = "pulumi-python:dynamic/kms:CustomKeyStoreConnection"
SET_TYPE = "pulumi-python:dynamic/kms:CustomKeyStoreConnectionSet"
MUTATING = frozenset({"ConnectCustomKeyStore", "DisconnectCustomKeyStore"})
# One CLI command, with room for a slow machine; the first build of the CLI happens in the session fixture.
COMMAND_TIMEOUT = 300


@pytest.fixture(scope="session")
def pulumi_bin_dir() -> Path:
    """The project's Pulumi CLI; skips only where none can exist, and never in CI."""
    try:
        return project_pulumi_bin_dir()
    except CliUnavailableError as error:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the CLI tests: {error}")
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def policy_venv() -> Path:
    """The policy pack's own virtualenv, made by the project's scripts as a user would make it."""
    result = subprocess.run(
        ["bash", "-c", f"source {ROOT}/scripts/venv.sh && ensure_policy_venv"],
        capture_output=True, text=True, timeout=1800, check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"making policy/venv failed:\n{result.stdout}\n{result.stderr}")
    return ROOT / "policy" / "venv"


@pytest.fixture(scope="session")
def typescript_modules() -> Path:
    """The TypeScript example's npm packages (``npm ci`` in examples/typescript, once per session)."""
    from tests.cli.programs import install_typescript_example  # it imports this module's CliStack

    try:
        return install_typescript_example()
    except RuntimeError as error:
        pytest.fail(str(error))


def store_entry(store_id: str, name: str, **keys: Any) -> dict[str, Any]:
    """One ``kms-connection:keyStores`` entry, as a user writes it in stack config."""
    return {"id": store_id, "name": name, **keys}


@dataclass
class CliStack:
    """One stack of a copy of the project, its backend and its emulator."""

    name: str
    project_dir: Path
    env: dict[str, str]
    emulator: Emulator
    pulumi_bin_dir: Path
    config: dict[str, Any] = field(default_factory=dict)

    # --- configuration -------------------------------------------------------------------------------------

    def write_config(self, **project_config: Any) -> None:
        """Write ``Pulumi.<stack>.yaml``: the emulator's endpoint, plus ``kms-connection:<key>`` entries given."""
        self.config = write_stack_config(self.project_dir, self.name, self.emulator.endpoint_url, **project_config)

    def write_program(self, source: str) -> None:
        """Replace the stack program with ``source`` (a user's own program)."""
        (self.project_dir / "__main__.py").write_text(source)

    # --- the Automation API --------------------------------------------------------------------------------

    @property
    def stack(self) -> auto.Stack:
        command = auto.PulumiCommand(root=str(self.pulumi_bin_dir.parent), skip_version_check=True)
        workspace = auto.LocalWorkspace(
            work_dir=str(self.project_dir), env_vars=self.env, pulumi_home=self.env["PULUMI_HOME"],
            pulumi_command=command,
        )
        return auto.Stack.select(self.name, workspace)

    def up(self, **kwargs: Any) -> auto.UpResult:
        return self.stack.up(color="never", **kwargs)

    def preview(self, **kwargs: Any) -> auto.PreviewResult:
        return self.stack.preview(color="never", **kwargs)

    def outputs(self) -> dict[str, Any]:
        return {key: value.value for key, value in self.stack.outputs().items()}

    def resources(self, type_token: str | None = None) -> dict[str, dict[str, Any]]:
        """The resources the state records, by name: their type, id, inputs and outputs."""
        deployment = self.stack.export_stack().deployment or {}
        found: dict[str, dict[str, Any]] = {}
        for resource in deployment.get("resources", []):
            if type_token is None or resource["type"] == type_token:
                found[resource["urn"].rsplit("::", 1)[-1]] = resource
        return found

    def pending_operations(self) -> list[dict[str, Any]]:
        return list((self.stack.export_stack().deployment or {}).get("pending_operations") or [])

    # --- the plain command line ----------------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run ``pulumi ARGS --stack NAME`` as a user does; stdout and stderr together, as a terminal shows them."""
        result = run_pulumi(self.pulumi_bin_dir, self.project_dir, self.env, *args, "--stack", self.name,
                            timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} exited {result.returncode}:\n{result.stdout}")
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start ``pulumi ARGS`` in its own process group (for signals), output to a file under the project."""
        log = open(self.project_dir / "pulumi-output.txt", "w")  # noqa: SIM115 (closed by the caller's wait)
        return subprocess.Popen(
            [str(self.pulumi_bin_dir / "pulumi"), *args, "--stack", self.name, "--non-interactive", "--color", "never"],
            cwd=self.project_dir, env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )

    # --- what KMS saw --------------------------------------------------------------------------------------

    def calls(self, since: int = 0) -> list[Call]:
        return self.emulator.calls[since:]

    def mutating_calls(self, since: int = 0) -> list[tuple[str, str | None]]:
        return [(call.operation, call.store_id) for call in self.calls(since) if call.operation in MUTATING]


@pytest.fixture
def make_stack(tmp_path: Path, pulumi_bin_dir: Path) -> Iterator[Callable[..., CliStack]]:
    """Build ``CliStack``s: each with its own project copy, backend, Pulumi home and emulator."""
    emulators: list[Emulator] = []

    def make(
        stores: Mapping[str, str] | None = None, name: str = "test", emulator_kwargs: Mapping[str, Any] | None = None
    ) -> CliStack:
        """``stores`` maps store ids to names, created DISCONNECTED in the emulator (CloudHSM stores)."""
        root = tmp_path / name
        project_dir = root / "project"
        copy_project(project_dir)
        emulator = Emulator(**{"connect_seconds": 0.5, "disconnect_seconds": 0.3, **(emulator_kwargs or {})})
        emulators.append(emulator)
        for store_id, store_name in (stores or {}).items():
            emulator.create_store(store_id=store_id, name=store_name)
        env = cli_env(pulumi_bin_dir, root)
        stack = CliStack(name=name, project_dir=project_dir, env=env, emulator=emulator, pulumi_bin_dir=pulumi_bin_dir)
        created = run_pulumi(pulumi_bin_dir, project_dir, env, "stack", "init", name)
        assert created.returncode == 0, created.stdout
        return stack

    yield make
    for emulator in emulators:
        emulator.stop()

