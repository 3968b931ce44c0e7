"""Concurrent clients against one emulator: no lost update, no unexpected error."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kms_connection.emulator import Emulator

THREADS = 8


def wait_for(client: Any, store_id: str, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = client.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"][0]
        if entry["ConnectionState"] == state:
            return
        time.sleep(0.01)
    raise AssertionError(f"{store_id} never became {state}")


def test_eight_clients_create_connect_disconnect_and_describe_concurrently(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator(connect_seconds=0.05, disconnect_seconds=0.05, store_limit=THREADS)
    clients = [emu.client() for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def worker(index: int) -> str:
        client = clients[index]
        start.wait()
        store_id = client.create_custom_key_store(
            CustomKeyStoreName=f"store-{index}",
            CloudHsmClusterId=f"cluster-234567abcd{'abcdefgh'[index]}",
            TrustAnchorCertificate="pem",
            KeyStorePassword="kmsuser-password",
        )["CustomKeyStoreId"]
        for _ in range(2):
            client.connect_custom_key_store(CustomKeyStoreId=store_id)
            wait_for(client, store_id, "CONNECTED")
            client.update_custom_key_store(CustomKeyStoreId=store_id, NewCustomKeyStoreName=f"renamed-{index}")
            client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
            wait_for(client, store_id, "DISCONNECTED")
            assert len(client.describe_custom_key_stores()["CustomKeyStores"]) <= THREADS
        return store_id

    with ThreadPoolExecutor(THREADS) as pool:
        ids = list(pool.map(worker, range(THREADS)))

    stores = clients[0].describe_custom_key_stores()["CustomKeyStores"]
    assert sorted(s["CustomKeyStoreId"] for s in stores) == sorted(ids)
    assert sorted(s["CustomKeyStoreName"] for s in stores) == sorted(f"renamed-{i}" for i in range(THREADS))
    assert {s["ConnectionState"] for s in stores} == {"DISCONNECTED"}
    calls = emu.calls
    assert {call.outcome for call in calls} == {"ok"}
    assert sum(call.operation == "ConnectCustomKeyStore" for call in calls) == 2 * THREADS
    assert sum(call.operation == "DisconnectCustomKeyStore" for call in calls) == 2 * THREADS


def test_concurrent_creates_of_one_name_let_exactly_one_win(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator()
    clients = [emu.client(retries={"total_max_attempts": 1}) for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def worker(index: int) -> str:
        client = clients[index]
        start.wait()
        try:
            client.create_custom_key_store(
                CustomKeyStoreName="contended",
                CloudHsmClusterId=f"cluster-234567abcd{'abcdefgh'[index]}",
                TrustAnchorCertificate="pem",
                KeyStorePassword="kmsuser-password",
            )
        except client.exceptions.CustomKeyStoreNameInUseException:
            return "in use"
        return "created"

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, range(THREADS)))
    assert sorted(results) == ["created"] + ["in use"] * (THREADS - 1)
    assert len(clients[0].describe_custom_key_stores()["CustomKeyStores"]) == 1


def test_concurrent_connects_of_one_store_all_succeed(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(connect_seconds=60)
    store_id = emu.create_store("shared")
    clients = [emu.client(retries={"total_max_attempts": 1}) for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        start.wait()
        clients[index].connect_custom_key_store(CustomKeyStoreId=store_id)
        clients[index].describe_custom_key_stores(CustomKeyStoreId=store_id)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(worker, range(THREADS)))
    assert emu.state_of(store_id) == "CONNECTING"
    assert [call.outcome for call in emu.calls] == ["ok"] * (2 * THREADS)
