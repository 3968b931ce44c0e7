"""The ``local`` stack through the real Pulumi CLI: preview, up, refresh after drift, up again, destroy.

It runs what ``scripts/up`` runs, against the KMS emulator started from its command line on the endpoint that
``Pulumi.local.yaml`` names, with a file backend in a temporary directory and a copy of the project (so the
stack's ``encryptionsalt`` and state never touch the repository). The CLI runs the program and the dynamic
provider with this test's own Python (``virtualenv`` in the copied ``Pulumi.yaml``), so no ``.venv`` is needed.

Skipped when ``pulumi`` is not on PATH: ``tests/test_lifecycle.py`` drives the same program and provider
through the SDK's provider server without the CLI. The first run may take minutes if the CLI downloads the
plugins of packages installed beside the SDK (pulumi-aws).
"""

from __future__ import annotations

import importlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kms_connection.emulator import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY
from tests.engine import PROJECT_ROOT

PULUMI = shutil.which("pulumi")
STACK = "local"
CONNECTION_TYPE = "pulumi-python:dynamic/kms:CustomKeyStoreConnection"
# The emulator's transition times: quick, but long enough that the provider really waits.
CONNECT_SECONDS = "1"
DISCONNECT_SECONDS = "0.5"
# One CLI command; the first may download plugins.
COMMAND_TIMEOUT = 900

pytestmark = [
    pytest.mark.skipif(
        PULUMI is None,
        reason=(
            "the Pulumi CLI is not on PATH (install it from https://www.pulumi.com/docs/install/); "
            "tests/test_lifecycle.py covers the same stack through the SDK's provider server"
        ),
    ),
    pytest.mark.timeout(3 * COMMAND_TIMEOUT),
]

# PyYAML comes with the Pulumi SDK, without type stubs.
yaml: Any = importlib.import_module("yaml")


@dataclass(frozen=True)
class LocalStore:
    """One ``kms-connection:keyStores`` entry of ``Pulumi.local.yaml``."""

    name: str
    store_id: str
    on_delete: str


@dataclass(frozen=True)
class LocalStack:
    """What ``Pulumi.local.yaml`` and ``local/seed.json`` say about the ``local`` stack."""

    endpoint: str
    port: int
    stores: tuple[LocalStore, ...]


def read_local_stack() -> LocalStack:
    config = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{STACK}.yaml").read_text())["config"]
    endpoint = next(entry["kms"] for entry in config["aws:endpoints"] if "kms" in entry)
    parsed = urllib.parse.urlsplit(endpoint)
    assert parsed.hostname in ("127.0.0.1", "localhost") and parsed.port, f"not a local endpoint: {endpoint}"
    stores = tuple(
        LocalStore(str(entry.get("name") or entry["id"]), entry["id"], str(entry.get("onDelete", "disconnect")))
        for entry in config["kms-connection:keyStores"]
    )
    seeded = {entry["CustomKeyStoreId"] for entry in json.loads((PROJECT_ROOT / "local" / "seed.json").read_text())}
    assert {store.store_id for store in stores} <= seeded, "every store of the local stack is seeded"
    return LocalStack(endpoint.rstrip("/"), parsed.port, stores)


# --------------------------------------------------------------------------------------------------
# The emulator, from its command line
# --------------------------------------------------------------------------------------------------


