"""Injected faults, through unmodified boto3 (retries off unless a test is about retries), and the admin API."""

from __future__ import annotations

import contextlib
import json
import types
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import botocore.endpoint
import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from kms_connection.emulator import Emulator, EmulatorConfigError, FakeClock

NO_RETRY: dict[str, Any] = {"retries": {"total_max_attempts": 1}}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator], clock: FakeClock) -> Emulator:
    return make_emulator(clock=clock, connect_seconds=1.0, disconnect_seconds=0.5)


def error_of(call: Callable[[], Any]) -> tuple[str, int]:
    """(error code, HTTP status) of a call that must fail."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def admin(emu: Emulator, method: str, path: str, body: object = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(emu.endpoint_url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# -- throttling -------------------------------------------------------------------------------------


def test_throttling_is_off_by_default_in_process(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    for _ in range(30):
        client.describe_custom_key_stores()


def test_throttle_answers_throttling_exception_with_http_400_past_the_rate(emu: Emulator, clock: FakeClock) -> None:
    emu.set_throttle(5)
    client = emu.client(**NO_RETRY)
    for _ in range(5):
        client.describe_custom_key_stores()
    assert error_of(client.describe_custom_key_stores) == ("ThrottlingException", 400)
    clock.advance(0.2)  # one request's worth of tokens at 5 per second
    client.describe_custom_key_stores()
    assert error_of(client.describe_custom_key_stores) == ("ThrottlingException", 400)
    assert [call.outcome for call in emu.calls].count("ThrottlingException") == 2


def test_throttle_counts_each_operation_and_region_separately(emu: Emulator) -> None:
    emu.set_throttle(1)
    store_id = emu.create_store("s")
    east, west = emu.client("us-east-1", **NO_RETRY), emu.client("us-west-2", **NO_RETRY)
    east.describe_custom_key_stores()
    assert error_of(east.describe_custom_key_stores)[0] == "ThrottlingException"
    east.connect_custom_key_store(CustomKeyStoreId=store_id)
    west.describe_custom_key_stores()


def test_throttle_can_target_some_operations(emu: Emulator) -> None:
    emu.set_throttle(1, operations=["ConnectCustomKeyStore"])
    store_id = emu.create_store("s")
    client = emu.client(**NO_RETRY)
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert error_of(lambda: client.connect_custom_key_store(CustomKeyStoreId=store_id))[0] == "ThrottlingException"
    for _ in range(10):
        client.describe_custom_key_stores()


@pytest.mark.parametrize("off", [None, 0])
def test_throttle_none_or_zero_turns_it_off(emu: Emulator, off: float | None) -> None:
    emu.set_throttle(1)
    emu.set_throttle(off)
    client = emu.client(**NO_RETRY)
    for _ in range(10):
        client.describe_custom_key_stores()


def test_throttle_set_at_construction(make_emulator: Callable[..., Emulator]) -> None:
    client = make_emulator(clock=FakeClock(), throttle_rps=2).client(**NO_RETRY)
    client.describe_custom_key_stores()
    client.describe_custom_key_stores()
    assert error_of(client.describe_custom_key_stores)[0] == "ThrottlingException"


# -- fail next --------------------------------------------------------------------------------------


def test_fail_next_answers_kms_internal_exception_with_http_500(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    emu.fail_next(2)
    for _ in range(2):
        with pytest.raises(client.exceptions.KMSInternalException) as caught:
            client.describe_custom_key_stores()
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    client.describe_custom_key_stores()
    assert [call.outcome for call in emu.calls] == ["KMSInternalException", "KMSInternalException", "ok"]


def test_fail_next_can_target_one_operation(emu: Emulator) -> None:
    store_id = emu.create_store("s")
    client = emu.client(**NO_RETRY)
    emu.fail_next(1, operation="ConnectCustomKeyStore")
    client.describe_custom_key_stores()
    with pytest.raises(client.exceptions.KMSInternalException):
        client.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert emu.state_of(store_id) == "DISCONNECTED"  # a failed call changes nothing
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert emu.state_of(store_id) == "CONNECTING"


def test_fail_next_drop_closes_the_connection_without_an_answer(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    emu.fail_next(1, mode="drop")
    with pytest.raises(ConnectionClosedError):
        client.describe_custom_key_stores()
    client.describe_custom_key_stores()
    assert [call.outcome for call in emu.calls] == ["dropped", "ok"]


def test_fail_next_set_at_construction(make_emulator: Callable[..., Emulator]) -> None:
    client = make_emulator(fail_next=1).client(**NO_RETRY)
    with pytest.raises(client.exceptions.KMSInternalException):
        client.describe_custom_key_stores()
    client.describe_custom_key_stores()


def test_invalid_fault_settings_are_refused(emu: Emulator) -> None:
    with pytest.raises(EmulatorConfigError):
        emu.fail_next(1, operation="ListGrants")  # a KMS operation the emulator does not implement
    with pytest.raises(EmulatorConfigError):
        emu.fail_next(1, mode="explode")  # type: ignore[arg-type]
    with pytest.raises(EmulatorConfigError):
        emu.set_failure_rate(1.5)
    with pytest.raises(EmulatorConfigError):
        emu.set_connect_outcome("cks-00000000000000000", "fail", "NOT_A_CODE")
    with pytest.raises(EmulatorConfigError):
        emu.set_throttle(-1)


# -- failure rate -----------------------------------------------------------------------------------


def outcomes_with_failure_rate(make_emulator: Callable[..., Emulator], fraction: float, seed: int) -> list[str]:
    emu = make_emulator()
    emu.set_failure_rate(fraction, seed=seed)
    client = emu.client(**NO_RETRY)
    for _ in range(30):
        with contextlib.suppress(client.exceptions.KMSInternalException):
            client.describe_custom_key_stores()
    return [call.outcome for call in emu.calls]


def test_failure_rate_fails_a_reproducible_fraction_of_calls(make_emulator: Callable[..., Emulator]) -> None:
    first = outcomes_with_failure_rate(make_emulator, 0.5, seed=7)
    second = outcomes_with_failure_rate(make_emulator, 0.5, seed=7)
    other_seed = outcomes_with_failure_rate(make_emulator, 0.5, seed=8)
    assert first == second
    assert first != other_seed
    assert 5 <= first.count("KMSInternalException") <= 25


def test_failure_rate_bounds(make_emulator: Callable[..., Emulator]) -> None:
    assert set(outcomes_with_failure_rate(make_emulator, 0.0, seed=1)) == {"ok"}
    assert set(outcomes_with_failure_rate(make_emulator, 1.0, seed=1)) == {"KMSInternalException"}


# -- botocore retries -------------------------------------------------------------------------------


def test_standard_retry_mode_rides_out_internal_errors_and_throttling(
    emu: Emulator, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's own retry decisions; only its back-off sleeps are virtual (they advance the fake clock)."""
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=sleep))
    emu.set_throttle(5)
    client = emu.client(retries={"mode": "standard", "max_attempts": 10})
    for _ in range(5):  # use up the burst
        client.describe_custom_key_stores()
    emu.fail_next(2, operation="DescribeCustomKeyStores")
    response = client.describe_custom_key_stores()
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    outcomes = [call.outcome for call in emu.calls[5:]]
    assert outcomes[0] == "ThrottlingException"
    assert outcomes.count("KMSInternalException") == 2
    assert outcomes[-1] == "ok"
    assert response["ResponseMetadata"]["RetryAttempts"] == len(outcomes) - 1 == len(slept)


