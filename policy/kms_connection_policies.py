"""CrossGuard policies for ``CustomKeyStoreConnection`` resources and the KMS custom key stores they connect.

``__main__.py`` only builds the ``PolicyPack`` (which starts the analyzer server and blocks); the policies live here
so that tests can import and call them.

What the analyzer hands a policy (pulumi-policy 1.21, ``pulumi_policy/policy.py`` and ``proxy.py``):

- Resource policies get the resource's inputs as registered by the program, before the provider's ``check`` fills in
  defaults, so a missing key means the provider default. Stack policies get outputs (the state after the step).
- Property keys are the engine's: snake_case for the dynamic ``CustomKeyStoreConnection`` (dynamic providers keep
  keys as written), camelCase (``customKeyStoreName``) for pulumi-aws resources. The engine strips internal keys
  such as ``__provider`` before analysis.
- ``props`` is an ``unknown_checking_proxy``: reading a value that is unknown during preview raises
  ``UnknownValueError``. The analyzer server catches it and reports an advisory "can't run policy ... during preview"
  diagnostic instead of running the policy; during ``pulumi up`` every input is known when the resource is analyzed.
  Resource policies here read a possibly unknown value only when their verdict depends on it, and let the error
  reach the server. The stack policy matches stores to connections through property dependencies while ids are
  unknown, and defers the same way only when a connection with an unknown store id could belong to any store.
- The stack name is not in the arguments. Before every Analyze/AnalyzeStack call the server configures the Pulumi
  runtime from ``PULUMI_PROJECT``/``PULUMI_STACK``/``PULUMI_DRY_RUN``, which the CLI sets for the pack's process,
  so ``pulumi.get_stack()`` answers. ``build_policies(stack_name=...)`` takes another source for tests.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pulumi
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

try:
    from kms_connection.states import remedy
except ModuleNotFoundError as missing:  # pragma: no cover - depends on how the pack's environment was built
    # The pack runs from policy/ in a checkout of the project without kms-connection installed: use the checkout.
    if missing.name != "kms_connection":
        raise
    sys.path.append(str(Path(__file__).resolve().parent.parent))
    from kms_connection.states import remedy

PACK_NAME = "kms-connection"

CONNECTION_TYPE = "pulumi-python:dynamic/kms:CustomKeyStoreConnection"
"""Type token of ``kms_connection.CustomKeyStoreConnection``."""

KEY_STORE_TYPE = "aws:kms/customKeyStore:CustomKeyStore"
"""Type token of ``pulumi_aws.kms.CustomKeyStore``."""

# Provider defaults, for inputs the program left out (resource policies see inputs before `check`).
DEFAULT_DESIRED_STATE = "CONNECTED"
DEFAULT_ON_DELETE = "disconnect"
DEFAULT_CONNECT_TIMEOUT_SECONDS = 1800
DEFAULT_DISCONNECT_TIMEOUT_SECONDS = 900

# Policy config defaults; each also appears as the "default" of its property in the policy's config schema.
DEFAULT_PROTECTED_STACKS: tuple[str, ...] = ("prod*", "production*")
# Connecting a CloudHSM key store can take about 20 minutes: a shorter connect timeout gives up on a healthy store.
DEFAULT_MIN_CONNECT_TIMEOUT_SECONDS = 1200
DEFAULT_MAX_CONNECT_TIMEOUT_SECONDS = 7200
DEFAULT_MIN_DISCONNECT_TIMEOUT_SECONDS = 60
DEFAULT_MAX_DISCONNECT_TIMEOUT_SECONDS = 3600

StackName = Callable[[], str]
"""Where a policy learns the name of the stack being analyzed."""


def current_stack_name() -> str:
    """The stack being analyzed, as the analyzer server configured the Pulumi runtime from ``PULUMI_STACK``."""
    return pulumi.get_stack()


# --- config -------------------------------------------------------------------------------------------------------

_PROTECTED_STACKS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string"},
    "default": list(DEFAULT_PROTECTED_STACKS),
    "description": (
        "Shell-style patterns (fnmatch, case-sensitive) of the stack names this policy protects, "
        "matched against the stack name without organization or project."
    ),
}


def _allowed_key_stores_schema(what: str) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "string"},
        "default": [],
        "description": f"{what} this policy does not apply to.",
    }


def _seconds_schema(description: str, default: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": 0, "default": default, "description": description}


def _strings(config: Mapping[str, Any], key: str, default: Iterable[str] = ()) -> list[str]:
    value = config.get(key)
    if value is None:
        return list(default)
    return [str(item) for item in value]


def _number(config: Mapping[str, Any], key: str, default: int) -> float:
    value = config.get(key)
    return default if value is None else float(value)


def _protecting_pattern(stack: str, config: Mapping[str, Any]) -> str | None:
    """The first configured protected-stack pattern that ``stack`` matches, or None."""
    for pattern in _strings(config, "protectedStacks", DEFAULT_PROTECTED_STACKS):
        if fnmatch.fnmatchcase(stack, pattern):
            return pattern
    return None


# --- reading properties -------------------------------------------------------------------------------------------


_NOT_KNOWN_YET = "(known once the key store exists)"


def _shown(props: Mapping[str, Any], key: str) -> str:
    """A property for a message, never raising for a value unknown during preview."""
    try:
        value = props.get(key)
    except UnknownValueError:
        return _NOT_KNOWN_YET
    return "(not set)" if value is None else str(value)


def _seconds(value: Any) -> str:
    return f"{value:g} s" if isinstance(value, int | float) and not isinstance(value, bool) else repr(value)


# --- 1. and 2.: what a connection must say in protected stacks ----------------------------------------------------


def _required_in_protected_stacks(
    key: str, default: str, required: str, consequence: str
) -> Callable[[StackName], Callable[[ResourceValidationArgs, ReportViolation], None]]:
    """A resource validation: in protected stacks the connection's ``key`` (``default`` when omitted) must be
    ``required``, unless its key store is on the policy's allow-list."""

    def for_stack(stack_name: StackName) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            if args.resource_type != CONNECTION_TYPE:
                return
            config = args.get_config()
            stack = stack_name()
            pattern = _protecting_pattern(stack, config)
            if pattern is None:
                return
            value = args.props.get(key, default)
            if value == required:
                return
            # The verdict now depends on the store id: an id unknown during preview defers to `pulumi up`.
            store_id = args.props.get("custom_key_store_id")
            if store_id in _strings(config, "allowedKeyStores"):
                return
            report_violation(
                f"CustomKeyStoreConnection '{args.name}' ({args.urn}) has {key}='{value}' for key store {store_id} "
                f"in stack '{stack}', which matches the protected-stack pattern '{pattern}': {consequence} "
                f"Fix: set {key}='{required}', or add '{store_id}' to this policy's allowedKeyStores config.",
                None,
            )

        return validate

    return for_stack


