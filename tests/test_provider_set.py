"""CustomKeyStoreConnectionSet's provider against the emulator: many stores converge together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pulumi.output import UNKNOWN

from kms_connection.emulator import Emulator
from kms_connection.errors import KeyStoreSetError, UnrecordedConnectionsError
from kms_connection.provider import CustomKeyStoreConnectionSetProvider

REGION = "us-east-1"
MUTATING = {"ConnectCustomKeyStore", "DisconnectCustomKeyStore"}


@pytest.fixture
def provider(
    configured: Callable[[type[CustomKeyStoreConnectionSetProvider]], CustomKeyStoreConnectionSetProvider],
) -> CustomKeyStoreConnectionSetProvider:
    return configured(CustomKeyStoreConnectionSetProvider)


def stores(emu: Emulator, count: int, state: str = "DISCONNECTED") -> list[str]:
    return [emu.create_store(f"store-{i}", connection_state=state) for i in range(count)]


def inputs(store_ids: list[Any], **extra: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "custom_key_store_ids": store_ids,
        "desired_state": "CONNECTED",
        "on_delete": "disconnect",
        "connect_timeout_seconds": 30,
        "disconnect_timeout_seconds": 30,
        "region": REGION,
    }
    props.update(extra)
    return props


def operations(emu: Emulator, kinds: set[str] | None = None) -> list[str]:
    return [call.operation for call in emu.calls if kinds is None or call.operation in kinds]


def test_check_names_the_bad_member_by_index(provider: CustomKeyStoreConnectionSetProvider) -> None:
    result = provider.check({}, {"custom_key_store_ids": ["cks-1234567890abcdef0", "my-store"]})
    assert [f.property for f in result.failures] == ["custom_key_store_ids"]
    assert result.failures[0].reason.startswith("custom_key_store_ids[1]: custom_key_store_id must be")


def test_check_rejects_a_store_listed_twice(provider: CustomKeyStoreConnectionSetProvider) -> None:
    result = provider.check({}, {"custom_key_store_ids": ["cks-1234567890abcdef0"] * 2})
    assert result.failures[0].reason == "custom_key_store_ids[1]: cks-1234567890abcdef0 is listed twice."


def test_check_rejects_an_empty_set(provider: CustomKeyStoreConnectionSetProvider) -> None:
    result = provider.check({}, {"custom_key_store_ids": []})
    assert "must be a non-empty list" in result.failures[0].reason


def test_create_connects_every_store_with_one_connect_each(
    provider: CustomKeyStoreConnectionSetProvider, kms_emulator: Emulator
) -> None:
    store_ids = stores(kms_emulator, 3)
    result = provider.create(inputs(store_ids))
    assert result.id.startswith("ckss-")
    assert result.outs is not None
    assert result.outs["connection_states"] == dict.fromkeys(store_ids, "CONNECTED")
    assert sorted(operations(kms_emulator, MUTATING)) == ["ConnectCustomKeyStore"] * 3


def test_ten_stores_are_all_asked_before_the_first_wait_and_waited_for_together(
    provider: CustomKeyStoreConnectionSetProvider, kms_emulator: Emulator
) -> None:
    store_ids = stores(kms_emulator, 10)
    provider.create(inputs(store_ids))
    log = operations(kms_emulator)
    # One read, ten requests, then reads that each cover the whole set: no store waits for another's turn.
    assert log[0] == "DescribeCustomKeyStores"
    assert log[1:11] == ["ConnectCustomKeyStore"] * 10
    assert set(log[11:]) == {"DescribeCustomKeyStores"}
    assert len(log[11:]) <= 3


def test_diff_reads_the_whole_set_with_one_call(
    provider: CustomKeyStoreConnectionSetProvider, kms_emulator: Emulator
) -> None:
    store_ids = stores(kms_emulator, 4, state="CONNECTED")
    result = provider.diff("ckss-1", inputs(store_ids), inputs(store_ids))
    assert result.changes is False
    assert operations(kms_emulator) == ["DescribeCustomKeyStores"]


def test_diff_prints_a_plan_line_for_each_drifted_store(
    provider: CustomKeyStoreConnectionSetProvider, kms_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    connected = stores(kms_emulator, 1, state="CONNECTED")
    drifted = [kms_emulator.create_store("drifted")]
    result = provider.diff("ckss-1", inputs(connected + drifted), inputs(connected + drifted))
    assert result.changes is True
    err = capsys.readouterr().err
    assert f"{drifted[0]}: observed DISCONNECTED, desired CONNECTED: will connect" in err
    assert connected[0] not in err


def test_diff_with_an_unknown_member_makes_no_call(
    provider: CustomKeyStoreConnectionSetProvider, kms_emulator: Emulator
) -> None:
    result = provider.diff("ckss-1", inputs(["cks-1234567890abcdef0"]), inputs([UNKNOWN]))
    assert (result.changes, result.replaces) == (True, [])
    assert kms_emulator.calls == []


def test_diff_replaces_the_set_when_the_region_changes(
    provider: CustomKeyStoreConnectionSetProvider, kms_emulator: Emulator
) -> None:
    olds = inputs(["cks-1234567890abcdef0"])
    result = provider.diff("ckss-1", olds, {**olds, "region": "eu-west-1"})
    assert result.replaces == ["region"]
    assert kms_emulator.calls == []


def test_a_store_removed_from_the_set_is_disconnected(
    provider: CustomKeyStoreConnectionSetProvider, kms_emulator: Emulator
) -> None:
    kept, removed = stores(kms_emulator, 2, state="CONNECTED")
    result = provider.update("ckss-1", inputs([kept, removed]), inputs([kept]))
    assert result.outs is not None and result.outs["connection_states"] == {kept: "CONNECTED"}
    assert kms_emulator.state_of(removed) == "DISCONNECTED"
    assert kms_emulator.state_of(kept) == "CONNECTED"


def test_a_store_removed_from_a_retained_set_is_left_alone(
    provider: CustomKeyStoreConnectionSetProvider, kms_emulator: Emulator
) -> None:
    kept, removed = stores(kms_emulator, 2, state="CONNECTED")
    provider.update("ckss-1", inputs([kept, removed], on_delete="retain"), inputs([kept], on_delete="retain"))
    assert kms_emulator.state_of(removed) == "CONNECTED"
    assert operations(kms_emulator, MUTATING) == []


def test_failures_of_several_stores_are_reported_together_after_the_others_converge(
    provider: CustomKeyStoreConnectionSetProvider, kms_emulator: Emulator
) -> None:
    healthy, locked, lost = stores(kms_emulator, 3)
    kms_emulator.set_connect_outcome(locked, "fail", "USER_LOCKED_OUT")
    kms_emulator.set_connect_outcome(lost, "fail", "CLUSTER_NOT_FOUND")
    with pytest.raises(UnrecordedConnectionsError) as raised:
        provider.create(inputs([healthy, locked, lost]))
    assert isinstance(raised.value.cause, KeyStoreSetError)
    message = str(raised.value)
    assert "2 custom key stores did not converge" in message
    assert f"{locked} in {REGION}: connecting failed with ConnectionErrorCode USER_LOCKED_OUT" in message
    assert "CLUSTER_NOT_FOUND" in message
    assert f"These converged: {healthy}." in message
    assert kms_emulator.state_of(healthy) == "CONNECTED"


def test_delete_disconnects_every_store_and_skips_missing_ones(
    provider: CustomKeyStoreConnectionSetProvider, kms_emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    store_ids = stores(kms_emulator, 2, state="CONNECTED")
    provider.delete("ckss-1", inputs([*store_ids, "cks-00000000000000bad"]))
    assert [kms_emulator.state_of(s) for s in store_ids] == ["DISCONNECTED", "DISCONNECTED"]
    assert "warning: cks-00000000000000bad: not found" in capsys.readouterr().err


def test_read_reports_each_store_and_drops_a_set_whose_stores_are_all_gone(
    provider: CustomKeyStoreConnectionSetProvider, kms_emulator: Emulator
) -> None:
    store_ids = stores(kms_emulator, 2, state="CONNECTED")
    result = provider.read("ckss-1", inputs(store_ids))
    assert result.id == "ckss-1"
    assert result.outs is not None and result.outs["connection_states"] == dict.fromkeys(store_ids, "CONNECTED")
    assert result.inputs == inputs(store_ids)
    assert provider.read("ckss-2", inputs(["cks-00000000000000bad"])).id == ""
