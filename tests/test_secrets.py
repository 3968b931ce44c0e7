"""Secrets: AWS credentials never leave the provider process's credential chain.

Credentials with distinctive values are set in two places a real stack has them:

* the provider process's environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``),
  which is where boto3 takes them from;
* the stack config (``aws:accessKey``, ``aws:secretKey``, ``aws:token``, as pulumi-aws users set them), sent to
  ``Configure`` as secrets, the way the engine sends secure config to the dynamic provider;
* and the session credentials STS issues when the provider assumes roles (the stack's ``aws:assumeRoles`` chain
  and resources' own ``role_arn``), each distinctive: the emulator issues them from a canary source, short-lived so
  that botocore assumes the roles again during a wait.

Then full lifecycles run through the real provider server (``seam/engine.py``) with the registrations the real
stack program makes: preview, up, drift preview, refresh, update, destroy, and failures (a FAILED connect, a
missing store, a timeout, bad input, partial credentials). Every answer the provider server gives is recorded
(:class:`RecordingServer`) and searched, as JSON and after decoding every ``__provider`` (base64, then dill),
together with every stderr line the provider prints and the emulator's call log: no credential appears.

The same runs show which KMS operations the provider calls: only DescribeCustomKeyStores,
ConnectCustomKeyStore and DisconnectCustomKeyStore, the README's least-privilege IAM policy, and before a disconnect
its optional read-only ListKeys, DescribeKey and ListAliases.
``COUNTS`` feeds ``python -m tests.fault_report``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

import dill
import pytest
from google.protobuf import json_format

from kms_connection.emulator import Emulator
from kms_connection.provider import CustomKeyStoreConnectionProvider, CustomKeyStoreConnectionSetProvider
from seam.engine import (
    PROJECT_ROOT,
    PROVIDER_KEY,
    CheckFailuresError,
    ProviderError,
    ProviderServer,
    Registration,
    Stack,
    capture_registrations,
    dynamic_inputs,
    from_struct,
    unwrap_secrets,
)

pytestmark = pytest.mark.timeout(60)

REGION = "us-east-1"
CONNECTION_SET = "pulumi-python:dynamic/kms:CustomKeyStoreConnectionSet"
DESCRIBE, CONNECT, DISCONNECT = "DescribeCustomKeyStores", "ConnectCustomKeyStore", "DisconnectCustomKeyStore"
LEAST_PRIVILEGE = frozenset({DESCRIBE, CONNECT, DISCONNECT})
KEY_READS = frozenset({"ListKeys", "DescribeKey", "ListAliases"})
"""The README's optional read-only actions: what a disconnect breaks (``disconnect_guard``)."""

# Alphanumeric, so JSON escaping, URL quoting or any other text encoding leaves them as they are.
ENV_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAENVCANARY7Q2XW4Z",
    "AWS_SECRET_ACCESS_KEY": "EnvSecretCanary9f3KqLmN0pRsTuVwXyZ1a2b3c4d5",
    "AWS_SESSION_TOKEN": "EnvSessionTokenCanaryIQoJb3JpZ2luX2VjEJr0kKm7",
}
CONFIG_CREDENTIALS = {
    "aws:accessKey": "AKIACFGCANARY3M5N8P1",
    "aws:secretKey": "ConfigSecretCanary4hJ7kL0mN3pQ6rS9tU2vW5xY8z",
    "aws:token": "ConfigTokenCanaryFwoGZXIvYXdzEBYaDH7bC2dE4fG",
}
CANARIES = {**ENV_CREDENTIALS, **CONFIG_CREDENTIALS}

HSM = "cks-5ec7e75ec7e75ec7a"
XKS = "cks-5ec7e75ec7e75ec7b"
FAILING = "cks-5ec7e75ec7e75ec7c"
HANGING = "cks-5ec7e75ec7e75ec7d"
SET_MEMBERS = ["cks-5ec7e75ec7e75ec71", "cks-5ec7e75ec7e75ec72", "cks-5ec7e75ec7e75ec73"]
MISSING = "cks-5ec7e75ec7e75ec7e"

COUNTS: Counter[str] = Counter()
"""Figures for the report: values searched and credentials found in them."""
OTHERS: Counter[str] = Counter()
"""Calls this file made itself ("someone else" disconnecting a store), told apart from the provider's."""


# ---------------------------------------------------------------------------------------------------------
# Recording and searching
# ---------------------------------------------------------------------------------------------------------


