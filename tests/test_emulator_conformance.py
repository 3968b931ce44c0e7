"""Conformance with botocore's KMS model, walked by the test itself for the six custom key store operations.

* Every output member the emulator returns is a member of the modeled output shape, with the modeled type.
* Every member of those output shapes is returned by some answer (so dropping one fails here).
* Every error the model documents for each operation is reachable, by a rule of the emulator or by a drill, and
  answered with the modeled shape and HTTP status: ``{"__type": <error>, "message": <string>}``, 500 for a fault
  (``KMSInternalException``), 400 otherwise.

The model is read through botocore (``ServiceModel``, and its loader for the ``fault`` trait botocore's shapes
omit), not through the emulator's own ``model`` module, so the emulator cannot grade itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.loaders import Loader
from botocore.model import ListShape, Shape, StructureShape

from kms_connection.emulator import Emulator, EmulatorConfigError, FakeClock

NO_RETRY: dict[str, Any] = {"retries": {"total_max_attempts": 1}}
MODEL = botocore.session.get_session().get_service_model("kms")
RAW_SHAPES: dict[str, Any] = Loader().load_service_model("kms", "service-2")["shapes"]
OPERATIONS = sorted(name for name in MODEL.operation_names if "CustomKeyStore" in name)
DOCUMENTED_ERRORS = [
    (operation, error.name) for operation in OPERATIONS for error in MODEL.operation_model(operation).error_shapes
]
UNKNOWN_ID = "cks-00000000000000000"
CONNECT_SECONDS = 1.0
DISCONNECT_SECONDS = 0.5


def modeled_status(error: str) -> int:
    """The HTTP status the model gives an error: its ``httpStatusCode``, else 500 for a fault, 400 otherwise."""
    raw = RAW_SHAPES[error]
    status = raw.get("error", {}).get("httpStatusCode")
    if isinstance(status, int):
        return status
    return 500 if raw.get("fault") else 400


# -- recording what went over the wire --------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    operation: str
    status: int
    body: Any


class Recorder:
    """Every raw answer a boto3 client receives (botocore's ``after-call`` event, before any error is raised)."""

    def __init__(self, client: Any) -> None:
        self.answers: list[Answer] = []
        client.meta.events.register("after-call.kms", self._record)

    def _record(self, http_response: Any, model: Any, **_: Any) -> None:
        content = http_response.content
        self.answers.append(Answer(model.name, http_response.status_code, json.loads(content) if content else None))


# -- requests that pass every rule, per operation and store type ------------------------------------


def hsm_params(name: str, cluster: str = "cluster-234567abcdefg") -> dict[str, Any]:
    return {
        "CustomKeyStoreName": name,
        "CustomKeyStoreType": "AWS_CLOUDHSM",
        "CloudHsmClusterId": cluster,
        "TrustAnchorCertificate": "-----BEGIN CERTIFICATE-----\ntrust\n-----END CERTIFICATE-----",
        "KeyStorePassword": "kmsuser-Pa55word",
    }


def xks_params(
    name: str, endpoint: str = "https://xks.example.com", path: str = "/kms/xks/v1", vpc_service: str | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "CustomKeyStoreName": name,
        "CustomKeyStoreType": "EXTERNAL_KEY_STORE",
        "XksProxyUriEndpoint": endpoint,
        "XksProxyUriPath": path,
        "XksProxyAuthenticationCredential": {
            "AccessKeyId": "ABCDEFGHIJKLMNOPQRST",
            "RawSecretAccessKey": "XksSecretXksSecretXksSecretXksSecretXksSecret0123",
        },
        "XksProxyConnectivity": "VPC_ENDPOINT_SERVICE" if vpc_service else "PUBLIC_ENDPOINT",
    }
    if vpc_service:
        params["XksProxyVpcEndpointServiceName"] = vpc_service
    return params


def store_type_of(error: str) -> str:
    """The store type whose backing a drillable error describes, by its modeled name."""
    return "EXTERNAL_KEY_STORE" if error.startswith("Xks") else "AWS_CLOUDHSM"


def valid_request(emu: Emulator, client: Any, operation: str, store_type: str) -> Callable[[], object]:
    """A request of ``operation`` that passes every rule and reaches the store's cluster or proxy."""
    if operation == "CreateCustomKeyStore":
        params = hsm_params("new") if store_type == "AWS_CLOUDHSM" else xks_params("new")
        return lambda: client.create_custom_key_store(**params)
    if operation == "DescribeCustomKeyStores":
        return lambda: client.describe_custom_key_stores()
    if operation == "DisconnectCustomKeyStore":
        connected = emu.create_store("existing", store_type=store_type, connection_state="CONNECTED")
        return lambda: client.disconnect_custom_key_store(CustomKeyStoreId=connected)
    store_id = emu.create_store("existing", store_type=store_type)
    if operation == "ConnectCustomKeyStore":
        return lambda: client.connect_custom_key_store(CustomKeyStoreId=store_id)
    if operation == "UpdateCustomKeyStore":
        change: dict[str, Any] = (
            {"KeyStorePassword": "new-Pa55word"}
            if store_type == "AWS_CLOUDHSM"
            else {"XksProxyUriPath": "/new/kms/xks/v1"}
        )
        return lambda: client.update_custom_key_store(CustomKeyStoreId=store_id, **change)
    return lambda: client.delete_custom_key_store(CustomKeyStoreId=store_id)


# -- how each documented error is reached -----------------------------------------------------------

Provoke = Callable[[Emulator, Any, str], Callable[[], object]]


def unknown_store(emu: Emulator, client: Any, operation: str) -> Callable[[], object]:
    if operation == "DescribeCustomKeyStores":
        return lambda: client.describe_custom_key_stores(CustomKeyStoreId=UNKNOWN_ID)
    if operation == "UpdateCustomKeyStore":
        return lambda: client.update_custom_key_store(CustomKeyStoreId=UNKNOWN_ID, NewCustomKeyStoreName="x")
    method = {
        "ConnectCustomKeyStore": client.connect_custom_key_store,
        "DisconnectCustomKeyStore": client.disconnect_custom_key_store,
        "DeleteCustomKeyStore": client.delete_custom_key_store,
    }[operation]
    return lambda: method(CustomKeyStoreId=UNKNOWN_ID)


def internal_error(emu: Emulator, client: Any, operation: str) -> Callable[[], object]:
    request = valid_request(emu, client, operation, "AWS_CLOUDHSM")
    emu.fail_next(1, operation)
    return request


def invalid_state(emu: Emulator, client: Any, operation: str) -> Callable[[], object]:
    if operation == "ConnectCustomKeyStore":
        store_id = emu.create_store("failed", connection_state="FAILED", error_code="USER_NOT_FOUND")
        return lambda: client.connect_custom_key_store(CustomKeyStoreId=store_id)
    if operation == "DisconnectCustomKeyStore":
        store_id = emu.create_store("disconnected")
        return lambda: client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    if operation == "UpdateCustomKeyStore":
        store_id = emu.create_store("connecting", connection_state="CONNECTING")
        return lambda: client.update_custom_key_store(CustomKeyStoreId=store_id, NewCustomKeyStoreName="renamed")
    store_id = emu.create_store("connected", connection_state="CONNECTED")
    return lambda: client.delete_custom_key_store(CustomKeyStoreId=store_id)


def name_in_use(emu: Emulator, client: Any, operation: str) -> Callable[[], object]:
    emu.create_store("taken")
    if operation == "CreateCustomKeyStore":
        return lambda: client.create_custom_key_store(**hsm_params("taken"))
    store_id = emu.create_store("mine")
    return lambda: client.update_custom_key_store(CustomKeyStoreId=store_id, NewCustomKeyStoreName="taken")


def cluster_in_use(emu: Emulator, client: Any, operation: str) -> Callable[[], object]:
    client.create_custom_key_store(**hsm_params("first"))
    return lambda: client.create_custom_key_store(**hsm_params("second"))


def limit_exceeded(emu: Emulator, client: Any, operation: str) -> Callable[[], object]:
    for index in range(10):  # the default quota: 10 custom key stores per account and Region
        emu.create_store(f"store-{index}")
    return lambda: client.create_custom_key_store(**hsm_params("eleventh"))


def xks_conflict(first: dict[str, Any], second: dict[str, Any]) -> Provoke:
    """Create ``first``; then create ``second``, or update another store to ``second``'s proxy settings."""

    def provoke(emu: Emulator, client: Any, operation: str) -> Callable[[], object]:
        client.create_custom_key_store(**first)
        if operation == "CreateCustomKeyStore":
            return lambda: client.create_custom_key_store(**second)
        other = client.create_custom_key_store(**xks_params("other", "https://other.example.com", "/o/kms/xks/v1"))
        change = {key: value for key, value in second.items() if key.startswith("XksProxyUri")}
        if second["XksProxyConnectivity"] == "VPC_ENDPOINT_SERVICE":
            change |= {
                "XksProxyConnectivity": "VPC_ENDPOINT_SERVICE",
                "XksProxyVpcEndpointServiceName": second["XksProxyVpcEndpointServiceName"],
            }
        return lambda: client.update_custom_key_store(CustomKeyStoreId=other["CustomKeyStoreId"], **change)

    return provoke


def invalid_marker(emu: Emulator, client: Any, operation: str) -> Callable[[], object]:
    return lambda: client.describe_custom_key_stores(Marker="not-a-marker")


def has_kms_keys(emu: Emulator, client: Any, operation: str) -> Callable[[], object]:
    store_id = emu.create_store("with-keys")
    emu.set_key_count(store_id, 1)
    return lambda: client.delete_custom_key_store(CustomKeyStoreId=store_id)


def drill(emu: Emulator, client: Any, operation: str, error: str) -> Callable[[], object]:
    request = valid_request(emu, client, operation, store_type_of(error))
    emu.drill_next(operation, error)
    return request


VPC = "com.amazonaws.vpce.us-east-1.vpce-svc-0abc123"
RULES: dict[str, Provoke] = {
    "CustomKeyStoreNotFoundException": unknown_store,
    "KMSInternalException": internal_error,
    "CustomKeyStoreInvalidStateException": invalid_state,
    "CustomKeyStoreNameInUseException": name_in_use,
    "CloudHsmClusterInUseException": cluster_in_use,
    "LimitExceededException": limit_exceeded,
    "XksProxyUriInUseException": xks_conflict(xks_params("a"), xks_params("b")),
    "XksProxyUriEndpointInUseException": xks_conflict(
        xks_params("a", "https://private.example.com", vpc_service=VPC),
        xks_params("b", "https://private.example.com", "/b/kms/xks/v1"),
    ),
    "XksProxyVpcEndpointServiceInUseException": xks_conflict(
        xks_params("a", "https://a.example.com", vpc_service=VPC),
        xks_params("b", "https://b.example.com", vpc_service=VPC),
    ),
    "InvalidMarkerException": invalid_marker,
    "CustomKeyStoreHasCMKsException": has_kms_keys,
}
#: Documented errors whose cause is outside KMS (a CloudHSM cluster, an external key store proxy): drills answer them.
DRILLED = {
    "CloudHsmClusterNotFoundException",
    "CloudHsmClusterNotActiveException",
    "CloudHsmClusterInvalidConfigurationException",
    "CloudHsmClusterNotRelatedException",
    "IncorrectTrustAnchorException",
    "XksProxyUriUnreachableException",
    "XksProxyIncorrectAuthenticationCredentialException",
    "XksProxyInvalidResponseException",
    "XksProxyInvalidConfigurationException",
    "XksProxyVpcEndpointServiceNotFoundException",
    "XksProxyVpcEndpointServiceInvalidConfigurationException",
}


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator(clock=FakeClock(), connect_seconds=CONNECT_SECONDS, disconnect_seconds=DISCONNECT_SECONDS)


def test_the_model_has_the_six_custom_key_store_operations() -> None:
    assert OPERATIONS == [
        "ConnectCustomKeyStore",
        "CreateCustomKeyStore",
        "DeleteCustomKeyStore",
        "DescribeCustomKeyStores",
        "DisconnectCustomKeyStore",
        "UpdateCustomKeyStore",
    ]


@pytest.mark.parametrize(("operation", "error"), DOCUMENTED_ERRORS)
def test_every_documented_error_is_reached_and_answered_with_its_modeled_shape_and_status(
    emu: Emulator, operation: str, error: str
) -> None:
    client = emu.client(**NO_RETRY)
    if error in RULES:
        request = RULES[error](emu, client, operation)
    elif error in DRILLED:
        request = drill(emu, client, operation, error)
    else:
        pytest.fail(f"no rule or drill reaches {error}, which the model documents for {operation}")
    recorder = Recorder(client)

    with pytest.raises(ClientError) as caught:
        request()

    # botocore maps the answer to the modeled exception class, as a client catching it expects.
    assert isinstance(caught.value, getattr(client.exceptions, error)), caught.value
    (answer,) = recorder.answers
    assert answer.status == modeled_status(error)
    shape = MODEL.shape_for(error)
    assert isinstance(shape, StructureShape)
    assert answer.body["__type"] == error
    members = {name: value for name, value in answer.body.items() if name != "__type"}
    assert shape_problems(members, shape, error) == []
    assert members["message"]


# -- outputs ----------------------------------------------------------------------------------------


def shape_problems(value: Any, shape: Shape, path: str) -> list[str]:
    """Every way a JSON value breaks a modeled shape (member names, types and enums)."""
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            return [f"{path}: a structure, not {value!r}"]
        problems = [f"{path}.{name}: not a member of {shape.name}" for name in value if name not in shape.members]
        for name, member in shape.members.items():
            if name in value:
                problems += shape_problems(value[name], member, f"{path}.{name}")
        return problems
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            return [f"{path}: a list, not {value!r}"]
        return [problem for item in value for problem in shape_problems(item, shape.member, f"{path}[]")]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: a string, not {value!r}"]
        enum = shape.metadata.get("enum")
        if enum and value not in enum:
            return [f"{path}: {value!r} is not one of {enum}"]
        return []
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: a boolean, not {value!r}"]
    if kind in ("integer", "long"):
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: an integer, not {value!r}"]
    if kind == "timestamp":
        # AWS JSON 1.1 sends timestamps as epoch seconds.
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: epoch seconds, not {value!r}"]
    return [f"{path}: a {kind}, which no custom key store output has"]


def output_shape(operation: str) -> StructureShape:
    shape = MODEL.operation_model(operation).output_shape
    assert shape is not None, operation
    return shape


def member_paths(shape: Shape, path: str) -> Iterator[str]:
    """Every member path of a modeled output shape, lists marked ``[]``."""
    if isinstance(shape, StructureShape):
        for name, member in shape.members.items():
            yield f"{path}.{name}"
            yield from member_paths(member, f"{path}.{name}")
    elif isinstance(shape, ListShape):
        yield from member_paths(shape.member, f"{path}[]")


def returned_paths(value: Any, path: str) -> Iterator[str]:
    """Every member path present in a JSON answer, lists marked ``[]``."""
    if isinstance(value, dict):
        for name, member in value.items():
            yield f"{path}.{name}"
            yield from returned_paths(member, f"{path}.{name}")
    elif isinstance(value, list):
        for item in value:
            yield from returned_paths(item, f"{path}[]")


@pytest.fixture
def tour(emu: Emulator) -> list[Answer]:
    """The successful answers of every operation over both store types and every settled state, FAILED with a
    ConnectionErrorCode included, and a truncated page."""
    assert isinstance(emu.clock, FakeClock)
    client = emu.client(**NO_RETRY)
    recorder = Recorder(client)
    hsm = client.create_custom_key_store(**hsm_params("hsm"))["CustomKeyStoreId"]
    public = client.create_custom_key_store(**xks_params("public"))["CustomKeyStoreId"]
    client.create_custom_key_store(**xks_params("vpc", "https://private.example.com", vpc_service=VPC))
    emu.set_connect_outcome(public, "fail", "XKS_PROXY_NOT_REACHABLE")
    client.connect_custom_key_store(CustomKeyStoreId=hsm)
    client.connect_custom_key_store(CustomKeyStoreId=public)
    client.describe_custom_key_stores()
    emu.clock.advance(CONNECT_SECONDS)
    client.describe_custom_key_stores()
    client.describe_custom_key_stores(Limit=1)
    client.update_custom_key_store(CustomKeyStoreId=hsm, NewCustomKeyStoreName="renamed")
    client.disconnect_custom_key_store(CustomKeyStoreId=hsm)
    emu.clock.advance(DISCONNECT_SECONDS)
    client.delete_custom_key_store(CustomKeyStoreId=hsm)
    assert all(answer.status == 200 for answer in recorder.answers)
    return recorder.answers


def test_the_tour_calls_every_custom_key_store_operation(tour: list[Answer]) -> None:
    assert {answer.operation for answer in tour} == set(OPERATIONS)


def test_every_output_member_the_emulator_returns_is_modeled_with_its_type(tour: list[Answer]) -> None:
    problems = [
        problem
        for answer in tour
        for problem in shape_problems(answer.body, output_shape(answer.operation), answer.operation)
    ]
    assert problems == []


def test_every_modeled_output_member_is_returned(tour: list[Answer]) -> None:
    modeled = {path for operation in OPERATIONS for path in member_paths(output_shape(operation), operation)}
    returned = {path for answer in tour for path in returned_paths(answer.body, answer.operation)}
    assert modeled - returned == set()


# -- ConnectionErrorCode and store types ------------------------------------------------------------


def documented_code_types() -> dict[str, set[str]]:
    """The store types the model's documentation of ``ConnectionErrorCode`` lists each code under."""
    entry = MODEL.shape_for("CustomKeyStoresListEntry")
    assert isinstance(entry, StructureShape)
    documentation = entry.members["ConnectionErrorCode"].documentation
    sections = {
        "All custom key stores:": {"AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"},
        "CloudHSM key stores:": {"AWS_CLOUDHSM"},
        "External key stores:": {"EXTERNAL_KEY_STORE"},
    }
    types: dict[str, set[str]] = {}
    for part in re.split(r"<b>(.*?)</b>", documentation)[1:]:
        if part in sections:
            current = sections[part]
            continue
        for code in re.findall(r"<li> <p> <code>([A-Z_]+)</code> \u2014", part):
            types.setdefault(code, set()).update(current)
    return types


def test_the_model_documents_a_store_type_for_every_connection_error_code() -> None:
    codes = MODEL.shape_for("ConnectionErrorCodeType").metadata["enum"]
    assert set(documented_code_types()) == set(codes)


@pytest.mark.parametrize("code", sorted(documented_code_types()))
def test_a_connect_can_fail_with_a_code_exactly_on_the_store_types_the_model_lists_it_for(
    emu: Emulator, code: str
) -> None:
    allowed = {
        store_type
        for store_type in ("AWS_CLOUDHSM", "EXTERNAL_KEY_STORE")
        if accepts_code(emu, emu.create_store(store_type.lower(), store_type=store_type), code)
    }
    assert allowed == documented_code_types()[code]


def accepts_code(emu: Emulator, store_id: str, code: str) -> bool:
    try:
        emu.set_connect_outcome(store_id, "fail", code)
    except EmulatorConfigError:
        return False
    return True
