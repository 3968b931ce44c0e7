"""State file (restart, atomic writes, corrupt files) and seeds (file, list, local/seed.json)."""

from __future__ import annotations

import json
import os
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kms_connection.emulator import Emulator, EmulatorStateError, FakeClock
from kms_connection.emulator import persistence as persistence_module

NO_RETRY: dict[str, Any] = {"retries": {"total_max_attempts": 1}}
REPO = Path(__file__).resolve().parent.parent
PASSWORD = "kmsuser-Pa55word"
XKS_SECRET = "XksSecretXksSecretXksSecretXksSecretXksSecret0123"


def hsm_params(name: str = "hsm") -> dict[str, Any]:
    return {
        "CustomKeyStoreName": name,
        "CloudHsmClusterId": "cluster-234567abcdefg",
        "TrustAnchorCertificate": "pem",
        "KeyStorePassword": PASSWORD,
    }


def xks_params(name: str = "xks") -> dict[str, Any]:
    return {
        "CustomKeyStoreName": name,
        "CustomKeyStoreType": "EXTERNAL_KEY_STORE",
        "XksProxyUriEndpoint": "https://xks.example.com",
        "XksProxyUriPath": "/kms/xks/v1",
        "XksProxyAuthenticationCredential": {"AccessKeyId": "ABCDEFGHIJKLMNOPQRST", "RawSecretAccessKey": XKS_SECRET},
        "XksProxyConnectivity": "PUBLIC_ENDPOINT",
    }


# -- state file -------------------------------------------------------------------------------------