class RecordingServer(ProviderServer):
    """The provider server, keeping every answer and every error message it gives the engine."""

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__(env=env, rpc_timeout=60)
        self.answers: list[tuple[str, Any]] = []
        self.errors: list[str] = []

    def _call(self, method: str, request: Any) -> Any:
        try:
            answer = super()._call(method, request)
        except ProviderError as error:
            self.errors.append(error.details)
            raise
        self.answers.append((method, answer))
        return answer


def provider_blobs(value: Any) -> list[bytes]:
    """Every ``__provider`` in a property tree, base64-decoded: the dill pickle the engine stores."""
    found: list[bytes] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key == PROVIDER_KEY:
                found.append(base64.b64decode(unwrap_secrets(item)))
            else:
                found += provider_blobs(item)
    elif isinstance(value, list):
        for item in value:
            found += provider_blobs(item)
    return found


def property_trees(answer: Any) -> list[dict[str, Any]]:
    """The property maps (inputs, outputs) in one gRPC answer, deserialised as the engine does."""
    trees = []
    for name in ("inputs", "properties"):
        if answer.DESCRIPTOR.fields_by_name.get(name) is not None and answer.HasField(name):
            trees.append(from_struct(getattr(answer, name)))
    return trees


class Search:
    """Texts and pickles to search for the credentials."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []
        self.blobs: list[tuple[str, bytes]] = []

    def text(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def tree(self, where: str, value: Any) -> None:
        self.text(where, json.dumps(unwrap_secrets(value), default=repr, ensure_ascii=False))
        for blob in provider_blobs(value):
            self.pickle(f"{where}: __provider", blob)

    def pickle(self, where: str, blob: bytes) -> None:
        """The raw pickle, and the object it makes (its attributes, and the pickle it makes in turn)."""
        self.blobs.append((where, blob))
        provider = dill.loads(blob)
        self.text(f"{where} (unpickled)", repr(vars(provider)))
        self.blobs.append((f"{where} (re-pickled)", dill.dumps(provider)))

    def server(self, name: str, server: RecordingServer) -> None:
        """Every answer, every error message and every stderr and stdout line of one provider process."""
        for index, (method, answer) in enumerate(server.answers):
            where = f"{name} {method} answer #{index}"
            self.text(where, json_format.MessageToJson(answer))
            for tree in property_trees(answer):
                self.tree(where, tree)
        for index, details in enumerate(server.errors):
            self.text(f"{name} error #{index}", details)
        for index, line in enumerate(server.stderr_lines() + server.stdout_lines()):
            self.text(f"{name} output line #{index}", line)

    def emulator(self, emu: Emulator) -> None:
        for index, call in enumerate(emu.calls):
            self.text(f"emulator call log #{index}", json.dumps(call.as_json()))

    def leaks(self, extra: Mapping[str, str] | None = None) -> list[str]:
        """Where each credential (and each of ``extra``) was found; counted for the report."""
        canaries = {**CANARIES, **(extra or {})}
        found = [
            f"{name} in {where}"
            for where, text in self.texts
            for name, canary in canaries.items()
            if canary in text or base64.b64encode(canary.encode()).decode() in text
        ]
        found += [
            f"{name} in {where}"
            for where, blob in self.blobs
            for name, canary in canaries.items()
            if canary.encode() in blob
        ]
        COUNTS["values searched"] += len(self.texts) + len(self.blobs)
        COUNTS["secrets found"] += len(found)
        return found


# ---------------------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """One emulator for the whole file: its call log, over every case, shows which operations were called."""
    with Emulator(connect_seconds=0.2, disconnect_seconds=0.1) as emulator:
        emulator.create_store("hsm", store_id=HSM)
        emulator.create_store("xks", store_type="EXTERNAL_KEY_STORE", store_id=XKS)
        emulator.create_store("failing", store_id=FAILING)
        emulator.set_connect_outcome(FAILING, "fail", "INVALID_CREDENTIALS")
        emulator.create_store("hanging", store_id=HANGING)
        emulator.set_connect_outcome(HANGING, "hang")
        for index, store_id in enumerate(SET_MEMBERS):
            emulator.create_store(f"member-{index}", store_id=store_id)
        yield emulator


def stack_config(emu: Emulator, *entries: dict[str, Any], credentials: bool = True) -> dict[str, Any]:
    """The stack config, with the credentials in it (``aws:accessKey``...) unless ``credentials`` is false."""
    return {
        "aws:region": REGION,
        "aws:endpoints": [{"kms": emu.endpoint_url}],
        **(CONFIG_CREDENTIALS if credentials else {}),
        "kms-connection:keyStores": list(entries),
    }


ENTRIES: list[dict[str, Any]] = [
    {"id": HSM, "name": "hsm", "connectTimeoutSeconds": 20, "disconnectTimeoutSeconds": 20},
    {"id": XKS, "name": "xks", "desiredState": "connected", "onDelete": "retain", "connectTimeoutSeconds": 20},
    {"id": FAILING, "name": "failing", "connectTimeoutSeconds": 20},
    {"id": HANGING, "name": "hanging", "connectTimeoutSeconds": 1},
    # A store never seen is looked for until the timeout (at most 10 s) before NotFound is believed.
    {"id": MISSING, "name": "missing", "connectTimeoutSeconds": 2},
]


@pytest.fixture(scope="module")
def programs(emu: Emulator) -> dict[str, dict[str, Registration]]:
    """The registrations of the real stack program (``__main__.py``), with the credentials in its config too:
    as it is, and with the HSM store's desired state changed to DISCONNECTED."""
    disconnected = [{**ENTRIES[0], "desiredState": "DISCONNECTED"}, *ENTRIES[1:]]
    captured = {}
    for label, entries in (("base", ENTRIES), ("disconnected", disconnected)):
        registrations = capture_registrations(
            PROJECT_ROOT / "__main__.py",
            stack_config(emu, *entries),
            secret_keys=CONFIG_CREDENTIALS,
            env=ENV_CREDENTIALS,
        )
        captured[label] = {registration.name: registration for registration in registrations}
    return captured


