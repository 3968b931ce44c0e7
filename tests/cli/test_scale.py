"""Ten stores through the real CLI: as ten per-store resources at the engine's default parallelism, and as one set.

Wall times against the transition time are the benchmark's (``python -m bench --only engine``); these tests hold
what must be true at any speed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.cli.conftest import CONNECTION_TYPE, SET_TYPE, CliStack, store_entry

pytestmark = pytest.mark.timeout(900)

STORES = {f"cks-{index:017d}": f"store-{index}" for index in range(10)}


def test_ten_per_store_connections_connect_every_store_once(make_stack: Callable[..., CliStack]) -> None:
    stack = make_stack(STORES)
    stack.write_config(keyStores=[store_entry(store_id, name) for store_id, name in STORES.items()])

    result = stack.up()

    assert result.summary.resource_changes == {"create": 11}
    assert sorted(stack.mutating_calls()) == sorted(("ConnectCustomKeyStore", store_id) for store_id in STORES)
    assert {stack.emulator.state_of(store_id) for store_id in STORES} == {"CONNECTED"}
    assert len(stack.resources(CONNECTION_TYPE)) == 10


def test_one_set_of_ten_stores_connects_every_store_once(make_stack: Callable[..., CliStack]) -> None:
    stack = make_stack(STORES)
    stack.write_config(keyStoreSets=[{"name": "all-stores", "ids": list(STORES)}])

    result = stack.up()

    assert result.summary.resource_changes == {"create": 2}
    assert sorted(stack.mutating_calls()) == sorted(("ConnectCustomKeyStore", store_id) for store_id in STORES)
    assert {stack.emulator.state_of(store_id) for store_id in STORES} == {"CONNECTED"}
    assert stack.outputs()["set_connection_states"]["all-stores"] == dict.fromkeys(STORES, "CONNECTED")
    assert set(stack.resources(SET_TYPE)) == {"all-stores"}
