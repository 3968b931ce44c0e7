"""Connection state machine through boto3, driven by a FakeClock: every transition and every refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kms_connection.emulator import Emulator, FakeClock
from kms_connection.emulator.model import connection_error_codes

NO_RETRY: dict[str, Any] = {"retries": {"total_max_attempts": 1}}
CONNECT = 1.0
DISCONNECT = 0.5


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=100.0)


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator], clock: FakeClock) -> Emulator:
    return make_emulator(clock=clock, connect_seconds=CONNECT, disconnect_seconds=DISCONNECT)


@pytest.fixture
def client(emu: Emulator) -> Any:
    return emu.client(**NO_RETRY)


def described(client: Any, store_id: str) -> dict[str, Any]:
    return dict(client.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"][0])


def test_connect_goes_through_connecting_to_connected_after_connect_seconds(
    emu: Emulator, client: Any, clock: FakeClock
) -> None:
    store_id = emu.create_store("s")
    assert client.connect_custom_key_store(CustomKeyStoreId=store_id)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert described(client, store_id)["ConnectionState"] == "CONNECTING"
    clock.advance(CONNECT - 0.01)
    assert described(client, store_id)["ConnectionState"] == "CONNECTING"
    clock.advance(0.01)
    entry = described(client, store_id)
    assert entry["ConnectionState"] == "CONNECTED"
    assert "ConnectionErrorCode" not in entry


@pytest.mark.parametrize("code", connection_error_codes())
def test_connect_can_fail_with_every_model_error_code(emu: Emulator, client: Any, clock: FakeClock, code: str) -> None:
    store_id = emu.create_store("s", store_type="EXTERNAL_KEY_STORE" if code.startswith("XKS_") else "AWS_CLOUDHSM")
    emu.set_connect_outcome(store_id, "fail", code)
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert "ConnectionErrorCode" not in described(client, store_id)
    clock.advance(CONNECT)
    entry = described(client, store_id)
    assert (entry["ConnectionState"], entry["ConnectionErrorCode"]) == ("FAILED", code)


def test_hanging_connect_stays_connecting_until_disconnected(emu: Emulator, client: Any, clock: FakeClock) -> None:
    store_id = emu.create_store("s")
    emu.set_connect_outcome(store_id, "hang")
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    clock.advance(10**6)
    assert described(client, store_id)["ConnectionState"] == "CONNECTING"
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    clock.advance(DISCONNECT)
    assert described(client, store_id)["ConnectionState"] == "DISCONNECTED"


def test_default_connect_outcome_applies_to_stores_without_their_own(
    emu: Emulator, client: Any, clock: FakeClock
) -> None:
    plain, special = emu.create_store("plain"), emu.create_store("special")
    emu.set_default_connect_outcome("fail:INTERNAL_ERROR")
    emu.set_connect_outcome(special, "succeed")
    for store_id in (plain, special):
        client.connect_custom_key_store(CustomKeyStoreId=store_id)
    clock.advance(CONNECT)
    assert emu.state_of(plain) == "FAILED"
    assert emu.state_of(special) == "CONNECTED"


def test_connect_while_connecting_is_a_no_op_that_keeps_the_deadline(
    emu: Emulator, client: Any, clock: FakeClock
) -> None:
    store_id = emu.create_store("s")
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    clock.advance(CONNECT / 2)
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    clock.advance(CONNECT / 2)
    assert emu.state_of(store_id) == "CONNECTED"


def test_connect_while_connected_is_a_no_op_success(emu: Emulator, client: Any) -> None:
    store_id = emu.create_store("s", connection_state="CONNECTED")
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert described(client, store_id)["ConnectionState"] == "CONNECTED"
    assert emu.calls[0].outcome == "ok"


def test_connect_is_refused_while_failed(emu: Emulator, client: Any) -> None:
    store_id = emu.create_store("s", connection_state="FAILED", error_code="USER_NOT_FOUND")
    with pytest.raises(client.exceptions.CustomKeyStoreInvalidStateException) as caught:
        client.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert "FAILED" in str(caught.value)
    assert "Disconnect it" in str(caught.value)
    assert emu.state_of(store_id) == "FAILED"


def test_connect_is_refused_while_disconnecting(emu: Emulator, client: Any) -> None:
    store_id = emu.create_store("s", connection_state="CONNECTED")
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    with pytest.raises(client.exceptions.CustomKeyStoreInvalidStateException) as caught:
        client.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert "DISCONNECTING" in str(caught.value)


def test_connect_unknown_store_gets_not_found(client: Any) -> None:
    with pytest.raises(client.exceptions.CustomKeyStoreNotFoundException):
        client.connect_custom_key_store(CustomKeyStoreId="cks-00000000000000000")


@pytest.mark.parametrize("start", ["CONNECTED", "CONNECTING", "FAILED"])
def test_disconnect_goes_through_disconnecting_to_disconnected(
    emu: Emulator, client: Any, clock: FakeClock, start: str
) -> None:
    store_id = emu.create_store("s", connection_state=start, error_code="NETWORK_ERRORS" if start == "FAILED" else None)
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    entry = described(client, store_id)
    assert entry["ConnectionState"] == "DISCONNECTING"
    assert "ConnectionErrorCode" not in entry
    clock.advance(DISCONNECT - 0.01)
    assert emu.state_of(store_id) == "DISCONNECTING"
    clock.advance(0.01)
    assert described(client, store_id)["ConnectionState"] == "DISCONNECTED"


@pytest.mark.parametrize("start", ["DISCONNECTED", "DISCONNECTING"])
def test_disconnect_is_refused_when_disconnected_or_disconnecting(emu: Emulator, client: Any, start: str) -> None:
    store_id = emu.create_store("s", connection_state=start)
    with pytest.raises(client.exceptions.CustomKeyStoreInvalidStateException) as caught:
        client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    assert f"connection state is {start}" in str(caught.value)


def test_failed_store_recovers_by_disconnect_then_connect(emu: Emulator, client: Any, clock: FakeClock) -> None:
    store_id = emu.create_store("s")
    emu.set_connect_outcome(store_id, "fail:INVALID_CREDENTIALS")
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    clock.advance(CONNECT)
    assert emu.state_of(store_id) == "FAILED"
    emu.set_connect_outcome(store_id, "succeed")
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    clock.advance(DISCONNECT)
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    clock.advance(CONNECT)
    assert described(client, store_id)["ConnectionState"] == "CONNECTED"


def test_outcome_and_duration_are_fixed_when_a_connect_starts(emu: Emulator, client: Any, clock: FakeClock) -> None:
    store_id = emu.create_store("s")
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    emu.set_connect_outcome(store_id, "fail:NETWORK_ERRORS")
    emu.connect_seconds = 50.0
    clock.advance(CONNECT)
    assert emu.state_of(store_id) == "CONNECTED"


def test_connect_and_disconnect_durations_are_settable(emu: Emulator, client: Any, clock: FakeClock) -> None:
    emu.connect_seconds, emu.disconnect_seconds = 5.0, 3.0
    assert (emu.connect_seconds, emu.disconnect_seconds) == (5.0, 3.0)
    store_id = emu.create_store("s")
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    clock.advance(4.9)
    assert emu.state_of(store_id) == "CONNECTING"
    clock.advance(0.1)
    assert emu.state_of(store_id) == "CONNECTED"
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    clock.advance(2.9)
    assert emu.state_of(store_id) == "DISCONNECTING"
    clock.advance(0.1)
    assert emu.state_of(store_id) == "DISCONNECTED"


def test_zero_second_connect_is_connected_at_once(emu: Emulator, client: Any) -> None:
    emu.connect_seconds = 0
    store_id = emu.create_store("s")
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert described(client, store_id)["ConnectionState"] == "CONNECTED"


def test_external_store_follows_the_same_state_machine(emu: Emulator, client: Any, clock: FakeClock) -> None:
    store_id = emu.create_store("xks", store_type="EXTERNAL_KEY_STORE")
    emu.set_connect_outcome(store_id, "fail", "XKS_PROXY_TIMED_OUT")
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    clock.advance(CONNECT)
    assert described(client, store_id)["ConnectionErrorCode"] == "XKS_PROXY_TIMED_OUT"


def test_real_clock_transitions_happen_by_themselves(kms_emulator: Emulator) -> None:
    import time

    client = kms_emulator.client()
    store_id = kms_emulator.create_store("s")
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    deadline = time.monotonic() + 5
    while kms_emulator.state_of(store_id) != "CONNECTED" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert described(client, store_id)["ConnectionState"] == "CONNECTED"


# -- eventual consistency ---------------------------------------------------------------------------


def test_describe_shows_the_previous_state_for_the_lag_after_a_change(
    emu: Emulator, client: Any, clock: FakeClock
) -> None:
    store_id = emu.create_store("s")
    emu.set_consistency_lag(3.0)
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert emu.state_of(store_id) == "CONNECTING"
    assert described(client, store_id)["ConnectionState"] == "DISCONNECTED"
    clock.advance(2.9)
    assert described(client, store_id)["ConnectionState"] == "DISCONNECTED"
    clock.advance(0.1)
    assert described(client, store_id)["ConnectionState"] == "CONNECTING"
    # The timed transition to CONNECTED also shows `lag` late.
    clock.advance(CONNECT)
    assert described(client, store_id)["ConnectionState"] == "CONNECTED"


def test_a_new_store_is_invisible_and_a_deleted_one_lingers_for_the_lag(
    emu: Emulator, client: Any, clock: FakeClock
) -> None:
    emu.set_consistency_lag(2.0)
    params = {
        "CustomKeyStoreName": "lagging",
        "CloudHsmClusterId": "cluster-234567abcdefg",
        "TrustAnchorCertificate": "pem",
        "KeyStorePassword": "kmsuser-password",
    }
    store_id = client.create_custom_key_store(**params)["CustomKeyStoreId"]
    with pytest.raises(client.exceptions.CustomKeyStoreNotFoundException):
        client.describe_custom_key_stores(CustomKeyStoreId=store_id)
    # Writes see the true state at once.
    client.connect_custom_key_store(CustomKeyStoreId=store_id)  # t=0.0
    clock.advance(0.3)
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)  # t=0.3
    clock.advance(DISCONNECT)
    client.delete_custom_key_store(CustomKeyStoreId=store_id)  # t=0.8
    assert clock.advance(1.2) == 102.0  # the clock starts at 100
    assert described(client, store_id)["ConnectionState"] == "CONNECTING"  # as of t=0.0
    clock.advance(0.5)
    assert described(client, store_id)["ConnectionState"] == "DISCONNECTING"  # as of t=0.5
    clock.advance(0.3)
    with pytest.raises(client.exceptions.CustomKeyStoreNotFoundException):  # as of t=0.8
        client.describe_custom_key_stores(CustomKeyStoreId=store_id)
    assert client.describe_custom_key_stores()["CustomKeyStores"] == []


def test_lag_set_at_construction_applies(make_emulator: Callable[..., Emulator]) -> None:
    clock = FakeClock()
    emu = make_emulator(clock=clock, consistency_lag=1.0, connect_seconds=0)
    store_id = emu.create_store("s")
    client = emu.client()
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert described(client, store_id)["ConnectionState"] == "DISCONNECTED"
    clock.advance(1.0)
    assert described(client, store_id)["ConnectionState"] == "CONNECTED"


def test_direct_set_up_accepts_every_state(emu: Emulator, client: Any, clock: FakeClock) -> None:
    ids = {
        state: emu.create_store(
            state.lower(), connection_state=state, error_code="SUBNET_NOT_FOUND" if state == "FAILED" else None
        )
        for state in ("DISCONNECTED", "CONNECTED", "FAILED", "CONNECTING", "DISCONNECTING")
    }
    for state, store_id in ids.items():
        assert described(client, store_id)["ConnectionState"] == state
    clock.advance(CONNECT)
    assert emu.state_of(ids["CONNECTING"]) == "CONNECTED"
    assert emu.state_of(ids["DISCONNECTING"]) == "DISCONNECTED"
    with pytest.raises(KeyError):
        emu.state_of("cks-00000000000000000")
