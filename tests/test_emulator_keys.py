"""KMS keys in and out of custom key stores through unmodified boto3: every key operation and every rule of
``kms_connection/emulator/keys.py``, with the store's connection state, accounts, quotas, faults, seeds and the
state file."""

from __future__ import annotations

import base64
import datetime
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from kms_connection.emulator import Emulator, EmulatorConfigError, EmulatorStateError, FakeClock

NO_RETRY: dict[str, Any] = {"retries": {"total_max_attempts": 1}}
REGION = "us-east-1"
OTHER_ACCOUNT = "222233334444"
OTHER_ACCESS_KEY = "AKIAOTHERACCOUNT0001"
DAY = 86400.0
UNKNOWN_KEY = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    """An emulator on a fake clock (nothing moves unless the test advances it), with a second account."""
    return make_emulator(
        clock=FakeClock(), connect_seconds=1.0, disconnect_seconds=0.5, accounts={OTHER_ACCESS_KEY: OTHER_ACCOUNT}
    )


@pytest.fixture
def client(emu: Emulator) -> Any:
    return emu.client(**NO_RETRY)


def connected_store(emu: Emulator, store_type: str = "AWS_CLOUDHSM", name: str = "hsm") -> str:
    return emu.create_store(name, store_type=store_type, connection_state="CONNECTED")


def advance(emu: Emulator, seconds: float) -> None:
    assert isinstance(emu.clock, FakeClock)
    emu.clock.advance(seconds)


def error_code(caught: pytest.ExceptionInfo[ClientError]) -> str:
    return str(caught.value.response["Error"]["Code"])


