"""The KMS service model (from botocore) and request validation against its shapes.

The model that ships with botocore is the ground truth for the operations, their input shapes and the
enums, so the emulator reads it rather than copying constants that could drift from the clients it serves.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import importlib.util
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from .errors import validation_error
from .store import CLOUDHSM, EXTERNAL

TARGET_PREFIX = "TrentService"

#: The custom key store operations.
STORE_OPERATIONS: tuple[str, ...] = (
    "CreateCustomKeyStore",
    "DescribeCustomKeyStores",
    "ConnectCustomKeyStore",
    "DisconnectCustomKeyStore",
    "UpdateCustomKeyStore",
    "DeleteCustomKeyStore",
)
#: The KMS key operations the emulator implements (``keys.py``): what a custom key store's keys need.
KEY_OPERATIONS: tuple[str, ...] = (
    "CreateKey",
    "DescribeKey",
    "ListKeys",
    "CreateAlias",
    "ListAliases",
    "EnableKey",
    "DisableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "Encrypt",
    "Decrypt",
    "GenerateDataKey",
)
#: The operations the emulator implements; every other KMS operation is answered UnknownOperationException.
OPERATIONS: tuple[str, ...] = STORE_OPERATIONS + KEY_OPERATIONS

#: KMS's default request quotas (requests per second per account and Region; Developer Guide, "Request quotas")
#: for the key operations. The custom key store operations' quota is 5; the cryptographic operations' rate is the
#: one for keys in custom key stores (1,800 for CloudHSM and for external key stores alike).
KEY_OPERATION_QUOTAS: Mapping[str, float] = {
    "CreateKey": 5,
    "DescribeKey": 2000,
    "ListKeys": 100,
    "CreateAlias": 5,
    "ListAliases": 100,
    "EnableKey": 5,
    "DisableKey": 5,
    "ScheduleKeyDeletion": 5,
    "CancelKeyDeletion": 5,
    "Encrypt": 1800,
    "Decrypt": 1800,
    "GenerateDataKey": 1800,
}


@functools.cache
def service_model() -> dict[str, Any]:
    """The KMS service model as botocore ships it (loaded once per process, read-only by convention).

    Read straight from botocore's data directory, newest API version first: importing botocore's loader
    would add a fifth of a second to the start of the command line emulator.
    """
    spec = importlib.util.find_spec("botocore")
    if spec is not None and spec.submodule_search_locations:
        service_dir = Path(next(iter(spec.submodule_search_locations))) / "data" / "kms"
        for version in sorted((p for p in service_dir.glob("*") if p.is_dir()), reverse=True):
            for name, opener in (("service-2.json.gz", gzip.open), ("service-2.json", open)):
                if (version / name).is_file():
                    with opener(version / name, "rt", encoding="utf-8") as handle:
                        return cast(dict[str, Any], json.load(handle))
    from botocore.loaders import Loader

    return cast(dict[str, Any], Loader().load_service_model("kms", "service-2"))


def shape(name: str) -> dict[str, Any]:
    """The model's definition of shape ``name``."""
    return cast(dict[str, Any], service_model()["shapes"][name])


def enum_values(shape_name: str) -> tuple[str, ...]:
    """The enum of a string shape, in model order."""
    return tuple(shape(shape_name)["enum"])


def connection_error_codes() -> tuple[str, ...]:
    """Every ``ConnectionErrorCode`` the model knows."""
    return enum_values("ConnectionErrorCodeType")


def model_operations() -> frozenset[str]:
    """Every operation in the KMS model, implemented here or not."""
    return frozenset(service_model()["operations"])


def documented_errors(operation: str) -> tuple[str, ...]:
    """The errors the model lists for ``operation``, in model order."""
    return tuple(error["shape"] for error in service_model()["operations"][operation].get("errors", ()))


def error_status(error: str) -> int:
    """The HTTP status of a modeled error: its ``httpStatusCode`` if given, else 500 for a fault, 400 otherwise."""
    definition = shape(error)
    status = definition.get("error", {}).get("httpStatusCode")
    if isinstance(status, int):
        return status
    return 500 if definition.get("fault") else 400


@functools.cache
def error_message(error: str) -> str:
    """The first paragraph of the model's documentation of ``error`` as plain text: the message a drill answers."""
    documentation = str(shape(error).get("documentation", ""))
    for paragraph in re.findall(r"<p>(.*?)</p>", documentation, re.S):
        text = " ".join(re.sub(r"<[^>]+>", "", paragraph).split())
        if text:
            return text
    return error


