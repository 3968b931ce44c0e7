"""The gateway's listing of a store's keys (``KeyLister``) against the emulator: every page of ListKeys, one listing
of keys and one of aliases per operation whatever the number of stores, and a denial that stops the listing at
once."""

from __future__ import annotations

from collections import Counter

from kms_connection.emulator import Emulator
from kms_connection.gateway import DESCRIBE_KEY_WORKERS, KeyLister, KmsGateway
from kms_connection.plan import KEYS_NAMED

REGION = "us-east-1"


def lister(emu: Emulator) -> KeyLister:
    return KeyLister(KmsGateway(REGION, lambda: emu.client(REGION, retries={"total_max_attempts": 1})))


def calls(emu: Emulator) -> Counter[str]:
    return Counter(call.operation for call in emu.calls)


def test_the_listing_reads_every_page_of_list_keys(kms_emulator: Emulator) -> None:
    store_id = kms_emulator.create_store("hsm", connection_state="CONNECTED")
    for _ in range(1000):
        kms_emulator.create_key()
    last = kms_emulator.create_key(store_id)  # the 1,001st key: on the second page

    census = lister(kms_emulator).census(store_id)

    assert [key.key_id for key in census.keys] == [last]
    assert calls(kms_emulator)["ListKeys"] == 2
    assert calls(kms_emulator)["DescribeKey"] == 1001


def test_an_operation_lists_the_regions_keys_once_for_all_its_stores(kms_emulator: Emulator) -> None:
    first = kms_emulator.create_store("a", connection_state="CONNECTED")
    second = kms_emulator.create_store("b", connection_state="CONNECTED")
    kms_emulator.create_key(first)
    kms_emulator.create_key(second, enabled=False)
    listing = lister(kms_emulator)

    censuses = [listing.census(first), listing.census(second), listing.census(first)]

    assert [len(census.keys) for census in censuses] == [1, 1, 1]
    assert censuses[1].keys[0].state == "Disabled"
    assert calls(kms_emulator) == {"ListKeys": 1, "DescribeKey": 2, "ListAliases": 1}


def test_aliases_come_from_one_listing_of_the_regions_aliases(kms_emulator: Emulator) -> None:
    store_id = kms_emulator.create_store("hsm", connection_state="CONNECTED")
    for index in range(KEYS_NAMED + 2):
        kms_emulator.create_key(store_id, aliases=[f"alias/key-{index}"])
    kms_emulator.create_key(aliases=[f"alias/other-{index}" for index in range(150)])  # a second page of aliases

    census = lister(kms_emulator).census(store_id)

    assert calls(kms_emulator)["ListAliases"] == 2
    assert sorted(alias for key in census.keys for alias in key.aliases) == [
        f"alias/key-{index}" for index in range(KEYS_NAMED + 2)
    ]


def test_a_store_with_no_keys_gets_an_empty_census_without_alias_calls(kms_emulator: Emulator) -> None:
    store_id = kms_emulator.create_store("hsm", connection_state="CONNECTED")
    kms_emulator.create_key()

    census = lister(kms_emulator).census(store_id)

    assert census.counted and census.keys == ()
    assert calls(kms_emulator)["ListAliases"] == 0


def test_a_denied_describe_key_stops_the_listing_and_says_why(kms_emulator: Emulator) -> None:
    store_id = kms_emulator.create_store("hsm", connection_state="CONNECTED")
    for _ in range(100):
        kms_emulator.create_key()
    kms_emulator.deny("DescribeKey")

    census = lister(kms_emulator).census(store_id)

    assert not census.counted
    assert census.uncounted is not None
    assert census.uncounted.startswith("kms:DescribeKey is denied to these credentials (AccessDeniedException: User:")
    # At most the calls already in flight when the first denial came back (one per worker), however loaded the
    # machine: a worker sends nothing once a call has failed.
    assert calls(kms_emulator)["DescribeKey"] <= DESCRIBE_KEY_WORKERS


def test_an_error_retries_did_not_cure_leaves_the_keys_uncounted_with_the_error(kms_emulator: Emulator) -> None:
    store_id = kms_emulator.create_store("hsm", connection_state="CONNECTED")
    kms_emulator.fail_next(1, operation="ListKeys")

    census = lister(kms_emulator).census(store_id)

    assert census.uncounted is not None
    assert census.uncounted.startswith("ListKeys failed (KMSInternalException:")