def server_env(emu: Emulator, **overrides: str) -> dict[str, str]:
    return {
        **ENV_CREDENTIALS,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_ENDPOINT_URL_KMS": emu.endpoint_url,
        **overrides,
    }


@pytest.fixture
def server(emu: Emulator) -> Iterator[RecordingServer]:
    """A provider process with the credentials in its environment, configured with them in the stack config."""
    recording = RecordingServer(server_env(emu))
    recording.start()
    recording.configure(stack_config(emu, *ENTRIES), secret_keys=CONFIG_CREDENTIALS)
    yield recording
    recording.close()


def disconnect_out_of_band(emu: Emulator, store_id: str) -> None:
    emu.client().disconnect_custom_key_store(CustomKeyStoreId=store_id)
    OTHERS[DISCONNECT] += 1


def wait_for(emu: Emulator, store_id: str, state: str) -> None:
    deadline = time.monotonic() + 10
    while emu.state_of(store_id) != state:
        assert time.monotonic() < deadline, f"{store_id} never reached {state}"
        time.sleep(0.02)


def assert_nothing_leaked(search: Search, extra: Mapping[str, str] | None = None) -> None:
    leaks = search.leaks(extra)
    assert leaks == [], "credentials leaked:\n" + "\n".join(leaks)


# ---------------------------------------------------------------------------------------------------------
# Lifecycles
# ---------------------------------------------------------------------------------------------------------


def test_the_program_registers_no_credential(programs: dict[str, dict[str, Registration]]) -> None:
    """The real stack program, run with credentials in its environment and config, registers no credential (inputs and
    the pickled __provider).
    """
    search = Search()
    for label, registrations in programs.items():
        for name, registration in registrations.items():
            search.tree(f"{label} program: {name} inputs", registration.inputs)
    assert len(search.blobs) >= 2 * len(ENTRIES)
    assert_nothing_leaked(search)


