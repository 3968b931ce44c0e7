"""The fault matrix: the provider through the real provider server (``seam/engine.py``) against the emulator.

Each case injects one fault (throttling, 5xx bursts, dropped connections, eventual-consistency lag, a connect
that ends FAILED with each ConnectionErrorCode, a connect that hangs, a store deleted or flipped by someone
else, the provider process killed mid-wait) and asserts four things:

* KMS's final state (``emu.state_of``), the truth;
* the outputs in the driver's checkpoint: they never claim a state KMS does not have, a failed create records
  nothing, a failed delete keeps the resource;
* the message the user sees (the ``ProviderError`` details the engine would print);
* the call log: the mutating calls the provider made, so a redundant Connect or Disconnect shows.

No case needs a human to edit the state to recover: every failure is followed by the run that converges.
Calls made by "someone else" go through :class:`Others`, which counts them so they can be told apart from
the provider's own. ``COUNTS`` feeds ``python -m tests.fault_report``.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import botocore.session
import pytest

from kms_connection.emulator import Emulator
from kms_connection.emulator.calls import Call
from kms_connection.emulator.clock import FakeClock
from kms_connection.emulator.emulator import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY
from kms_connection.emulator.faults import FailMode
from kms_connection.emulator.store import settled
from kms_connection.provider import CustomKeyStoreConnectionProvider, CustomKeyStoreConnectionSetProvider
from kms_connection.states import ConnectionState, remedy
from seam.engine import ProviderError, ProviderServer, Registration, Stack, dynamic_inputs, unwrap_secrets

pytestmark = pytest.mark.timeout(60)

REGION = "us-east-1"
CONNECTION = "pulumi-python:dynamic/kms:CustomKeyStoreConnection"
CONNECTION_SET = "pulumi-python:dynamic/kms:CustomKeyStoreConnectionSet"
DESCRIBE, CONNECT, DISCONNECT, DELETE = (
    "DescribeCustomKeyStores",
    "ConnectCustomKeyStore",
    "DisconnectCustomKeyStore",
    "DeleteCustomKeyStore",
)
MUTATING = frozenset({CONNECT, DISCONNECT})
_ERROR_CODE_SHAPE: Any = botocore.session.get_session().get_service_model("kms").shape_for("ConnectionErrorCodeType")
ERROR_CODES: list[str] = list(_ERROR_CODE_SHAPE.enum)
# A connect line the provider prints each time it sends a request ("cks-...: DISCONNECTED, desired CONNECTED:
# connecting"); a run that only waits prints none.
REQUEST_LINE = re.compile(r": .*, desired (CONNECTED|DISCONNECTED): (connect|disconnect)ing$")

COUNTS: Counter[str] = Counter()
"""Figures for the report: how many faults were injected."""


# ---------------------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------------------


def provider_env(emu: Emulator) -> dict[str, str]:
    """The provider process's environment: dummy credentials, the emulator, nothing from this machine."""
    return {
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_KMS": emu.endpoint_url,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def start_server(emu: Emulator) -> ProviderServer:
    """A configured provider server for ``emu``, as ``pulumi up`` starts one."""
    server = ProviderServer(env=provider_env(emu), rpc_timeout=60).start()
    server.configure({"aws:region": REGION, "aws:endpoints": [{"kms": emu.endpoint_url}]})
    return server


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(connect_seconds=0.2, disconnect_seconds=0.1) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def server(emu: Emulator) -> Iterator[ProviderServer]:
    """One provider process for the module's cases that do not kill it (each case is synchronous)."""
    started = start_server(emu)
    yield started
    started.close()


@pytest.fixture(autouse=True)
def fresh_emulator(request: pytest.FixtureRequest) -> None:
    """Every case starts from an empty emulator: no stores, no faults, default timing, empty call log."""
    if "emu" in request.fixturenames:
        emulator: Emulator = request.getfixturevalue("emu")
        emulator.reset()


def connection(name: str, store_id: str, **props: Any) -> Registration:
    """A ``CustomKeyStoreConnection`` registration, as the program sends it (``__provider`` included)."""
    inputs = {"custom_key_store_id": store_id, "connect_timeout_seconds": 20, "disconnect_timeout_seconds": 20}
    inputs.update(props)
    return Registration(CONNECTION, name, dynamic_inputs(CustomKeyStoreConnectionProvider(), inputs))


def connection_set(name: str, store_ids: list[str], **props: Any) -> Registration:
    inputs: dict[str, Any] = {
        "custom_key_store_ids": store_ids,
        "connect_timeout_seconds": 30,
        "disconnect_timeout_seconds": 30,
    }
    inputs.update(props)
    return Registration(CONNECTION_SET, name, dynamic_inputs(CustomKeyStoreConnectionSetProvider(), inputs))


def outputs(stack: Stack, registration: Registration) -> dict[str, Any]:
    return dict(unwrap_secrets(stack.state(registration.urn).outputs))


def calls(emu: Emulator, store_id: str | None = None) -> list[tuple[str, str]]:
    """``(operation, outcome)`` of every logged call (of one store's, if given), oldest first."""
    return [(c.operation, c.outcome) for c in emu.calls if store_id is None or c.store_id == store_id]


def ok_count(emu: Emulator, operation: str, store_id: str | None = None) -> int:
    return sum(1 for op, outcome in calls(emu, store_id) if op == operation and outcome == "ok")


@dataclass
class Others:
    """Someone else with a KMS client: a colleague, a script. Their calls are logged too, and counted here."""

    emu: Emulator
    made: Counter[str] = field(default_factory=Counter)

    def disconnect(self, store_id: str) -> None:
        self.emu.client().disconnect_custom_key_store(CustomKeyStoreId=store_id)
        self.made[DISCONNECT] += 1

    def delete(self, store_id: str) -> None:
        self.emu.client().delete_custom_key_store(CustomKeyStoreId=store_id)
        self.made[DELETE] += 1

    def delete_the_moment_it_is_disconnected(self, store_id: str, *, disconnect: bool) -> None:
        """(Disconnect and) delete the store with no read of anyone else in between.

        KMS deletes only a DISCONNECTED store. Holding the emulator's request lock from before the store
        reaches DISCONNECTED until it is deleted makes the DISCONNECTED moment invisible to the provider, so
        the case is deterministic: its next read says "not found".
        """
        service = self.emu.service
        with service.lock:
            if disconnect:
                service.handle(DISCONNECT, {"CustomKeyStoreId": store_id}, REGION)
                self.made[DISCONNECT] += 1
            while service.state_of(store_id, REGION).state is not ConnectionState.DISCONNECTED:
                time.sleep(0.005)
            service.handle(DELETE, {"CustomKeyStoreId": store_id}, REGION)
            self.made[DELETE] += 1


def provider_mutations(emu: Emulator, store_id: str, others: Others | None = None) -> Counter[str]:
    """The Connect/Disconnect requests the provider made for a store and KMS accepted (others' subtracted)."""
    made = Counter(op for op, outcome in calls(emu, store_id) if op in MUTATING and outcome == "ok")
    return made - (others.made if others else Counter())


def finish_connect(emu: Emulator, store_id: str) -> None:
    """Let a connect that hangs (outcome ``hang``) finish: the store becomes CONNECTED, as KMS would make it."""
    with emu.service.lock:
        emu.service.registry(emu.account_of(store_id)).set_phase(REGION, store_id, settled(ConnectionState.CONNECTED))


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.01)


