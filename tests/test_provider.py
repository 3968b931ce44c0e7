"""The provider's methods against the emulator over HTTP: outputs, messages and the KMS calls they make."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import dill
import pytest
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.output import UNKNOWN

from kms_connection.emulator import Emulator
from kms_connection.errors import (
    ConnectFailedError,
    ConvergeTimeoutError,
    KeyStoreNotFoundError,
    KmsApiError,
    UnrecordedConnectionsError,
)
from kms_connection.gateway import KmsGateway
from kms_connection.provider import CustomKeyStoreConnectionProvider

MUTATING = {"ConnectCustomKeyStore", "DisconnectCustomKeyStore"}
REGION = "us-east-1"


@pytest.fixture
def provider(
    configured: Callable[[type[CustomKeyStoreConnectionProvider]], CustomKeyStoreConnectionProvider],
) -> CustomKeyStoreConnectionProvider:
    return configured(CustomKeyStoreConnectionProvider)


def store(emu: Emulator, state: str = "DISCONNECTED", name: str = "hsm", region: str = REGION) -> str:
    return emu.create_store(name, region=region, connection_state=state)


def inputs(store_id: str, **extra: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "custom_key_store_id": store_id,
        "desired_state": "CONNECTED",
        "on_delete": "disconnect",
        "connect_timeout_seconds": 30,
        "disconnect_timeout_seconds": 30,
        "region": REGION,
    }
    props.update(extra)
    return props


def operations(emu: Emulator) -> list[str]:
    return [call.operation for call in emu.calls]


def mutating(emu: Emulator) -> list[str]:
    return [op for op in operations(emu) if op in MUTATING]


# check


def test_check_fills_defaults_and_the_stack_region(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    result = provider.check({}, {"custom_key_store_id": "cks-1234567890abcdef0", "desired_state": "connected"})
    assert result.failures == []
    assert result.inputs == inputs(
        "cks-1234567890abcdef0", connect_timeout_seconds=1800, disconnect_timeout_seconds=900
    )


def test_check_of_a_new_resource_reads_its_store_once_and_prints_the_plan_line(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    store_id = kms_emulator.create_store("primary")

    result = provider.check({}, {"custom_key_store_id": store_id, "desired_state": "CONNECTED"})

    assert result.failures == []
    assert [(call.operation, call.store_id) for call in kms_emulator.calls] == [("DescribeCustomKeyStores", store_id)]
    assert f"{store_id}: observed DISCONNECTED, desired CONNECTED: will connect" in capsys.readouterr().err


def test_check_of_a_new_resource_naming_a_missing_store_says_up_will_fail_and_passes(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    result = provider.check({}, {"custom_key_store_id": "cks-1234567890abcdef0"})

    assert result.failures == []
    assert "cks-1234567890abcdef0: not found in us-east-1: `pulumi up` will look for it" in capsys.readouterr().err


def test_check_of_a_new_resource_passes_when_kms_cannot_be_read(
    provider: CustomKeyStoreConnectionProvider,
    kms_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What botocore raises once its retries are spent, without waiting them out.
    def unreadable(_gateway: KmsGateway, store_id: str) -> None:
        raise KmsApiError(store_id, "us-east-1", "DescribeCustomKeyStores", "KMSInternalException", "internal error.")

    monkeypatch.setattr(KmsGateway, "describe", unreadable)

    result = provider.check({}, {"custom_key_store_id": "cks-1234567890abcdef0"})

    assert result.failures == []
    assert "not read before creating the resource" in capsys.readouterr().err


def test_check_of_invalid_inputs_or_an_existing_resource_calls_no_kms(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store_id = kms_emulator.create_store("primary")

    invalid = provider.check({}, {"custom_key_store_id": store_id, "desired_state": "SOMETIMES"})
    existing = provider.check(inputs(store_id), {"custom_key_store_id": store_id})

    assert invalid.failures and not existing.failures
    assert kms_emulator.calls == []


def test_check_reports_each_bad_property_by_name(provider: CustomKeyStoreConnectionProvider) -> None:
    result = provider.check({}, {"custom_key_store_id": "my-store", "on_delete": "keep", "regoin": "us-east-1"})
    assert sorted(f.property for f in result.failures) == ["custom_key_store_id", "on_delete", "regoin"]


def test_check_passes_unknown_values_through(provider: CustomKeyStoreConnectionProvider) -> None:
    store_id, desired = UNKNOWN, UNKNOWN
    result = provider.check({}, {"custom_key_store_id": store_id, "desired_state": desired})
    assert result.failures == []
    assert result.inputs["custom_key_store_id"] is store_id
    assert result.inputs["desired_state"] is desired


# diff


def test_diff_of_a_settled_store_reports_no_change_after_one_describe(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store_id = store(kms_emulator, "CONNECTED")
    olds = {**inputs(store_id), "connection_state": "CONNECTED"}
    result = provider.diff(store_id, olds, inputs(store_id))
    assert result.changes is False
    assert operations(kms_emulator) == ["DescribeCustomKeyStores"]


def test_diff_reports_drift_and_prints_the_plan(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    store_id = store(kms_emulator, "DISCONNECTED")
    olds = {**inputs(store_id), "connection_state": "CONNECTED"}
    result = provider.diff(store_id, olds, inputs(store_id))
    assert result.changes is True
    assert result.replaces == []
    assert f"{store_id}: observed DISCONNECTED, desired CONNECTED: will connect" in capsys.readouterr().err
    assert mutating(kms_emulator) == []


def test_diff_of_a_failed_store_plans_disconnect_then_connect(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    store_id = store(kms_emulator, "DISCONNECTED")
    kms_emulator.set_connect_outcome(store_id, "fail", "USER_LOCKED_OUT")
    kms_emulator.client().connect_custom_key_store(CustomKeyStoreId=store_id)
    kms_emulator.clear_calls()
    _wait_for(kms_emulator, store_id, "FAILED")
    result = provider.diff(store_id, inputs(store_id), inputs(store_id))
    assert result.changes is True
    assert (
        f"{store_id}: observed FAILED (USER_LOCKED_OUT), desired CONNECTED: will disconnect, then connect"
        in capsys.readouterr().err
    )
    assert operations(kms_emulator) == ["DescribeCustomKeyStores"]


@pytest.mark.parametrize("key", ["custom_key_store_id", "region"])
def test_diff_replaces_when_the_store_or_region_changes_without_calling_kms(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator, key: str
) -> None:
    new_value = {"custom_key_store_id": "cks-00000000000000001", "region": "eu-west-1"}[key]
    olds = inputs("cks-1234567890abcdef0")
    result = provider.diff("cks-1234567890abcdef0", olds, {**olds, key: new_value})
    assert result.changes is True
    assert result.replaces == [key]
    assert kms_emulator.calls == []


def test_diff_replaces_when_the_store_id_is_unknown_during_preview(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    olds = inputs("cks-1234567890abcdef0")
    result = provider.diff("cks-1234567890abcdef0", olds, {**olds, "custom_key_store_id": UNKNOWN})
    assert result.replaces == ["custom_key_store_id"]
    assert kms_emulator.calls == []


def test_diff_updates_in_place_when_only_a_timeout_changes(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store_id = store(kms_emulator, "CONNECTED")
    result = provider.diff(store_id, inputs(store_id), inputs(store_id, connect_timeout_seconds=60))
    assert (result.changes, result.replaces) == (True, [])
    assert mutating(kms_emulator) == []


# create / update


def test_create_connects_and_returns_full_outputs(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store_id = store(kms_emulator, "DISCONNECTED", name="primary")
    result = provider.create(inputs(store_id))
    assert result.id.startswith(f"{store_id}/")
    assert result.outs is not None
    assert result.outs["connection_state"] == "CONNECTED"
    assert result.outs["custom_key_store_name"] == "primary"
    assert result.outs["custom_key_store_type"] == "AWS_CLOUDHSM"
    assert result.outs["region"] == REGION
    assert result.outs["desired_state"] == "CONNECTED"
    assert mutating(kms_emulator) == ["ConnectCustomKeyStore"]
    assert kms_emulator.state_of(store_id) == "CONNECTED"


def test_create_adopts_a_connected_store_with_one_describe(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store_id = store(kms_emulator, "CONNECTED")
    result = provider.create(inputs(store_id))
    assert result.outs is not None and result.outs["connection_state"] == "CONNECTED"
    assert operations(kms_emulator) == ["DescribeCustomKeyStores"]


def test_create_repairs_a_failed_store_by_disconnecting_first(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store_id = store(kms_emulator, "DISCONNECTED")
    kms_emulator.set_connect_outcome(store_id, "fail", "NETWORK_ERRORS")
    kms_emulator.client().connect_custom_key_store(CustomKeyStoreId=store_id)
    _wait_for(kms_emulator, store_id, "FAILED")
    kms_emulator.set_connect_outcome(store_id, "succeed")
    kms_emulator.clear_calls()
    result = provider.create(inputs(store_id))
    assert result.outs is not None and result.outs["connection_state"] == "CONNECTED"
    assert mutating(kms_emulator) == ["DisconnectCustomKeyStore", "ConnectCustomKeyStore"]


def test_create_that_ends_failed_names_the_store_the_code_and_the_remedy(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store_id = store(kms_emulator, "DISCONNECTED")
    kms_emulator.set_connect_outcome(store_id, "fail", "USER_NOT_FOUND")
    with pytest.raises(ConnectFailedError) as raised:
        provider.create(inputs(store_id))
    message = str(raised.value)
    assert store_id in message and REGION in message
    assert "USER_NOT_FOUND" in message
    assert "create kmsuser" in message
    assert mutating(kms_emulator) == ["ConnectCustomKeyStore"]


def test_create_times_out_naming_the_last_state_and_the_wait(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store_id = store(kms_emulator, "DISCONNECTED")
    kms_emulator.set_connect_outcome(store_id, "hang")
    with pytest.raises(UnrecordedConnectionsError) as raised:
        provider.create(inputs(store_id, connect_timeout_seconds=1))
    assert isinstance(raised.value.cause, ConvergeTimeoutError)
    assert "still CONNECTING after waiting 1 s for CONNECTED" in str(raised.value)
    assert "connect_timeout_seconds" in str(raised.value)


def test_a_failed_create_that_left_its_store_connecting_names_the_command_that_disconnects_it(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store_id = store(kms_emulator, "DISCONNECTED")
    kms_emulator.set_connect_outcome(store_id, "hang")
    with pytest.raises(UnrecordedConnectionsError) as raised:
        provider.create(inputs(store_id, connect_timeout_seconds=1))
    assert raised.value.store_ids == [store_id]
    assert str(raised.value).endswith(
        f"  aws kms disconnect-custom-key-store --custom-key-store-id {store_id} --region {REGION} "
        f"--endpoint-url {kms_emulator.endpoint_url}"
    )


def test_create_of_a_store_created_a_moment_ago_waits_until_kms_shows_it(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    kms_emulator.set_consistency_lag(1.0)
    store_id = kms_emulator.client().create_custom_key_store(
        CustomKeyStoreName="brand-new",
        CustomKeyStoreType="EXTERNAL_KEY_STORE",
        XksProxyUriEndpoint="https://xks.example.com",
        XksProxyUriPath="/kms/xks/v1",
        XksProxyConnectivity="PUBLIC_ENDPOINT",
        XksProxyAuthenticationCredential={"AccessKeyId": "A" * 20, "RawSecretAccessKey": "s" * 43},
    )["CustomKeyStoreId"]
    result = provider.create(inputs(store_id))
    assert result.outs is not None and result.outs["connection_state"] == "CONNECTED"
    assert mutating(kms_emulator) == ["ConnectCustomKeyStore"]


def test_create_of_a_missing_store_fails_without_a_mutating_call(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    # A one-second timeout cuts short the grace period a store that was just created gets to show up.
    with pytest.raises(KeyStoreNotFoundError, match="cks-00000000000000bad in us-east-1: not found"):
        provider.create(inputs("cks-00000000000000bad", connect_timeout_seconds=1))
    assert mutating(kms_emulator) == []


def test_update_to_disconnected_disconnects_and_waits(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store_id = store(kms_emulator, "CONNECTED")
    result = provider.update(store_id, inputs(store_id), inputs(store_id, desired_state="DISCONNECTED"))
    assert result.outs is not None and result.outs["connection_state"] == "DISCONNECTED"
    assert mutating(kms_emulator) == ["DisconnectCustomKeyStore"]
    assert kms_emulator.state_of(store_id) == "DISCONNECTED"


def test_update_of_a_timeout_only_reads_the_store(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store_id = store(kms_emulator, "CONNECTED")
    result = provider.update(store_id, inputs(store_id), inputs(store_id, connect_timeout_seconds=60))
    assert result.outs is not None and result.outs["connect_timeout_seconds"] == 60
    assert operations(kms_emulator) == ["DescribeCustomKeyStores"]


# delete


def test_delete_disconnects_and_waits(provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator) -> None:
    store_id = store(kms_emulator, "CONNECTED")
    provider.delete(store_id, inputs(store_id))
    assert kms_emulator.state_of(store_id) == "DISCONNECTED"
    assert mutating(kms_emulator) == ["DisconnectCustomKeyStore"]


def test_delete_with_retain_makes_no_call(provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator) -> None:
    store_id = store(kms_emulator, "CONNECTED")
    provider.delete(store_id, inputs(store_id, on_delete="retain"))
    assert kms_emulator.calls == []
    assert kms_emulator.state_of(store_id) == "CONNECTED"


def test_delete_of_a_store_already_gone_warns_and_succeeds(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    provider.delete("cks-00000000000000bad", inputs("cks-00000000000000bad"))
    assert "warning: cks-00000000000000bad: not found in us-east-1" in capsys.readouterr().err
    assert mutating(kms_emulator) == []


# read


def test_read_returns_the_observed_state_and_the_inputs(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store_id = store(kms_emulator, "DISCONNECTED")
    olds = {**inputs(store_id), "connection_state": "CONNECTED"}
    result = provider.read(store_id, olds)
    assert result.id == store_id
    assert result.outs is not None and result.outs["connection_state"] == "DISCONNECTED"
    assert result.inputs == inputs(store_id)
    assert operations(kms_emulator) == ["DescribeCustomKeyStores"]


def test_read_of_a_deleted_store_returns_an_empty_id(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    result = provider.read("cks-00000000000000bad", inputs("cks-00000000000000bad"))
    assert result.id == ""


# configuration and serialization


def test_a_per_resource_region_reaches_that_regions_stores(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store_id = store(kms_emulator, "CONNECTED", region="eu-west-1")
    result = provider.create(inputs(store_id, region="eu-west-1"))
    assert result.outs is not None and result.outs["region"] == "eu-west-1"
    assert {call.region for call in kms_emulator.calls} == {"eu-west-1"}


def test_the_serialized_provider_is_a_small_class_reference_without_credentials(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store(kms_emulator, "CONNECTED")
    provider.gateway(REGION)  # a live client must not leak into the pickle
    serialized = serialize_provider(provider)
    raw = base64.b64decode(serialized)
    assert len(serialized) <= 200
    assert b"AKIDPROVIDERTEST0001" not in raw and b"provider-test-secret" not in raw
    assert b"kms_connection.provider" in raw
    assert isinstance(dill.loads(raw), CustomKeyStoreConnectionProvider)


def _wait_for(emu: Emulator, store_id: str, state: str) -> None:
    deadline = time.monotonic() + 5
    while emu.state_of(store_id) != state:
        assert time.monotonic() < deadline, f"{store_id} never reached {state}"
        time.sleep(0.02)


def test_delete_leaves_the_store_connected_when_another_resource_of_the_deployment_connected_it(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    store_id = store(kms_emulator, "DISCONNECTED")
    old = provider.create(inputs(store_id, resource_name="hsm"))
    # The same store under a new name: created before the old is deleted.
    new = provider.create(inputs(store_id, resource_name="primary-hsm"))
    assert old.outs is not None
    provider.delete(old.id, old.outs)
    assert kms_emulator.state_of(store_id) == "CONNECTED"
    expected = f"{store_id}: declared CONNECTED by CustomKeyStoreConnection 'primary-hsm' in this stack: leaving it"
    assert expected in capsys.readouterr().err
    assert new.outs is not None
    provider.delete(new.id, new.outs)
    assert kms_emulator.state_of(store_id) == "DISCONNECTED"


def test_a_resource_created_again_after_a_failed_create_disconnects_its_store_on_delete(
    provider: CustomKeyStoreConnectionProvider, kms_emulator: Emulator
) -> None:
    store_id = store(kms_emulator, "DISCONNECTED")
    kms_emulator.set_connect_outcome(store_id, "hang")
    with pytest.raises(UnrecordedConnectionsError):
        provider.create(inputs(store_id, connect_timeout_seconds=1, resource_name="hsm"))
    kms_emulator.set_connect_outcome(store_id, "succeed")
    kms_emulator.client().disconnect_custom_key_store(CustomKeyStoreId=store_id)
    _wait_for(kms_emulator, store_id, "DISCONNECTED")
    kept = provider.create(inputs(store_id, resource_name="hsm"))
    assert kept.outs is not None
    provider.delete(kept.id, kept.outs)
    assert kms_emulator.state_of(store_id) == "DISCONNECTED"