class EmulatorProcess:
    """``python -m kms_connection.emulator`` seeded with ``local/seed.json``; its admin API for assertions."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kms_connection.emulator",
                "--port",
                str(port),
                "--seed",
                str(PROJECT_ROOT / "local" / "seed.json"),
                "--connect-seconds",
                CONNECT_SECONDS,
                "--disconnect-seconds",
                DISCONNECT_SECONDS,
            ],
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        first_line: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: first_line.put(stdout.readline()), daemon=True).start()
        try:
            line = first_line.get(timeout=30)
        except queue.Empty:
            line = ""
        if not line.strip():
            self.stop()
            status = self.proc.returncode
            hint = f" (port {port} in use? stop scripts/up's emulator)" if status == 1 else ""
            pytest.fail(f"the KMS emulator did not start (exit status {status}){hint}:\n{self.log()}")
        self.url = line.strip()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def admin(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}/_emulator/{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def states(self) -> dict[str, str]:
        return {store["CustomKeyStoreId"]: store["ConnectionState"] for store in self.admin("GET", "stores")["stores"]}

    def operations(self) -> list[tuple[str, str]]:
        """``(operation, store id)`` of each logged call, oldest first ("" for a call naming no store)."""
        return [(call["operation"], call["store_id"] or "") for call in self.admin("GET", "calls")["calls"]]

    def clear_calls(self) -> None:
        self.admin("DELETE", "calls")

    def disconnect_out_of_band(self, store_id: str) -> None:
        """Disconnect a store as another client would, and wait until it is DISCONNECTED."""
        import boto3

        client = boto3.session.Session(
            aws_access_key_id=DUMMY_ACCESS_KEY_ID,
            aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
            region_name="us-east-1",
        ).client("kms", endpoint_url=self.url)
        client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
        deadline = time.monotonic() + 30
        while self.states()[store_id] != "DISCONNECTED":
            assert time.monotonic() < deadline, f"{store_id} did not disconnect"
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


# --------------------------------------------------------------------------------------------------
# The project copy and the CLI
# --------------------------------------------------------------------------------------------------


def copy_project(dest: Path) -> Path:
    """The stack's files in ``dest``, with ``Pulumi.yaml`` pointing the Python runtime at this interpreter."""
    dest.mkdir(parents=True)
    for name in ("__main__.py", f"Pulumi.{STACK}.yaml", "requirements.txt"):
        shutil.copy2(PROJECT_ROOT / name, dest / name)
    shutil.copytree(
        PROJECT_ROOT / "kms_connection", dest / "kms_connection", ignore=shutil.ignore_patterns("__pycache__")
    )
    project = yaml.safe_load((PROJECT_ROOT / "Pulumi.yaml").read_text())
    runtime = project.get("runtime")
    if not isinstance(runtime, dict):
        runtime = {"name": runtime or "python"}
    options = dict(runtime.get("options") or {})
    if sys.prefix != sys.base_prefix:
        options["virtualenv"] = sys.prefix  # the program and `python -m pulumi.dynamic` run in this venv
    else:
        options.pop("virtualenv", None)  # then PULUMI_PYTHON_CMD and PATH name this interpreter
    runtime["options"] = options
    project["runtime"] = runtime
    (dest / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    return dest


def cli_env(tmp: Path) -> dict[str, str]:
    """The environment of every ``pulumi`` command: a file backend, a passphrase, dummy AWS credentials.

    The endpoint comes from ``aws:endpoints`` in the stack config, as for a user of ``scripts/up``.
    """
    dropped = {
        "PULUMI_BACKEND_URL",
        "PULUMI_ACCESS_TOKEN",
        "PULUMI_CONFIG",
        "PULUMI_CONFIG_SECRET_KEYS",
        "PULUMI_CONFIG_PASSPHRASE",
        "PULUMI_CONFIG_PASSPHRASE_FILE",
        "PULUMI_PROJECT",
        "PULUMI_STACK",
        "VIRTUAL_ENV",
    }
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("AWS_")}
    state = tmp / "pulumi-state"
    state.mkdir()
    env.update(
        {
            "PULUMI_BACKEND_URL": state.as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": "lifecycle-test",
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_PYTHON_CMD": sys.executable,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
            "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials"),
        }
    )
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    return env


@dataclass
class Cli:
    project: Path
    env: dict[str, str]
    emulator: EmulatorProcess

    def run(self, *args: str, json_stdout: bool = False) -> str:
        """Run ``pulumi ARGS``; fail the test with both streams and the emulator's log unless it exits 0.

        Returns stdout (``json_stdout``) or stdout and stderr together (diagnostics, such as the provider's
        lines, go to stderr in recent CLIs).
        """
        assert PULUMI is not None
        command = [PULUMI, *args, "--non-interactive", "--color", "never"]
        proc = subprocess.run(
            command, cwd=self.project, env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
        )
        if proc.returncode != 0:
            pytest.fail(
                f"`pulumi {' '.join(args)}` exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n"
                f"{proc.stderr}\n--- emulator log\n{self.emulator.log()}"
            )
        return proc.stdout if json_stdout else proc.stdout + "\n" + proc.stderr

    def stack_outputs(self) -> Any:
        return json.loads(self.run("stack", "output", "--json", "--stack", STACK, json_stdout=True))

    def resource_outputs(self) -> dict[str, dict[str, Any]]:
        """The checkpoint's outputs of each connection, by resource name (``pulumi stack export``)."""
        exported = json.loads(self.run("stack", "export", "--stack", STACK, json_stdout=True))
        resources = exported.get("deployment", {}).get("resources") or []
        return {r["urn"].split("::")[-1]: r.get("outputs", {}) for r in resources if r["type"] == CONNECTION_TYPE}


