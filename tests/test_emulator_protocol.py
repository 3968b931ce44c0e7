"""The wire protocol: AWS JSON 1.1, SigV4 header checks, protocol errors, limits and timeouts."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from kms_connection.emulator import Emulator

NO_RETRY: dict[str, Any] = {"retries": {"total_max_attempts": 1}}
SIGNATURE = "0" * 64


def signed_headers(operation: str, region: str = "us-east-1") -> dict[str, str]:
    """Headers of a request signed the way botocore signs (the signature value is not checked)."""
    return {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"TrentService.{operation}",
        "X-Amz-Date": "20240101T000000Z",
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential=AKIAEMULATOR000TEST/20240101/{region}/kms/aws4_request, "
            f"SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={SIGNATURE}"
        ),
    }


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST with urllib; (status, JSON body, headers), for errors too."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def test_unsigned_request_is_refused_with_missing_authentication_token(kms_emulator: Emulator) -> None:
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "TrentService.DescribeCustomKeyStores"}
    status, body, _ = post(kms_emulator.endpoint_url, b"{}", headers)
    assert status == 400
    assert body == {"__type": "MissingAuthenticationTokenException", "message": "Missing Authentication Token"}
    assert kms_emulator.calls[-1].outcome == "MissingAuthenticationTokenException"
    assert kms_emulator.calls[-1].region is None


def test_unsigned_boto3_client_gets_missing_authentication_token(kms_emulator: Emulator) -> None:
    client = kms_emulator.client(signature_version=UNSIGNED, **NO_RETRY)
    with pytest.raises(ClientError) as caught:
        client.describe_custom_key_stores()
    assert caught.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize(
    ("authorization", "problem"),
    [
        ("Bearer abc", "AWS4-HMAC-SHA256"),
        ("AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kms/aws4_request, SignedHeaders=host", "Signature"),
        (
            f"AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, "
            f"Signature={SIGNATURE}",
            "'kms'",
        ),
        (f"AWS4-HMAC-SHA256 Credential=AKID/us-east-1, SignedHeaders=host, Signature={SIGNATURE}", "Credential"),
        ("AWS4-HMAC-SHA256 Credential=A/20240101/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=z", "hex"),
    ],
)
def test_malformed_authorization_header_gets_incomplete_signature(
    kms_emulator: Emulator, authorization: str, problem: str
) -> None:
    headers = signed_headers("DescribeCustomKeyStores") | {"Authorization": authorization}
    status, body, _ = post(kms_emulator.endpoint_url, b"{}", headers)
    assert status == 400
    assert body["__type"] == "IncompleteSignatureException"
    assert problem in body["message"]


def test_signed_request_without_a_date_header_gets_incomplete_signature(kms_emulator: Emulator) -> None:
    headers = signed_headers("DescribeCustomKeyStores")
    del headers["X-Amz-Date"]
    status, body, _ = post(kms_emulator.endpoint_url, b"{}", headers)
    assert (status, body["__type"]) == (400, "IncompleteSignatureException")
    assert "X-Amz-Date" in body["message"]


def test_any_credentials_are_accepted_and_the_region_comes_from_the_scope(kms_emulator: Emulator) -> None:
    create = {
        "CustomKeyStoreName": "scoped",
        "CloudHsmClusterId": "cluster-234567abcdefg",
        "TrustAnchorCertificate": "pem",
        "KeyStorePassword": "kmsuser-password",
    }
    status, body, headers = post(
        kms_emulator.endpoint_url, json.dumps(create).encode(), signed_headers("CreateCustomKeyStore", "eu-west-1")
    )
    assert status == 200
    assert headers["Content-Type"] == "application/x-amz-json-1.1"
    store_id = body["CustomKeyStoreId"]
    stores_eu = kms_emulator.client("eu-west-1").describe_custom_key_stores()["CustomKeyStores"]
    assert [s["CustomKeyStoreId"] for s in stores_eu] == [store_id]
    assert kms_emulator.client("us-east-1").describe_custom_key_stores()["CustomKeyStores"] == []
    assert kms_emulator.calls[-3].region == "eu-west-1"


@pytest.mark.parametrize("target", ["TrentService.Frobnicate", "OtherService.DescribeCustomKeyStores", ""])
def test_unknown_operation_gets_unknown_operation_exception(kms_emulator: Emulator, target: str) -> None:
    headers = signed_headers("DescribeCustomKeyStores") | {"X-Amz-Target": target}
    status, body, _ = post(kms_emulator.endpoint_url, b"{}", headers)
    assert status == 400
    assert body["__type"] == "UnknownOperationException"


def test_a_kms_operation_the_emulator_lacks_is_unknown_and_the_message_lists_those_it_has(
    kms_emulator: Emulator,
) -> None:
    client = kms_emulator.client(**NO_RETRY)
    with pytest.raises(ClientError) as caught:
        client.list_grants(KeyId="1234abcd-12ab-34cd-56ef-1234567890ab")
    assert caught.value.response["Error"]["Code"] == "UnknownOperationException"
    message = caught.value.response["Error"]["Message"]
    assert "ListGrants" in message
    assert "implements the custom key store operations and the key operations their keys need" in message
    assert "DescribeCustomKeyStores" in message and "ListKeys" in message


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"[" * 100_000, b'{"Limit": 1' + b"0" * 5000 + b"}"],
    ids=["syntax", "array", "string", "not-utf8", "deep-nesting", "huge-number"],
)
def test_malformed_body_gets_serialization_exception(kms_emulator: Emulator, body: bytes) -> None:
    status, answer, _ = post(kms_emulator.endpoint_url, body, signed_headers("DescribeCustomKeyStores"))
    assert status == 400
    assert answer["__type"] == "SerializationException"
    assert answer["message"]


def test_empty_body_reads_as_an_empty_request(kms_emulator: Emulator) -> None:
    status, answer, _ = post(kms_emulator.endpoint_url, b"", signed_headers("DescribeCustomKeyStores"))
    assert status == 200
    assert answer == {"CustomKeyStores": [], "Truncated": False}


def test_missing_required_member_gets_validation_exception(kms_emulator: Emulator) -> None:
    status, answer, _ = post(kms_emulator.endpoint_url, b"{}", signed_headers("ConnectCustomKeyStore"))
    assert status == 400
    assert answer["__type"] == "ValidationException"
    assert "Value null at 'customKeyStoreId' failed to satisfy constraint: Member must not be null" in answer["message"]


@pytest.mark.parametrize(
    ("request_body", "expected"),
    [
        ({"Limit": "ten"}, "Member must be of type integer"),
        ({"Limit": True}, "Member must be of type integer"),
        ({"Limit": 0}, "Member must have value greater than or equal to 1"),
        ({"CustomKeyStoreName": 7}, "Member must be of type string"),
        ({"CustomKeyStoreName": ""}, "Member must have length greater than or equal to 1"),
    ],
)
def test_wrong_parameter_type_or_range_gets_validation_exception(
    kms_emulator: Emulator, request_body: dict[str, Any], expected: str
) -> None:
    status, answer, _ = post(
        kms_emulator.endpoint_url, json.dumps(request_body).encode(), signed_headers("DescribeCustomKeyStores")
    )
    assert (status, answer["__type"]) == (400, "ValidationException")
    assert expected in answer["message"]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"CustomKeyStoreName": "n" * 257}, "length less than or equal to 256"),
        ({"CustomKeyStoreType": "BOGUS"}, "enum value set: [AWS_CLOUDHSM, EXTERNAL_KEY_STORE]"),
        ({"CloudHsmClusterId": "cluster-0000000000000"}, "regular expression pattern"),
    ],
)
def test_boto3_request_breaking_the_model_gets_validation_exception(
    kms_emulator: Emulator, override: dict[str, str], expected: str
) -> None:
    client = kms_emulator.client(**NO_RETRY)
    params = {
        "CustomKeyStoreName": "valid",
        "CloudHsmClusterId": "cluster-234567abcdefg",
        "TrustAnchorCertificate": "pem",
        "KeyStorePassword": "kmsuser-password",
    } | override
    with pytest.raises(ClientError) as caught:
        client.create_custom_key_store(**params)  # type: ignore[arg-type]
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert expected in caught.value.response["Error"]["Message"]


def test_validation_message_never_echoes_a_password(kms_emulator: Emulator) -> None:
    client = kms_emulator.client(**NO_RETRY)
    password = "TOO-LONG-PASSWORD-0123456789-abcdef"
    with pytest.raises(ClientError) as caught:
        client.create_custom_key_store(
            CustomKeyStoreName="pw",
            CloudHsmClusterId="cluster-234567abcdefg",
            TrustAnchorCertificate="pem",
            KeyStorePassword=password,
        )
    message = caught.value.response["Error"]["Message"]
    assert "at 'keyStorePassword'" in message
    assert password not in message


def test_oversized_body_is_refused_with_413(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(max_body_bytes=1024)
    status, answer, headers = post(emulator.endpoint_url, b" " * 2048, signed_headers("DescribeCustomKeyStores"))
    assert status == 413
    assert answer["__type"] == "ValidationException"
    assert headers["Connection"] == "close"


def test_default_body_limit_is_one_mebibyte(kms_emulator: Emulator) -> None:
    headers = signed_headers("DescribeCustomKeyStores") | {"Content-Length": str(1024 * 1024 + 1)}
    host, port = kms_emulator.endpoint_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        connection.sendall(f"POST / HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode())
        answer = connection.recv(4096).decode()
    assert answer.startswith("HTTP/1.1 413")


def test_half_sent_request_is_cut_off_by_the_socket_timeout(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(request_timeout=0.3)
    host, port = emulator.endpoint_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as stalled:
        stalled.sendall(b'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"partial')
        started = time.monotonic()
        # Other clients are served while this request stalls.
        assert emulator.client().describe_custom_key_stores()["CustomKeyStores"] == []
        assert stalled.recv(1024) == b""  # the server closed the connection
        assert time.monotonic() - started < 3


def test_get_is_not_a_kms_operation(kms_emulator: Emulator) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(kms_emulator.endpoint_url + "/", timeout=5)
    assert caught.value.code == 405
    assert json.loads(caught.value.read())["__type"] == "UnknownOperationException"


def test_boto3_works_through_a_sequence_of_keep_alive_requests(kms_emulator: Emulator) -> None:
    client = kms_emulator.client()
    for _ in range(20):
        response = client.describe_custom_key_stores()
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert len(kms_emulator.calls) == 20


def test_stopped_emulator_refuses_pooled_connections(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator()
    client = emulator.client(**NO_RETRY, connect_timeout=1, read_timeout=1)
    client.describe_custom_key_stores()
    emulator.stop()
    with pytest.raises(Exception) as caught:
        client.describe_custom_key_stores()
    assert not isinstance(caught.value, ClientError)


def test_config_object_is_passed_through_to_the_client(kms_emulator: Emulator) -> None:
    client = kms_emulator.client(retries={"total_max_attempts": 1, "mode": "standard"})
    config: Config = client.meta.config
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}  # type: ignore[attr-defined]


OPERATION_NAMES = [
    "CreateCustomKeyStore",
    "DescribeCustomKeyStores",
    "ConnectCustomKeyStore",
    "DisconnectCustomKeyStore",
    "UpdateCustomKeyStore",
    "DeleteCustomKeyStore",
]
EXPECTED_ERRORS = {
    "ValidationException",
    "SerializationException",
    "CustomKeyStoreNotFoundException",
    "CustomKeyStoreInvalidStateException",
    "CustomKeyStoreNameInUseException",
    "CloudHsmClusterInUseException",
    "LimitExceededException",
    "InvalidMarkerException",
    "XksProxyUriInUseException",
    "XksProxyUriEndpointInUseException",
    "XksProxyVpcEndpointServiceInUseException",
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
member_names = st.sampled_from(
    [
        "CustomKeyStoreId",
        "CustomKeyStoreName",
        "NewCustomKeyStoreName",
        "CustomKeyStoreType",
        "CloudHsmClusterId",
        "TrustAnchorCertificate",
        "KeyStorePassword",
        "XksProxyUriEndpoint",
        "XksProxyUriPath",
        "XksProxyConnectivity",
        "XksProxyAuthenticationCredential",
        "XksProxyVpcEndpointServiceName",
        "Limit",
        "Marker",
    ]
)


def test_any_json_request_gets_an_answer_never_a_crash(make_emulator: Callable[..., Emulator]) -> None:
    emulator = make_emulator(store_limit=None)
    emulator.create_store("existing", store_id="cks-0123456789abcdef0")

    @settings(max_examples=40, deadline=None)
    @given(operation=st.sampled_from(OPERATION_NAMES), body=st.dictionaries(member_names, json_values, max_size=6))
    def check(operation: str, body: dict[str, Any]) -> None:
        status, answer, _ = post(emulator.endpoint_url, json.dumps(body).encode(), signed_headers(operation))
        assert status in (200, 400), answer
        if status == 400:
            assert answer["__type"] in EXPECTED_ERRORS
            assert isinstance(answer["message"], str)

    check()
    assert {call.outcome for call in emulator.calls} <= EXPECTED_ERRORS | {"ok"}
