"""KMS keys in custom key stores through the AWS CLI, as a user would drive the emulator: every key operation, the
rules that tie keys to their store's connection state, and the command line's ``--deny``."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kms_connection.emulator import Emulator
from tests.conftest import set_aws_env
from tests.test_emulator_cli import EmulatorProcess, aws_cli

pytestmark = pytest.mark.skipif(aws_cli() is None, reason="the AWS CLI (`aws`) is not installed")


def aws_kms(*args: str) -> subprocess.CompletedProcess[str]:
    cli = aws_cli()
    assert cli is not None
    return subprocess.run(
        [cli, "kms", *args, "--output", "json"], capture_output=True, text=True, timeout=60, check=False
    )


def kms(*args: str) -> Any:
    """``aws kms ARGS``, which must succeed; its JSON answer."""
    result = aws_kms(*args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else {}


def kms_error(*args: str) -> str:
    """``aws kms ARGS``, which must fail; what the CLI printed."""
    result = aws_kms(*args)
    assert result.returncode != 0, result.stdout
    return result.stderr


@pytest.fixture
def emu(kms_emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Emulator]:
    """The in-process emulator, with the AWS CLI pointed at it."""
    set_aws_env(monkeypatch, kms_emulator.endpoint_url, tmp_path)
    yield kms_emulator


def test_aws_cli_creates_a_key_in_a_connected_store_and_lists_every_key_page_by_page(emu: Emulator) -> None:
    store_id = emu.create_store("hsm", connection_state="CONNECTED")
    emu.create_key()
    emu.create_key()

    created = kms("create-key", "--custom-key-store-id", store_id, "--origin", "AWS_CLOUDHSM")["KeyMetadata"]
    described = kms("describe-key", "--key-id", created["KeyId"])["KeyMetadata"]
    listed = kms("list-keys", "--page-size", "1")["Keys"]  # the CLI follows NextMarker itself

    assert (described["CustomKeyStoreId"], described["Origin"], described["KeyState"]) == (
        store_id,
        "AWS_CLOUDHSM",
        "Enabled",
    )
    assert described["CloudHsmClusterId"].startswith("cluster-")
    assert len(listed) == 3 and listed[-1]["KeyId"] == created["KeyId"]


def test_aws_cli_create_key_in_a_disconnected_store_is_refused_with_invalid_state(emu: Emulator) -> None:
    store_id = emu.create_store("hsm")

    printed = kms_error("create-key", "--custom-key-store-id", store_id, "--origin", "AWS_CLOUDHSM")

    assert "CustomKeyStoreInvalidStateException" in printed and "DISCONNECTED" in printed
    assert emu.keys == []


def test_aws_cli_names_a_key_with_an_alias_and_lists_the_keys_aliases(emu: Emulator) -> None:
    key_id = emu.create_key()

    kms("create-alias", "--alias-name", "alias/payments", "--target-key-id", key_id)
    aliases = kms("list-aliases", "--key-id", key_id)["Aliases"]
    described = kms("describe-key", "--key-id", "alias/payments")["KeyMetadata"]

    assert [alias["AliasName"] for alias in aliases] == ["alias/payments"]
    assert described["KeyId"] == key_id


def test_aws_cli_disables_enables_schedules_and_cancels_the_deletion_of_a_key(emu: Emulator) -> None:
    key_id = emu.create_key()

    kms("disable-key", "--key-id", key_id)
    disabled = kms("describe-key", "--key-id", key_id)["KeyMetadata"]["KeyState"]
    kms("enable-key", "--key-id", key_id)
    scheduled = kms("schedule-key-deletion", "--key-id", key_id, "--pending-window-in-days", "7")
    cancelled = kms("cancel-key-deletion", "--key-id", key_id)

    assert disabled == "Disabled"
    assert scheduled["KeyState"] == "PendingDeletion" and scheduled["PendingWindowInDays"] == 7
    assert cancelled["KeyId"].endswith(key_id)
    assert kms("describe-key", "--key-id", key_id)["KeyMetadata"]["KeyState"] == "Disabled"


def test_aws_cli_encrypts_decrypts_and_generates_a_data_key(emu: Emulator, tmp_path: Path) -> None:
    key_id = emu.create_key(aliases=["alias/payments"])

    sealed = kms("encrypt", "--key-id", "alias/payments", "--plaintext", "card number")
    blob = tmp_path / "ciphertext"
    blob.write_bytes(base64.b64decode(sealed["CiphertextBlob"]))
    opened = kms("decrypt", "--ciphertext-blob", f"fileb://{blob}")
    data_key = kms("generate-data-key", "--key-id", key_id, "--key-spec", "AES_256")

    assert base64.b64decode(opened["Plaintext"]) == b"card number"
    assert opened["KeyId"].endswith(key_id)
    assert len(base64.b64decode(data_key["Plaintext"])) == 32


def test_aws_cli_sees_the_keys_of_a_disconnected_store_unavailable_and_unusable(emu: Emulator) -> None:
    store_id = emu.create_store("hsm", connection_state="CONNECTED")
    key_id = emu.create_key(store_id)

    kms("disconnect-custom-key-store", "--custom-key-store-id", store_id)
    state = kms("describe-key", "--key-id", key_id)["KeyMetadata"]["KeyState"]
    printed = kms_error("encrypt", "--key-id", key_id, "--plaintext", "card number")

    assert state == "Unavailable"
    assert "KMSInvalidStateException" in printed and "unavailable" in printed


def test_aws_cli_cannot_delete_a_store_that_holds_keys(emu: Emulator) -> None:
    store_id = emu.create_store("hsm")
    emu.create_key(store_id)

    printed = kms_error("delete-custom-key-store", "--custom-key-store-id", store_id)

    assert "CustomKeyStoreHasCMKsException" in printed


def test_the_command_line_emulator_answers_denied_operations_with_access_denied(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    process = EmulatorProcess("--deny", "ListKeys", "DescribeKey", "--throttle-rps", "0")
    try:
        set_aws_env(monkeypatch, process.url, tmp_path)

        printed = kms_error("list-keys")
        aliases = kms("list-aliases")
    finally:
        process.kill()

    assert "AccessDeniedException" in printed
    assert "is not authorized to perform: kms:ListKeys" in printed
    assert aliases["Aliases"] == []