def reads_store(call: Call, store_id: str) -> bool:
    """True if ``call`` is a Describe that reads the store: by its id, or a set's one Describe that names no store."""
    return call.operation == DESCRIBE and call.store_id in (store_id, None)


def waiting_after(emu: Emulator, operation: str, store_id: str) -> Callable[[], bool]:
    """True once the provider sent ``operation`` for the store and read the store again: it is in its wait."""

    def check() -> bool:
        log = emu.calls
        sent = [i for i, c in enumerate(log) if (c.operation, c.store_id, c.outcome) == (operation, store_id, "ok")]
        return bool(sent) and any(reads_store(c, store_id) for c in log[sent[0] + 1 :])

    return check


class Background:
    """Run one engine step in a thread and keep what it raised (a killed provider makes it raise)."""

    def __init__(self, step: Callable[[], object]) -> None:
        self.error: BaseException | None = None
        self.result: object = None

        def run() -> None:
            try:
                self.result = step()
            except BaseException as error:  # kept for the test to assert on
                self.error = error

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float = 30.0) -> Background:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the step did not finish"
        return self


def user_message(error: BaseException) -> str:
    """What the user reads: the provider's exception, after the traceback the SDK's server sends along."""
    assert isinstance(error, ProviderError), f"expected a provider error, got {error!r}"
    match = re.search(r"^kms_connection\.errors\.\w+: (.*)\Z", error.details, re.M | re.S)
    assert match, f"no provider error message in:\n{error.details}"
    return match.group(1).strip()


def assert_truthful(stack: Stack, emu: Emulator) -> None:
    """The rule for every case: no recorded output claims a state KMS does not have."""
    for state in stack.resources.values():
        outs = unwrap_secrets(state.outputs)
        if state.type_ == CONNECTION:
            assert outs["connection_state"] == emu.state_of(outs["custom_key_store_id"]), state.urn
        else:
            for store_id, recorded in outs["connection_states"].items():
                assert recorded == emu.state_of(store_id), (state.urn, store_id)


def request_lines(server: ProviderServer) -> list[str]:
    return [line for line in server.stderr_lines() if REQUEST_LINE.search(line)]


def api_store(emu: Emulator, name: str) -> str:
    """A CloudHSM key store made through the API (CreateCustomKeyStore), as a stack's aws.kms.CustomKeyStore does."""
    response = emu.client().create_custom_key_store(
        CustomKeyStoreName=name,
        CloudHsmClusterId="cluster-" + name.replace("-", "")[:11].ljust(11, "a"),
        TrustAnchorCertificate="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        KeyStorePassword="kmsPswd1",
    )
    return str(response["CustomKeyStoreId"])


# ---------------------------------------------------------------------------------------------------------
# Throttling: KMS's 5 requests per second, ten stores at once
# ---------------------------------------------------------------------------------------------------------


