"""Accounts through the real provider server (``python -u -m pulumi.dynamic``, driven as the engine drives it):
stores in several accounts in one stack, the stack's role chain and a resource's own role, the account guard,
a role STS refuses, a session that expires during a long wait, and what a changed role replaces.

The emulator serves KMS and STS on one endpoint, which the stack config names for both (``aws:endpoints``), as
a user of the emulator configures it; its call log records the account of every request, which is the proof of
where each store was changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from kms_connection.emulator import Emulator
from kms_connection.provider import CustomKeyStoreConnectionProvider, CustomKeyStoreConnectionSetProvider
from seam.engine import ProviderError, ProviderServer, Registration, Stack, dynamic_inputs
from tests.lifecycle_fixtures import AMBIENT_AWS_VARIABLES, exception_line

pytestmark = pytest.mark.timeout(120)

REGION = "us-east-1"
CONNECTION = "pulumi-python:dynamic/kms:CustomKeyStoreConnection"
CONNECTION_SET = "pulumi-python:dynamic/kms:CustomKeyStoreConnectionSet"
MUTATING = frozenset({"ConnectCustomKeyStore", "DisconnectCustomKeyStore"})

BASE_KEY = "AKIAACCOUNTSBASEKEY1"
BASE_ACCOUNT = "111122223333"
HOP = "arn:aws:iam::333344445555:role/pipeline-hop"
SECURITY_ACCOUNT = "222233334444"
SECURITY = f"arn:aws:iam::{SECURITY_ACCOUNT}:role/kms-admin"
APP_ACCOUNT = "666677778888"
APP = f"arn:aws:iam::{APP_ACCOUNT}:role/kms-admin"
APP_OTHER_ROLE = f"arn:aws:iam::{APP_ACCOUNT}:role/kms-operator"
DENIED = "arn:aws:iam::999900001111:role/not-trusted"

STACK_CHAIN = [{"roleArn": HOP, "sessionName": "pipeline"}, {"roleArn": SECURITY, "sessionName": "pipeline"}]


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator(
        connect_seconds=0.3, disconnect_seconds=0.2, accounts={BASE_KEY: BASE_ACCOUNT}, denied_roles=[DENIED]
    )


def stack_config(emu: Emulator, **aws: Any) -> dict[str, Any]:
    """The stack config: the emulator as the KMS and STS endpoints, and ``aws:<key>`` entries as given."""
    return {
        "aws:region": REGION,
        "aws:endpoints": [{"kms": emu.endpoint_url}, {"sts": emu.endpoint_url}],
        **{f"aws:{key}": value for key, value in aws.items()},
    }


ServerFactory = Callable[..., ProviderServer]


@pytest.fixture
def servers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ServerFactory]:
    """``servers(config)``: a provider process whose environment holds the base credentials (of BASE_ACCOUNT),
    configured with ``config`` as the engine sends it; every one is stopped after the test."""
    for name in AMBIENT_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    started: list[ProviderServer] = []

    def start(config: Mapping[str, Any]) -> ProviderServer:
        server = ProviderServer(
            env={
                "AWS_ACCESS_KEY_ID": BASE_KEY,
                "AWS_SECRET_ACCESS_KEY": "accounts-test-secret",
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull,
                "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            }
        )
        started.append(server)
        server.start()
        server.configure(config)
        return server

    yield start
    for server in started:
        server.close()


def connection(name: str, store_id: str, **props: Any) -> Registration:
    """A ``CustomKeyStoreConnection`` as the resource class registers it."""
    inputs = {"custom_key_store_id": store_id, "resource_name": name, "connect_timeout_seconds": 30, **props}
    return Registration(CONNECTION, name, dynamic_inputs(CustomKeyStoreConnectionProvider(), inputs))


def kms_calls(emu: Emulator) -> list[tuple[str, str | None, str | None]]:
    """(operation, store, account) of every KMS request."""
    return [(call.operation, call.store_id, call.account) for call in emu.calls if call.service == "kms"]


def mutating(emu: Emulator) -> list[tuple[str, str | None, str | None]]:
    return [call for call in kms_calls(emu) if call[0] in MUTATING]


# -- stores in several accounts ------------------------------------------------------------------------------------


def test_a_stack_converges_stores_in_two_accounts_each_in_its_own(emu: Emulator, servers: ServerFactory) -> None:
    in_security = emu.create_store("security-hsm", account=SECURITY_ACCOUNT)
    in_app = emu.create_store("app-hsm", account=APP_ACCOUNT)
    stack = Stack(servers(stack_config(emu, assumeRoles=STACK_CHAIN)))

    by_chain = stack.up(connection("security", in_security))
    by_role = stack.up(connection("app", in_app, role_arn=APP, role_session_name="app-deploy"))

    assert (emu.state_of(in_security), emu.state_of(in_app)) == ("CONNECTED", "CONNECTED")
    assert mutating(emu) == [
        ("ConnectCustomKeyStore", in_security, SECURITY_ACCOUNT),
        ("ConnectCustomKeyStore", in_app, APP_ACCOUNT),
    ]
    # Every KMS request for a store, reads included, went to the store's own account.
    assert {(store, account) for _, store, account in kms_calls(emu)} == {
        (in_security, SECURITY_ACCOUNT),
        (in_app, APP_ACCOUNT),
    }
    assert by_chain.new is not None and by_chain.new.outputs["account_id"] == SECURITY_ACCOUNT
    assert by_role.new is not None and by_role.new.outputs["account_id"] == APP_ACCOUNT


def test_a_resource_role_is_assumed_from_the_stack_chain(emu: Emulator, servers: ServerFactory) -> None:
    in_app = emu.create_store("app-hsm", account=APP_ACCOUNT)
    stack = Stack(servers(stack_config(emu, assumeRoles=STACK_CHAIN)))
    stack.up(connection("app", in_app, role_arn=APP))
    # Each role from the previous one's session: the base key, then the hop's, then the security role's.
    assumed = [call.account for call in emu.calls if call.operation == "AssumeRole"]
    assert assumed[:3] == [BASE_ACCOUNT, "333344445555", SECURITY_ACCOUNT]


def test_a_set_with_a_role_converges_its_stores_in_the_roles_account(emu: Emulator, servers: ServerFactory) -> None:
    stores = [emu.create_store(f"app-{index}", account=APP_ACCOUNT) for index in range(2)]
    stack = Stack(servers(stack_config(emu)))
    inputs = {"custom_key_store_ids": stores, "resource_name": "fleet", "role_arn": APP}
    result = stack.up(
        Registration(CONNECTION_SET, "fleet", dynamic_inputs(CustomKeyStoreConnectionSetProvider(), inputs))
    )
    assert result.new is not None and result.new.outputs["account_id"] == APP_ACCOUNT
    assert sorted(mutating(emu)) == sorted(("ConnectCustomKeyStore", store, APP_ACCOUNT) for store in stores)


def test_plan_and_progress_lines_name_the_account_and_region(emu: Emulator, servers: ServerFactory) -> None:
    in_app = emu.create_store("app-hsm", account=APP_ACCOUNT)
    server = servers(stack_config(emu))
    stack = Stack(server)
    registration = connection("app", in_app, role_arn=APP)
    stack.up(registration)
    stack.up(connection("app", in_app, role_arn=APP, desired_state="DISCONNECTED"))
    assert stack.preview(registration).op == "update"
    server.wait_for_stderr(f"{in_app} ({APP_ACCOUNT}/{REGION}): observed DISCONNECTED, desired CONNECTED: will connect")
    server.wait_for_stderr(f"{in_app} ({APP_ACCOUNT}/{REGION}): CONNECTED, desired DISCONNECTED: disconnecting")


# -- the account guard ------------------------------------------------------------------------------------------


def test_an_account_outside_allowed_account_ids_is_refused_with_no_mutating_call(
    emu: Emulator, servers: ServerFactory
) -> None:
    in_security = emu.create_store("security-hsm", account=SECURITY_ACCOUNT)
    server = servers(stack_config(emu, assumeRoles=STACK_CHAIN, allowedAccountIds=[APP_ACCOUNT]))
    with pytest.raises(ProviderError) as refused:
        Stack(server).up(connection("security", in_security))
    message = exception_line(refused.value.details)
    assert message.startswith("kms_connection.errors.AccountRefusedError: ")
    assert f"act in account {SECURITY_ACCOUNT}, which is not in aws:allowedAccountIds ({APP_ACCOUNT})" in message
    assert mutating(emu) == []
    assert emu.state_of(in_security) == "DISCONNECTED"


def test_a_preview_warns_that_up_will_refuse_an_account_inside_forbidden_account_ids(
    emu: Emulator, servers: ServerFactory
) -> None:
    in_security = emu.create_store("security-hsm", account=SECURITY_ACCOUNT, connection_state="CONNECTED")
    allowed = servers(stack_config(emu, assumeRoles=STACK_CHAIN))
    stack = Stack(allowed)
    stack.up(connection("security", in_security))
    guarded = servers(stack_config(emu, assumeRoles=STACK_CHAIN, forbiddenAccountIds=[SECURITY_ACCOUNT]))
    stack.server = guarded
    assert stack.preview(connection("security", in_security, desired_state="DISCONNECTED")).op == "update"
    guarded.wait_for_stderr(
        f"warning: {in_security} ({SECURITY_ACCOUNT}/{REGION}): `pulumi up` will send no request that changes it: "
        f"the credentials of role {SECURITY} act in account {SECURITY_ACCOUNT}, which is in aws:forbiddenAccountIds"
    )
    assert mutating(emu) == []


def test_a_refused_account_gets_no_disconnect_on_destroy(emu: Emulator, servers: ServerFactory) -> None:
    in_security = emu.create_store("security-hsm", account=SECURITY_ACCOUNT)
    stack = Stack(servers(stack_config(emu, assumeRoles=STACK_CHAIN)))
    registration = connection("security", in_security)
    stack.up(registration)
    stack.server = servers(stack_config(emu, assumeRoles=STACK_CHAIN, allowedAccountIds=[BASE_ACCOUNT]))
    with pytest.raises(ProviderError, match="AccountRefusedError"):
        stack.destroy(registration.urn)
    assert mutating(emu) == [("ConnectCustomKeyStore", in_security, SECURITY_ACCOUNT)]
    assert emu.state_of(in_security) == "CONNECTED"


# -- a role STS refuses ---------------------------------------------------------------------------------------------


def test_a_denied_role_fails_naming_the_role_and_the_missing_permission(emu: Emulator, servers: ServerFactory) -> None:
    store_id = emu.create_store("hsm", account="999900001111")
    with pytest.raises(ProviderError) as failed:
        Stack(servers(stack_config(emu))).up(connection("denied", store_id, role_arn=DENIED))
    message = exception_line(failed.value.details)
    assert f"cannot assume role {DENIED}: AccessDenied" in message
    assert f"the caller is missing permission sts:AssumeRole on {DENIED}" in message
    assert kms_calls(emu) == []


def test_a_denied_role_of_the_stack_chain_fails_the_preview_naming_it(emu: Emulator, servers: ServerFactory) -> None:
    store_id = emu.create_store("hsm", account=BASE_ACCOUNT, connection_state="CONNECTED")
    stack = Stack(servers(stack_config(emu)))
    stack.up(connection("hsm", store_id))
    stack.server = servers(stack_config(emu, assumeRoles=[{"roleArn": DENIED}]))
    with pytest.raises(ProviderError) as failed:
        stack.preview(connection("hsm", store_id))
    assert f"missing permission sts:AssumeRole on {DENIED}" in exception_line(failed.value.details)


# -- sessions -------------------------------------------------------------------------------------------------------


def test_a_session_that_expires_during_a_long_wait_is_refreshed(emu: Emulator, servers: ServerFactory) -> None:
    emu.session_seconds = 1.0
    emu.connect_seconds = 4.0
    store_id = emu.create_store("hsm", account=APP_ACCOUNT)
    result = Stack(servers(stack_config(emu))).up(connection("app", store_id, role_arn=APP))
    assert result.new is not None and result.new.outputs["connection_state"] == "CONNECTED"
    outcomes = {call.outcome for call in emu.calls}
    assert outcomes == {"ok"}, outcomes  # no ExpiredTokenException, ever
    # The wait outlived several one-second sessions, each assumed again before it expired.
    assert sum(call.operation == "AssumeRole" for call in emu.calls) >= 3


# -- a changed role -----------------------------------------------------------------------------------------------


def test_a_role_of_the_same_account_updates_the_resource_in_place(emu: Emulator, servers: ServerFactory) -> None:
    store_id = emu.create_store("hsm", account=APP_ACCOUNT)
    stack = Stack(servers(stack_config(emu)))
    stack.up(connection("app", store_id, role_arn=APP))
    changed = stack.up(connection("app", store_id, role_arn=APP_OTHER_ROLE))
    assert changed.op == "update"
    assert changed.new is not None and changed.new.outputs["role_arn"] == APP_OTHER_ROLE


def test_a_role_of_another_account_replaces_the_resource(emu: Emulator, servers: ServerFactory) -> None:
    store_id = emu.create_store("hsm", account=APP_ACCOUNT)
    stack = Stack(servers(stack_config(emu, assumeRoles=STACK_CHAIN)))
    stack.up(connection("app", store_id, role_arn=APP))
    assert stack.preview(connection("app", store_id)).op == "replace"  # back to the stack chain's account


def test_refresh_keeps_the_account_and_the_role(emu: Emulator, servers: ServerFactory) -> None:
    store_id = emu.create_store("hsm", account=APP_ACCOUNT)
    stack = Stack(servers(stack_config(emu)))
    registration = connection("app", store_id, role_arn=APP, role_external_id="tenant-42")
    emu.require_external_id(APP, "tenant-42")
    stack.up(registration)
    refreshed = stack.refresh(registration.urn)
    assert refreshed.new is not None
    outputs = refreshed.new.outputs
    assert (outputs["account_id"], outputs["role_arn"], outputs["role_external_id"]) == (APP_ACCOUNT, APP, "tenant-42")


def test_the_older_single_assume_role_and_a_single_allowed_account_id_are_read(
    emu: Emulator, servers: ServerFactory
) -> None:
    store_id = emu.create_store("hsm", account=SECURITY_ACCOUNT)
    config = stack_config(emu, assumeRole=json.dumps({"roleArn": SECURITY}), allowedAccountIds=SECURITY_ACCOUNT)
    result = Stack(servers(config)).up(connection("security", store_id))
    assert result.new is not None and result.new.outputs["account_id"] == SECURITY_ACCOUNT


# -- a failure after a connect -------------------------------------------------------------------------------------


def test_a_store_left_connecting_in_a_roles_account_is_disconnected_as_that_role(
    emu: Emulator, servers: ServerFactory
) -> None:
    in_app = emu.create_store("app-hsm", account=APP_ACCOUNT)
    emu.set_connect_outcome(in_app, "hang")
    stack = Stack(servers(stack_config(emu)))

    with pytest.raises(ProviderError) as failed:
        stack.up(connection("app", in_app, role_arn=APP, connect_timeout_seconds=1))

    message = failed.value.details
    assert f"aws kms disconnect-custom-key-store --custom-key-store-id {in_app} --region {REGION}" in message
    assert f"as role {APP}, as the provider reached it" in message
    assert f"aws sts assume-role --role-arn {APP} --role-session-name kms-connection" in message
