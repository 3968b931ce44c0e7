"""The seven differences from KMS a review against botocore's model found (issue 16), each through unmodified boto3.

Every test names the rule as KMS documents it; each failed against the emulator before the fix.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from kms_connection.emulator import Emulator, FakeClock
from kms_connection.emulator.store import ACCOUNT_ID

NO_RETRY: dict[str, Any] = {"retries": {"total_max_attempts": 1}}
XKS_CREDENTIAL = {
    "AccessKeyId": "ABCDEFGHIJKLMNOPQRST",
    "RawSecretAccessKey": "XksSecretXksSecretXksSecretXksSecretXksSecret0123",
}
VPC_SERVICE = "com.amazonaws.vpce.us-east-1.vpce-svc-0abc123"


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    """An emulator on a fake clock, so a store stays in the state a test puts it in."""
    return make_emulator(clock=FakeClock(), connect_seconds=1.0, disconnect_seconds=0.5)


def error_code(call: Callable[[], object]) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def describe_xks(emu: Emulator, store_id: str) -> dict[str, Any]:
    entry = emu.client().describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"][0]
    return dict(entry["XksProxyConfiguration"])


def create_xks(emu: Emulator, **overrides: Any) -> str:
    params: dict[str, Any] = {
        "CustomKeyStoreName": "xks",
        "CustomKeyStoreType": "EXTERNAL_KEY_STORE",
        "XksProxyUriEndpoint": "https://xks.example.com",
        "XksProxyUriPath": "/kms/xks/v1",
        "XksProxyAuthenticationCredential": XKS_CREDENTIAL,
        "XksProxyConnectivity": "PUBLIC_ENDPOINT",
    } | overrides
    return str(emu.client(**NO_RETRY).create_custom_key_store(**params)["CustomKeyStoreId"])


# -- 1. UpdateCustomKeyStore: DISCONNECTED, or CONNECTED for the changes its documentation allows there ----------


@pytest.mark.parametrize("state", ["CONNECTING", "DISCONNECTING", "FAILED"])
def test_rename_is_refused_unless_connected_or_disconnected(emu: Emulator, state: str) -> None:
    store_id = emu.create_store(
        "old", connection_state=state, error_code="NETWORK_ERRORS" if state == "FAILED" else None
    )
    client = emu.client(**NO_RETRY)
    code = error_code(lambda: client.update_custom_key_store(CustomKeyStoreId=store_id, NewCustomKeyStoreName="new"))
    assert code == "CustomKeyStoreInvalidStateException"
    assert emu.service.stores()[0]["CustomKeyStoreName"] == "old"


@pytest.mark.parametrize("state", ["CONNECTING", "DISCONNECTING", "FAILED"])
@pytest.mark.parametrize(
    "change",
    [{"XksProxyUriPath": "/new/kms/xks/v1"}, {"XksProxyAuthenticationCredential": XKS_CREDENTIAL}],
    ids=["path", "credential"],
)
def test_external_path_and_credential_updates_are_refused_unless_connected_or_disconnected(
    emu: Emulator, state: str, change: dict[str, Any]
) -> None:
    store_id = emu.create_store(
        "xks",
        store_type="EXTERNAL_KEY_STORE",
        connection_state=state,
        error_code="XKS_PROXY_TIMED_OUT" if state == "FAILED" else None,
    )
    client = emu.client(**NO_RETRY)
    code = error_code(lambda: client.update_custom_key_store(CustomKeyStoreId=store_id, **change))
    assert code == "CustomKeyStoreInvalidStateException"


# -- 2. Changing XksProxyConnectivity needs a new XksProxyUriEndpoint -------------------------------------------


def test_switching_to_vpc_connectivity_without_a_new_endpoint_is_refused(emu: Emulator) -> None:
    store_id = create_xks(emu)
    client = emu.client(**NO_RETRY)
    code = error_code(
        lambda: client.update_custom_key_store(
            CustomKeyStoreId=store_id,
            XksProxyConnectivity="VPC_ENDPOINT_SERVICE",
            XksProxyVpcEndpointServiceName=VPC_SERVICE,
        )
    )
    assert code == "ValidationException"
    assert describe_xks(emu, store_id)["Connectivity"] == "PUBLIC_ENDPOINT"


def test_switching_to_public_connectivity_with_the_same_endpoint_is_refused(emu: Emulator) -> None:
    store_id = create_xks(
        emu,
        XksProxyConnectivity="VPC_ENDPOINT_SERVICE",
        XksProxyVpcEndpointServiceName=VPC_SERVICE,
        XksProxyUriEndpoint="https://private.example.com",
    )
    client = emu.client(**NO_RETRY)
    code = error_code(
        lambda: client.update_custom_key_store(
            CustomKeyStoreId=store_id,
            XksProxyConnectivity="PUBLIC_ENDPOINT",
            XksProxyUriEndpoint="https://private.example.com",
        )
    )
    assert code == "ValidationException"


def test_switching_connectivity_with_a_new_endpoint_is_accepted(emu: Emulator) -> None:
    store_id = create_xks(emu)
    emu.client().update_custom_key_store(
        CustomKeyStoreId=store_id,
        XksProxyConnectivity="VPC_ENDPOINT_SERVICE",
        XksProxyVpcEndpointServiceName=VPC_SERVICE,
        XksProxyUriEndpoint="https://private.example.com",
    )
    config = describe_xks(emu, store_id)
    assert (config["Connectivity"], config["UriEndpoint"]) == ("VPC_ENDPOINT_SERVICE", "https://private.example.com")


# -- 3. VpcEndpointServiceOwner defaults to the caller's account ------------------------------------------------


def test_vpc_store_created_without_an_owner_is_owned_by_the_callers_account(emu: Emulator) -> None:
    store_id = create_xks(emu, XksProxyConnectivity="VPC_ENDPOINT_SERVICE", XksProxyVpcEndpointServiceName=VPC_SERVICE)
    assert describe_xks(emu, store_id)["VpcEndpointServiceOwner"] == ACCOUNT_ID


def test_switching_to_vpc_without_an_owner_gives_the_callers_account(emu: Emulator) -> None:
    store_id = create_xks(emu)
    emu.client().update_custom_key_store(
        CustomKeyStoreId=store_id,
        XksProxyConnectivity="VPC_ENDPOINT_SERVICE",
        XksProxyVpcEndpointServiceName=VPC_SERVICE,
        XksProxyUriEndpoint="https://private.example.com",
    )
    assert describe_xks(emu, store_id)["VpcEndpointServiceOwner"] == ACCOUNT_ID


# -- 4. Patterns match ASCII digits only, as the model's (Java) regular expressions do --------------------------


@pytest.mark.parametrize("path", ["/kms/xks/v\u0661", "/kms/xks/v\uff11", "/kms/xks/v\u0661\u0662"])
def test_non_ascii_digits_do_not_satisfy_a_pattern(emu: Emulator, path: str) -> None:
    with pytest.raises(ClientError) as caught:
        create_xks(emu, XksProxyUriPath=path)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert (
        "at 'xksProxyUriPath' failed to satisfy constraint: Member must satisfy regular expression pattern"
        in (caught.value.response["Error"]["Message"])
    )


# -- 5. An operation the emulator does not implement is unknown, not "unsupported" ------------------------------


def test_a_kms_operation_the_emulator_lacks_is_answered_as_an_unknown_operation(emu: Emulator) -> None:
    client = emu.client(**NO_RETRY)
    with pytest.raises(ClientError) as caught:
        client.list_grants(KeyId="1234abcd-12ab-34cd-56ef-1234567890ab")
    assert not isinstance(caught.value, client.exceptions.UnsupportedOperationException)
    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# -- 6. Every answer is the JSON error shape, whatever the HTTP method ------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "PATCH", "OPTIONS", "DELETE", "GET"])
def test_a_request_with_another_method_gets_a_json_error(emu: Emulator, method: str) -> None:
    client = emu.client(**NO_RETRY)

    def use_method(request: Any, **_: Any) -> None:
        request.method = method

    client.meta.events.register("before-sign.kms", use_method)
    with pytest.raises(ClientError) as caught:
        client.describe_custom_key_stores()
    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 405
    assert caught.value.response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/x-amz-json-1.1"


def raw_request(emu: Emulator, method: str, path: str = "/") -> tuple[int, str, bytes]:
    host, port = emu.endpoint_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def test_head_gets_json_headers_and_no_body(emu: Emulator) -> None:
    status, content_type, body = raw_request(emu, "HEAD")
    assert (status, content_type, body) == (405, "application/x-amz-json-1.1", b"")


def test_an_unknown_http_method_gets_a_json_error(emu: Emulator) -> None:
    status, content_type, body = raw_request(emu, "FROBNICATE")
    assert (status, content_type) == (501, "application/x-amz-json-1.1")
    assert body.startswith(b'{"__type": "UnknownOperationException"')


# -- 7. Validation messages do not echo values of any length ----------------------------------------------------


def test_a_validation_message_truncates_a_long_value(emu: Emulator) -> None:
    name = "n" * 300_000
    client = emu.client(**NO_RETRY)
    with pytest.raises(ClientError) as caught:
        client.describe_custom_key_stores(CustomKeyStoreName=name)
    message = caught.value.response["Error"]["Message"]
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    constraint = "Member must have length less than or equal to 256"
    assert f"at 'customKeyStoreName' failed to satisfy constraint: {constraint}" in message
    assert message.startswith("1 validation error detected: Value 'nnnnnnnnnn")
    assert len(message) < 1000