# -- connect outcomes -------------------------------------------------------------------------------


def test_connect_outcomes_set_at_construction(make_emulator: Callable[..., Emulator]) -> None:
    clock = FakeClock()
    emu = make_emulator(
        clock=clock,
        connect_seconds=1,
        default_connect_outcome="hang",
        connect_outcomes={"cks-0000000000000000a": "fail:USER_LOGGED_IN", "us-west-2/cks-0000000000000000b": "succeed"},
    )
    failing = emu.create_store("a", store_id="cks-0000000000000000a")
    west = emu.create_store("b", region="us-west-2", store_id="cks-0000000000000000b")
    hanging = emu.create_store("c")
    emu.client().connect_custom_key_store(CustomKeyStoreId=failing)
    emu.client().connect_custom_key_store(CustomKeyStoreId=hanging)
    emu.client("us-west-2").connect_custom_key_store(CustomKeyStoreId=west)
    clock.advance(5)
    assert emu.state_of(failing) == "FAILED"
    assert emu.state_of(west, region="us-west-2") == "CONNECTED"
    assert emu.state_of(hanging) == "CONNECTING"


# -- admin endpoints --------------------------------------------------------------------------------


def test_admin_endpoints_need_no_signature_and_are_not_logged(emu: Emulator) -> None:
    assert admin(emu, "GET", "/_emulator/health") == (200, {"status": "ok"})
    assert admin(emu, "GET", "/_emulator/calls") == (200, {"calls": []})
    assert emu.calls == []