# Which store types each ConnectionErrorCode belongs to, as the model's documentation of
# CustomKeyStoresListEntry.ConnectionErrorCode groups them under "All custom key stores", "CloudHSM key stores"
# and "External key stores" (INVALID_CREDENTIALS is listed under both types).
_ANY_TYPE = frozenset({CLOUDHSM, EXTERNAL})
_CONNECTION_ERROR_CODE_TYPES: dict[str, frozenset[str]] = {
    "INTERNAL_ERROR": _ANY_TYPE,
    "NETWORK_ERRORS": _ANY_TYPE,
    "INVALID_CREDENTIALS": _ANY_TYPE,
    **dict.fromkeys(
        (
            "CLUSTER_NOT_FOUND",
            "INSUFFICIENT_CLOUDHSM_HSMS",
            "INSUFFICIENT_FREE_ADDRESSES_IN_SUBNET",
            "SUBNET_NOT_FOUND",
            "USER_LOCKED_OUT",
            "USER_LOGGED_IN",
            "USER_NOT_FOUND",
        ),
        frozenset({CLOUDHSM}),
    ),
    **dict.fromkeys(
        (
            "XKS_PROXY_ACCESS_DENIED",
            "XKS_PROXY_INVALID_CONFIGURATION",
            "XKS_PROXY_INVALID_RESPONSE",
            "XKS_PROXY_INVALID_TLS_CONFIGURATION",
            "XKS_PROXY_NOT_REACHABLE",
            "XKS_PROXY_TIMED_OUT",
            "XKS_VPC_ENDPOINT_SERVICE_INVALID_CONFIGURATION",
            "XKS_VPC_ENDPOINT_SERVICE_NOT_FOUND",
        ),
        frozenset({EXTERNAL}),
    ),
}


def error_code_store_types(code: str) -> frozenset[str]:
    """The store types a ``ConnectionErrorCode`` belongs to (both, for a code newer than this table)."""
    return _CONNECTION_ERROR_CODE_TYPES.get(code, _ANY_TYPE)


#: Documented errors of the custom key store operations whose cause lies outside KMS, in the CloudHSM cluster or
#: the external key store proxy, so no rule of the emulator can produce them: drills answer them. Each belongs to
#: the store type whose backing it describes. (The "in use" errors are not here: the emulator's rules answer them.)
BACKING_ERRORS: Mapping[str, str] = {
    "CloudHsmClusterNotFoundException": CLOUDHSM,
    "CloudHsmClusterNotActiveException": CLOUDHSM,
    "CloudHsmClusterInvalidConfigurationException": CLOUDHSM,
    "CloudHsmClusterNotRelatedException": CLOUDHSM,
    "IncorrectTrustAnchorException": CLOUDHSM,
    "XksProxyUriUnreachableException": EXTERNAL,
    "XksProxyIncorrectAuthenticationCredentialException": EXTERNAL,
    "XksProxyInvalidResponseException": EXTERNAL,
    "XksProxyInvalidConfigurationException": EXTERNAL,
    "XksProxyVpcEndpointServiceNotFoundException": EXTERNAL,
    "XksProxyVpcEndpointServiceInvalidConfigurationException": EXTERNAL,
    # CreateKey in an external key store: the proxy does not know the external key, or it is not usable.
    "XksKeyNotFoundException": EXTERNAL,
    "XksKeyInvalidConfigurationException": EXTERNAL,
}


def drillable_errors(operation: str) -> tuple[str, ...]:
    """The backing errors the model documents for ``operation`` (none for Describe, Disconnect and Delete)."""
    return tuple(error for error in documented_errors(operation) if error in BACKING_ERRORS)


def input_shape_name(operation: str) -> str:
    """The name of the input structure of ``operation``."""
    return cast(str, service_model()["operations"][operation]["input"]["shape"])


def _member_path(parent: str, member: str) -> str:
    # Coral names members lowerCamelCase in constraint messages ('customKeyStoreName').
    name = member[:1].lower() + member[1:]
    return f"{parent}.{name}" if parent else name


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    # The model's patterns are Java regular expressions, where \d, \w and \s match ASCII only; Python's match
    # every Unicode digit (so '/kms/xks/v\u0661' would pass) unless told otherwise.
    return re.compile(pattern, re.ASCII)


#: The longest part of a value a validation message shows: a 1 MB name must not give a 1 MB message.
MAX_ECHOED_CHARACTERS = 256


def echo(text: str) -> str:
    """``text`` as a message may show it: cut to ``MAX_ECHOED_CHARACTERS``, with the full length said."""
    if len(text) <= MAX_ECHOED_CHARACTERS:
        return text
    return f"{text[:MAX_ECHOED_CHARACTERS]}...({len(text)} characters)"