@pytest.fixture
def local_stack() -> LocalStack:
    return read_local_stack()


@pytest.fixture
def cli(tmp_path: Path, local_stack: LocalStack) -> Iterator[Cli]:
    emulator = EmulatorProcess(local_stack.port, tmp_path / "emulator.log")
    try:
        port = urllib.parse.urlsplit(emulator.url).port
        assert port == local_stack.port, f"the emulator ({emulator.url}) listens where Pulumi.local.yaml points"
        yield Cli(copy_project(tmp_path / "project"), cli_env(tmp_path), emulator)
    finally:
        emulator.stop()


# --------------------------------------------------------------------------------------------------
# The scenario
# --------------------------------------------------------------------------------------------------


def test_preview_up_refresh_up_destroy_of_the_local_stack(cli: Cli, local_stack: LocalStack) -> None:
    emu = cli.emulator
    stores = {store.name: store for store in local_stack.stores}
    ids = {store.store_id for store in local_stack.stores}
    assert all(emu.states()[store_id] == "DISCONNECTED" for store_id in ids)
    cli.run("stack", "select", "--create", STACK)

    # preview: Check only, so not a single KMS call.
    out = cli.run("preview", "--stack", STACK)
    for name in stores:
        assert name in out, out
    assert "create" in out, out
    assert emu.operations() == [], "a preview of new connections must not call KMS"

    # up: each store connected with one Connect.
    out = cli.run("up", "--yes", "--stack", STACK)
    assert "created" in out, out
    assert {store_id: emu.states()[store_id] for store_id in ids} == dict.fromkeys(ids, "CONNECTED")
    connects = [store_id for operation, store_id in emu.operations() if operation == "ConnectCustomKeyStore"]
    assert sorted(connects) == sorted(ids)
    assert cli.stack_outputs()["connection_states"] == dict.fromkeys(stores, "CONNECTED")

    # Drift: another client disconnects one store; refresh records it without changing anything.
    drifted = next(store for store in local_stack.stores if store.on_delete == "disconnect")
    emu.disconnect_out_of_band(drifted.store_id)
    emu.clear_calls()
    out = cli.run("refresh", "--yes", "--stack", STACK)
    assert drifted.name in out, out
    outputs = cli.resource_outputs()
    assert outputs[drifted.name]["connection_state"] == "DISCONNECTED"
    assert all(op == "DescribeCustomKeyStores" for op, _ in emu.operations()), emu.operations()

    # preview says what up will do, in the provider's words; up does it.
    out = cli.run("preview", "--stack", STACK)
    plan_line = f"{drifted.store_id}: observed DISCONNECTED, desired CONNECTED: will connect"
    assert plan_line in out, f"the provider's plan line is missing from the preview:\n{out}"
    out = cli.run("up", "--yes", "--stack", STACK)
    assert emu.states()[drifted.store_id] == "CONNECTED"
    assert cli.stack_outputs()["connection_states"] == dict.fromkeys(stores, "CONNECTED")
    connects = [store_id for operation, store_id in emu.operations() if operation == "ConnectCustomKeyStore"]
    assert connects == [drifted.store_id]

    # The state holds neither credential (the provider pickles to a class reference).
    exported = cli.run("stack", "export", "--show-secrets", "--stack", STACK, json_stdout=True)
    assert DUMMY_ACCESS_KEY_ID not in exported and DUMMY_SECRET_ACCESS_KEY not in exported

    # destroy: disconnect, unless onDelete is retain.
    emu.clear_calls()
    out = cli.run("destroy", "--yes", "--stack", STACK)
    assert "deleted" in out, out
    final = emu.states()
    for store in local_stack.stores:
        expected = "CONNECTED" if store.on_delete == "retain" else "DISCONNECTED"
        assert final[store.store_id] == expected, (store, final)
    disconnected = [store_id for operation, store_id in emu.operations() if operation == "DisconnectCustomKeyStore"]
    assert sorted(disconnected) == sorted(s.store_id for s in local_stack.stores if s.on_delete != "retain")
    assert cli.resource_outputs() == {}