def assert_throttling_ridden_out(emu: Emulator) -> None:
    """ThrottlingException happened, and every throttled request was followed by the same request succeeding."""
    log = emu.calls
    throttled = [i for i, call in enumerate(log) if call.outcome == "ThrottlingException"]
    assert throttled, "the emulator never throttled: the case proves nothing"
    for i in throttled:
        call = log[i]
        assert any(
            later.operation == call.operation and later.store_id == call.store_id and later.outcome == "ok"
            for later in log[i + 1 :]
        ), f"throttled {call.operation} for {call.store_id} was never retried successfully"
    COUNTS["throttled requests ridden out"] += len(throttled)


def test_ten_connections_created_at_once_ride_out_throttling(emu: Emulator, server: ProviderServer) -> None:
    """Ten per-store resources created concurrently through one provider process, against KMS's 5 requests/s: every
    throttled request is retried by botocore and succeeds, each store gets exactly one Connect, all end
    CONNECTED and their outputs say so.
    """
    emu.set_throttle(5)
    store_ids = [emu.create_store(f"hsm-{i}") for i in range(10)]
    registrations = [connection(f"conn-{i}", store_id) for i, store_id in enumerate(store_ids)]
    stack = Stack(server)

    # The engine issues Creates of independent resources concurrently; the server serves four at a time.
    with ThreadPoolExecutor(len(registrations)) as pool:
        results = list(pool.map(stack.up, registrations))

    assert [result.op for result in results] == ["create"] * 10
    for registration, store_id in zip(registrations, store_ids, strict=True):
        assert emu.state_of(store_id) == "CONNECTED"
        assert outputs(stack, registration)["connection_state"] == "CONNECTED"
        assert provider_mutations(emu, store_id) == Counter({CONNECT: 1})
    assert_throttling_ridden_out(emu)
    assert_truthful(stack, emu)


def test_a_set_of_ten_rides_out_throttling(emu: Emulator, server: ProviderServer) -> None:
    """One CustomKeyStoreConnectionSet of ten, throttled at 5 requests/s: its burst of Connects is throttled and ridden
    out, one Connect and (on destroy) one Disconnect per store, outputs match KMS.
    """
    emu.set_throttle(5)
    store_ids = [emu.create_store(f"hsm-{i}") for i in range(10)]
    registration = connection_set("ten", store_ids)
    stack = Stack(server)

    stack.up(registration)

    assert outputs(stack, registration)["connection_states"] == dict.fromkeys(store_ids, "CONNECTED")
    for store_id in store_ids:
        assert emu.state_of(store_id) == "CONNECTED"
        assert provider_mutations(emu, store_id) == Counter({CONNECT: 1})
    assert ("ConnectCustomKeyStore", "ThrottlingException") in calls(emu)
    assert_throttling_ridden_out(emu)
    assert_truthful(stack, emu)

    stack.destroy(registration.urn)
    assert [emu.state_of(store_id) for store_id in store_ids] == ["DISCONNECTED"] * 10
    assert all(provider_mutations(emu, s) == Counter({CONNECT: 1, DISCONNECT: 1}) for s in store_ids)
    assert stack.resources == {}


# ---------------------------------------------------------------------------------------------------------
# Bursts of KMSInternalException (HTTP 500) and dropped connections
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "operation", "burst"),
    [
        ("internal", None, 5),
        ("drop", None, 5),
        ("internal", "mutating", 3),
        ("drop", "mutating", 3),
    ],
    ids=["500s-on-any-call", "drops-on-any-call", "500s-on-connect-and-disconnect", "drops-on-connect-and-disconnect"],
)
def test_bursts_of_server_errors_and_dropped_connections_are_ridden_out(
    emu: Emulator, server: ProviderServer, mode: FailMode, operation: str | None, burst: int
) -> None:
    """Bursts of KMSInternalException (HTTP 500) or dropped connections, on any call or on Connect/Disconnect only: the
    create and the destroy converge, with exactly one accepted Connect and one Disconnect and no InvalidState.
    """
    store_id = emu.create_store("hsm")
    registration = connection("conn", store_id)
    stack = Stack(server)
    failed_outcome = "KMSInternalException" if mode == "internal" else "dropped"

    emu.fail_next(burst, CONNECT if operation else None, mode)
    stack.up(registration)
    assert emu.state_of(store_id) == "CONNECTED"
    assert outputs(stack, registration)["connection_state"] == "CONNECTED"
    assert_truthful(stack, emu)

    emu.fail_next(burst, DISCONNECT if operation else None, mode)
    stack.destroy(registration.urn)
    assert emu.state_of(store_id) == "DISCONNECTED"
    assert stack.resources == {}

    log = calls(emu, store_id)
    assert sum(1 for _, outcome in log if outcome == failed_outcome) == 2 * burst
    if operation:
        assert Counter(op for op, outcome in log if outcome == failed_outcome) == {CONNECT: burst, DISCONNECT: burst}
    # The failed attempts never reached the store; exactly one of each request did.
    assert provider_mutations(emu, store_id) == Counter({CONNECT: 1, DISCONNECT: 1})
    assert not any(outcome == "CustomKeyStoreInvalidStateException" for _, outcome in log)
    COUNTS["server errors and dropped connections ridden out"] += 2 * burst