class _Validator:
    """Collects every constraint violation of one request, as AWS reports them all at once."""

    def __init__(self, patterns: bool = True) -> None:
        self.problems: list[str] = []
        self.patterns = patterns

    def _fail(self, value: object, path: str, constraint: str, sensitive: bool) -> None:
        # A sensitive value (a password, the XKS secret) must never be echoed back or logged.
        if value is None:
            shown = "Value null"
        elif sensitive:
            shown = "Value"
        elif isinstance(value, str):
            shown = f"Value '{echo(value)}'"
        else:
            shown = f"Value '{echo(repr(value))}'"
        self.problems.append(f"{shown} at '{path}' failed to satisfy constraint: Member must {constraint}")

    def check(self, value: object, shape_name: str, path: str) -> None:
        definition = shape(shape_name)
        kind = definition["type"]
        sensitive = bool(definition.get("sensitive", False))
        if kind == "structure":
            self._structure(value, definition, path)
        elif kind == "string":
            self._string(value, definition, path, sensitive)
        elif kind in ("integer", "long"):
            self._integer(value, definition, path, sensitive)
        elif kind == "boolean":
            if not isinstance(value, bool):
                self._fail(value, path, "be a boolean", sensitive)
        elif kind == "list":
            self._list(value, definition, path, sensitive)
        elif kind in ("double", "float", "timestamp"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                self._fail(value, path, f"be of type {kind}", sensitive)
        elif kind == "blob":
            self._blob(value, definition, path, sensitive)
        elif kind == "map":
            self._map(value, definition, path, sensitive)

    def _structure(self, value: object, definition: Mapping[str, Any], path: str) -> None:
        if not isinstance(value, dict):
            self._fail(value, path or "request", "be a structure", False)
            return
        members: Mapping[str, Any] = definition.get("members", {})
        required = set(definition.get("required", ()))
        for member, spec in members.items():
            member_path = _member_path(path, member)
            if member not in value or value[member] is None:
                if member in required:
                    self._fail(None, member_path, "not be null", False)
                continue
            self.check(value[member], spec["shape"], member_path)
        # Unknown members are ignored, as AWS does, so newer clients keep working.

    def _string(self, value: object, definition: Mapping[str, Any], path: str, sensitive: bool) -> None:
        if not isinstance(value, str):
            self._fail(value, path, "be of type string", sensitive)
            return
        if "min" in definition and len(value) < definition["min"]:
            self._fail(value, path, f"have length greater than or equal to {definition['min']}", sensitive)
        if "max" in definition and len(value) > definition["max"]:
            self._fail(value, path, f"have length less than or equal to {definition['max']}", sensitive)
        if "enum" in definition and value not in definition["enum"]:
            self._fail(value, path, f"satisfy enum value set: [{', '.join(definition['enum'])}]", sensitive)
        pattern = definition.get("pattern")
        # Coral patterns match the whole value (Java's Pattern.matches).
        if pattern is not None and self.patterns and _compiled(pattern).fullmatch(value) is None:
            self._fail(value, path, f"satisfy regular expression pattern: {pattern}", sensitive)

    def _integer(self, value: object, definition: Mapping[str, Any], path: str, sensitive: bool) -> None:
        # JSON true/false are not integers, although Python's bool is an int subclass.
        if isinstance(value, bool) or not isinstance(value, int):
            self._fail(value, path, "be of type integer", sensitive)
            return
        if "min" in definition and value < definition["min"]:
            self._fail(value, path, f"have value greater than or equal to {definition['min']}", sensitive)
        if "max" in definition and value > definition["max"]:
            self._fail(value, path, f"have value less than or equal to {definition['max']}", sensitive)

    def _blob(self, value: object, definition: Mapping[str, Any], path: str, sensitive: bool) -> None:
        # AWS JSON carries blobs base64-encoded; the model's lengths count the decoded bytes.
        decoded = decode_blob(value)
        if decoded is None:
            self._fail(value, path, "be a base64-encoded string", sensitive)
            return
        if "min" in definition and len(decoded) < definition["min"]:
            self._fail(value, path, f"have length greater than or equal to {definition['min']}", sensitive)
        if "max" in definition and len(decoded) > definition["max"]:
            self._fail(value, path, f"have length less than or equal to {definition['max']}", sensitive)

    def _map(self, value: object, definition: Mapping[str, Any], path: str, sensitive: bool) -> None:
        if not isinstance(value, dict):
            self._fail(value, path, "be a map", sensitive)
            return
        for key, item in value.items():
            self.check(key, definition["key"]["shape"], f"{path}.key")
            self.check(item, definition["value"]["shape"], f"{path}.{key}")

    def _list(self, value: object, definition: Mapping[str, Any], path: str, sensitive: bool) -> None:
        if not isinstance(value, list):
            self._fail(value, path, "be a list", sensitive)
            return
        for index, item in enumerate(value):
            self.check(item, definition["member"]["shape"], f"{path}.{index + 1}.member")


def decode_blob(value: object) -> bytes | None:
    """The bytes of a base64-encoded blob member, or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def validate_input(operation: str, params: object) -> None:
    """Raise ``ValidationException`` listing every way ``params`` breaks the input shape of ``operation``.

    Checks what the model states: required members, types, string length, integer range, enums and patterns.
    """
    validator = _Validator()
    validator.check(params, input_shape_name(operation), "")
    if validator.problems:
        raise validation_error(validator.problems)


def check_value(value: object, shape_name: str, path: str, patterns: bool = True) -> list[str]:
    """Every way ``value`` breaks shape ``shape_name`` (empty when it fits), for seeds and state files."""
    validator = _Validator(patterns)
    validator.check(value, shape_name, path)
    return validator.problems
