"""The command line entry point, driven by the AWS CLI as a user would (subprocesses, real time)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import set_aws_env

REPO = Path(__file__).resolve().parent.parent


def aws_cli() -> str | None:
    """The AWS CLI: on PATH, or next to this Python (a virtualenv's bin/)."""
    found = shutil.which("aws")
    if found:
        return found
    sibling = Path(sys.executable).with_name("aws")
    return str(sibling) if sibling.exists() else None


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


class EmulatorProcess:
    """``python -m kms_connection.emulator`` as a child process; ``url`` is its first line of stdout."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kms_connection.emulator", "--port", "0", *args],
            cwd=REPO,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()

        self.stderr = ""

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum``, wait for the exit, keep stderr; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        _, self.stderr = self.process.communicate(timeout=10)
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=10)


@pytest.fixture
def emulator_process() -> Iterator[EmulatorProcess]:
    process = EmulatorProcess("--connect-seconds", "0.3", "--disconnect-seconds", "0.1")
    yield process
    process.kill()


def run_aws(*args: str) -> Any:
    cli = aws_cli()
    assert cli is not None
    result = subprocess.run(
        [cli, "kms", *args, "--output", "json"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else {}


@pytest.mark.skipif(aws_cli() is None, reason="the AWS CLI (`aws`) is not installed on PATH or next to this Python")
def test_aws_cli_creates_connects_and_sees_connected(
    emulator_process: EmulatorProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The first line of stdout is exactly the endpoint URL, on loopback, on the port --port 0 picked.
    assert re.fullmatch(r"http://127\.0\.0\.1:[1-9][0-9]*", emulator_process.url)
    set_aws_env(monkeypatch, emulator_process.url, tmp_path)
    created = run_aws(
        "create-custom-key-store",
        "--custom-key-store-name",
        "cli-store",
        "--cloud-hsm-cluster-id",
        "cluster-234567abcdefg",
        "--trust-anchor-certificate",
        "trust-anchor",
        "--key-store-password",
        "kmsuser-password",
    )
    store_id = created["CustomKeyStoreId"]
    assert store_id.startswith("cks-")
    run_aws("connect-custom-key-store", "--custom-key-store-id", store_id)
    states = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stores = run_aws("describe-custom-key-stores", "--custom-key-store-id", store_id)["CustomKeyStores"]
        states.append(stores[0]["ConnectionState"])
        if states[-1] == "CONNECTED":
            break
        time.sleep(0.1)
    assert states[-1] == "CONNECTED"
    assert set(states) <= {"CONNECTING", "CONNECTED"}
    assert emulator_process.stop(signal.SIGTERM) == 0


def test_sigint_stops_the_emulator_with_exit_status_zero(emulator_process: EmulatorProcess) -> None:
    assert emulator_process.url
    assert emulator_process.stop(signal.SIGINT) == 0


def test_requests_are_logged_to_stderr_briefly(emulator_process: EmulatorProcess) -> None:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        emulator_process.url, data=b"{}", headers={"X-Amz-Target": "TrentService.DescribeCustomKeyStores"}
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 400
    assert emulator_process.stop() == 0
    lines = emulator_process.stderr.splitlines()
    assert any("DescribeCustomKeyStores" in line and "MissingAuthenticationTokenException" in line for line in lines)
    assert lines[-1].endswith("stopped")


def test_corrupt_state_file_makes_the_cli_exit_non_zero_with_the_reason(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_text("{broken")
    result = subprocess.run(
        [sys.executable, "-m", "kms_connection.emulator", "--port", "0", "--state-file", str(state_file)],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert str(state_file) in result.stderr
    assert "not valid JSON" in result.stderr


def test_cli_state_file_and_seed_survive_a_restart(tmp_path: Path) -> None:
    import urllib.request

    state_file = tmp_path / "state.json"
    args = ("--state-file", str(state_file), "--seed", str(REPO / "local" / "seed.json"))
    first = EmulatorProcess(*args)
    try:
        assert first.stop() == 0
    finally:
        first.kill()
    assert {s["CustomKeyStoreId"] for s in json.loads(state_file.read_text())["stores"]} == {
        "cks-0123456789abcdef0",
        "cks-0fedcba9876543210",
    }
    second = EmulatorProcess(*args)
    try:
        with urllib.request.urlopen(second.url + "/_emulator/stores", timeout=5) as response:
            stores = json.loads(response.read())["stores"]
        assert [s["CustomKeyStoreName"] for s in stores] == ["local-hsm", "local-xks"]
    finally:
        assert second.stop() == 0


def test_cli_fault_options_become_the_emulator_settings() -> None:
    import urllib.request

    process = EmulatorProcess(
        "--connect-outcome",
        "cks-0123456789abcdef0=fail:USER_NOT_FOUND",
        "eu-west-1/cks-0fedcba9876543210=hang",
        "--default-connect-outcome",
        "fail:NETWORK_ERRORS",
        "--fail-next",
        "2",
        "--failure-rate",
        "0.25",
        "--failure-seed",
        "9",
        "--consistency-lag",
        "1.5",
    )
    try:
        with urllib.request.urlopen(process.url + "/_emulator/faults", timeout=5) as response:
            settings = json.loads(response.read())
    finally:
        assert process.stop() == 0
    assert settings["throttle_rps"] == 5  # KMS's own quota is the command line default
    assert (settings["connect_seconds"], settings["disconnect_seconds"]) == (20, 5)
    assert settings["connect_outcomes"] == {
        "us-east-1/cks-0123456789abcdef0": "fail:USER_NOT_FOUND",
        "eu-west-1/cks-0fedcba9876543210": "hang",
    }
    assert settings["default_connect_outcome"] == "fail:NETWORK_ERRORS"
    assert settings["fail_next"] == [{"count": 2, "operation": None, "mode": "internal"}]
    assert settings["failure_rate"] == {"fraction": 0.25, "seed": 9}
    assert settings["consistency_lag"] == 1.5


# -- accounts and STS, through the AWS CLI -------------------------------------------------------------

CLI_KEY = "AKIACLIBASEKEY000001"
CLI_ACCOUNT = "111122223333"
CLI_ROLE = "arn:aws:iam::222233334444:role/kms-admin"
CLI_DENIED_ROLE = "arn:aws:iam::222233334444:role/not-for-you"


@pytest.fixture
def accounts_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[EmulatorProcess]:
    """An emulator whose CLI_KEY acts in CLI_ACCOUNT and which denies CLI_DENIED_ROLE, with the AWS CLI's
    environment pointing KMS and STS at it (AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL_STS) with CLI_KEY."""
    process = EmulatorProcess("--account", f"{CLI_KEY}={CLI_ACCOUNT}", "--deny-role", CLI_DENIED_ROLE)
    set_aws_env(monkeypatch, process.url, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", process.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CLI_KEY)
    yield process
    process.kill()


def run_aws_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cli = aws_cli()
    assert cli is not None
    return subprocess.run(
        [cli, *args, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def run_aws_json(*args: str, env: dict[str, str] | None = None) -> Any:
    result = run_aws_cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.skipif(aws_cli() is None, reason="the AWS CLI (`aws`) is not installed on PATH or next to this Python")
def test_aws_cli_get_caller_identity_names_the_account_of_the_access_key(accounts_process: EmulatorProcess) -> None:
    identity = run_aws_json("sts", "get-caller-identity")
    assert (identity["Account"], identity["Arn"]) == (CLI_ACCOUNT, f"arn:aws:iam::{CLI_ACCOUNT}:root")
    unmapped = run_aws_json("sts", "get-caller-identity", env={"AWS_ACCESS_KEY_ID": "AKIANOTMAPPED0000001"})
    assert unmapped["Account"] == "000000000000"


@pytest.mark.skipif(aws_cli() is None, reason="the AWS CLI (`aws`) is not installed on PATH or next to this Python")
def test_aws_cli_assume_role_gives_session_credentials_that_act_in_the_roles_account(
    accounts_process: EmulatorProcess,
) -> None:
    import urllib.request

    assumed = run_aws_json("sts", "assume-role", "--role-arn", CLI_ROLE, "--role-session-name", "cli")
    credentials = assumed["Credentials"]
    assert credentials["AccessKeyId"].startswith("ASIA") and credentials["Expiration"]
    session_env = {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }
    identity = run_aws_json("sts", "get-caller-identity", env=session_env)
    assert identity["Arn"] == "arn:aws:sts::222233334444:assumed-role/kms-admin/cli"
    created = run_aws_json(
        "kms",
        "create-custom-key-store",
        "--custom-key-store-name",
        "in-the-role-account",
        "--cloud-hsm-cluster-id",
        "cluster-234567abcdefg",
        "--trust-anchor-certificate",
        "trust-anchor",
        "--key-store-password",
        "kmsuser-password",
        env=session_env,
    )
    with urllib.request.urlopen(accounts_process.url + "/_emulator/stores", timeout=5) as response:
        stores = json.loads(response.read())["stores"]
    assert [(s["CustomKeyStoreId"], s["Account"]) for s in stores] == [(created["CustomKeyStoreId"], "222233334444")]
    # The base key's account sees none of the role account's stores.
    assert run_aws_json("kms", "describe-custom-key-stores")["CustomKeyStores"] == []


@pytest.mark.skipif(aws_cli() is None, reason="the AWS CLI (`aws`) is not installed on PATH or next to this Python")
def test_aws_cli_assume_role_of_a_denied_role_fails_with_access_denied(accounts_process: EmulatorProcess) -> None:
    result = run_aws_cli("sts", "assume-role", "--role-arn", CLI_DENIED_ROLE, "--role-session-name", "cli")
    assert result.returncode != 0
    assert "(AccessDenied)" in result.stderr
    assert f"not authorized to perform: sts:AssumeRole on resource: {CLI_DENIED_ROLE}" in result.stderr


def test_cli_session_seconds_option_becomes_the_emulator_setting() -> None:
    import urllib.request

    process = EmulatorProcess("--session-seconds", "2.5", "--account", "AKIAONE0000000000001=111122223333")
    try:
        with urllib.request.urlopen(process.url + "/_emulator/faults", timeout=5) as response:
            settings = json.loads(response.read())
    finally:
        assert process.stop() == 0
    assert settings["session_seconds"] == 2.5
    assert settings["accounts"] == {"AKIAONE0000000000001": "111122223333"}


def test_cli_refuses_a_malformed_account_with_exit_status_two() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kms_connection.emulator", "--port", "0", "--account", "AKIAONE0000000000001=12"],
        cwd=REPO,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "12 digits" in result.stderr