def test_a_connection_lifecycle_leaks_no_credential(
    emu: Emulator, server: RecordingServer, programs: dict[str, dict[str, Registration]]
) -> None:
    """Preview, up, drift preview, refresh, repair, update and destroy of per-store connections: no credential in any
    answer, __provider, checkpoint, stderr line or call-log entry.
    """
    base, disconnected = programs["base"], programs["disconnected"]
    stack = Stack(server)
    search = Search()

    assert stack.preview(base["hsm"]).op == "create"
    stack.up(base["hsm"])
    stack.up(base["xks"])
    assert emu.state_of(HSM) == "CONNECTED"
    disconnect_out_of_band(emu, HSM)  # drift
    wait_for(emu, HSM, "DISCONNECTED")
    assert stack.preview(base["hsm"]).op == "update"
    server.wait_for_stderr(f"{HSM}: observed DISCONNECTED, desired CONNECTED: will connect")
    refreshed = stack.refresh(base["hsm"].urn)
    assert refreshed.new is not None and refreshed.new.outputs["connection_state"] == "DISCONNECTED"
    stack.up(base["hsm"])  # repairs the drift
    stack.up(disconnected["hsm"])  # update: desired DISCONNECTED
    assert emu.state_of(HSM) == "DISCONNECTED"
    for state in list(stack.resources.values()):
        search.tree(f"checkpoint {state.urn}", {"inputs": state.inputs, "outputs": state.outputs})
    stack.destroy_all()
    assert stack.resources == {}

    search.server("provider", server)
    search.emulator(emu)
    assert len(server.answers) >= 12 and server.stderr_lines()  # the search had something to search
    assert_nothing_leaked(search)


def test_a_set_lifecycle_leaks_no_credential(emu: Emulator, server: RecordingServer) -> None:
    """The same for a CustomKeyStoreConnectionSet, including a store leaving the set."""
    provider = CustomKeyStoreConnectionSetProvider()
    props = {"custom_key_store_ids": SET_MEMBERS, "connect_timeout_seconds": 20, "disconnect_timeout_seconds": 20}
    registration = Registration(CONNECTION_SET, "members", dynamic_inputs(provider, props))
    stack = Stack(server)
    search = Search()

    stack.preview(registration)
    stack.up(registration)
    disconnect_out_of_band(emu, SET_MEMBERS[0])
    wait_for(emu, SET_MEMBERS[0], "DISCONNECTED")
    assert stack.preview(registration).op == "update"
    stack.refresh(registration.urn)
    stack.up(registration)
    smaller = Registration(
        CONNECTION_SET, "members", dynamic_inputs(provider, {**props, "custom_key_store_ids": SET_MEMBERS[:2]})
    )
    stack.up(smaller)  # the third store leaves the set: disconnected
    state = stack.state(registration.urn)
    search.tree("checkpoint", {"inputs": state.inputs, "outputs": state.outputs})
    stack.destroy(registration.urn)
    assert [emu.state_of(store_id) for store_id in SET_MEMBERS] == ["DISCONNECTED"] * 3

    search.server("provider", server)
    search.emulator(emu)
    assert_nothing_leaked(search)


def test_failures_leak_no_credential(
    emu: Emulator, server: RecordingServer, programs: dict[str, dict[str, Registration]]
) -> None:
    """A FAILED connect, a timeout, a missing store and a bad input: the error messages carry no credential."""
    base = programs["base"]
    stack = Stack(server)
    search = Search()

    messages = []
    for name in ("failing", "hanging", "missing"):
        with pytest.raises(ProviderError) as raised:
            stack.up(base[name])
        messages.append(raised.value.details)
    # The stack program refuses a bad id in its config itself; a program of the user's own sends it as it is.
    typo_inputs = {**base["hsm"].inputs, "custom_key_store_id": "my-key-store"}
    typo = dataclasses.replace(base["hsm"], name="typo", inputs=typo_inputs)
    with pytest.raises(CheckFailuresError) as bad_input:
        stack.up(typo)
    search.text("check failures", str(bad_input.value))

    assert "ConnectionErrorCode INVALID_CREDENTIALS" in messages[0]
    assert "still CONNECTING after waiting 1 s" in messages[1]
    assert "not found (CustomKeyStoreNotFoundException)" in messages[2]
    assert len(server.errors) == 3
    search.server("provider", server)
    search.emulator(emu)
    assert_nothing_leaked(search)