# ---------------------------------------------------------------------------------------------------------
# Eventual consistency
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("lag", [0.0, 1.0, 5.0], ids=["lag-0s", "lag-1s", "lag-5s"])
def test_stale_reads_after_each_change_cause_no_redundant_request(
    emu: Emulator, server: ProviderServer, lag: float
) -> None:
    """With Describe lagging 0, 1 or 5 s behind every change, a connecting create and a disconnecting destroy wait the
    stale reads out: one Connect, one Disconnect, no request refused.
    """
    emu.set_consistency_lag(lag)
    to_connect = emu.create_store("hsm-a")
    to_disconnect = emu.create_store("hsm-b", connection_state="CONNECTED")
    connecting = connection("conn-a", to_connect)
    disconnecting = connection("conn-b", to_disconnect)
    stack = Stack(server)
    stack.up(disconnecting)  # adopts a CONNECTED store: one read, no request

    # A create that connects and a destroy that disconnects, at once: after each request, reads show the old
    # state for `lag` seconds. They are waited out, not answered with a second request.
    started = time.monotonic()
    destroy = Background(lambda: stack.destroy(disconnecting.urn))
    stack.up(connecting)
    destroy.join()
    assert destroy.error is None
    assert time.monotonic() - started >= lag

    assert emu.state_of(to_connect) == "CONNECTED"
    assert outputs(stack, connecting)["connection_state"] == "CONNECTED"
    assert provider_mutations(emu, to_connect) == Counter({CONNECT: 1})
    assert emu.state_of(to_disconnect) == "DISCONNECTED"
    assert disconnecting.urn not in stack.resources
    assert provider_mutations(emu, to_disconnect) == Counter({DISCONNECT: 1})
    assert "CustomKeyStoreInvalidStateException" not in {outcome for _, outcome in calls(emu)}
    assert_truthful(stack, emu)
    COUNTS["stale reads waited out"] += stale_reads(emu, to_connect, CONNECT, lag) + stale_reads(
        emu, to_disconnect, DISCONNECT, lag
    )


def stale_reads(emu: Emulator, store_id: str, operation: str, lag: float) -> int:
    """Reads of a store within ``lag`` seconds after the provider's ``operation`` on it: they showed the past."""
    log = [call for call in emu.calls if call.store_id == store_id]
    sent = [call.time for call in log if call.operation == operation and call.outcome == "ok"]
    return sum(1 for call in log if call.operation == DESCRIBE and sent and sent[0] < call.time < sent[0] + lag)


# A store created a moment ago (by aws.kms.CustomKeyStore in the same `pulumi up`, as __main__.py's
# newCloudHsmKeyStore does) is invisible to DescribeCustomKeyStores until KMS's replicas catch up. This case
# failed at once with "not found" until the reconciler's NOT_FOUND_GRACE_SECONDS (commit f081b77).
@pytest.mark.parametrize("lag", [1.0], ids=["lag-1s"])
def test_a_store_created_a_moment_ago_is_connected_despite_the_lag(
    emu: Emulator, server: ProviderServer, lag: float
) -> None:
    """A store created through the API a moment ago, still invisible to Describe, is waited for and connected once
    (regression test for a bug fixed in f081b77).
    """
    emu.set_consistency_lag(lag)
    store_id = api_store(emu, "brand-new")
    registration = connection("conn", store_id)
    stack = Stack(server)

    stack.up(registration)

    assert emu.state_of(store_id) == "CONNECTED"
    assert outputs(stack, registration)["connection_state"] == "CONNECTED"
    assert provider_mutations(emu, store_id) == Counter({CONNECT: 1})
    assert_truthful(stack, emu)
    COUNTS["stale reads waited out"] += sum(1 for op, outcome in calls(emu, store_id) if outcome != "ok")


# ---------------------------------------------------------------------------------------------------------
# A connect that ends FAILED, for every ConnectionErrorCode of the service model
# ---------------------------------------------------------------------------------------------------------


FAILED_CONNECT_SERVERS = 3


@dataclass
class FailedConnect:
    """One code's run: the failed create, then the next `up` once the cause is fixed."""

    store_id: str
    error: BaseException | None
    recorded_after_failure: bool
    state_after_failure: str
    calls_after_failure: list[tuple[str, str]]
    recovered_outputs: dict[str, Any]
    state_after_recovery: str
    mutations_after_recovery: Counter[str]


