"""The six custom key store operations through unmodified boto3: shapes, rules, errors, Regions, call log."""

from __future__ import annotations

import datetime
import json
import re
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from kms_connection.emulator import Emulator, FakeClock

NO_RETRY: dict[str, Any] = {"retries": {"total_max_attempts": 1}}
PASSWORD = "kmsuser-Pa55word"
XKS_SECRET = "XksSecretXksSecretXksSecretXksSecretXksSecret0123"
XKS_ACCESS_KEY_ID = "ABCDEFGHIJKLMNOPQRST"


def hsm_params(name: str = "hsm", cluster: str = "cluster-234567abcdefg") -> dict[str, Any]:
    return {
        "CustomKeyStoreName": name,
        "CustomKeyStoreType": "AWS_CLOUDHSM",
        "CloudHsmClusterId": cluster,
        "TrustAnchorCertificate": "-----BEGIN CERTIFICATE-----\ntrust\n-----END CERTIFICATE-----",
        "KeyStorePassword": PASSWORD,
    }


def xks_params(
    name: str = "xks", endpoint: str = "https://xks.example.com", vpc_service: str | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "CustomKeyStoreName": name,
        "CustomKeyStoreType": "EXTERNAL_KEY_STORE",
        "XksProxyUriEndpoint": endpoint,
        "XksProxyUriPath": "/example/kms/xks/v1",
        "XksProxyAuthenticationCredential": {"AccessKeyId": XKS_ACCESS_KEY_ID, "RawSecretAccessKey": XKS_SECRET},
        "XksProxyConnectivity": "VPC_ENDPOINT_SERVICE" if vpc_service else "PUBLIC_ENDPOINT",
    }
    if vpc_service:
        params["XksProxyVpcEndpointServiceName"] = vpc_service
        params["XksProxyVpcEndpointServiceOwner"] = "111122223333"
    return params


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    """An emulator on a fake clock: nothing moves unless the test advances it."""
    return make_emulator(clock=FakeClock(), connect_seconds=1.0, disconnect_seconds=0.5)


def describe_one(client: Any, store_id: str) -> dict[str, Any]:
    stores = client.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"]
    assert len(stores) == 1
    return dict(stores[0])


# -- CreateCustomKeyStore ---------------------------------------------------------------------------


def test_create_cloudhsm_store_returns_an_id_shaped_like_kms(emu: Emulator) -> None:
    store_id = emu.client().create_custom_key_store(**hsm_params())["CustomKeyStoreId"]
    assert re.fullmatch(r"cks-[0-9a-f]{17}", store_id)


def test_describe_cloudhsm_entry_has_exactly_the_model_members(emu: Emulator) -> None:
    client = emu.client()
    store_id = client.create_custom_key_store(**hsm_params())["CustomKeyStoreId"]
    entry = describe_one(client, store_id)
    assert set(entry) == {
        "CustomKeyStoreId",
        "CustomKeyStoreName",
        "CustomKeyStoreType",
        "ConnectionState",
        "CreationDate",
        "CloudHsmClusterId",
        "TrustAnchorCertificate",
    }
    assert entry["CustomKeyStoreType"] == "AWS_CLOUDHSM"
    assert entry["ConnectionState"] == "DISCONNECTED"
    assert entry["CloudHsmClusterId"] == "cluster-234567abcdefg"
    assert isinstance(entry["CreationDate"], datetime.datetime)
    age = datetime.datetime.now(datetime.timezone.utc) - entry["CreationDate"]
    assert abs(age.total_seconds()) < 60


def test_describe_external_entry_has_proxy_configuration_and_no_secret(emu: Emulator) -> None:
    client = emu.client()
    store_id = client.create_custom_key_store(**xks_params())["CustomKeyStoreId"]
    entry = describe_one(client, store_id)
    assert set(entry) == {
        "CustomKeyStoreId",
        "CustomKeyStoreName",
        "CustomKeyStoreType",
        "ConnectionState",
        "CreationDate",
        "XksProxyConfiguration",
    }
    assert entry["XksProxyConfiguration"] == {
        "Connectivity": "PUBLIC_ENDPOINT",
        "AccessKeyId": XKS_ACCESS_KEY_ID,
        "UriEndpoint": "https://xks.example.com",
        "UriPath": "/example/kms/xks/v1",
    }
    assert XKS_SECRET not in json.dumps(entry, default=str)