# Regression: boto3 reads credentials when it makes a client; with half-set credentials that once escaped as a
# bare botocore traceback instead of a message naming the store and the fix.
def test_partial_credentials_get_a_message_naming_the_store_and_the_fix_and_leak_nothing(emu: Emulator) -> None:
    """Partial credentials (a key id without its secret) get a message naming the store and the fix, and leak
    nothing."""
    partial = RecordingServer(server_env(emu, AWS_SECRET_ACCESS_KEY=""))
    partial.start()
    try:
        # The environment's credentials are the ones in use only when the stack config sets none.
        partial.configure(stack_config(emu, *ENTRIES, credentials=False))
        registration = Registration(
            "pulumi-python:dynamic/kms:CustomKeyStoreConnection",
            "partial",
            dynamic_inputs(CustomKeyStoreConnectionProvider(), {"custom_key_store_id": HSM}),
        )
        with pytest.raises(ProviderError) as raised:
            Stack(partial).up(registration)
        search = Search()
        search.server("provider with partial credentials", partial)
        assert_nothing_leaked(search)
    finally:
        partial.close()

    message = re.search(r"^kms_connection\.errors\.\w+: (.*)\Z", raised.value.details, re.M | re.S)
    assert message is not None, f"not a provider error message:\n{raised.value.details.splitlines()[-1]}"
    assert f"custom key store {HSM} in {REGION}" in message.group(1)
    assert "AWS_SECRET_ACCESS_KEY" in message.group(1) and "To fix:" in message.group(1)


def test_the_provider_called_only_the_least_privilege_operations_and_the_optional_key_reads(emu: Emulator) -> None:
    """Over the whole file the provider called DescribeCustomKeyStores, ConnectCustomKeyStore and
    DisconnectCustomKeyStore, and (to say what a disconnect breaks) the read-only key calls, and nothing else.
    """
    made = Counter(call.operation for call in emu.calls)
    if not made:
        pytest.skip("run with the rest of tests/test_secrets.py: it checks the calls the other cases made")
    provider_made = made - OTHERS
    assert set(provider_made) - KEY_READS == LEAST_PRIVILEGE, provider_made
    assert set(provider_made) <= LEAST_PRIVILEGE | KEY_READS, provider_made
    COUNTS["KMS calls checked against the IAM policy"] += sum(provider_made.values())


# ---------------------------------------------------------------------------------------------------------
# Roles: the stack's chain, resources' own roles, refreshed sessions, refusals
# ---------------------------------------------------------------------------------------------------------

BASE_ACCOUNT = "111122223333"
HOP_ROLE = "arn:aws:iam::333344445555:role/hop"
SECURITY_ACCOUNT = "222233334444"
SECURITY_ROLE = f"arn:aws:iam::{SECURITY_ACCOUNT}:role/kms-admin"
APP_ACCOUNT = "666677778888"
APP_ROLE = f"arn:aws:iam::{APP_ACCOUNT}:role/kms-admin"
DENIED_ROLE = "arn:aws:iam::999900001111:role/not-trusted"
ROLE_HSM = "cks-5ec7e75ec7e75ec81"
ROLE_XKS = "cks-5ec7e75ec7e75ec82"
ROLE_MEMBERS = ["cks-5ec7e75ec7e75ec83", "cks-5ec7e75ec7e75ec84"]
STS_ACTIONS = frozenset({"AssumeRole", "GetCallerIdentity"})


class SessionCanaries:
    """Session credentials for the emulator to issue, each distinctive, remembered to be looked for."""

    def __init__(self) -> None:
        self.issued: dict[str, str] = {}

    def __call__(self) -> tuple[str, str, str]:
        n = len(self.issued) // 3
        key, secret, token = (
            f"ASIASESSIONCANARY{n:03d}",
            f"SessionSecretCanary{n:04d}Q7rT2vX9zB4nM6kP1wL3",
            f"SessionTokenCanary{n:04d}FwoGZXIvYXdzEJr0kKm7dH8sLq2",
        )
        self.issued.update({f"session {n} key": key, f"session {n} secret": secret, f"session {n} token": token})
        return key, secret, token


@pytest.fixture
def sessions() -> SessionCanaries:
    return SessionCanaries()


@pytest.fixture
def roles_emu(sessions: SessionCanaries) -> Iterator[Emulator]:
    """An emulator where the stack's configured access key acts in BASE_ACCOUNT, sessions last one second (so they
    are assumed again while the provider waits) and come from ``sessions``."""
    with Emulator(
        connect_seconds=1.5,
        disconnect_seconds=0.2,
        accounts={CONFIG_CREDENTIALS["aws:accessKey"]: BASE_ACCOUNT},
        denied_roles=[DENIED_ROLE],
        role_external_ids={APP_ROLE: "tenant-42"},
        session_seconds=1.0,
        session_credentials=sessions,
    ) as emulator:
        emulator.create_store("hsm", store_id=ROLE_HSM, account=SECURITY_ACCOUNT)
        emulator.create_store("xks", store_type="EXTERNAL_KEY_STORE", store_id=ROLE_XKS, account=APP_ACCOUNT)
        for index, store_id in enumerate(ROLE_MEMBERS):
            emulator.create_store(f"member-{index}", store_id=store_id, account=APP_ACCOUNT)
        yield emulator


