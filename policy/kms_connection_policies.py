"""CrossGuard policies for ``CustomKeyStoreConnection`` and ``CustomKeyStoreConnectionSet`` resources and the KMS
custom key stores they connect.

``__main__.py`` only builds the ``PolicyPack`` (which starts the analyzer server and blocks); the policies live here
so that tests can import and call them.

What the analyzer hands a policy (pulumi-policy 1.21, ``pulumi_policy/policy.py`` and ``proxy.py``):

- Resource policies get the resource's inputs. The engine analyzes them after the provider's ``check``
  (pulumi/pulumi ``pkg/resource/deploy/step_generator.go``), so defaults are usually filled in and enum values
  canonical; but a ``check`` that fails hands values back as written, so a missing key means the provider default
  and ``desired_state``/``on_delete`` are compared case-insensitively here. Stack policies get outputs (the state
  after the step).
- Property keys are the engine's: snake_case for the dynamic resources (dynamic providers keep keys as written),
  camelCase (``customKeyStoreName``) for pulumi-aws resources. The engine strips internal keys such as
  ``__provider`` before analysis.
- ``props`` is an ``unknown_checking_proxy``: reading a value that is unknown during preview raises
  ``UnknownValueError`` (for a list, reading the unknown element does). The analyzer server catches it and reports
  an advisory "can't run policy ... during preview" diagnostic instead of running the policy; during ``pulumi up``
  every input is known when the resource is analyzed. Resource policies here read a possibly unknown value only
  when their verdict depends on it, and let the error reach the server. The stack policy matches stores to
  connections through property dependencies while ids are unknown, and defers the same way only when an unknown
  store id could belong to any store.
- The stack name is not in the arguments. Before every Analyze/AnalyzeStack call the server configures the Pulumi
  runtime from ``PULUMI_PROJECT``/``PULUMI_STACK``/``PULUMI_DRY_RUN``, which the CLI sets for the pack's process,
  so ``pulumi.get_stack()`` answers. ``build_policies(stack_name=...)`` takes another source for tests.
"""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
    from kms_connection.states import DesiredState, OnDelete, remedy
except ModuleNotFoundError as missing:  # pragma: no cover - depends on how the pack's environment was built
    # The pack runs from policy/ in a checkout of the project without kms-connection installed: use the checkout.
    if missing.name != "kms_connection":
        raise
    sys.path.append(str(Path(__file__).resolve().parent.parent))
    from kms_connection.states import DesiredState, OnDelete, remedy

PACK_NAME = "kms-connection"

# The type tokens are written out rather than read from the classes (``"pulumi-python:" +
# CustomKeyStoreConnection._resource_type_name``): that would import ``kms_connection.resource``, and with it
# pulumi.dynamic, dill, boto3 and botocore, into the analyzer process, which needs none of them.
# policy/tests/test_policy_resource_rules.py checks both tokens against the classes.
CONNECTION_TYPE = "pulumi-python:dynamic/kms:CustomKeyStoreConnection"
"""Type token of ``kms_connection.CustomKeyStoreConnection``."""

CONNECTION_SET_TYPE = "pulumi-python:dynamic/kms:CustomKeyStoreConnectionSet"
"""Type token of ``kms_connection.CustomKeyStoreConnectionSet``."""

KEY_STORE_TYPE = "aws:kms/customKeyStore:CustomKeyStore"
"""Type token of ``pulumi_aws.kms.CustomKeyStore``."""

# Provider defaults, for inputs the program left out. The timeouts are kms_connection.inputs.DEFAULTS, copied
# because that module loads botocore; the tests check the copies.
DEFAULT_DESIRED_STATE = DesiredState.CONNECTED.value
DEFAULT_ON_DELETE = OnDelete.DISCONNECT.value
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


# --- the resources the policies apply to ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """What the policies need to know of a connection resource type."""

    label: str
    stores_key: str
    """The input naming the key store(s): one id, or a list of ids."""
    many: bool


_KINDS = {
    CONNECTION_TYPE: _Kind("CustomKeyStoreConnection", "custom_key_store_id", many=False),
    CONNECTION_SET_TYPE: _Kind("CustomKeyStoreConnectionSet", "custom_key_store_ids", many=True),
}
CONNECTION_TYPES = frozenset(_KINDS)
"""The types of the resources that connect key stores: a connection (one store) and a set (several)."""


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


def _is(value: Any, expected: str) -> bool:
    """Whether ``value`` is the enum value ``expected``, in any letter case, as the provider's ``check`` reads it."""
    return isinstance(value, str) and value.strip().casefold() == expected.casefold()