def test_create_external_store_with_vpc_endpoint_service(emu: Emulator) -> None:
    client = emu.client()
    service = "com.amazonaws.vpce.us-east-1.vpce-svc-0abc123"
    store_id = client.create_custom_key_store(**xks_params(vpc_service=service))["CustomKeyStoreId"]
    config = describe_one(client, store_id)["XksProxyConfiguration"]
    assert config["Connectivity"] == "VPC_ENDPOINT_SERVICE"
    assert config["VpcEndpointServiceName"] == service
    assert config["VpcEndpointServiceOwner"] == "111122223333"


def test_create_store_type_defaults_to_cloudhsm(emu: Emulator) -> None:
    client = emu.client()
    params = hsm_params()
    del params["CustomKeyStoreType"]
    store_id = client.create_custom_key_store(**params)["CustomKeyStoreId"]
    assert describe_one(client, store_id)["CustomKeyStoreType"] == "AWS_CLOUDHSM"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({k: v for k, v in hsm_params().items() if k != "KeyStorePassword"}, "requires KeyStorePassword"),
        ({k: v for k, v in hsm_params().items() if k != "CloudHsmClusterId"}, "requires CloudHsmClusterId"),
        (hsm_params() | {"XksProxyUriPath": "/kms/xks/v1"}, "XksProxyUriPath is not valid"),
        ({k: v for k, v in xks_params().items() if k != "XksProxyConnectivity"}, "requires XksProxyConnectivity"),
        (xks_params() | {"XksProxyConnectivity": "VPC_ENDPOINT_SERVICE"}, "ServiceName is required"),
        (xks_params() | {"XksProxyVpcEndpointServiceName": "com.amazonaws.vpce.us-east-1.vpce-svc-0a1"}, "valid only"),
        (xks_params() | {"KeyStorePassword": PASSWORD}, "KeyStorePassword is not valid"),
    ],
)
def test_create_with_members_wrong_for_the_type_gets_validation_exception(
    emu: Emulator, params: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ClientError) as caught:
        emu.client(**NO_RETRY).create_custom_key_store(**params)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert expected in caught.value.response["Error"]["Message"]