@pytest.fixture(scope="module")
def failed_connects() -> Iterator[dict[str, FailedConnect]]:
    """Every code's case, run concurrently (as the engine runs independent resources), spread over a few
    provider processes to keep the file fast. Each store gets its own code, so its message and its calls are
    its own; the cases share only the processes and the emulator.
    """
    with Emulator(connect_seconds=0.2, disconnect_seconds=0.1) as emulator, ThreadPoolExecutor(3) as starter:
        servers = list(starter.map(lambda _: start_server(emulator), range(FAILED_CONNECT_SERVERS)))
        try:
            stacks = {code: Stack(servers[i % len(servers)]) for i, code in enumerate(ERROR_CODES)}
            store_ids: dict[str, str] = {}
            for code in ERROR_CODES:
                store_type = "EXTERNAL_KEY_STORE" if code.startswith("XKS_") else "AWS_CLOUDHSM"
                store_ids[code] = emulator.create_store(code.lower(), store_type=store_type)
                emulator.set_connect_outcome(store_ids[code], "fail", code)
            registrations = {code: connection(f"conn-{code.lower()}", store_ids[code]) for code in ERROR_CODES}

            def attempt(code: str) -> BaseException | None:
                try:
                    stacks[code].up(registrations[code])
                except ProviderError as error:
                    return error
                return None

            with ThreadPoolExecutor(len(ERROR_CODES)) as pool:
                errors = dict(zip(ERROR_CODES, pool.map(attempt, ERROR_CODES), strict=True))
            after_failure = {
                code: (
                    registrations[code].urn in stacks[code].resources,
                    emulator.state_of(store_ids[code]),
                    calls(emulator, store_ids[code]),
                )
                for code in ERROR_CODES
            }
            # The cause is fixed (a password reset, a subnet added...): the next `up` needs nothing else.
            for store_id in store_ids.values():
                emulator.set_connect_outcome(store_id, "succeed")
            emulator.clear_calls()
            with ThreadPoolExecutor(len(ERROR_CODES)) as pool:
                list(pool.map(lambda code: stacks[code].up(registrations[code]), ERROR_CODES))
            yield {
                code: FailedConnect(
                    store_id=store_ids[code],
                    error=errors[code],
                    recorded_after_failure=after_failure[code][0],
                    state_after_failure=after_failure[code][1],
                    calls_after_failure=after_failure[code][2],
                    recovered_outputs=outputs(stacks[code], registrations[code]),
                    state_after_recovery=emulator.state_of(store_ids[code]),
                    mutations_after_recovery=provider_mutations(emulator, store_ids[code]),
                )
                for code in ERROR_CODES
            }
        finally:
            for server in servers:
                server.close()


def test_the_model_has_the_error_codes_the_provider_knows() -> None:
    """Every ConnectionErrorCode of the installed botocore model has a specific remedy in the provider."""
    assert len(ERROR_CODES) >= 18
    assert all(not remedy(code).startswith("see the KMS Developer Guide") for code in ERROR_CODES)


@pytest.mark.parametrize("code", ERROR_CODES)
def test_a_failed_connect_names_the_store_the_code_and_the_remedy(
    failed_connects: dict[str, FailedConnect], code: str
) -> None:
    """For every ConnectionErrorCode: the message names the store, the Region, the code and its remedy; the failed
    create records nothing; KMS is left FAILED after one Connect; the next `up` repairs it (Disconnect, then
    Connect) with no state edit.
    """
    case = failed_connects[code]
    assert case.error is not None, "the create should have failed"
    assert user_message(case.error) == (
        f"custom key store {case.store_id} in {REGION}: connecting failed with ConnectionErrorCode {code}: "
        f"{remedy(code)} The store is left FAILED; the next `pulumi up` disconnects and connects it again."
    )
    # A failed create records nothing; KMS is left as it is (FAILED), with one Connect and no repair loop.
    assert case.recorded_after_failure is False
    assert case.state_after_failure == "FAILED"
    assert [op for op, outcome in case.calls_after_failure if op in MUTATING] == [CONNECT]
    # The next `up` repairs it without help: Disconnect first (KMS refuses to connect a FAILED store), then Connect.
    assert case.mutations_after_recovery == Counter({DISCONNECT: 1, CONNECT: 1})
    assert case.state_after_recovery == "CONNECTED"
    assert case.recovered_outputs["connection_state"] == "CONNECTED"
    assert case.recovered_outputs.get("connection_error_code") is None  # None values are dropped on the wire
    COUNTS["failed connects reported"] += 1


# ---------------------------------------------------------------------------------------------------------
# A connect that never finishes
# ---------------------------------------------------------------------------------------------------------


def test_a_connect_stuck_past_the_timeout_is_reported_then_resumed_without_a_new_connect(
    emu: Emulator, server: ProviderServer
) -> None:
    """A connect that hangs past connect_timeout_seconds: the message names the last state and the wait and records
    nothing; the next `up` waits for the same connect to finish without sending another.
    """
    store_id = emu.create_store("hsm")
    emu.set_connect_outcome(store_id, "hang")
    stack = Stack(server)
    impatient = connection("conn", store_id, connect_timeout_seconds=1)

    with pytest.raises(ProviderError) as raised:
        stack.up(impatient)

    message = user_message(raised.value)
    assert message.startswith(
        f"custom key store {store_id} in {REGION}: still CONNECTING after waiting 1 s for CONNECTED. Nothing was "
        "undone: run `pulumi up` again to keep waiting without a new request, or raise connect_timeout_seconds.\n"
    )
    # The failed create records no resource: the store it left connecting is named with the command to undo it.
    assert f"aws kms disconnect-custom-key-store --custom-key-store-id {store_id} --region {REGION}" in message
    assert stack.resources == {}
    assert emu.state_of(store_id) == "CONNECTING"
    assert provider_mutations(emu, store_id) == Counter({CONNECT: 1})

    # The next `up` (with a longer timeout) finds the connect still under way and waits for it; KMS finishes it.
    lines_before = len(request_lines(server))
    patient = connection("conn", store_id, connect_timeout_seconds=20)
    describes = ok_count(emu, DESCRIBE, store_id)
    run = Background(lambda: stack.up(patient))
    wait_until(lambda: ok_count(emu, DESCRIBE, store_id) > describes, what="the second up to read the store")
    finish_connect(emu, store_id)
    run.join()

    assert run.error is None
    assert emu.state_of(store_id) == "CONNECTED"
    assert outputs(stack, patient)["connection_state"] == "CONNECTED"
    assert provider_mutations(emu, store_id) == Counter({CONNECT: 1})
    assert len(request_lines(server)) == lines_before
    assert_truthful(stack, emu)
    COUNTS["hung connects reported and resumed"] += 1