def roles_config(emu: Emulator, **aws: Any) -> dict[str, Any]:
    """The credentials in the stack config, a role chain to SECURITY_ACCOUNT, and the emulator as KMS and STS."""
    return {
        "aws:region": REGION,
        "aws:endpoints": [{"kms": emu.endpoint_url}, {"sts": emu.endpoint_url}],
        **CONFIG_CREDENTIALS,
        "aws:assumeRoles": [{"roleArn": HOP_ROLE}, {"roleArn": SECURITY_ROLE, "sessionName": "pipeline"}],
        **{f"aws:{key}": value for key, value in aws.items()},
    }


def roles_server(emu: Emulator, **aws: Any) -> RecordingServer:
    server = RecordingServer(server_env(emu))
    server.start()
    server.configure(roles_config(emu, **aws), secret_keys=CONFIG_CREDENTIALS)
    return server


def role_connection(name: str, store_id: str, **props: Any) -> Registration:
    inputs = {"custom_key_store_id": store_id, "resource_name": name, "connect_timeout_seconds": 20, **props}
    return Registration(
        "pulumi-python:dynamic/kms:CustomKeyStoreConnection",
        name,
        dynamic_inputs(CustomKeyStoreConnectionProvider(), inputs),
    )


def test_role_chains_resource_roles_and_refreshed_sessions_leak_no_credential(
    roles_emu: Emulator, sessions: SessionCanaries
) -> None:
    """The stack's role chain, a resource's own role with an external id, a set with a role, sessions assumed
    again during each wait, a denied role and a refused account: no base, configured or session credential in
    any answer, __provider, checkpoint, error, stderr line or call-log entry; and STS got only AssumeRole and
    GetCallerIdentity."""
    search = Search()
    server = roles_server(roles_emu)
    try:
        stack = Stack(server)
        by_chain = role_connection("hsm", ROLE_HSM)
        by_role = role_connection("xks", ROLE_XKS, role_arn=APP_ROLE, role_external_id="tenant-42")
        members = {"custom_key_store_ids": ROLE_MEMBERS, "resource_name": "members", "role_arn": APP_ROLE}
        members["role_external_id"] = "tenant-42"
        fleet = Registration(CONNECTION_SET, "members", dynamic_inputs(CustomKeyStoreConnectionSetProvider(), members))
        for registration in (by_chain, by_role, fleet):
            stack.preview(registration)
            stack.up(registration)
        stack.refresh(by_role.urn)
        stack.up(role_connection("xks", ROLE_XKS, role_arn=APP_ROLE, role_external_id="tenant-42", on_delete="retain"))
        with pytest.raises(ProviderError):
            stack.up(role_connection("denied", "cks-5ec7e75ec7e75ec85", role_arn=DENIED_ROLE))
        for state in list(stack.resources.values()):
            search.tree(f"checkpoint {state.urn}", {"inputs": state.inputs, "outputs": state.outputs})
        stack.destroy_all()
        search.server("provider with roles", server)
    finally:
        server.close()
    refusing = roles_server(roles_emu, allowedAccountIds=[APP_ACCOUNT])
    try:
        with pytest.raises(ProviderError):
            Stack(refusing).up(role_connection("hsm", ROLE_HSM))  # disconnected by the destroy: Connect refused
        search.server("provider refusing the account", refusing)
    finally:
        refusing.close()
    search.emulator(roles_emu)

    # The search had something to search: sessions were issued, and assumed again during the waits.
    assert len(sessions.issued) >= 3 * 6
    assert [roles_emu.state_of(store_id) for store_id in (ROLE_HSM, ROLE_XKS, *ROLE_MEMBERS)] == [
        "DISCONNECTED",
        "CONNECTED",  # on_delete retain
        "DISCONNECTED",
        "DISCONNECTED",
    ]
    assert_nothing_leaked(search, sessions.issued)
    assert {call.operation for call in roles_emu.calls if call.service == "sts"} <= STS_ACTIONS
    assert {call.operation for call in roles_emu.calls if call.service == "kms"} <= LEAST_PRIVILEGE | KEY_READS
