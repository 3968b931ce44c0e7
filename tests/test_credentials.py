"""Credentials and the account guard, in the provider process, against the emulator (KMS and STS on one endpoint):
which credentials sign the calls (secret config, a profile from the shared files, a role chain), that botocore
refreshes a role's session through a long wait, that the account is learned once per credential set, and that the
gateway sends no Connect or Disconnect to an account the stack refuses."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kms_connection.credentials import (
    AccountUnknownError,
    RoleAssumptionError,
    credential_set,
    forget_credentials,
)
from kms_connection.emulator import Emulator
from kms_connection.errors import AccountRefusedError, KmsUnreachableError
from kms_connection.gateway import KmsGateway, make_client
from kms_connection.settings import AwsSettings
from tests.lifecycle_fixtures import AMBIENT_AWS_VARIABLES

REGION = "us-east-1"
BASE_KEY = "AKIACREDENTIALSBASE1"
ENV_KEY = "AKIACREDENTIALSENV01"
BASE_ACCOUNT = "111122223333"
ENV_ACCOUNT = "777788889999"
HOP_ROLE = "arn:aws:iam::333344445555:role/hop"
SECURITY_ROLE = "arn:aws:iam::222233334444:role/kms-admin"
SECURITY_ACCOUNT = "222233334444"
DENIED_ROLE = "arn:aws:iam::444455556666:role/not-for-you"
MUTATING = ("ConnectCustomKeyStore", "DisconnectCustomKeyStore")


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """What a provider process starts with: no cached credential or account, and an environment whose only
    credentials are ENV_KEY's (the developer's files hidden)."""
    for name in (*AMBIENT_AWS_VARIABLES, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ENV_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    forget_credentials()
    yield
    forget_credentials()


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator(accounts={BASE_KEY: BASE_ACCOUNT, ENV_KEY: ENV_ACCOUNT}, denied_roles=[DENIED_ROLE])


def settings(emu: Emulator, sts: bool = True, **config: Any) -> AwsSettings:
    """The stack's settings as pulumi-aws users write them; the emulator is the KMS (and, unless ``sts`` is false,
    the STS) endpoint."""
    endpoints = [{"kms": emu.endpoint_url}, *([{"sts": emu.endpoint_url}] if sts else [])]
    values = {"aws:region": REGION, "aws:endpoints": json.dumps(endpoints)}
    values.update({key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()})
    return AwsSettings.from_stack_config(values.get, {})


def static(**config: Any) -> dict[str, Any]:
    return {"aws:accessKey": BASE_KEY, "aws:secretKey": "base-secret", **config}


def gateway(stack: AwsSettings, chain: tuple[Any, ...] = ()) -> KmsGateway:
    credentials = credential_set(stack, chain, REGION)
    return KmsGateway(REGION, functools.partial(make_client, stack, REGION, credentials), credentials)


def calls(emu: Emulator, service: str | None = None) -> list[tuple[str, str | None]]:
    return [(call.operation, call.account) for call in emu.calls if service in (None, call.service)]


# -- which credentials sign the calls ----------------------------------------------------------------------------


def test_the_secret_access_key_config_signs_the_calls_instead_of_the_environment(emu: Emulator) -> None:
    store_id = emu.create_store("hsm", account=BASE_ACCOUNT)
    assert gateway(settings(emu, **static())).describe(store_id) is not None
    assert calls(emu) == [("DescribeCustomKeyStores", BASE_ACCOUNT)]


def test_without_credentials_in_the_config_the_environment_signs_the_calls(emu: Emulator) -> None:
    store_id = emu.create_store("hsm", account=ENV_ACCOUNT)
    assert gateway(settings(emu)).describe(store_id) is not None
    assert calls(emu) == [("DescribeCustomKeyStores", ENV_ACCOUNT)]


def test_a_profile_named_in_the_config_is_read_from_the_merged_shared_files(emu: Emulator, tmp_path: Path) -> None:
    first, second = tmp_path / "credentials-1", tmp_path / "credentials-2"
    first.write_text(f"[kms]\naws_access_key_id = {ENV_KEY}\naws_secret_access_key = first\n")
    # A later file overrides an earlier one key by key, as the AWS SDK for Go does.
    second.write_text(f"[kms]\naws_access_key_id = {BASE_KEY}\n")
    files: dict[str, Any] = {"aws:profile": "kms", "aws:sharedCredentialsFiles": [str(first), str(second)]}
    stack = settings(emu, **files)
    store_id = emu.create_store("hsm", account=BASE_ACCOUNT)
    assert gateway(stack).describe(store_id) is not None
    assert calls(emu) == [("DescribeCustomKeyStores", BASE_ACCOUNT)]


def test_a_role_profile_in_the_shared_config_files_is_assumed_from_its_source_profile(
    emu: Emulator, tmp_path: Path
) -> None:
    (tmp_path / "credentials").write_text(f"[base]\naws_access_key_id = {BASE_KEY}\naws_secret_access_key = s\n")
    (tmp_path / "config").write_text(f"[profile security]\nrole_arn = {SECURITY_ROLE}\nsource_profile = base\n")
    files: dict[str, Any] = {
        "aws:profile": "security",
        "aws:sharedCredentialsFiles": [str(tmp_path / "credentials")],
        "aws:sharedConfigFiles": [str(tmp_path / "config")],
    }
    stack = settings(emu, **files)
    assert gateway(stack).account_id("cks-1234567890abcdef0") == SECURITY_ACCOUNT


def test_the_stack_role_chain_is_assumed_in_order_each_role_from_the_previous(emu: Emulator) -> None:
    stack = settings(emu, **static(**{"aws:assumeRoles": [{"roleArn": HOP_ROLE}, {"roleArn": SECURITY_ROLE}]}))
    store_id = emu.create_store("hsm", account=SECURITY_ACCOUNT)
    assert gateway(stack, stack.assume_roles).describe(store_id) is not None
    assert calls(emu) == [
        ("AssumeRole", BASE_ACCOUNT),
        ("AssumeRole", "333344445555"),
        ("DescribeCustomKeyStores", SECURITY_ACCOUNT),
    ]


def test_a_roles_external_id_and_session_name_reach_sts(emu: Emulator) -> None:
    emu.require_external_id(SECURITY_ROLE, "tenant-42")
    role = {"roleArn": SECURITY_ROLE, "externalId": "tenant-42", "sessionName": "pipeline"}
    stack = settings(emu, **static(**{"aws:assumeRoles": [role]}))
    credentials = credential_set(stack, stack.assume_roles, REGION)
    identity = credentials.identity(emu.endpoint_url)
    assert identity is not None
    assert identity.arn == f"arn:aws:sts::{SECURITY_ACCOUNT}:assumed-role/kms-admin/pipeline"


def test_nothing_is_assumed_before_the_first_call(emu: Emulator) -> None:
    stack = settings(emu, **static(**{"aws:assumeRoles": [{"roleArn": SECURITY_ROLE}]}))
    credential_set(stack, stack.assume_roles, REGION).session()
    assert emu.calls == []


# -- refresh -----------------------------------------------------------------------------------------------------


def test_botocore_assumes_the_role_again_when_its_session_expires_during_a_long_wait(emu: Emulator) -> None:
    emu.session_seconds = 0.5
    emu.connect_seconds = 1.5
    store_id = emu.create_store("hsm", account=SECURITY_ACCOUNT)
    stack = settings(emu, **static(**{"aws:assumeRoles": [{"roleArn": SECURITY_ROLE}]}))
    kms = gateway(stack, stack.assume_roles)
    kms.connect(store_id)
    deadline = time.monotonic() + 10
    while (store := kms.describe(store_id)) is None or store.connection_state.value != "CONNECTED":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    outcomes = [call.outcome for call in emu.calls]
    assert "ExpiredTokenException" not in outcomes and set(outcomes) == {"ok"}
    # Every session lasted half a second: the wait of 1.5 s took several.
    assert [operation for operation, _ in calls(emu, "sts")].count("AssumeRole") >= 3


# -- a role that cannot be assumed ---------------------------------------------------------------------------------


def test_a_denied_role_fails_the_call_naming_the_role_and_the_missing_permission(emu: Emulator) -> None:
    stack = settings(emu, **static(**{"aws:assumeRoles": [{"roleArn": DENIED_ROLE}]}))
    with pytest.raises(KmsUnreachableError) as raised:
        gateway(stack, stack.assume_roles).describe("cks-1234567890abcdef0")
    message = str(raised.value)
    assert f"cannot assume role {DENIED_ROLE}: AccessDenied" in message
    assert f"missing permission sts:AssumeRole on {DENIED_ROLE}" in message
    assert [call.operation for call in emu.calls] == ["AssumeRole"]


def test_a_denied_first_role_of_a_chain_is_the_role_named(emu: Emulator) -> None:
    stack = settings(emu, **static(**{"aws:assumeRoles": [{"roleArn": DENIED_ROLE}, {"roleArn": SECURITY_ROLE}]}))
    with pytest.raises(RoleAssumptionError) as raised:
        credential_set(stack, stack.assume_roles, REGION).identity(emu.endpoint_url)
    assert raised.value.role_arn == DENIED_ROLE


# -- the account ----------------------------------------------------------------------------------------------------


def test_the_account_is_learned_once_per_credential_set(emu: Emulator) -> None:
    stack = settings(emu, **static())
    first, second = gateway(stack), gateway(stack)
    west_credentials = credential_set(stack, (), "us-west-2")
    west = KmsGateway(
        "us-west-2", functools.partial(make_client, stack, "us-west-2", west_credentials), west_credentials
    )
    assert {first.account_id("cks-1"), second.account_id("cks-1"), west.account_id("cks-1")} == {BASE_ACCOUNT}
    assert calls(emu, "sts") == [("GetCallerIdentity", BASE_ACCOUNT)]
    assert (first.place, west.place) == (f"{BASE_ACCOUNT}/{REGION}", f"{BASE_ACCOUNT}/us-west-2")


def test_credential_sets_are_cached_per_chain_and_region(emu: Emulator) -> None:
    stack = settings(emu, **static(**{"aws:assumeRoles": [{"roleArn": SECURITY_ROLE}]}))
    assert credential_set(stack, stack.assume_roles, REGION) is credential_set(stack, stack.assume_roles, REGION)
    assert credential_set(stack, stack.assume_roles, REGION) is not credential_set(stack, (), REGION)
    assert credential_set(stack, (), REGION) is not credential_set(stack, (), "eu-west-1")


def test_kms_at_a_local_endpoint_and_sts_at_aws_cannot_tell_the_account(emu: Emulator) -> None:
    stack = settings(emu, sts=False, **static())
    with pytest.raises(AccountUnknownError, match="STS cannot tell the account KMS acts in"):
        credential_set(stack, (), REGION).identity(emu.endpoint_url)
    assert emu.calls == []


def test_kms_at_a_local_endpoint_and_sts_at_aws_take_the_account_of_the_last_role(emu: Emulator) -> None:
    stack = settings(emu, sts=False, **static(**{"aws:assumeRoles": [{"roleArn": SECURITY_ROLE}]}))
    identity = credential_set(stack, stack.assume_roles, REGION).identity(emu.endpoint_url)
    assert identity is not None and identity.account == SECURITY_ACCOUNT
    assert emu.calls == []


def test_an_unknown_account_stops_nothing_when_no_account_is_guarded(emu: Emulator) -> None:
    kms = gateway(settings(emu, sts=False, **static()))
    store_id = emu.create_store("hsm", account=BASE_ACCOUNT, connection_state="CONNECTED")
    assert kms.account_id(store_id) is None
    kms.disconnect(store_id)
    assert calls(emu) == [("DisconnectCustomKeyStore", BASE_ACCOUNT)]
    assert (kms.place, kms.account_place) == (REGION, None)


# -- the guard -------------------------------------------------------------------------------------------------------


def test_an_account_outside_allowed_account_ids_gets_no_connect_or_disconnect(emu: Emulator) -> None:
    store_id = emu.create_store("hsm", account=BASE_ACCOUNT, connection_state="CONNECTED")
    kms = gateway(settings(emu, **static(**{"aws:allowedAccountIds": [SECURITY_ACCOUNT]})))
    for send in (kms.connect, kms.disconnect):
        with pytest.raises(AccountRefusedError) as raised:
            send(store_id)
        assert f"the stack's credentials act in account {BASE_ACCOUNT}, which is not in aws:allowedAccountIds" in str(
            raised.value
        )
    assert [call for call in emu.calls if call.operation in MUTATING] == []
    assert emu.state_of(store_id) == "CONNECTED"


def test_an_account_inside_forbidden_account_ids_gets_no_disconnect(emu: Emulator) -> None:
    store_id = emu.create_store("hsm", account=SECURITY_ACCOUNT, connection_state="CONNECTED")
    stack = settings(
        emu, **static(**{"aws:assumeRoles": [{"roleArn": SECURITY_ROLE}], "aws:forbiddenAccountIds": SECURITY_ACCOUNT})
    )
    with pytest.raises(AccountRefusedError) as raised:
        gateway(stack, stack.assume_roles).disconnect(store_id)
    assert f"of role {SECURITY_ROLE} act in account {SECURITY_ACCOUNT}, which is in aws:forbiddenAccountIds" in str(
        raised.value
    )
    assert [call for call in emu.calls if call.operation in MUTATING] == []


def test_an_allowed_account_is_connected(emu: Emulator) -> None:
    store_id = emu.create_store("hsm", account=BASE_ACCOUNT)
    gateway(settings(emu, **static(**{"aws:allowedAccountIds": [BASE_ACCOUNT]}))).connect(store_id)
    assert calls(emu) == [("GetCallerIdentity", BASE_ACCOUNT), ("ConnectCustomKeyStore", BASE_ACCOUNT)]


def test_a_guarded_stack_whose_account_cannot_be_learned_is_refused(emu: Emulator) -> None:
    store_id = emu.create_store("hsm")
    kms = gateway(settings(emu, sts=False, **static(**{"aws:allowedAccountIds": [BASE_ACCOUNT]})))
    with pytest.raises(AccountRefusedError, match="the account cannot be verified: KMS requests go to"):
        kms.connect(store_id)
    assert emu.calls == []


def test_the_account_is_learned_once_when_many_threads_ask_at_once(emu: Emulator) -> None:
    from concurrent.futures import ThreadPoolExecutor

    stack = settings(emu, **static())
    gateways = [gateway(stack) for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        accounts = list(pool.map(lambda kms: kms.account_id("cks-1"), gateways))
    assert accounts == [BASE_ACCOUNT] * 8
    assert calls(emu, "sts") == [("GetCallerIdentity", BASE_ACCOUNT)]