# ---------------------------------------------------------------------------------------------------------
# The store deleted, or flipped, by someone else
# ---------------------------------------------------------------------------------------------------------


def test_a_store_deleted_before_the_create_fails_clearly_without_a_request(
    emu: Emulator, server: ProviderServer
) -> None:
    """A store deleted out of band before the create: a NotFound message saying what to do, only reads, nothing
    recorded.
    """
    store_id = emu.create_store("hsm")
    # A store never seen is looked for until the timeout (at most 10 s) before NotFound is believed.
    registration = connection("conn", store_id, connect_timeout_seconds=2)
    stack = Stack(server)
    stack.preview(registration)
    others = Others(emu)
    others.delete(store_id)

    with pytest.raises(ProviderError) as raised:
        stack.up(registration)

    assert user_message(raised.value) == (
        f"custom key store {store_id} in {REGION}: not found (CustomKeyStoreNotFoundException). check "
        "custom_key_store_id and region; if the store was deleted, remove the resource from the program: the next "
        "`pulumi up` then drops it from the stack (`pulumi refresh` drops it at once, but an `up` of a program that "
        "still declares it fails again)."
    )
    assert stack.resources == {}
    assert provider_mutations(emu, store_id) == Counter()
    assert {op for op, _ in calls(emu, store_id) if op != DELETE} == {DESCRIBE}
    COUNTS["out-of-band deletions handled"] += 1


def test_a_store_deleted_before_the_destroy_is_dropped_with_a_warning(emu: Emulator, server: ProviderServer) -> None:
    """A store deleted out of band before the destroy: the destroy succeeds with a warning and makes no request."""
    store_id = emu.create_store("hsm", connection_state="CONNECTED")
    registration = connection("conn", store_id)
    stack = Stack(server)
    stack.up(registration)
    others = Others(emu)
    others.disconnect(store_id)
    wait_until(lambda: emu.state_of(store_id) == "DISCONNECTED")
    others.delete(store_id)

    stack.destroy(registration.urn)

    assert stack.resources == {}
    assert f"warning: {store_id}: not found in {REGION} (deleted?); nothing left to disconnect" in server.stderr_lines()
    assert provider_mutations(emu, store_id, others) == Counter()
    COUNTS["out-of-band deletions handled"] += 1


def test_a_store_deleted_while_we_wait_for_connected_fails_clearly(emu: Emulator, server: ProviderServer) -> None:
    """A store disconnected and deleted by someone else while the create waits for CONNECTED: a NotFound message, one
    Connect only, nothing recorded.
    """
    store_id = emu.create_store("hsm")
    emu.set_connect_outcome(store_id, "hang")
    registration = connection("conn", store_id)
    stack = Stack(server)
    others = Others(emu)

    run = Background(lambda: stack.up(registration))
    wait_until(waiting_after(emu, CONNECT, store_id), what="the provider to wait for CONNECTED")
    others.delete_the_moment_it_is_disconnected(store_id, disconnect=True)
    run.join()

    assert run.error is not None
    assert user_message(run.error).startswith(
        f"custom key store {store_id} in {REGION}: not found (CustomKeyStoreNotFoundException)."
    )
    assert stack.resources == {}
    with pytest.raises(KeyError):
        emu.state_of(store_id)
    assert provider_mutations(emu, store_id, others) == Counter({CONNECT: 1})
    COUNTS["out-of-band deletions handled"] += 1


def test_a_store_deleted_while_we_wait_for_its_disconnect_on_delete_is_success_with_a_warning(
    emu: Emulator, server: ProviderServer
) -> None:
    """A store deleted the moment our delete's Disconnect completes: the destroy succeeds with a warning; one
    Disconnect.
    """
    store_id = emu.create_store("hsm", connection_state="CONNECTED")
    registration = connection("conn", store_id)
    stack = Stack(server)
    stack.up(registration)
    emu.disconnect_seconds = 0.6
    others = Others(emu)

    run = Background(lambda: stack.destroy(registration.urn))
    wait_until(lambda: ok_count(emu, DISCONNECT, store_id) == 1, what="the provider's Disconnect")
    others.delete_the_moment_it_is_disconnected(store_id, disconnect=False)
    run.join()

    assert run.error is None
    assert stack.resources == {}
    assert f"warning: {store_id}: not found in {REGION} (deleted?); nothing left to disconnect" in server.stderr_lines()
    assert provider_mutations(emu, store_id, others) == Counter({DISCONNECT: 1})
    COUNTS["out-of-band deletions handled"] += 1