def test_admin_fail_next_over_http(emu: Emulator) -> None:
    store_id = emu.create_store("s")
    status, settings = admin(
        emu, "POST", "/_emulator/faults", {"fail_next": {"count": 1, "operation": "ConnectCustomKeyStore"}}
    )
    assert status == 200
    assert settings["fail_next"] == [{"count": 1, "operation": "ConnectCustomKeyStore", "mode": "internal"}]
    client = emu.client(**NO_RETRY)
    client.describe_custom_key_stores()
    with pytest.raises(client.exceptions.KMSInternalException):
        client.connect_custom_key_store(CustomKeyStoreId=store_id)


def test_admin_drop_over_http(emu: Emulator) -> None:
    admin(emu, "POST", "/_emulator/faults", {"fail_next": {"count": 1, "mode": "drop"}})
    with pytest.raises(ConnectionClosedError):
        emu.client(**NO_RETRY).describe_custom_key_stores()


def test_admin_throttle_and_failure_rate_over_http(emu: Emulator) -> None:
    status, settings = admin(emu, "POST", "/_emulator/faults", {"throttle_rps": 1, "failure_rate": {"fraction": 0}})
    assert status == 200
    assert settings["throttle_rps"] == 1
    client = emu.client(**NO_RETRY)
    client.describe_custom_key_stores()
    assert error_of(client.describe_custom_key_stores)[0] == "ThrottlingException"
    admin(emu, "POST", "/_emulator/faults", {"throttle_rps": None, "failure_rate": 1})
    with pytest.raises(client.exceptions.KMSInternalException):
        client.describe_custom_key_stores()


def test_admin_connect_outcome_lag_and_timing_over_http(emu: Emulator, clock: FakeClock) -> None:
    store_id = emu.create_store("s")
    status, settings = admin(
        emu,
        "POST",
        "/_emulator/faults",
        {"connect_outcomes": {store_id: "fail:USER_LOCKED_OUT"}, "consistency_lag": 0.5, "connect_seconds": 2},
    )
    assert status == 200
    assert settings["connect_seconds"] == 2
    client = emu.client()
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    clock.advance(2)
    assert emu.state_of(store_id) == "FAILED"
    assert client.describe_custom_key_stores()["CustomKeyStores"][0]["ConnectionState"] == "CONNECTING"
    clock.advance(0.5)
    entry = client.describe_custom_key_stores()["CustomKeyStores"][0]
    assert (entry["ConnectionState"], entry["ConnectionErrorCode"]) == ("FAILED", "USER_LOCKED_OUT")


def test_admin_rejects_a_bad_request_and_applies_none_of_it(emu: Emulator) -> None:
    status, answer = admin(emu, "POST", "/_emulator/faults", {"fail_next": 1, "bogus": True})
    assert status == 400
    assert "bogus" in answer["error"]
    status, answer = admin(emu, "POST", "/_emulator/faults", {"fail_next": 1, "default_connect_outcome": "fail:NOPE"})
    assert status == 400
    emu.client(**NO_RETRY).describe_custom_key_stores()
    assert admin(emu, "GET", "/_emulator/nothing")[0] == 404


def test_admin_stores_shows_true_state_without_secrets(emu: Emulator) -> None:
    emu.set_consistency_lag(100)
    client = emu.client()
    store_id = client.create_custom_key_store(
        CustomKeyStoreName="s",
        CloudHsmClusterId="cluster-234567abcdefg",
        TrustAnchorCertificate="pem",
        KeyStorePassword="hunter2-hunter2",
    )["CustomKeyStoreId"]
    status, answer = admin(emu, "GET", "/_emulator/stores")
    assert status == 200
    assert [(s["CustomKeyStoreId"], s["Region"], s["ConnectionState"]) for s in answer["stores"]] == [
        (store_id, "us-east-1", "DISCONNECTED")
    ]
    assert "hunter2" not in json.dumps(answer)


def test_admin_reset_restores_the_initial_state(emu: Emulator) -> None:
    emu.create_store("s")
    emu.set_throttle(1)
    emu.client().describe_custom_key_stores()
    assert admin(emu, "POST", "/_emulator/reset") == (200, {})
    assert emu.calls == []
    client = emu.client(**NO_RETRY)
    for _ in range(3):
        assert client.describe_custom_key_stores()["CustomKeyStores"] == []


def test_admin_clear_calls(emu: Emulator) -> None:
    emu.client().describe_custom_key_stores()
    assert admin(emu, "DELETE", "/_emulator/calls") == (200, {})
    assert emu.calls == []