def test_stores_survive_a_restart_with_the_same_state_file(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    clock = FakeClock()
    first = make_emulator(clock=clock, state_file=state_file, connect_seconds=1)
    client = first.client()
    hsm = client.create_custom_key_store(**hsm_params())["CustomKeyStoreId"]
    xks = client.create_custom_key_store(**xks_params())["CustomKeyStoreId"]
    west = first.client("us-west-2").create_custom_key_store(**hsm_params("west"))["CustomKeyStoreId"]
    client.connect_custom_key_store(CustomKeyStoreId=hsm)
    clock.advance(1)
    before = client.describe_custom_key_stores()["CustomKeyStores"]
    first.stop()

    second = make_emulator(clock=FakeClock(), state_file=state_file)
    after = second.client().describe_custom_key_stores()["CustomKeyStores"]
    assert after == before
    assert [s["CustomKeyStoreId"] for s in after] == [hsm, xks]
    assert second.state_of(hsm) == "CONNECTED"
    assert second.state_of(west, region="us-west-2") == "DISCONNECTED"


def test_a_transition_under_way_continues_after_a_restart(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    first = make_emulator(clock=FakeClock(), state_file=state_file, connect_seconds=30)
    store_id = first.client().create_custom_key_store(**hsm_params())["CustomKeyStoreId"]
    first.client().connect_custom_key_store(CustomKeyStoreId=store_id)
    first.stop()
    clock = FakeClock()
    second = make_emulator(clock=clock, state_file=state_file)
    assert second.state_of(store_id) == "CONNECTING"
    clock.advance(30)
    assert second.state_of(store_id) == "CONNECTED"


def test_state_file_is_replaced_atomically_and_holds_no_secret(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    state_file = tmp_path / "nested" / "state.json"
    emu = make_emulator(state_file=state_file)
    client = emu.client()
    hsm = client.create_custom_key_store(**hsm_params())["CustomKeyStoreId"]
    client.create_custom_key_store(**xks_params())
    client.update_custom_key_store(CustomKeyStoreId=hsm, KeyStorePassword=PASSWORD + "x")
    text = state_file.read_text()
    document = json.loads(text)
    assert document["format"] == "kms-connection-emulator-state"
    assert len(document["stores"]) == 2
    assert PASSWORD not in text and XKS_SECRET not in text
    assert os.listdir(state_file.parent) == ["state.json"]  # no temporary file left behind
    assert (state_file.stat().st_mode & 0o077) == 0  # readable by its owner only


def test_a_change_that_cannot_be_saved_fails_and_is_rolled_back(
    make_emulator: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_file = tmp_path / "state.json"
    emu = make_emulator(state_file=state_file)
    client = emu.client(**NO_RETRY)
    store_id = client.create_custom_key_store(**hsm_params())["CustomKeyStoreId"]
    saved = state_file.read_text()

    def broken_replace(source: str, destination: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(persistence_module, "os", types.SimpleNamespace(**{**vars(os), "replace": broken_replace}))
    with pytest.raises(client.exceptions.KMSInternalException):
        client.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert emu.state_of(store_id) == "DISCONNECTED"
    assert state_file.read_text() == saved
    assert os.listdir(tmp_path) == ["state.json"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[]", "not an emulator state file"),
        ('{"format": "kms-connection-emulator-state", "version": 99, "stores": []}', "version 99"),
        ('{"format": "kms-connection-emulator-state", "version": 1, "stores": {}}', "must be a list"),
        (
            '{"format": "kms-connection-emulator-state", "version": 1, '
            '"stores": [{"CustomKeyStoreType": "AWS_CLOUDHSM", "Connection": {"State": "SLEEPING"}}]}',
            "stores[0].Connection: State must be a ConnectionState",
        ),
    ],
)
def test_corrupt_state_file_is_a_clear_error(tmp_path: Path, content: str, problem: str) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_text(content)
    with pytest.raises(EmulatorStateError) as caught:
        Emulator(state_file=state_file)
    assert str(state_file) in str(caught.value)
    assert problem in str(caught.value)
    assert state_file.read_text() == content  # never reset behind the user's back


def test_unreadable_state_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmulatorStateError, match="cannot be read"):
        Emulator(state_file=tmp_path)  # a directory


def test_without_a_state_file_nothing_survives(make_emulator: Callable[..., Emulator]) -> None:
    make_emulator().create_store("ephemeral")
    assert make_emulator().client().describe_custom_key_stores()["CustomKeyStores"] == []


# -- seeds ------------------------------------------------------------------------------------------

SEED: list[dict[str, Any]] = [
    {
        "CustomKeyStoreId": "cks-aaaaaaaaaaaaaaaaa",
        "CustomKeyStoreName": "seeded-hsm",
        "CloudHsmClusterId": "cluster-234567abcdefg",
        "TrustAnchorCertificate": "pem",
        "ConnectionState": "CONNECTED",
    },
    {
        "CustomKeyStoreId": "cks-bbbbbbbbbbbbbbbbb",
        "CustomKeyStoreName": "seeded-xks",
        "CustomKeyStoreType": "EXTERNAL_KEY_STORE",
        "XksProxyUriEndpoint": "https://xks.example.com",
        "XksProxyUriPath": "/kms/xks/v1",
        "XksProxyConnectivity": "PUBLIC_ENDPOINT",
        "XksProxyAuthenticationCredential": {"AccessKeyId": "ABCDEFGHIJKLMNOPQRST"},
        "Region": "eu-west-1",
        "ConnectOutcome": "fail:XKS_PROXY_NOT_REACHABLE",
    },
    {
        "CustomKeyStoreId": "cks-ccccccccccccccccc",
        "CustomKeyStoreName": "seeded-failed",
        "CloudHsmClusterId": "cluster-234567abcdefh",
        "TrustAnchorCertificate": "pem",
        "ConnectionState": "FAILED",
        "ConnectionErrorCode": "USER_LOCKED_OUT",
    },
]


def test_seed_list_creates_stores_with_fixed_ids_states_and_outcomes(make_emulator: Callable[..., Emulator]) -> None:
    clock = FakeClock()
    emu = make_emulator(clock=clock, seed=SEED, connect_seconds=1)
    east = emu.client().describe_custom_key_stores()["CustomKeyStores"]
    assert [(s["CustomKeyStoreId"], s["ConnectionState"]) for s in east] == [
        ("cks-aaaaaaaaaaaaaaaaa", "CONNECTED"),
        ("cks-ccccccccccccccccc", "FAILED"),
    ]
    assert east[1]["ConnectionErrorCode"] == "USER_LOCKED_OUT"
    west = emu.client("eu-west-1")
    west.connect_custom_key_store(CustomKeyStoreId="cks-bbbbbbbbbbbbbbbbb")
    clock.advance(1)
    entry = west.describe_custom_key_stores(CustomKeyStoreName="seeded-xks")["CustomKeyStores"][0]
    assert (entry["ConnectionState"], entry["ConnectionErrorCode"]) == ("FAILED", "XKS_PROXY_NOT_REACHABLE")
    assert emu.calls[0].operation == "DescribeCustomKeyStores"  # seeding is not a call


def test_seed_file_creates_stores(make_emulator: Callable[..., Emulator], tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED))
    emu = make_emulator(seed=str(seed))
    assert emu.state_of("cks-aaaaaaaaaaaaaaaaa") == "CONNECTED"


def test_seed_does_not_overwrite_a_store_from_the_state_file(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    clock = FakeClock()
    first = make_emulator(seed=SEED, state_file=state_file, clock=clock, disconnect_seconds=1)
    first.client().disconnect_custom_key_store(CustomKeyStoreId="cks-aaaaaaaaaaaaaaaaa")
    clock.advance(1)
    first.stop()
    second = make_emulator(seed=SEED, state_file=state_file, clock=FakeClock())
    assert second.state_of("cks-aaaaaaaaaaaaaaaaa") == "DISCONNECTED"
    assert len(second.client().describe_custom_key_stores()["CustomKeyStores"]) == 2


def test_reset_brings_back_the_seeds(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(seed=SEED)
    client = emu.client()
    client.disconnect_custom_key_store(CustomKeyStoreId="cks-aaaaaaaaaaaaaaaaa")
    emu.create_store("extra")
    emu.reset()
    stores = client.describe_custom_key_stores()["CustomKeyStores"]
    assert [(s["CustomKeyStoreId"], s["ConnectionState"]) for s in stores] == [
        ("cks-aaaaaaaaaaaaaaaaa", "CONNECTED"),
        ("cks-ccccccccccccccccc", "FAILED"),
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"Colour": "blue"}, "unknown key 'Colour'"),
        ({"CustomKeyStoreName": None}, "CustomKeyStoreName"),
        ({"CloudHsmClusterId": None}, "requires CloudHsmClusterId"),
        ({"ConnectionState": "FAILED"}, "needs a ConnectionErrorCode"),
        ({"ConnectionState": "ASLEEP"}, "enum value set"),
        ({"ConnectOutcome": "explode"}, "ConnectOutcome"),
        (
            {"ConnectionState": "FAILED", "ConnectionErrorCode": "XKS_PROXY_TIMED_OUT"},
            "ConnectionErrorCode XKS_PROXY_TIMED_OUT belongs to EXTERNAL_KEY_STORE stores, not AWS_CLOUDHSM",
        ),
    ],
)
def test_bad_seed_is_a_clear_error(change: dict[str, Any], problem: str) -> None:
    entry = {k: v for k, v in (SEED[0] | change).items() if v is not None}
    with pytest.raises(EmulatorStateError) as caught:
        Emulator(seed=[entry])
    assert "entry 0" in str(caught.value)
    assert problem in str(caught.value)


def test_seed_file_that_is_not_json_is_a_clear_error(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text("{oops")
    with pytest.raises(EmulatorStateError, match=r"seed\.json: not valid JSON"):
        Emulator(seed=str(seed))


def test_local_demo_seed_has_the_two_stores_of_the_demo_stack(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(seed=str(REPO / "local" / "seed.json"))
    stores = {s["CustomKeyStoreId"]: s for s in emu.client().describe_custom_key_stores()["CustomKeyStores"]}
    hsm, xks = stores["cks-0123456789abcdef0"], stores["cks-0fedcba9876543210"]
    assert (hsm["CustomKeyStoreName"], hsm["CustomKeyStoreType"], hsm["ConnectionState"]) == (
        "local-hsm",
        "AWS_CLOUDHSM",
        "DISCONNECTED",
    )
    assert hsm["CloudHsmClusterId"] == "cluster-2a3b4c5d6e7"
    assert (xks["CustomKeyStoreName"], xks["CustomKeyStoreType"], xks["ConnectionState"]) == (
        "local-xks",
        "EXTERNAL_KEY_STORE",
        "DISCONNECTED",
    )
    assert xks["XksProxyConfiguration"]["Connectivity"] == "PUBLIC_ENDPOINT"
    assert xks["XksProxyConfiguration"]["UriEndpoint"] == "https://xks.example.com"