def test_a_store_disconnected_by_someone_else_during_our_connect_fails_clearly_then_converges(
    emu: Emulator, server: ProviderServer
) -> None:
    """Someone disconnects the store while an update waits for CONNECTED: a message saying another client changed it;
    the recorded outputs stay true; the next `up` converges with no state edit.
    """
    store_id = emu.create_store("hsm")
    stack = Stack(server)
    stack.up(connection("conn", store_id, desired_state="DISCONNECTED"))
    emu.set_connect_outcome(store_id, "hang")
    wanted = connection("conn", store_id, desired_state="CONNECTED")
    others = Others(emu)

    run = Background(lambda: stack.up(wanted))
    wait_until(waiting_after(emu, CONNECT, store_id), what="the provider to wait for CONNECTED")
    others.disconnect(store_id)
    run.join()

    assert run.error is not None
    assert re.fullmatch(
        rf"custom key store {store_id} in {REGION}: another client changed the store to "
        r"(DISCONNECTING|DISCONNECTED) while it was converging to CONNECTED\. Check who manages this store: the "
        r"next `pulumi up` reads it again and, if it is still \1, (waits for DISCONNECTED, then )?connects it\.",
        user_message(run.error),
    )
    # The failed update keeps the recorded resource as it was, which is still what KMS says.
    wait_until(lambda: emu.state_of(store_id) == "DISCONNECTED")
    assert outputs(stack, wanted)["desired_state"] == "DISCONNECTED"
    assert_truthful(stack, emu)
    assert provider_mutations(emu, store_id, others) == Counter({CONNECT: 1})

    # Whoever flipped it is told; the next `up` converges with no edit of the state.
    emu.set_connect_outcome(store_id, "succeed")
    stack.up(wanted)
    assert emu.state_of(store_id) == "CONNECTED"
    assert outputs(stack, wanted)["connection_state"] == "CONNECTED"
    assert provider_mutations(emu, store_id, others) == Counter({CONNECT: 2})
    COUNTS["out-of-band flips reported"] += 1


# ---------------------------------------------------------------------------------------------------------
# The provider process killed (SIGKILL) in the middle of a wait, then the operation run again
# ---------------------------------------------------------------------------------------------------------


# How long a connect or disconnect takes on the held emulator's clock, which moves only when a case lets it.
TRANSITION_SECONDS = 1.0


@pytest.fixture
def held() -> Iterator[Emulator]:
    """An emulator whose connects and disconnects stay in transition until the case lets its clock run: the store is
    still CONNECTING or DISCONNECTING after the kill and at the fresh process's first read, however slow the
    machine (on real time, a loaded machine let a 1.5 s disconnect finish before the preview read it)."""
    with Emulator(
        clock=FakeClock(), connect_seconds=TRANSITION_SECONDS, disconnect_seconds=TRANSITION_SECONDS
    ) as emulator:
        yield emulator


@pytest.fixture
def doomed_and_fresh(held: Emulator) -> Iterator[tuple[ProviderServer, ProviderServer]]:
    """Two provider processes: the first is killed mid-wait, the second runs the operation again."""
    with ThreadPoolExecutor(2) as starter:
        first, second = starter.map(lambda _: start_server(held), range(2))
    yield first, second
    first.close()
    second.close()


def kill_while_waiting(
    emu: Emulator, server: ProviderServer, step: Callable[[], object], operation: str, store_id: str
) -> None:
    """Run ``step``, SIGKILL the provider once it sent ``operation`` and is polling, check the step failed."""
    run = Background(step)
    wait_until(waiting_after(emu, operation, store_id), what=f"the provider to wait after {operation}")
    server.kill()
    run.join()
    assert isinstance(run.error, ProviderError), run.error
    COUNTS["provider processes killed mid-wait"] += 1


def run_again_while_held(emu: Emulator, step: Callable[[], object], store_id: str) -> object:
    """Run ``step`` (the operation again, on the fresh process) with the store held in its transition; once the step
    has read the store three times (more than its Check or Diff reads: the operation itself read the store in
    transition and decided, then read it again), let the emulator's clock run until the step ends. Return what the
    step returned; raise what it raised."""
    start = len(emu.calls)

    def reads() -> int:
        return sum(1 for c in emu.calls[start:] if reads_store(c, store_id))

    run = Background(step)
    wait_until(lambda: reads() >= 3, what=f"the fresh provider to wait on {store_id}")
    clock = emu.clock
    assert isinstance(clock, FakeClock)
    deadline = time.monotonic() + 30
    while run.alive() and time.monotonic() < deadline:
        clock.advance(0.05)
        time.sleep(0.01)
    run.join(timeout=0)
    if run.error is not None:
        raise run.error
    return run.result


def test_killed_while_waiting_for_connected_then_create_again(
    held: Emulator, doomed_and_fresh: tuple[ProviderServer, ProviderServer]
) -> None:
    """The provider process SIGKILLed while a create waits for CONNECTED: the create run again on a fresh process waits
    for the same connect; one Connect in all.
    """
    emu, (first, second) = held, doomed_and_fresh
    store_id = emu.create_store("hsm")
    registration = connection("conn", store_id)

    kill_while_waiting(emu, first, lambda: Stack(first).up(registration), CONNECT, store_id)
    assert emu.state_of(store_id) == "CONNECTING"

    stack = Stack(second)  # the interrupted create recorded nothing: the engine creates again
    run_again_while_held(emu, lambda: stack.up(registration), store_id)

    assert request_lines(second) == []
    assert emu.state_of(store_id) == "CONNECTED"
    assert outputs(stack, registration)["connection_state"] == "CONNECTED"
    assert provider_mutations(emu, store_id) == Counter({CONNECT: 1})
    assert_truthful(stack, emu)