def _known_string(props: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        try:
            value = props.get(key)
        except UnknownValueError:
            return None
        if isinstance(value, str):
            return value
    return None


def _known_mapping(props: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    try:
        value = props.get(key)
    except UnknownValueError:
        return {}
    return value if isinstance(value, Mapping) else {}


def _seconds(value: Any) -> str:
    return f"{value:g} s" if isinstance(value, int | float) and not isinstance(value, bool) else repr(value)


@dataclass
class _StoreIds:
    """The key store ids a connection or set names, as far as they are known."""

    known: list[str] = field(default_factory=list)
    unknown: UnknownValueError | None = None
    """The error of the first unknown id (or of the whole unknown list), for deferring to ``pulumi up``."""
    unknown_items: int = 0
    """How many ids of a list are unknown; 0 when the whole value is (see ``whole_unknown``)."""

    @property
    def whole_unknown(self) -> bool:
        return self.unknown is not None and self.unknown_items == 0

    def shown(self, ids: Sequence[str] | None = None) -> str:
        """``ids`` (default: every known id) for a message, with the unknown ones counted."""
        ids = self.known if ids is None else ids
        parts = [", ".join(ids)] if ids else []
        if self.whole_unknown:
            parts.append(_NOT_KNOWN_YET)
        elif self.unknown_items:
            parts.append(f"{self.unknown_items} more {_NOT_KNOWN_YET}")
        return " and ".join(parts) or "(not set)"


def _store_ids(props: Mapping[str, Any], kind: _Kind) -> _StoreIds:
    """The store id of a connection, or the store ids of a set, never raising for unknown values."""
    try:
        value = props.get(kind.stores_key)
    except UnknownValueError as unknown:
        return _StoreIds(unknown=unknown)
    if value is None:
        return _StoreIds()
    if isinstance(value, str) or not isinstance(value, Sequence):
        return _StoreIds([str(value).strip()])
    ids = _StoreIds()
    for index in range(len(value)):
        try:
            item = value[index]
        except UnknownValueError as unknown:
            ids.unknown = ids.unknown or unknown
            ids.unknown_items += 1
            continue
        ids.known.append(str(item).strip())
    return ids


def _subject(kind: _Kind, name: str, urn: str) -> str:
    return f"{kind.label} '{name}' ({urn})"


def _key_stores(kind: _Kind, ids: _StoreIds, shown: Sequence[str] | None = None) -> str:
    return f"key store{'s' if kind.many else ''} {ids.shown(shown)}"


# --- 1. and 2.: what a connection or set must say in protected stacks ---------------------------------------------


def _required_in_protected_stacks(
    key: str, default: str, required: str, consequence: str
) -> Callable[[StackName], Callable[[ResourceValidationArgs, ReportViolation], None]]:
    """A resource validation: in protected stacks the connection's or set's ``key`` (``default`` when omitted) must
    be ``required``, unless each of its key stores is on the policy's allow-list."""

    def for_stack(stack_name: StackName) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            kind = _KINDS.get(args.resource_type)
            if kind is None:
                return
            config = args.get_config()
            stack = stack_name()
            pattern = _protecting_pattern(stack, config)
            if pattern is None:
                return
            value = args.props.get(key)
            if value is None:
                value = default
            if _is(value, required):
                return
            allowed = set(_strings(config, "allowedKeyStores"))
            stores = _store_ids(args.props, kind)
            offending = [store for store in stores.known if store not in allowed]
            if not offending:
                if stores.unknown is not None:
                    # The verdict depends on store ids unknown during preview: defer to `pulumi up`.
                    raise stores.unknown
                return
            report_violation(
                f"{_subject(kind, args.name, args.urn)} has {key}='{value}' for "
                f"{_key_stores(kind, stores, offending)} in stack '{stack}', which matches the protected-stack pattern "
                f"'{pattern}': {consequence} Fix: set {key}='{required}', or add {', '.join(offending)} to this "
                f"policy's allowedKeyStores config.",
                None,
            )

        return validate

    return for_stack


_desired_connected = _required_in_protected_stacks(
    "desired_state",
    DEFAULT_DESIRED_STATE,
    DesiredState.CONNECTED.value,
    "a disconnected key store makes every KMS key in it unusable.",
)

_retain_on_delete = _required_in_protected_stacks(
    "on_delete",
    DEFAULT_ON_DELETE,
    OnDelete.RETAIN.value,
    "deleting or replacing the resource (or removing a store from a set) would disconnect the key store and make "
    "every KMS key in it unusable.",
)


# --- 3. every-custom-key-store-has-a-connection -------------------------------------------------------------------


def _every_store_connected(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    allowed = set(_strings(args.get_config(), "allowedKeyStores"))
    stores = [r for r in args.resources if r.resource_type == KEY_STORE_TYPE]
    if not stores:
        return
    store_urns = {store.urn for store in stores}

    connected_ids: set[str] = set()
    # Stores a connection's or set's store ids were computed from: this holds even while the ids are unknown.
    linked_urns: set[str] = set()
    # An unknown store id traceable to no store of this stack could be any store's.
    untraced: UnknownValueError | None = None
    for resource in args.resources:
        kind = _KINDS.get(resource.resource_type)
        if kind is None:
            continue
        linked = {dep.urn for dep in resource.property_dependencies.get(kind.stores_key, [])} & store_urns
        linked_urns |= linked
        ids = _store_ids(resource.props, kind)
        connected_ids.update(ids.known)
        # A wholly unknown id or list is taken to come from the stores it depends on; of a list with unknown
        # elements, each unknown element needs a store of its own to come from.
        traced = bool(linked) if ids.whole_unknown else ids.unknown_items <= len(linked)
        if ids.unknown is not None and not traced and untraced is None:
            untraced = ids.unknown

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
            # can hold it, so only an unknown store id of a connection or set could still be its.
            store_id = None
        if store_id is not None and (store_id in connected_ids or store_id in allowed):
            continue
        if untraced is not None:
            # That id may be this store's. Let the analyzer server report, as pulumi-policy intends, that the
            # policy cannot run during preview; `pulumi up` analyzes the stack with every value known.
            raise untraced
        _report_unconnected(store, store_id, name, report_violation)


def _report_unconnected(
    store: PolicyResource, store_id: Any, name: str | None, report_violation: ReportViolation
) -> None:
    shown_id = store_id if store_id is not None else _NOT_KNOWN_YET
    report_violation(
        f"Custom key store '{store.name}' ({store.urn}; id {shown_id}, name {name or '(not set)'}) has no "
        f"connection: no CustomKeyStoreConnection or CustomKeyStoreConnectionSet in this stack connects it, and "
        f"KMS keys can be created and used in a custom key store only while it is CONNECTED. Fix: declare "
        f"kms_connection.CustomKeyStoreConnection with custom_key_store_id=<the store>.id (or add <the store>.id "
        f"to a CustomKeyStoreConnectionSet's custom_key_store_ids), or add the store's id or name to this "
        f"policy's allowedKeyStores config.",
        store.urn,
    )


# --- 4. connection-timeouts-within-bounds -------------------------------------------------------------------------


def _timeouts_within_bounds(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    kind = _KINDS.get(args.resource_type)
    if kind is None:
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
        value = args.props.get(key)
        if value is None:
            value = default
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if is_number and low <= value <= high:
            continue
        report_violation(
            f"{_subject(kind, args.name, args.urn)} for {_key_stores(kind, _store_ids(args.props, kind))} has "
            f"{key}={_seconds(value)}, outside {low:g}..{high:g} s. Too short gives up on a store that is still "
            f"connecting (a CloudHSM key store can take about 20 minutes); too long blocks `pulumi up` on a store "
            f"that will not converge. Fix: set {key} within the bounds, or change the bounds in this policy's config.",
            None,
        )


# --- 5. no-failed-connections -------------------------------------------------------------------------------------


def _failed_stores(resource: PolicyResource, kind: _Kind) -> list[tuple[str | None, str | None]]:
    """(store id, ConnectionErrorCode) of each store the resource observed FAILED. A resource not created yet has
    observed nothing (its states are unknown), so nothing has failed."""
    props = resource.props
    if not kind.many:
        try:
            state = props.get("connection_state")
        except UnknownValueError:
            return []
        if not _is(state, "FAILED"):
            return []
        return [(_known_string(props, "custom_key_store_id"), _known_string(props, "connection_error_code"))]
    states = _known_mapping(props, "connection_states")
    codes = _known_mapping(props, "connection_error_codes")
    failed: list[tuple[str | None, str | None]] = []
    # In the set's order: a map's order does not survive the wire.
    members = _store_ids(props, kind).known
    for store_id in sorted(states, key=lambda sid: (members.index(sid) if sid in members else len(members), sid)):
        if _is(_known_string(states, store_id), "FAILED"):
            failed.append((store_id, _known_string(codes, store_id)))
    return failed


def _no_failed_connections(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    allowed = set(_strings(args.get_config(), "allowedKeyStores"))
    for resource in args.resources:
        kind = _KINDS.get(resource.resource_type)
        if kind is None:
            continue
        for store_id, error_code in _failed_stores(resource, kind):
            if store_id in allowed:
                continue
            report_violation(
                f"{_subject(kind, resource.name, resource.urn)} observed key store {store_id or _NOT_KNOWN_YET} in "
                f"state FAILED with ConnectionErrorCode {error_code or '(none reported)'}. Fix: {remedy(error_code)} "
                f"A FAILED store must be disconnected before it can connect again; the provider does that on the "
                f"next `pulumi up`.",
                resource.urn,
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
                "In protected stacks every CustomKeyStoreConnection and CustomKeyStoreConnectionSet must desire "
                "CONNECTED: a disconnected custom key store makes every KMS key in it unusable."
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
                "In protected stacks every CustomKeyStoreConnection and CustomKeyStoreConnectionSet must set "
                "on_delete='retain', so that deleting or replacing it leaves its key stores connected."
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
                "Every aws.kms.CustomKeyStore in the stack must be connected: a CustomKeyStoreConnection's "
                "custom_key_store_id or a CustomKeyStoreConnectionSet's custom_key_store_ids must name it."
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
            description=(
                "The connect and disconnect timeouts of a CustomKeyStoreConnection or CustomKeyStoreConnectionSet "
                "must lie within bounds."
            ),
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
            description=(
                "No CustomKeyStoreConnection or CustomKeyStoreConnectionSet may have observed a key store in "
                "connection state FAILED."
            ),
            validate=_no_failed_connections,
            enforcement_level=EnforcementLevel.ADVISORY,
            config_schema=PolicyConfigSchema(properties={"allowedKeyStores": allowed_ids}),
        ),
    ]