def test_create_with_a_name_in_use_gets_name_in_use(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    client.create_custom_key_store(**hsm_params("same"))
    with pytest.raises(client.exceptions.CustomKeyStoreNameInUseException):
        client.create_custom_key_store(**xks_params("same"))


def test_create_with_a_cluster_in_use_gets_cluster_in_use(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    client.create_custom_key_store(**hsm_params("one"))
    with pytest.raises(client.exceptions.CloudHsmClusterInUseException):
        client.create_custom_key_store(**hsm_params("two"))


def test_create_with_a_proxy_uri_in_use_gets_uri_in_use(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    client.create_custom_key_store(**xks_params("one"))
    with pytest.raises(client.exceptions.XksProxyUriInUseException):
        client.create_custom_key_store(**xks_params("two"))


def test_create_with_a_vpc_endpoint_service_in_use_gets_service_in_use(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    service = "com.amazonaws.vpce.us-east-1.vpce-svc-0abc123"
    client.create_custom_key_store(**xks_params("one", "https://one.example.com", service))
    with pytest.raises(client.exceptions.XksProxyVpcEndpointServiceInUseException):
        client.create_custom_key_store(**xks_params("two", "https://two.example.com", service))


def test_store_limit_defaults_to_ten_per_region(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    for index in range(10):
        client.create_custom_key_store(**hsm_params(f"s{index}", f"cluster-234567abcd{chr(ord('a') + index)}"))
    with pytest.raises(client.exceptions.LimitExceededException):
        client.create_custom_key_store(**hsm_params("eleventh", "cluster-234567abcdz"))
    # The quota is per Region.
    emu.client("us-west-2").create_custom_key_store(**hsm_params("eleventh", "cluster-234567abcdz"))


def test_store_limit_is_configurable(make_emulator: Callable[..., Emulator]) -> None:
    client = make_emulator(store_limit=1).client(**NO_RETRY)
    client.create_custom_key_store(**hsm_params("first"))
    with pytest.raises(client.exceptions.LimitExceededException):
        client.create_custom_key_store(**xks_params("second"))


# -- DescribeCustomKeyStores ------------------------------------------------------------------------


def test_describe_by_name_finds_the_store(emu: Emulator) -> None:
    client = emu.client()
    client.create_custom_key_store(**hsm_params("alpha"))
    store_id = client.create_custom_key_store(**xks_params("beta"))["CustomKeyStoreId"]
    stores = client.describe_custom_key_stores(CustomKeyStoreName="beta")["CustomKeyStores"]
    assert [s["CustomKeyStoreId"] for s in stores] == [store_id]


def test_describe_unknown_id_or_name_gets_not_found(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    with pytest.raises(client.exceptions.CustomKeyStoreNotFoundException):
        client.describe_custom_key_stores(CustomKeyStoreId="cks-00000000000000000")
    with pytest.raises(client.exceptions.CustomKeyStoreNotFoundException):
        client.describe_custom_key_stores(CustomKeyStoreName="nobody")


def test_describe_with_both_id_and_name_gets_validation_exception(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    store_id = client.create_custom_key_store(**hsm_params())["CustomKeyStoreId"]
    with pytest.raises(ClientError) as caught:
        client.describe_custom_key_stores(CustomKeyStoreId=store_id, CustomKeyStoreName="hsm")
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_describe_all_lists_stores_in_creation_order_untruncated(emu: Emulator) -> None:
    client = emu.client()
    ids = [emu.create_store(f"store-{index}") for index in range(3)]
    response = client.describe_custom_key_stores()
    assert [s["CustomKeyStoreId"] for s in response["CustomKeyStores"]] == ids
    assert response["Truncated"] is False
    assert "NextMarker" not in response


def test_describe_pages_with_limit_and_marker(emu: Emulator) -> None:
    client = emu.client()
    ids = [emu.create_store(f"store-{index}") for index in range(5)]
    seen: list[str] = []
    pages = []
    marker: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Limit": 2} | ({"Marker": marker} if marker else {})
        page = client.describe_custom_key_stores(**kwargs)
        pages.append(len(page["CustomKeyStores"]))
        seen += [s["CustomKeyStoreId"] for s in page["CustomKeyStores"]]
        if not page["Truncated"]:
            assert "NextMarker" not in page
            break
        marker = page["NextMarker"]
    assert pages == [2, 2, 1]
    assert seen == ids


def test_boto3_paginator_walks_every_store(emu: Emulator) -> None:
    ids = [emu.create_store(f"store-{index}") for index in range(7)]
    paginator = emu.client().get_paginator("describe_custom_key_stores")
    seen = [
        s["CustomKeyStoreId"]
        for page in paginator.paginate(PaginationConfig={"PageSize": 3})
        for s in page["CustomKeyStores"]
    ]
    assert seen == ids


def test_describe_with_a_bad_marker_gets_invalid_marker(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    with pytest.raises(client.exceptions.InvalidMarkerException):
        client.describe_custom_key_stores(Marker="not-a-marker")


def test_marker_from_another_region_is_invalid(emu: Emulator) -> None:
    for index in range(3):
        emu.create_store(f"store-{index}", region="us-west-2")
    marker = emu.client("us-west-2").describe_custom_key_stores(Limit=1)["NextMarker"]
    client = emu.client(**NO_RETRY)
    with pytest.raises(client.exceptions.InvalidMarkerException):
        client.describe_custom_key_stores(Marker=marker)


def test_a_store_deleted_between_pages_does_not_break_pagination(emu: Emulator) -> None:
    client = emu.client()
    ids = [emu.create_store(f"store-{index}") for index in range(4)]
    first = client.describe_custom_key_stores(Limit=2)
    client.delete_custom_key_store(CustomKeyStoreId=ids[1])
    second = client.describe_custom_key_stores(Limit=2, Marker=first["NextMarker"])
    assert [s["CustomKeyStoreId"] for s in second["CustomKeyStores"]] == ids[2:]


# -- Regions ----------------------------------------------------------------------------------------


def test_each_region_has_its_own_stores(emu: Emulator) -> None:
    east, west = emu.client("us-east-1", **NO_RETRY), emu.client("us-west-2", **NO_RETRY)
    east_id = east.create_custom_key_store(**hsm_params("shared-name"))["CustomKeyStoreId"]
    west_id = west.create_custom_key_store(**hsm_params("shared-name"))["CustomKeyStoreId"]
    assert [s["CustomKeyStoreId"] for s in east.describe_custom_key_stores()["CustomKeyStores"]] == [east_id]
    assert [s["CustomKeyStoreId"] for s in west.describe_custom_key_stores()["CustomKeyStores"]] == [west_id]
    with pytest.raises(west.exceptions.CustomKeyStoreNotFoundException):
        west.connect_custom_key_store(CustomKeyStoreId=east_id)
    assert emu.state_of(east_id) == "DISCONNECTED"


# -- UpdateCustomKeyStore ---------------------------------------------------------------------------


def test_rename_is_allowed_while_connected(emu: Emulator) -> None:
    client = emu.client()
    store_id = emu.create_store("old", connection_state="CONNECTED")
    client.update_custom_key_store(CustomKeyStoreId=store_id, NewCustomKeyStoreName="new")
    assert describe_one(client, store_id)["CustomKeyStoreName"] == "new"


@pytest.mark.parametrize("state", ["CONNECTED", "CONNECTING", "DISCONNECTING"])
def test_password_update_requires_disconnected(emu: Emulator, state: str) -> None:
    client = emu.client(**NO_RETRY)
    store_id = emu.create_store("hsm", connection_state=state)
    with pytest.raises(client.exceptions.CustomKeyStoreInvalidStateException) as caught:
        client.update_custom_key_store(CustomKeyStoreId=store_id, KeyStorePassword="new-password")
    assert state in str(caught.value)


def test_password_and_cluster_update_succeed_when_disconnected(emu: Emulator) -> None:
    client = emu.client()
    store_id = emu.create_store("hsm")
    client.update_custom_key_store(
        CustomKeyStoreId=store_id, KeyStorePassword="new-password", CloudHsmClusterId="cluster-765432zyxwv"
    )
    assert describe_one(client, store_id)["CloudHsmClusterId"] == "cluster-765432zyxwv"


def test_external_credential_and_path_update_while_connected(emu: Emulator) -> None:
    client = emu.client()
    store_id = emu.create_store("xks", store_type="EXTERNAL_KEY_STORE", connection_state="CONNECTED")
    client.update_custom_key_store(
        CustomKeyStoreId=store_id,
        XksProxyUriPath="/new/kms/xks/v2",
        XksProxyAuthenticationCredential={"AccessKeyId": "ZYXWVUTSRQPONMLKJIHG", "RawSecretAccessKey": XKS_SECRET},
    )
    config = describe_one(client, store_id)["XksProxyConfiguration"]
    assert (config["UriPath"], config["AccessKeyId"]) == ("/new/kms/xks/v2", "ZYXWVUTSRQPONMLKJIHG")


def test_external_endpoint_update_requires_disconnected(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    store_id = emu.create_store("xks", store_type="EXTERNAL_KEY_STORE", connection_state="CONNECTED")
    with pytest.raises(client.exceptions.CustomKeyStoreInvalidStateException):
        client.update_custom_key_store(CustomKeyStoreId=store_id, XksProxyUriEndpoint="https://other.example.com")


def test_switching_to_vpc_connectivity_needs_a_service_name(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    store_id = emu.create_store("xks", store_type="EXTERNAL_KEY_STORE")
    with pytest.raises(ClientError) as caught:
        client.update_custom_key_store(CustomKeyStoreId=store_id, XksProxyConnectivity="VPC_ENDPOINT_SERVICE")
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_update_with_a_member_of_the_other_type_gets_validation_exception(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    store_id = emu.create_store("hsm")
    with pytest.raises(ClientError) as caught:
        client.update_custom_key_store(CustomKeyStoreId=store_id, XksProxyUriPath="/kms/xks/v1")
    assert caught.value.response["Error"]["Code"] == "ValidationException"


def test_rename_to_a_name_in_use_gets_name_in_use(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    emu.create_store("taken")
    store_id = emu.create_store("mine")
    with pytest.raises(client.exceptions.CustomKeyStoreNameInUseException):
        client.update_custom_key_store(CustomKeyStoreId=store_id, NewCustomKeyStoreName="taken")


def test_update_unknown_store_gets_not_found(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    with pytest.raises(client.exceptions.CustomKeyStoreNotFoundException):
        client.update_custom_key_store(CustomKeyStoreId="cks-00000000000000000", NewCustomKeyStoreName="x")


# -- DeleteCustomKeyStore ---------------------------------------------------------------------------


def test_delete_disconnected_store_removes_it(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    store_id = client.create_custom_key_store(**hsm_params())["CustomKeyStoreId"]
    assert client.delete_custom_key_store(CustomKeyStoreId=store_id)["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(client.exceptions.CustomKeyStoreNotFoundException):
        client.describe_custom_key_stores(CustomKeyStoreId=store_id)
    # The name and the cluster are free again.
    client.create_custom_key_store(**hsm_params())


@pytest.mark.parametrize("state", ["CONNECTED", "CONNECTING", "DISCONNECTING", "FAILED"])
def test_delete_refused_unless_disconnected(emu: Emulator, state: str) -> None:
    client = emu.client(**NO_RETRY)
    store_id = emu.create_store("s", connection_state=state, error_code="NETWORK_ERRORS" if state == "FAILED" else None)
    with pytest.raises(client.exceptions.CustomKeyStoreInvalidStateException) as caught:
        client.delete_custom_key_store(CustomKeyStoreId=store_id)
    assert f"connection state is {state}" in str(caught.value)
    assert emu.state_of(store_id) == state


def test_delete_store_with_kms_keys_gets_has_cmks(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    store_id = emu.create_store("s")
    emu.set_key_count(store_id, 2)
    with pytest.raises(client.exceptions.CustomKeyStoreHasCMKsException):
        client.delete_custom_key_store(CustomKeyStoreId=store_id)
    emu.set_key_count(store_id, 0)
    client.delete_custom_key_store(CustomKeyStoreId=store_id)


def test_delete_unknown_store_gets_not_found(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    with pytest.raises(client.exceptions.CustomKeyStoreNotFoundException):
        client.delete_custom_key_store(CustomKeyStoreId="cks-00000000000000000")


# -- call log ---------------------------------------------------------------------------------------


def test_call_log_records_operation_store_region_time_and_outcome(emu: Emulator) -> None:
    assert isinstance(emu.clock, FakeClock)
    client = emu.client(**NO_RETRY)
    store_id = client.create_custom_key_store(**hsm_params())["CustomKeyStoreId"]
    emu.clock.advance(2.5)
    with pytest.raises(client.exceptions.CustomKeyStoreInvalidStateException):
        client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    first, second = emu.calls
    assert (first.operation, first.store_id, first.region, first.time, first.outcome) == (
        "CreateCustomKeyStore",
        store_id,
        "us-east-1",
        0.0,
        "ok",
    )
    assert (second.operation, second.store_id, second.time, second.outcome) == (
        "DisconnectCustomKeyStore",
        store_id,
        2.5,
        "CustomKeyStoreInvalidStateException",
    )
    emu.clear_calls()
    assert emu.calls == []


def test_direct_set_up_is_not_logged(emu: Emulator) -> None:
    emu.create_store("direct")
    assert emu.calls == []


def test_call_log_never_holds_a_password_or_xks_secret(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    hsm_id = client.create_custom_key_store(**hsm_params())["CustomKeyStoreId"]
    client.create_custom_key_store(**xks_params())
    client.update_custom_key_store(CustomKeyStoreId=hsm_id, KeyStorePassword=PASSWORD + "2")
    with pytest.raises(ClientError):
        client.create_custom_key_store(**hsm_params("bad") | {"KeyStorePassword": PASSWORD * 3})
    logged = repr(emu.calls)
    with urllib.request.urlopen(emu.endpoint_url + "/_emulator/calls", timeout=5) as response:
        logged += response.read().decode()
    assert len(emu.calls) == 4
    for secret in (PASSWORD, XKS_SECRET, "Pa55word"):
        assert secret not in logged