def test_killed_while_waiting_for_an_update_to_disconnected_then_update_again(
    held: Emulator, doomed_and_fresh: tuple[ProviderServer, ProviderServer]
) -> None:
    """SIGKILLed while an update waits for DISCONNECTED: the preview on a fresh process says it will wait, the update
    run again sends nothing new; one Disconnect in all.
    """
    emu, (first, second) = held, doomed_and_fresh
    store_id = emu.create_store("hsm", connection_state="CONNECTED")
    connected = connection("conn", store_id)
    disconnected = connection("conn", store_id, desired_state="DISCONNECTED")
    stack = Stack(first)
    stack.up(connected)

    kill_while_waiting(emu, first, lambda: stack.up(disconnected), DISCONNECT, store_id)
    # The failed update left the recorded outputs as they were: CONNECTED, with KMS DISCONNECTING.
    assert outputs(stack, connected)["connection_state"] == "CONNECTED"
    assert emu.state_of(store_id) == "DISCONNECTING"

    resumed = Stack(second, stack.resources)
    preview = resumed.preview(disconnected)
    assert preview.op == "update"
    assert f"{store_id}: observed DISCONNECTING, desired DISCONNECTED: will wait for DISCONNECTED" in (
        second.stderr_lines()
    )
    run_again_while_held(emu, lambda: resumed.up(disconnected), store_id)

    assert request_lines(second) == []
    assert emu.state_of(store_id) == "DISCONNECTED"
    assert outputs(resumed, disconnected)["connection_state"] == "DISCONNECTED"
    assert provider_mutations(emu, store_id) == Counter({DISCONNECT: 1})
    assert_truthful(resumed, emu)


def test_killed_while_a_delete_waits_for_disconnected_then_destroy_again(
    held: Emulator, doomed_and_fresh: tuple[ProviderServer, ProviderServer]
) -> None:
    """SIGKILLed while a delete waits for DISCONNECTED: the failed delete keeps the resource; the destroy run again
    finishes without a new Disconnect.
    """
    emu, (first, second) = held, doomed_and_fresh
    store_id = emu.create_store("hsm", connection_state="CONNECTED")
    registration = connection("conn", store_id)
    stack = Stack(first)
    stack.up(registration)

    kill_while_waiting(emu, first, lambda: stack.destroy(registration.urn), DISCONNECT, store_id)
    # A failed delete keeps the resource.
    assert registration.urn in stack.resources
    assert emu.state_of(store_id) == "DISCONNECTING"

    resumed = Stack(second, stack.resources)
    run_again_while_held(emu, lambda: resumed.destroy(registration.urn), store_id)

    assert request_lines(second) == []
    assert resumed.resources == {}
    assert emu.state_of(store_id) == "DISCONNECTED"
    assert provider_mutations(emu, store_id) == Counter({DISCONNECT: 1})


def test_killed_while_repairing_a_failed_store_then_create_again(
    held: Emulator, doomed_and_fresh: tuple[ProviderServer, ProviderServer]
) -> None:
    """SIGKILLed while repairing a FAILED store (after its Disconnect): the create run again waits out the disconnect
    and sends only the Connect it still owed.
    """
    emu, (first, second) = held, doomed_and_fresh
    store_id = emu.create_store("hsm", connection_state="FAILED", error_code="NETWORK_ERRORS")
    registration = connection("conn", store_id)

    kill_while_waiting(emu, first, lambda: Stack(first).up(registration), DISCONNECT, store_id)
    assert emu.state_of(store_id) == "DISCONNECTING"

    stack = Stack(second)
    run_again_while_held(emu, lambda: stack.up(registration), store_id)

    # The repair's Disconnect is not sent again; the Connect it was waiting to send is.
    assert [line.rsplit(": ", 1)[-1] for line in request_lines(second)] == ["connecting"]
    assert emu.state_of(store_id) == "CONNECTED"
    assert outputs(stack, registration)["connection_state"] == "CONNECTED"
    assert provider_mutations(emu, store_id) == Counter({DISCONNECT: 1, CONNECT: 1})
    assert_truthful(stack, emu)


def test_killed_while_a_set_waits_then_create_again(
    held: Emulator, doomed_and_fresh: tuple[ProviderServer, ProviderServer]
) -> None:
    """SIGKILLed while a set of three waits for CONNECTED: the set's create run again sends no new Connect."""
    emu, (first, second) = held, doomed_and_fresh
    store_ids = [emu.create_store(f"hsm-{i}") for i in range(3)]
    registration = connection_set("three", store_ids)

    kill_while_waiting(emu, first, lambda: Stack(first).up(registration), CONNECT, store_ids[-1])
    assert [emu.state_of(store_id) for store_id in store_ids] == ["CONNECTING"] * 3

    stack = Stack(second)
    run_again_while_held(emu, lambda: stack.up(registration), store_ids[-1])

    assert request_lines(second) == []
    assert outputs(stack, registration)["connection_states"] == dict.fromkeys(store_ids, "CONNECTED")
    assert all(provider_mutations(emu, store_id) == Counter({CONNECT: 1}) for store_id in store_ids)
    assert_truthful(stack, emu)