_desired_connected = _required_in_protected_stacks(
    "desired_state",
    DEFAULT_DESIRED_STATE,
    "CONNECTED",
    "a disconnected key store makes every KMS key in it unusable.",
)

_retain_on_delete = _required_in_protected_stacks(
    "on_delete",
    DEFAULT_ON_DELETE,
    "retain",
    "deleting or replacing the connection would disconnect the key store and make every KMS key in it unusable.",
)


# --- 3. every-custom-key-store-has-a-connection -------------------------------------------------------------------


def _every_store_connected(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    allowed = set(_strings(args.get_config(), "allowedKeyStores"))
    stores = [r for r in args.resources if r.resource_type == KEY_STORE_TYPE]
    if not stores:
        return
    store_urns = {store.urn for store in stores}

    connected_ids: set[str] = set()
    # Stores a connection's custom_key_store_id was computed from: this holds even while the id is unknown.
    linked_urns: set[str] = set()
    # A connection whose store id is unknown and traceable to no store of this stack could connect any of them.
    untraced: UnknownValueError | None = None
    for connection in args.resources:
        if connection.resource_type != CONNECTION_TYPE:
            continue
        linked = {dep.urn for dep in connection.property_dependencies.get("custom_key_store_id", [])} & store_urns
        linked_urns |= linked
        try:
            store_id = connection.props.get("custom_key_store_id")
        except UnknownValueError as unknown:
            if not linked and untraced is None:
                untraced = unknown
            continue
        if isinstance(store_id, str):
            connected_ids.add(store_id)

    for store in stores:
        if store.urn in linked_urns:
            continue
        name = _known_string(store.props, "customKeyStoreName", "custom_key_store_name")
        if name is not None and name in allowed:
            continue
        try:
            store_id = store.props.get("id")
        except UnknownValueError:
            # The store is being created (or replaced): no connection can name its id literally and no allow-list
            # can hold it, so only a connection whose own store id is unknown could still be its connection.
            store_id = None
        if store_id is not None and (store_id in connected_ids or store_id in allowed):
            continue
        if untraced is not None:
            # That connection may be this store's. Let the analyzer server report, as pulumi-policy intends, that
            # the policy cannot run during preview; `pulumi up` analyzes the stack with every value known.
            raise untraced
        _report_unconnected(store, store_id, name, report_violation)


def _known_string(props: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        try:
            value = props.get(key)
        except UnknownValueError:
            return None
        if isinstance(value, str):
            return value
    return None


def _report_unconnected(
    store: PolicyResource, store_id: Any, name: str | None, report_violation: ReportViolation
) -> None:
    shown_id = store_id if store_id is not None else _NOT_KNOWN_YET
    report_violation(
        f"Custom key store '{store.name}' ({store.urn}; id {shown_id}, name {name or '(not set)'}) has no "
        f"CustomKeyStoreConnection: nothing in this stack connects it, and KMS keys can be created and used in a "
        f"custom key store only while it is CONNECTED. Fix: declare kms_connection.CustomKeyStoreConnection with "
        f"custom_key_store_id=<the store>.id, or add the store's id or name to this policy's allowedKeyStores "
        f"config.",
        store.urn,
    )


# --- 4. connection-timeouts-within-bounds -------------------------------------------------------------------------


def _timeouts_within_bounds(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != CONNECTION_TYPE:
        return
    config = args.get_config()
    checks = (
        (
            "connect_timeout_seconds",
            DEFAULT_CONNECT_TIMEOUT_SECONDS,
            _number(config, "minConnectTimeoutSeconds", DEFAULT_MIN_CONNECT_TIMEOUT_SECONDS),
            _number(config, "maxConnectTimeoutSeconds", DEFAULT_MAX_CONNECT_TIMEOUT_SECONDS),
        ),
        (
            "disconnect_timeout_seconds",
            DEFAULT_DISCONNECT_TIMEOUT_SECONDS,
            _number(config, "minDisconnectTimeoutSeconds", DEFAULT_MIN_DISCONNECT_TIMEOUT_SECONDS),
            _number(config, "maxDisconnectTimeoutSeconds", DEFAULT_MAX_DISCONNECT_TIMEOUT_SECONDS),
        ),
    )
    for key, default, low, high in checks:
        value = args.props.get(key, default)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if is_number and low <= value <= high:
            continue
        report_violation(
            f"CustomKeyStoreConnection '{args.name}' ({args.urn}) for key store "
            f"{_shown(args.props, 'custom_key_store_id')} has {key}={_seconds(value)}, outside "
            f"{low:g}..{high:g} s. Too short gives up on a store that is still connecting (a CloudHSM key store "
            f"can take about 20 minutes); too long blocks `pulumi up` on a store that will not converge. Fix: set "
            f"{key} within the bounds, or change the bounds in this policy's config.",
            None,
        )


# --- 5. no-failed-connections -------------------------------------------------------------------------------------


def _no_failed_connections(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    allowed = set(_strings(args.get_config(), "allowedKeyStores"))
    for connection in args.resources:
        if connection.resource_type != CONNECTION_TYPE:
            continue
        try:
            state = connection.props.get("connection_state")
        except UnknownValueError:
            continue  # not created yet: nothing has been observed, so nothing has failed
        if state != "FAILED" or _known_string(connection.props, "custom_key_store_id") in allowed:
            continue
        error_code = _known_string(connection.props, "connection_error_code")
        report_violation(
            f"CustomKeyStoreConnection '{connection.name}' ({connection.urn}) observed key store "
            f"{_shown(connection.props, 'custom_key_store_id')} in state FAILED with ConnectionErrorCode "
            f"{error_code or '(none reported)'}. Fix: {remedy(error_code)} A FAILED store must be disconnected "
            f"before it can connect again; the provider does that on the next `pulumi up`.",
            connection.urn,
        )


# --- the policies -------------------------------------------------------------------------------------------------

DESIRED_CONNECTED = "connection-desired-connected-in-protected-stacks"
RETAIN_ON_DELETE = "no-disconnect-on-delete-in-protected-stacks"
EVERY_STORE_CONNECTED = "every-custom-key-store-has-a-connection"
TIMEOUTS_WITHIN_BOUNDS = "connection-timeouts-within-bounds"
NO_FAILED_CONNECTIONS = "no-failed-connections"


def build_policies(stack_name: StackName = current_stack_name) -> list[Policy]:
    """The pack's policies. ``stack_name`` tells the protected-stack policies which stack is analyzed."""
    allowed_ids = _allowed_key_stores_schema("Custom key store ids (cks-...)")
    return [
        ResourceValidationPolicy(
            name=DESIRED_CONNECTED,
            description=(
                "In protected stacks every CustomKeyStoreConnection must desire CONNECTED: a disconnected "
                "custom key store makes every KMS key in it unusable."
            ),
            validate=_desired_connected(stack_name),
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=PolicyConfigSchema(
                properties={"protectedStacks": _PROTECTED_STACKS_SCHEMA, "allowedKeyStores": allowed_ids},
            ),
        ),
        ResourceValidationPolicy(
            name=RETAIN_ON_DELETE,
            description=(
                "In protected stacks every CustomKeyStoreConnection must set on_delete='retain', so that deleting "
                "or replacing it leaves the key store connected."
            ),
            validate=_retain_on_delete(stack_name),
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=PolicyConfigSchema(
                properties={"protectedStacks": _PROTECTED_STACKS_SCHEMA, "allowedKeyStores": allowed_ids},
            ),
        ),
        StackValidationPolicy(
            name=EVERY_STORE_CONNECTED,
            description=(
                "Every aws.kms.CustomKeyStore in the stack must be connected by a CustomKeyStoreConnection whose "
                "custom_key_store_id is the store's id."
            ),
            validate=_every_store_connected,
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=PolicyConfigSchema(
                properties={
                    "allowedKeyStores": _allowed_key_stores_schema("Custom key store ids (cks-...) or names"),
                },
            ),
        ),
        ResourceValidationPolicy(
            name=TIMEOUTS_WITHIN_BOUNDS,
            description="A CustomKeyStoreConnection's connect and disconnect timeouts must lie within bounds.",
            validate=_timeouts_within_bounds,
            enforcement_level=EnforcementLevel.ADVISORY,
            config_schema=PolicyConfigSchema(
                properties={
                    "minConnectTimeoutSeconds": _seconds_schema(
                        "Least connect_timeout_seconds allowed.", DEFAULT_MIN_CONNECT_TIMEOUT_SECONDS
                    ),
                    "maxConnectTimeoutSeconds": _seconds_schema(
                        "Greatest connect_timeout_seconds allowed.", DEFAULT_MAX_CONNECT_TIMEOUT_SECONDS
                    ),
                    "minDisconnectTimeoutSeconds": _seconds_schema(
                        "Least disconnect_timeout_seconds allowed.", DEFAULT_MIN_DISCONNECT_TIMEOUT_SECONDS
                    ),
                    "maxDisconnectTimeoutSeconds": _seconds_schema(
                        "Greatest disconnect_timeout_seconds allowed.", DEFAULT_MAX_DISCONNECT_TIMEOUT_SECONDS
                    ),
                },
            ),
        ),
        StackValidationPolicy(
            name=NO_FAILED_CONNECTIONS,
            description="No CustomKeyStoreConnection may have observed its key store in connection state FAILED.",
            validate=_no_failed_connections,
            enforcement_level=EnforcementLevel.ADVISORY,
            config_schema=PolicyConfigSchema(properties={"allowedKeyStores": allowed_ids}),
        ),
    ]