def key_state(client: Any, key_id: str) -> str:
    return str(client.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"])


def hsm_key(client: Any, store_id: str) -> str:
    metadata = client.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")["KeyMetadata"]
    return str(metadata["KeyId"])


# -- CreateKey --------------------------------------------------------------------------------------------------


def test_create_key_without_a_store_makes_an_enabled_aws_kms_key(client: Any) -> None:
    metadata = client.create_key(Description="payments")["KeyMetadata"]

    assert metadata["KeyState"] == "Enabled" and metadata["Enabled"] is True
    assert metadata["Origin"] == "AWS_KMS"
    assert metadata["KeySpec"] == "SYMMETRIC_DEFAULT" and metadata["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert metadata["Description"] == "payments"
    assert metadata["AWSAccountId"] == "000000000000"
    assert metadata["Arn"] == f"arn:aws:kms:{REGION}:000000000000:key/{metadata['KeyId']}"
    assert "CustomKeyStoreId" not in metadata and "CloudHsmClusterId" not in metadata
    assert isinstance(metadata["CreationDate"], datetime.datetime)


def test_create_key_in_a_connected_cloudhsm_store_records_the_store_and_its_cluster(emu: Emulator, client: Any) -> None:
    store_id = connected_store(emu)
    cluster = client.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"][0]["CloudHsmClusterId"]

    metadata = client.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")["KeyMetadata"]

    assert metadata["CustomKeyStoreId"] == store_id
    assert metadata["CloudHsmClusterId"] == cluster
    assert metadata["Origin"] == "AWS_CLOUDHSM"
    assert metadata["KeyState"] == "Enabled"
    assert emu.calls[-1].operation == "CreateKey" and emu.calls[-1].store_id == store_id


def test_create_key_in_a_connected_external_store_records_its_external_key(emu: Emulator, client: Any) -> None:
    store_id = connected_store(emu, "EXTERNAL_KEY_STORE", "xks")

    metadata = client.create_key(CustomKeyStoreId=store_id, Origin="EXTERNAL_KEY_STORE", XksKeyId="ext-key-1")[
        "KeyMetadata"
    ]

    assert metadata["CustomKeyStoreId"] == store_id
    assert metadata["Origin"] == "EXTERNAL_KEY_STORE"
    assert metadata["XksKeyConfiguration"] == {"Id": "ext-key-1"}
    assert "CloudHsmClusterId" not in metadata


@pytest.mark.parametrize("state", ["DISCONNECTED", "CONNECTING", "DISCONNECTING", "FAILED"])
def test_create_key_in_a_store_that_is_not_connected_gets_invalid_state(emu: Emulator, client: Any, state: str) -> None:
    store_id = emu.create_store(
        "hsm", connection_state=state, error_code="NETWORK_ERRORS" if state == "FAILED" else None
    )

    with pytest.raises(client.exceptions.CustomKeyStoreInvalidStateException) as caught:
        client.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")

    assert f"is {state}" in str(caught.value)
    assert emu.keys == []


def test_create_key_in_an_unknown_store_gets_custom_key_store_not_found(client: Any) -> None:
    with pytest.raises(client.exceptions.CustomKeyStoreNotFoundException):
        client.create_key(CustomKeyStoreId="cks-00000000000000000", Origin="AWS_CLOUDHSM")


def test_create_key_in_a_store_of_another_account_gets_custom_key_store_not_found(emu: Emulator) -> None:
    store_id = connected_store(emu)
    other = emu.client(access_key_id=OTHER_ACCESS_KEY, **NO_RETRY)

    with pytest.raises(other.exceptions.CustomKeyStoreNotFoundException):
        other.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")


@pytest.mark.parametrize(
    ("store_type", "origin"),
    [("AWS_CLOUDHSM", "AWS_KMS"), ("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"), ("EXTERNAL_KEY_STORE", "AWS_CLOUDHSM")],
)
def test_create_key_in_a_store_needs_the_origin_of_the_stores_type(
    emu: Emulator, client: Any, store_type: str, origin: str
) -> None:
    store_id = connected_store(emu, store_type)
    extra = {"XksKeyId": "ext-key-1"} if origin == "EXTERNAL_KEY_STORE" else {}

    with pytest.raises(client.exceptions.UnsupportedOperationException) as caught:
        client.create_key(CustomKeyStoreId=store_id, Origin=origin, **extra)

    assert "set Origin to" in str(caught.value)


def test_a_custom_key_store_origin_without_a_store_is_invalid(client: Any) -> None:
    with pytest.raises(ClientError) as caught:
        client.create_key(Origin="AWS_CLOUDHSM")
    assert error_code(caught) == "ValidationException"


def test_create_key_in_an_external_store_without_xks_key_id_is_invalid(emu: Emulator, client: Any) -> None:
    store_id = connected_store(emu, "EXTERNAL_KEY_STORE", "xks")
    with pytest.raises(ClientError) as caught:
        client.create_key(CustomKeyStoreId=store_id, Origin="EXTERNAL_KEY_STORE")
    assert error_code(caught) == "ValidationException"
    assert "XksKeyId" in str(caught.value)


def test_an_external_key_backs_one_kms_key_per_store(emu: Emulator, client: Any) -> None:
    store_id = connected_store(emu, "EXTERNAL_KEY_STORE", "xks")
    client.create_key(CustomKeyStoreId=store_id, Origin="EXTERNAL_KEY_STORE", XksKeyId="ext-key-1")

    with pytest.raises(client.exceptions.XksKeyAlreadyInUseException):
        client.create_key(CustomKeyStoreId=store_id, Origin="EXTERNAL_KEY_STORE", XksKeyId="ext-key-1")


@pytest.mark.parametrize(
    "params",
    [{"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}, {"MultiRegion": True}, {"Origin": "EXTERNAL"}],
    ids=["asymmetric", "multi-region", "imported"],
)
def test_create_key_of_a_kind_the_emulator_does_not_make_is_unsupported(client: Any, params: dict[str, Any]) -> None:
    with pytest.raises(client.exceptions.UnsupportedOperationException):
        client.create_key(**params)


def test_create_key_beyond_the_key_limit_gets_limit_exceeded(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(key_limit=2)
    client = emu.client(**NO_RETRY)
    client.create_key()
    client.create_key()

    with pytest.raises(client.exceptions.LimitExceededException):
        client.create_key()


@pytest.mark.parametrize("error", ["XksKeyNotFoundException", "XksKeyInvalidConfigurationException"])
def test_a_drill_answers_create_key_in_an_external_store_with_a_proxy_error_and_makes_no_key(
    emu: Emulator, client: Any, error: str
) -> None:
    store_id = connected_store(emu, "EXTERNAL_KEY_STORE", "xks")
    emu.drill_next("CreateKey", error)

    with pytest.raises(getattr(client.exceptions, error)):
        client.create_key(CustomKeyStoreId=store_id, Origin="EXTERNAL_KEY_STORE", XksKeyId="ext-key-1")

    assert emu.keys == []


# -- DescribeKey and KeyState -----------------------------------------------------------------------------------


def test_describe_key_takes_a_key_id_a_key_arn_an_alias_and_an_alias_arn(emu: Emulator, client: Any) -> None:
    metadata = client.create_key()["KeyMetadata"]
    client.create_alias(AliasName="alias/payments", TargetKeyId=metadata["KeyId"])
    alias_arn = f"arn:aws:kms:{REGION}:000000000000:alias/payments"

    for reference in (metadata["KeyId"], metadata["Arn"], "alias/payments", alias_arn):
        assert client.describe_key(KeyId=reference)["KeyMetadata"]["KeyId"] == metadata["KeyId"], reference


@pytest.mark.parametrize(
    "reference",
    [
        UNKNOWN_KEY,
        "alias/nothing",
        f"arn:aws:kms:us-west-2:000000000000:key/{UNKNOWN_KEY}",
        f"arn:aws:kms:{REGION}:{OTHER_ACCOUNT}:key/{UNKNOWN_KEY}",
    ],
    ids=["unknown-id", "unknown-alias", "other-region", "other-account"],
)
def test_describe_key_of_no_key_of_the_account_and_region_gets_not_found(client: Any, reference: str) -> None:
    with pytest.raises(client.exceptions.NotFoundException):
        client.describe_key(KeyId=reference)


def test_a_key_of_another_region_is_not_found_by_its_id_there(emu: Emulator) -> None:
    key_id = emu.client(**NO_RETRY).create_key()["KeyMetadata"]["KeyId"]
    west = emu.client("us-west-2", **NO_RETRY)

    with pytest.raises(west.exceptions.NotFoundException):
        west.describe_key(KeyId=key_id)


def test_describe_key_with_a_malformed_arn_gets_invalid_arn(client: Any) -> None:
    with pytest.raises(client.exceptions.InvalidArnException):
        client.describe_key(KeyId="arn:aws:kms:not-an-arn")


@pytest.mark.parametrize("action", ["disconnect", "fail"])
def test_a_key_reads_unavailable_and_not_enabled_once_its_store_is_not_connected(
    emu: Emulator, client: Any, action: str
) -> None:
    store_id = connected_store(emu)
    key_id = hsm_key(client, store_id)
    if action == "disconnect":
        client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    else:
        emu.set_connect_outcome(store_id, "fail", "USER_LOCKED_OUT")
        client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
        advance(emu, 0.5)
        client.connect_custom_key_store(CustomKeyStoreId=store_id)
        advance(emu, 1.0)
        assert emu.state_of(store_id) == "FAILED"

    metadata = client.describe_key(KeyId=key_id)["KeyMetadata"]

    assert metadata["KeyState"] == "Unavailable"
    assert metadata["Enabled"] is False
    assert metadata["CustomKeyStoreId"] == store_id


def test_a_key_reads_enabled_again_once_its_store_is_connected_again(emu: Emulator, client: Any) -> None:
    store_id = connected_store(emu)
    key_id = hsm_key(client, store_id)
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    advance(emu, 0.5)
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert key_state(client, key_id) == "Unavailable"  # CONNECTING

    advance(emu, 1.0)

    assert key_state(client, key_id) == "Enabled"


def test_a_disabled_key_of_a_disconnected_store_reads_unavailable_and_disabled_once_it_reconnects(
    emu: Emulator, client: Any
) -> None:
    store_id = connected_store(emu)
    key_id = hsm_key(client, store_id)
    client.disable_key(KeyId=key_id)
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    advance(emu, 0.5)
    assert key_state(client, key_id) == "Unavailable"

    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    advance(emu, 1.0)

    assert key_state(client, key_id) == "Disabled"


# -- ListKeys ---------------------------------------------------------------------------------------------------


def test_list_keys_pages_through_every_key_of_the_account_and_region_in_creation_order(
    emu: Emulator, client: Any
) -> None:
    made = [client.create_key()["KeyMetadata"] for _ in range(5)]

    first = client.list_keys(Limit=2)
    paged = [
        key
        for page in client.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2})
        for key in page["Keys"]
    ]

    assert first["Truncated"] is True and len(first["Keys"]) == 2 and first["NextMarker"]
    assert paged == [{"KeyId": key["KeyId"], "KeyArn": key["Arn"]} for key in made]


def test_list_keys_answers_pages_of_100_unless_told(client: Any, emu: Emulator) -> None:
    for _ in range(101):
        emu.create_key()

    page = client.list_keys()

    assert len(page["Keys"]) == 100 and page["Truncated"] is True


def test_list_keys_refuses_a_marker_it_did_not_make_for_the_region(emu: Emulator, client: Any) -> None:
    client.create_key()
    client.create_key()
    marker = client.list_keys(Limit=1)["NextMarker"]
    west = emu.client("us-west-2", **NO_RETRY)

    with pytest.raises(client.exceptions.InvalidMarkerException):
        client.list_keys(Marker="not-a-marker")
    with pytest.raises(west.exceptions.InvalidMarkerException):
        west.list_keys(Marker=marker)
    with pytest.raises(client.exceptions.InvalidMarkerException):
        client.list_aliases(Marker=marker)


def test_list_keys_lists_the_keys_of_the_callers_account_only(emu: Emulator, client: Any) -> None:
    mine = client.create_key()["KeyMetadata"]["KeyId"]
    other = emu.client(access_key_id=OTHER_ACCESS_KEY, **NO_RETRY)
    theirs = other.create_key()["KeyMetadata"]

    assert [key["KeyId"] for key in client.list_keys()["Keys"]] == [mine]
    assert [key["KeyId"] for key in other.list_keys()["Keys"]] == [theirs["KeyId"]]
    assert theirs["AWSAccountId"] == OTHER_ACCOUNT


def test_list_keys_includes_keys_pending_deletion_and_keys_of_disconnected_stores(emu: Emulator, client: Any) -> None:
    store_id = connected_store(emu)
    in_store = hsm_key(client, store_id)
    pending = client.create_key()["KeyMetadata"]["KeyId"]
    client.schedule_key_deletion(KeyId=pending, PendingWindowInDays=7)
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)

    assert {key["KeyId"] for key in client.list_keys()["Keys"]} == {in_store, pending}


# -- CreateAlias and ListAliases --------------------------------------------------------------------------------


def test_create_alias_then_list_aliases_names_its_target_key(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]

    client.create_alias(AliasName="alias/payments", TargetKeyId=key_id)

    (entry,) = client.list_aliases()["Aliases"]
    assert entry["AliasName"] == "alias/payments"
    assert entry["TargetKeyId"] == key_id
    assert entry["AliasArn"] == f"arn:aws:kms:{REGION}:000000000000:alias/payments"
    assert isinstance(entry["CreationDate"], datetime.datetime)
    assert isinstance(entry["LastUpdatedDate"], datetime.datetime)


def test_list_aliases_with_a_key_id_lists_only_that_keys_aliases(client: Any) -> None:
    first, second = (client.create_key()["KeyMetadata"] for _ in range(2))
    client.create_alias(AliasName="alias/a", TargetKeyId=first["KeyId"])
    client.create_alias(AliasName="alias/b", TargetKeyId=second["KeyId"])
    client.create_alias(AliasName="alias/c", TargetKeyId=first["Arn"])

    by_id = client.list_aliases(KeyId=first["KeyId"])["Aliases"]
    by_arn = client.list_aliases(KeyId=first["Arn"])["Aliases"]

    assert [alias["AliasName"] for alias in by_id] == ["alias/a", "alias/c"]
    assert by_arn == by_id


def test_list_aliases_of_an_unknown_key_gets_not_found(client: Any) -> None:
    with pytest.raises(client.exceptions.NotFoundException):
        client.list_aliases(KeyId=UNKNOWN_KEY)


def test_list_aliases_pages_of_at_most_100(emu: Emulator, client: Any) -> None:
    key_id = emu.create_key(aliases=[f"alias/a{index:03d}" for index in range(120)])

    first = client.list_aliases()
    every = [a for page in client.get_paginator("list_aliases").paginate(KeyId=key_id) for a in page["Aliases"]]

    assert len(first["Aliases"]) == 50 and first["Truncated"] is True  # KMS's default page
    assert len(every) == 120
    with pytest.raises(ClientError) as caught:
        client.list_aliases(Limit=101)
    assert error_code(caught) == "ValidationException"


def test_create_alias_of_a_name_in_use_gets_already_exists(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    client.create_alias(AliasName="alias/payments", TargetKeyId=key_id)

    with pytest.raises(client.exceptions.AlreadyExistsException):
        client.create_alias(AliasName="alias/payments", TargetKeyId=key_id)


@pytest.mark.parametrize("name", ["alias/aws/ebs", "payments", "alias/"])
def test_create_alias_with_a_reserved_or_malformed_name_is_refused(client: Any, name: str) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as caught:
        client.create_alias(AliasName=name, TargetKeyId=key_id)
    assert error_code(caught) in ("InvalidAliasNameException", "ValidationException")


def test_create_alias_for_an_unknown_key_gets_not_found(client: Any) -> None:
    with pytest.raises(client.exceptions.NotFoundException):
        client.create_alias(AliasName="alias/payments", TargetKeyId=UNKNOWN_KEY)


def test_create_alias_for_a_key_pending_deletion_gets_invalid_state(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    client.schedule_key_deletion(KeyId=key_id)
    with pytest.raises(client.exceptions.KMSInvalidStateException):
        client.create_alias(AliasName="alias/payments", TargetKeyId=key_id)


def test_create_alias_for_a_key_of_a_disconnected_store_succeeds(emu: Emulator, client: Any) -> None:
    store_id = connected_store(emu)
    key_id = hsm_key(client, store_id)
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)

    client.create_alias(AliasName="alias/payments", TargetKeyId=key_id)

    assert client.list_aliases(KeyId=key_id)["Aliases"][0]["AliasName"] == "alias/payments"


# -- EnableKey and DisableKey -----------------------------------------------------------------------------------


def test_disable_key_disables_it_and_enable_key_enables_it(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]

    client.disable_key(KeyId=key_id)
    disabled = client.describe_key(KeyId=key_id)["KeyMetadata"]
    client.enable_key(KeyId=key_id)
    enabled = client.describe_key(KeyId=key_id)["KeyMetadata"]

    assert (disabled["KeyState"], disabled["Enabled"]) == ("Disabled", False)
    assert (enabled["KeyState"], enabled["Enabled"]) == ("Enabled", True)


def test_enabling_an_enabled_key_and_disabling_a_disabled_one_change_nothing(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    client.enable_key(KeyId=key_id)
    assert key_state(client, key_id) == "Enabled"
    client.disable_key(KeyId=key_id)
    client.disable_key(KeyId=key_id)
    assert key_state(client, key_id) == "Disabled"


@pytest.mark.parametrize("operation", ["enable_key", "disable_key"])
def test_enable_or_disable_of_an_unavailable_key_gets_invalid_state(emu: Emulator, client: Any, operation: str) -> None:
    store_id = connected_store(emu)
    key_id = hsm_key(client, store_id)
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)

    with pytest.raises(client.exceptions.KMSInvalidStateException) as caught:
        getattr(client, operation)(KeyId=key_id)

    assert "unavailable" in str(caught.value)


@pytest.mark.parametrize("operation", ["enable_key", "disable_key"])
def test_enable_or_disable_of_a_key_pending_deletion_gets_invalid_state(client: Any, operation: str) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    client.schedule_key_deletion(KeyId=key_id)
    with pytest.raises(client.exceptions.KMSInvalidStateException):
        getattr(client, operation)(KeyId=key_id)


def test_enable_key_takes_no_alias(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    client.create_alias(AliasName="alias/payments", TargetKeyId=key_id)
    with pytest.raises(client.exceptions.NotFoundException):
        client.enable_key(KeyId="alias/payments")


# -- ScheduleKeyDeletion and CancelKeyDeletion ------------------------------------------------------------------


def test_schedule_key_deletion_makes_it_pending_deletion_until_its_date(client: Any) -> None:
    metadata = client.create_key()["KeyMetadata"]

    answer = client.schedule_key_deletion(KeyId=metadata["KeyId"], PendingWindowInDays=7)
    described = client.describe_key(KeyId=metadata["KeyId"])["KeyMetadata"]

    assert answer["KeyId"] == metadata["Arn"]
    assert answer["KeyState"] == "PendingDeletion" and answer["PendingWindowInDays"] == 7
    assert described["KeyState"] == "PendingDeletion" and described["Enabled"] is False
    assert described["DeletionDate"] == answer["DeletionDate"]
    assert answer["DeletionDate"] - described["CreationDate"] >= datetime.timedelta(days=7) - datetime.timedelta(
        minutes=1
    )


def test_schedule_key_deletion_waits_30_days_unless_told(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    assert client.schedule_key_deletion(KeyId=key_id)["PendingWindowInDays"] == 30


@pytest.mark.parametrize("days", [6, 31])
def test_a_deletion_window_outside_7_to_30_days_is_invalid(client: Any, days: int) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as caught:
        client.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=days)
    assert error_code(caught) == "ValidationException"


def test_scheduling_the_deletion_of_a_key_pending_deletion_gets_invalid_state(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    client.schedule_key_deletion(KeyId=key_id)
    with pytest.raises(client.exceptions.KMSInvalidStateException):
        client.schedule_key_deletion(KeyId=key_id)


def test_a_key_is_gone_with_its_aliases_once_its_deletion_window_has_passed(emu: Emulator, client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    client.create_alias(AliasName="alias/payments", TargetKeyId=key_id)
    client.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    advance(emu, 7 * DAY - 1)
    assert key_state(client, key_id) == "PendingDeletion"

    advance(emu, 1)

    assert client.list_keys()["Keys"] == []
    assert client.list_aliases()["Aliases"] == []
    with pytest.raises(client.exceptions.NotFoundException):
        client.describe_key(KeyId=key_id)


def test_cancel_key_deletion_leaves_the_key_disabled(client: Any) -> None:
    metadata = client.create_key()["KeyMetadata"]
    client.schedule_key_deletion(KeyId=metadata["KeyId"])

    answer = client.cancel_key_deletion(KeyId=metadata["KeyId"])

    assert answer["KeyId"] == metadata["Arn"]
    described = client.describe_key(KeyId=metadata["KeyId"])["KeyMetadata"]
    assert described["KeyState"] == "Disabled" and "DeletionDate" not in described


def test_cancel_deletion_of_a_key_not_pending_deletion_gets_invalid_state(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(client.exceptions.KMSInvalidStateException) as caught:
        client.cancel_key_deletion(KeyId=key_id)
    assert "is not pending deletion" in str(caught.value)


def test_a_key_of_a_disconnected_store_can_be_scheduled_for_deletion_and_cancelled(emu: Emulator, client: Any) -> None:
    store_id = connected_store(emu)
    key_id = hsm_key(client, store_id)
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)

    client.schedule_key_deletion(KeyId=key_id)
    pending = key_state(client, key_id)
    client.cancel_key_deletion(KeyId=key_id)

    assert pending == "PendingDeletion"
    assert key_state(client, key_id) == "Unavailable"


# -- Encrypt, Decrypt, GenerateDataKey --------------------------------------------------------------------------


def test_encrypt_then_decrypt_gives_back_the_plaintext_under_the_same_encryption_context(client: Any) -> None:
    metadata = client.create_key()["KeyMetadata"]
    context = {"purpose": "test", "tenant": "a"}

    sealed = client.encrypt(KeyId=metadata["KeyId"], Plaintext=b"card number", EncryptionContext=context)
    opened = client.decrypt(CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext=context)

    assert sealed["KeyId"] == opened["KeyId"] == metadata["Arn"]
    assert sealed["EncryptionAlgorithm"] == opened["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert b"card number" not in sealed["CiphertextBlob"]
    assert opened["Plaintext"] == b"card number"


def test_encrypt_takes_an_alias(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    client.create_alias(AliasName="alias/payments", TargetKeyId=key_id)
    sealed = client.encrypt(KeyId="alias/payments", Plaintext=b"x")
    assert client.decrypt(CiphertextBlob=sealed["CiphertextBlob"], KeyId="alias/payments")["Plaintext"] == b"x"


def test_decrypt_under_another_encryption_context_gets_invalid_ciphertext(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    sealed = client.encrypt(KeyId=key_id, Plaintext=b"secret", EncryptionContext={"tenant": "a"})["CiphertextBlob"]
    with pytest.raises(client.exceptions.InvalidCiphertextException):
        client.decrypt(CiphertextBlob=sealed, EncryptionContext={"tenant": "b"})


def test_decrypt_of_an_altered_ciphertext_gets_invalid_ciphertext(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    sealed = bytearray(client.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"])
    sealed[-1] ^= 1
    with pytest.raises(client.exceptions.InvalidCiphertextException):
        client.decrypt(CiphertextBlob=bytes(sealed))
    with pytest.raises(client.exceptions.InvalidCiphertextException):
        client.decrypt(CiphertextBlob=b"not a ciphertext of this emulator at all, not at all")


def test_decrypt_naming_another_key_gets_incorrect_key(client: Any) -> None:
    first, second = (client.create_key()["KeyMetadata"]["KeyId"] for _ in range(2))
    sealed = client.encrypt(KeyId=first, Plaintext=b"secret")["CiphertextBlob"]
    with pytest.raises(client.exceptions.IncorrectKeyException):
        client.decrypt(CiphertextBlob=sealed, KeyId=second)


def test_generate_data_key_gives_a_plaintext_key_and_the_ciphertext_that_decrypts_to_it(client: Any) -> None:
    metadata = client.create_key()["KeyMetadata"]

    generated = client.generate_data_key(KeyId=metadata["KeyId"], KeySpec="AES_256")
    short = client.generate_data_key(KeyId=metadata["KeyId"], NumberOfBytes=16)

    assert len(generated["Plaintext"]) == 32 and len(short["Plaintext"]) == 16
    assert generated["KeyId"] == metadata["Arn"]
    assert client.decrypt(CiphertextBlob=generated["CiphertextBlob"])["Plaintext"] == generated["Plaintext"]


@pytest.mark.parametrize("sizes", [{}, {"KeySpec": "AES_256", "NumberOfBytes": 32}], ids=["neither", "both"])
def test_generate_data_key_needs_exactly_one_of_key_spec_and_number_of_bytes(
    client: Any, sizes: dict[str, Any]
) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as caught:
        client.generate_data_key(KeyId=key_id, **sizes)
    assert error_code(caught) == "ValidationException"


def crypto_call(client: Any, operation: str, key_id: str, ciphertext: bytes) -> Any:
    if operation == "encrypt":
        return client.encrypt(KeyId=key_id, Plaintext=b"secret")
    if operation == "decrypt":
        return client.decrypt(CiphertextBlob=ciphertext)
    return client.generate_data_key(KeyId=key_id, KeySpec="AES_256")


CRYPTO = ["encrypt", "decrypt", "generate_data_key"]


@pytest.mark.parametrize("operation", CRYPTO)
def test_cryptographic_operations_on_a_key_of_a_store_that_is_not_connected_get_invalid_state(
    emu: Emulator, client: Any, operation: str
) -> None:
    store_id = connected_store(emu)
    key_id = hsm_key(client, store_id)
    ciphertext = client.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)

    with pytest.raises(client.exceptions.KMSInvalidStateException) as caught:
        crypto_call(client, operation, key_id, ciphertext)

    assert "unavailable" in str(caught.value) and store_id in str(caught.value)


@pytest.mark.parametrize("operation", CRYPTO)
def test_cryptographic_operations_work_again_once_the_store_is_connected_again(
    emu: Emulator, client: Any, operation: str
) -> None:
    store_id = connected_store(emu)
    key_id = hsm_key(client, store_id)
    ciphertext = client.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    advance(emu, 0.5)
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    advance(emu, 1.0)

    assert crypto_call(client, operation, key_id, ciphertext)["KeyId"].endswith(key_id)


@pytest.mark.parametrize("operation", CRYPTO)
def test_cryptographic_operations_on_a_disabled_key_get_disabled(client: Any, operation: str) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    ciphertext = client.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    client.disable_key(KeyId=key_id)
    with pytest.raises(client.exceptions.DisabledException):
        crypto_call(client, operation, key_id, ciphertext)


@pytest.mark.parametrize("operation", CRYPTO)
def test_cryptographic_operations_on_a_key_pending_deletion_get_invalid_state(client: Any, operation: str) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    ciphertext = client.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    client.schedule_key_deletion(KeyId=key_id)
    with pytest.raises(client.exceptions.KMSInvalidStateException) as caught:
        crypto_call(client, operation, key_id, ciphertext)
    assert "pending deletion" in str(caught.value)


def test_a_dry_run_that_would_succeed_gets_dry_run_operation_and_one_that_would_fail_its_error(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(client.exceptions.DryRunOperationException):
        client.encrypt(KeyId=key_id, Plaintext=b"x", DryRun=True)
    client.disable_key(KeyId=key_id)
    with pytest.raises(client.exceptions.DisabledException):
        client.encrypt(KeyId=key_id, Plaintext=b"x", DryRun=True)


def test_encrypt_with_an_asymmetric_algorithm_gets_invalid_key_usage(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(client.exceptions.InvalidKeyUsageException):
        client.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionAlgorithm="RSAES_OAEP_SHA_256")


def test_a_plaintext_over_4096_bytes_is_invalid_and_not_echoed(client: Any) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(ClientError) as caught:
        client.encrypt(KeyId=key_id, Plaintext=b"z" * 4097)
    assert error_code(caught) == "ValidationException"
    assert base64.b64encode(b"z" * 64).decode() not in str(caught.value)


# -- DeleteCustomKeyStore and the store's keys ------------------------------------------------------------------


def test_delete_custom_key_store_holding_a_key_gets_has_cmks(emu: Emulator, client: Any) -> None:
    store_id = connected_store(emu)
    hsm_key(client, store_id)
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    advance(emu, 0.5)

    with pytest.raises(client.exceptions.CustomKeyStoreHasCMKsException) as caught:
        client.delete_custom_key_store(CustomKeyStoreId=store_id)

    assert "1 KMS keys" in str(caught.value)


def test_delete_custom_key_store_is_refused_while_its_keys_are_pending_deletion_and_allowed_after(
    emu: Emulator, client: Any
) -> None:
    store_id = connected_store(emu)
    key_id = hsm_key(client, store_id)
    client.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    advance(emu, 0.5)
    with pytest.raises(client.exceptions.CustomKeyStoreHasCMKsException):
        client.delete_custom_key_store(CustomKeyStoreId=store_id)

    advance(emu, 7 * DAY)
    client.delete_custom_key_store(CustomKeyStoreId=store_id)

    with pytest.raises(client.exceptions.CustomKeyStoreNotFoundException):
        client.describe_custom_key_stores(CustomKeyStoreId=store_id)


def test_set_key_count_makes_a_store_hold_that_many_real_keys(emu: Emulator, client: Any) -> None:
    store_id = emu.create_store("hsm")

    emu.set_key_count(store_id, 3)
    held = [key for key in emu.keys if key.get("CustomKeyStoreId") == store_id]
    emu.set_key_count(store_id, 1)

    assert len(held) == 3 and {key["Origin"] for key in held} == {"AWS_CLOUDHSM"}
    assert len(client.list_keys()["Keys"]) == 1


# -- faults and quotas ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["ListKeys", "DescribeKey", "ListAliases"])
def test_a_denied_operation_gets_access_denied_naming_the_caller_and_the_action(
    emu: Emulator, client: Any, operation: str
) -> None:
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    emu.deny(operation)
    calls = {
        "ListKeys": lambda: client.list_keys(),
        "DescribeKey": lambda: client.describe_key(KeyId=key_id),
        "ListAliases": lambda: client.list_aliases(),
    }

    with pytest.raises(ClientError) as caught:
        calls[operation]()

    assert error_code(caught) == "AccessDeniedException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    message = caught.value.response["Error"]["Message"]
    assert f"User: arn:aws:iam::000000000000:root is not authorized to perform: kms:{operation}" in message
    assert emu.calls[-1].outcome == "AccessDeniedException"


def test_a_denial_names_the_assumed_role_session_and_the_key(emu: Emulator) -> None:
    role = f"arn:aws:iam::{OTHER_ACCOUNT}:role/reader"
    session = emu.sts_client().assume_role(RoleArn=role, RoleSessionName="preview")["Credentials"]
    client = emu.client(
        access_key_id=session["AccessKeyId"],
        secret_access_key=session["SecretAccessKey"],
        session_token=session["SessionToken"],
        **NO_RETRY,
    )
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    emu.deny("DescribeKey")

    with pytest.raises(ClientError) as caught:
        client.describe_key(KeyId=key_id)

    message = caught.value.response["Error"]["Message"]
    assert f"arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/reader/preview" in message
    assert f"on resource: arn:aws:kms:{REGION}:{OTHER_ACCOUNT}:key/{key_id}" in message


def test_a_denial_is_lifted_with_denied_false(emu: Emulator, client: Any) -> None:
    emu.deny("ListKeys")
    emu.deny("ListKeys", denied=False)
    assert client.list_keys()["Keys"] == []


def test_denied_operations_given_at_construction_survive_a_reset(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(denied_operations=["ListAliases"])
    emu.reset()
    with pytest.raises(ClientError) as caught:
        emu.client(**NO_RETRY).list_aliases()
    assert error_code(caught) == "AccessDeniedException"


def test_the_admin_endpoint_denies_and_allows_operations(emu: Emulator, client: Any) -> None:
    def post(body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            emu.endpoint_url + "/_emulator/faults", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    denied = post({"denied_operations": {"ListKeys": True, "DescribeKey": True}})
    with pytest.raises(ClientError):
        client.list_keys()
    allowed = post({"denied_operations": {"ListKeys": False}})

    assert denied["denied_operations"] == ["DescribeKey", "ListKeys"]
    assert allowed["denied_operations"] == ["DescribeKey"]
    assert client.list_keys()["Keys"] == []


def test_denying_an_operation_the_emulator_lacks_is_refused(emu: Emulator) -> None:
    with pytest.raises(EmulatorConfigError):
        emu.deny("ListGrants")


def test_with_throttling_on_key_operations_get_kmss_own_quotas(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(clock=FakeClock(), throttle_rps=1)
    client = emu.client(**NO_RETRY)
    client.describe_custom_key_stores()

    listed = [client.list_keys() for _ in range(100)]  # KMS: 100 ListKeys per second
    with pytest.raises(ClientError) as throttled:
        client.list_keys()
    with pytest.raises(ClientError) as store_throttled:
        client.describe_custom_key_stores()

    assert len(listed) == 100
    assert error_code(throttled) == error_code(store_throttled) == "ThrottlingException"


def test_fail_next_answers_a_key_operation_with_an_internal_error(emu: Emulator, client: Any) -> None:
    emu.fail_next(1, operation="DescribeKey")
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    with pytest.raises(client.exceptions.KMSInternalException):
        client.describe_key(KeyId=key_id)
    assert client.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id


# -- seeds and the state file -----------------------------------------------------------------------------------

HSM_SEED_ID = "cks-0123456789abcdef0"
XKS_SEED_ID = "cks-0fedcba9876543210"
PAYMENTS_KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"


def seed() -> list[dict[str, Any]]:
    return [
        {
            "CustomKeyStoreId": HSM_SEED_ID,
            "CustomKeyStoreName": "local-hsm",
            "CloudHsmClusterId": "cluster-1a2b3c4d5e6",
            "TrustAnchorCertificate": "trust",
            "ConnectionState": "CONNECTED",
            "Keys": [
                {"KeyId": PAYMENTS_KEY, "Description": "payments", "Aliases": ["alias/payments"]},
                {"KeyState": "Disabled"},
            ],
        },
        {
            "CustomKeyStoreId": XKS_SEED_ID,
            "CustomKeyStoreName": "local-xks",
            "CustomKeyStoreType": "EXTERNAL_KEY_STORE",
            "XksProxyUriEndpoint": "https://xks.example.com",
            "XksProxyUriPath": "/kms/xks/v1",
            "XksProxyConnectivity": "PUBLIC_ENDPOINT",
            "XksProxyAuthenticationCredential": {"AccessKeyId": "ABCDEFGHIJKLMNOPQRST"},
            "Keys": [{"XksKeyId": "ext-1"}],
        },
    ]


def test_a_seed_declares_keys_and_aliases_in_its_stores(make_emulator: Callable[..., Emulator]) -> None:
    client = make_emulator(seed=seed()).client(**NO_RETRY)

    payments = client.describe_key(KeyId="alias/payments")["KeyMetadata"]
    keys = [client.describe_key(KeyId=key["KeyId"])["KeyMetadata"] for key in client.list_keys()["Keys"]]

    assert payments["KeyId"] == PAYMENTS_KEY and payments["Description"] == "payments"
    assert [(k["CustomKeyStoreId"], k["Origin"], k["KeyState"]) for k in keys] == [
        (HSM_SEED_ID, "AWS_CLOUDHSM", "Enabled"),
        (HSM_SEED_ID, "AWS_CLOUDHSM", "Disabled"),
        (XKS_SEED_ID, "EXTERNAL_KEY_STORE", "Unavailable"),  # the store is DISCONNECTED
    ]
    assert keys[2]["XksKeyConfiguration"] == {"Id": "ext-1"}


def test_a_seeded_key_without_an_id_gets_the_same_id_at_every_start(make_emulator: Callable[..., Emulator]) -> None:
    first = [key["KeyId"] for key in make_emulator(seed=seed()).keys]
    second = [key["KeyId"] for key in make_emulator(seed=seed()).keys]
    assert first == second and len(set(first)) == 3


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ({"KeyId": "not-a-uuid"}, "KeyId must be a lower-case UUID"),
        ({"KeyState": "PendingDeletion"}, "KeyState must be Enabled or Disabled"),
        ({"Aliases": ["alias/aws/ebs"]}, "alias/aws/"),
        ({"Colour": "red"}, "unknown key 'Colour'"),
        ({"XksKeyId": "ext-1"}, "XksKeyId is for a key in an external key store"),
    ],
)
def test_a_seed_with_a_bad_key_is_refused_naming_it(
    make_emulator: Callable[..., Emulator], key: dict[str, Any], problem: str
) -> None:
    entries = seed()[:1]
    entries[0]["Keys"] = [key]
    with pytest.raises(EmulatorStateError) as caught:
        make_emulator(seed=entries)
    assert "Keys[0]" in str(caught.value) and problem in str(caught.value)


def test_a_seed_that_names_an_alias_twice_is_refused(make_emulator: Callable[..., Emulator]) -> None:
    entries = seed()
    entries[1]["Region"] = "us-east-1"
    entries[0]["Keys"] = [{"Aliases": ["alias/twice"]}, {"Aliases": ["alias/twice"]}]
    with pytest.raises(EmulatorStateError) as caught:
        make_emulator(seed=entries)
    assert "alias alias/twice appears more than once" in str(caught.value)


def test_keys_aliases_and_deletion_dates_survive_a_restart(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    first = make_emulator(state_file=state_file, seed=seed())
    client = first.client(**NO_RETRY)
    pending = client.create_key(Description="pending")["KeyMetadata"]["KeyId"]
    scheduled = client.schedule_key_deletion(KeyId=pending, PendingWindowInDays=7)
    before = first.keys
    first.stop()

    second = make_emulator(state_file=state_file)
    again = second.client(**NO_RETRY)

    assert second.keys == before
    assert again.describe_key(KeyId=pending)["KeyMetadata"]["DeletionDate"] == scheduled["DeletionDate"]
    assert again.describe_key(KeyId="alias/payments")["KeyMetadata"]["KeyId"] == PAYMENTS_KEY


def test_a_ciphertext_made_before_a_restart_decrypts_after_it(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    first = make_emulator(state_file=state_file)
    key_id = first.client(**NO_RETRY).create_key()["KeyMetadata"]["KeyId"]
    sealed = first.client(**NO_RETRY).encrypt(KeyId=key_id, Plaintext=b"kept")["CiphertextBlob"]
    first.stop()

    second = make_emulator(state_file=state_file)

    assert second.client(**NO_RETRY).decrypt(CiphertextBlob=sealed)["Plaintext"] == b"kept"


def test_the_state_file_holds_no_key_material_or_plaintext(
    make_emulator: Callable[..., Emulator], tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    emu = make_emulator(state_file=state_file)
    client = emu.client(**NO_RETRY)
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    data_key = client.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"]
    emu.stop()

    text = state_file.read_text()
    saved = json.loads(text)
    assert [key["KeyId"] for key in saved["keys"]] == [key_id]
    assert set(saved["keys"][0]) <= {
        "Account", "Region", "KeyId", "Sequence", "CreationDate", "Origin", "Description", "Enabled",
        "CustomKeyStoreId", "CloudHsmClusterId", "XksKeyId", "DeletionDate",
    }  # fmt: skip
    assert base64.b64encode(data_key).decode() not in text


def test_the_admin_endpoint_lists_every_key_with_its_aliases(make_emulator: Callable[..., Emulator]) -> None:
    emu = make_emulator(seed=seed())
    with urllib.request.urlopen(emu.endpoint_url + "/_emulator/keys", timeout=5) as response:
        keys = json.loads(response.read())["keys"]
    first = keys[0]
    assert (first["KeyId"], first["Aliases"], first["Region"]) == (PAYMENTS_KEY, ["alias/payments"], REGION)
    assert len(keys) == 3


# -- conformance with botocore's model --------------------------------------------------------------------------

KEY_OPERATIONS = sorted(
    [
        "CreateKey", "DescribeKey", "ListKeys", "CreateAlias", "ListAliases", "EnableKey", "DisableKey",
        "ScheduleKeyDeletion", "CancelKeyDeletion", "Encrypt", "Decrypt", "GenerateDataKey",
    ]
)  # fmt: skip
#: Errors any operation may get that no operation documents: the protocol's, IAM's and the front door's.
COMMON_ERRORS = {"ValidationException", "AccessDeniedException", "ThrottlingException"}
#: Modeled output members the emulator never returns, each for a feature it does not have.
LEFT_OUT = {
    "KeyMetadata.ValidTo",  # imported key material
    "KeyMetadata.ExpirationModel",  # imported key material
    "KeyMetadata.SigningAlgorithms",  # asymmetric keys
    "KeyMetadata.KeyAgreementAlgorithms",  # asymmetric keys
    "KeyMetadata.EncapsulationAlgorithms",  # ML-KEM keys
    "KeyMetadata.MacAlgorithms",  # HMAC keys
    "KeyMetadata.MultiRegionConfiguration",  # multi-Region keys
    "KeyMetadata.PendingDeletionWindowInDays",  # multi-Region keys
    "KeyMetadata.CurrentKeyMaterialId",  # key rotation
    "CiphertextForRecipient",  # Nitro Enclaves
    "KeyMaterialId",  # key rotation
}


@pytest.fixture
def key_tour(emu: Emulator) -> list[Any]:
    """The answers, successes and failures, of every key operation over both store types and every key state."""
    from tests.test_emulator_conformance import Recorder

    client = emu.client(**NO_RETRY)
    recorder = Recorder(client)
    hsm, xks = connected_store(emu), connected_store(emu, "EXTERNAL_KEY_STORE", "xks")
    plain = client.create_key(Description="plain")["KeyMetadata"]["KeyId"]
    in_hsm = hsm_key(client, hsm)
    in_xks = client.create_key(CustomKeyStoreId=xks, Origin="EXTERNAL_KEY_STORE", XksKeyId="ext-1")["KeyMetadata"]
    client.create_alias(AliasName="alias/plain", TargetKeyId=plain)
    sealed = client.encrypt(KeyId=plain, Plaintext=b"x", EncryptionContext={"a": "b"})["CiphertextBlob"]
    client.decrypt(CiphertextBlob=sealed, EncryptionContext={"a": "b"})
    client.generate_data_key(KeyId="alias/plain", NumberOfBytes=8)
    client.list_keys(Limit=1)
    client.list_aliases(KeyId=plain)
    client.disable_key(KeyId=plain)
    client.enable_key(KeyId=plain)
    client.schedule_key_deletion(KeyId=in_xks["KeyId"], PendingWindowInDays=7)
    client.describe_key(KeyId=in_xks["KeyId"])
    client.cancel_key_deletion(KeyId=in_xks["KeyId"])
    client.disconnect_custom_key_store(CustomKeyStoreId=hsm)
    client.describe_key(KeyId=in_hsm)
    failures: list[Callable[[], object]] = [
        lambda: client.create_key(CustomKeyStoreId=hsm, Origin="AWS_CLOUDHSM"),
        lambda: client.create_key(CustomKeyStoreId="cks-00000000000000000", Origin="AWS_CLOUDHSM"),
        lambda: client.create_key(CustomKeyStoreId=xks, Origin="EXTERNAL_KEY_STORE", XksKeyId="ext-1"),
        lambda: client.create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY"),
        lambda: client.describe_key(KeyId=UNKNOWN_KEY),
        lambda: client.describe_key(KeyId="arn:aws:kms:broken"),
        lambda: client.list_keys(Marker="bad"),
        lambda: client.list_aliases(KeyId="alias/plain"),
        lambda: client.list_aliases(Marker="bad"),
        lambda: client.create_alias(AliasName="alias/plain", TargetKeyId=plain),
        lambda: client.create_alias(AliasName="alias/aws/x", TargetKeyId=plain),
        lambda: client.create_alias(AliasName="alias/new", TargetKeyId="arn:aws:kms:broken"),
        lambda: client.enable_key(KeyId=in_hsm),
        lambda: client.disable_key(KeyId="arn:aws:kms:broken"),
        lambda: client.cancel_key_deletion(KeyId=plain),
        lambda: client.encrypt(KeyId=in_hsm, Plaintext=b"x"),
        lambda: client.encrypt(KeyId="arn:aws:kms:broken", Plaintext=b"x"),
        lambda: client.encrypt(KeyId=plain, Plaintext=b"x", DryRun=True),
        lambda: client.encrypt(KeyId=plain, Plaintext=b"x", EncryptionAlgorithm="SM2PKE"),
        lambda: client.decrypt(CiphertextBlob=sealed),
        lambda: client.decrypt(CiphertextBlob=sealed, KeyId=in_hsm, EncryptionContext={"a": "b"}),
        lambda: client.generate_data_key(KeyId=UNKNOWN_KEY, NumberOfBytes=8),
    ]
    client.schedule_key_deletion(KeyId=in_xks["KeyId"])
    failures += [
        lambda: client.schedule_key_deletion(KeyId=in_xks["KeyId"]),
        lambda: client.generate_data_key(KeyId=in_xks["KeyId"], NumberOfBytes=8),
    ]
    client.disable_key(KeyId=plain)
    failures.append(lambda: client.decrypt(CiphertextBlob=sealed, EncryptionContext={"a": "b"}))
    for failure in failures:
        with pytest.raises(ClientError):
            failure()
    return list(recorder.answers)


def test_the_key_tour_calls_every_key_operation_and_gets_each_its_errors(key_tour: list[Any]) -> None:
    assert {answer.operation for answer in key_tour} >= set(KEY_OPERATIONS)
    failed = {answer.operation for answer in key_tour if answer.status != 200}
    assert failed == set(KEY_OPERATIONS)


def test_every_member_a_key_operation_returns_is_modeled_with_its_type(key_tour: list[Any]) -> None:
    from tests.test_emulator_conformance import output_shape, shape_problems

    problems: list[str] = []
    for answer in [answer for answer in key_tour if answer.status == 200 and answer.body]:
        shape = output_shape(answer.operation)
        unmodeled = [name for name in answer.body if name not in shape.members]
        problems += [f"{answer.operation}.{name}: not modeled" for name in unmodeled]
        for name, member in shape.members.items():
            if name not in answer.body:
                continue
            value, path = answer.body[name], f"{answer.operation}.{name}"
            if member.type_name == "blob":
                # AWS JSON sends blobs base64-encoded.
                problems += [] if isinstance(base64.b64decode(value, validate=True), bytes) else [path]
            else:
                problems += shape_problems(value, member, path)
    assert problems == []


def test_the_modeled_output_members_the_emulator_leaves_out_are_those_of_features_it_lacks(
    key_tour: list[Any],
) -> None:
    from tests.test_emulator_conformance import MODEL, member_paths, returned_paths

    shapes = {operation: MODEL.operation_model(operation).output_shape for operation in KEY_OPERATIONS}
    modeled = {
        path.split(".", 1)[1]
        for operation, shape in shapes.items()
        if shape is not None
        for path in member_paths(shape, operation)
    }
    returned = {
        path.split(".", 1)[1]
        for answer in key_tour
        if answer.status == 200
        for path in returned_paths(answer.body, answer.operation)
    }
    assert {path for path in modeled - returned if "." not in path.removeprefix("KeyMetadata.")} == LEFT_OUT


def test_every_error_a_key_operation_answers_is_documented_for_it_with_the_modeled_status(
    key_tour: list[Any],
) -> None:
    from tests.test_emulator_conformance import MODEL, modeled_status

    for answer in key_tour:
        if answer.status == 200:
            continue
        error = answer.body["__type"]
        documented = {shape.name for shape in MODEL.operation_model(answer.operation).error_shapes}
        assert error in documented | COMMON_ERRORS, (answer.operation, error)
        if error in documented:
            assert answer.status == modeled_status(error), (answer.operation, error)
        assert answer.body["message"]
