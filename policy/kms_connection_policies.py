"""CrossGuard policies for ``CustomKeyStoreConnection`` and ``CustomKeyStoreConnectionSet`` resources and the KMS
custom key stores they connect.

``__main__.py`` only builds the ``PolicyPack`` (which starts the analyzer server and blocks); the policies live here
so that tests can import and call them.

What the analyzer hands a policy (pulumi-policy 1.21, ``pulumi_policy/policy.py`` and ``proxy.py``):

- Resource policies get the resource's inputs. The engine analyzes them after the provider's ``check``
  (pulumi/pulumi ``pkg/resource/deploy/step_generator.go``), even when ``check`` failed, so defaults are usually
  filled in and enum values canonical, but a value ``check`` refused arrives as written: a missing key means the
  provider default, ``desired_state``/``on_delete`` are compared case-insensitively, and any shape is shown
  readably. Stack policies get outputs (the state after the step).
- Property keys are the engine's: snake_case for the dynamic resources (dynamic providers keep keys as written),
  camelCase (``customKeyStoreName``) for pulumi-aws resources and for the provider plugin's native resources
  (``customKeyStoreId``; provider/). The engine strips internal keys such as
  ``__provider`` before analysis.
- ``props`` is an ``unknown_checking_proxy``: reading a value that is unknown during preview raises
  ``UnknownValueError`` (for a list, reading the unknown element does). The analyzer server turns that error into
  an advisory "can't run policy ... during preview: <its message>" diagnostic, keeping the violations reported
  before it; during ``pulumi up`` every input is known when the resource is analyzed. Each policy here decides as
  soon as what it needs is known, and defers (raises :class:`Deferred`, whose message names what the verdict
  waits for) only when an unknown value could change the verdict.
- The engine sends secret values marked as secrets, but the server drops the mark before it calls a validation
  (it deserializes without ``proxy_secrets``, which only ``Remediate`` uses); a validation sees only
  ``opts.additional_secret_outputs``. :func:`track_secret_values` wraps the server's ``Analyze`` and
  ``AnalyzeStack`` so that the policies learn the request's secret values and never put them in a message.
- The stack name is not in the arguments. Before every Analyze/AnalyzeStack call the server configures the Pulumi
  runtime from ``PULUMI_PROJECT``/``PULUMI_STACK``/``PULUMI_DRY_RUN``, which the CLI sets for the pack's process,
  so ``pulumi.get_stack()`` answers. ``build_policies(stack_name=...)`` takes another source for tests.
- Policy config reaches the pack as given: the CLI checks it against each policy's schema, but only ``type`` and
  ``properties`` (an unknown key passes). Every validation checks its policy's config first and raises
  :class:`PolicyConfigError`, which stops the deployment with the message, rather than run with a config it
  cannot apply.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import fnmatch
import functools
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_policy.policy
from google.protobuf import json_format
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
from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY
from pulumi_policy.proxy import UnknownValueError

try:
    from kms_connection.states import DesiredState, DisconnectGuard, OnDelete, remedy
except ModuleNotFoundError as missing:  # pragma: no cover - depends on how the pack's environment was built
    # The pack runs from policy/ in a checkout of the project without kms-connection installed: use the checkout.
    if missing.name != "kms_connection":
        raise
    sys.path.append(str(Path(__file__).resolve().parent.parent))
    from kms_connection.states import DesiredState, DisconnectGuard, OnDelete, remedy

PACK_NAME = "kms-connection"

# The type tokens are written out rather than read from the classes (``"pulumi-python:" +
# CustomKeyStoreConnection._resource_type_name``): that would import ``kms_connection.resource``, and with it
# pulumi.dynamic, dill, boto3 and botocore, into the analyzer process, which needs none of them.
# policy/tests/test_policy_resource_rules.py checks both tokens against the classes.
CONNECTION_TYPE = "pulumi-python:dynamic/kms:CustomKeyStoreConnection"
"""Type token of ``kms_connection.CustomKeyStoreConnection``."""

CONNECTION_SET_TYPE = "pulumi-python:dynamic/kms:CustomKeyStoreConnectionSet"
"""Type token of ``kms_connection.CustomKeyStoreConnectionSet``."""

NATIVE_CONNECTION_TYPE = "kms-connection:index:CustomKeyStoreConnection"
"""Type token of the provider plugin's ``CustomKeyStoreConnection`` (provider/), used from any language."""

NATIVE_CONNECTION_SET_TYPE = "kms-connection:index:CustomKeyStoreConnectionSet"
"""Type token of the provider plugin's ``CustomKeyStoreConnectionSet``."""

KEY_STORE_TYPE = "aws:kms/customKeyStore:CustomKeyStore"
"""Type token of ``pulumi_aws.kms.CustomKeyStore``."""

# The policies' names.
DESIRED_CONNECTED = "connection-desired-connected-in-protected-stacks"
RETAIN_ON_DELETE = "no-disconnect-on-delete-in-protected-stacks"
EVERY_STORE_CONNECTED = "every-custom-key-store-has-a-connection"
TIMEOUTS_WITHIN_BOUNDS = "connection-timeouts-within-bounds"
NO_FAILED_CONNECTIONS = "no-failed-connections"
DISCONNECT_GUARD_REFUSE = "disconnect-guard-in-protected-stacks"

# Provider defaults and bounds, for inputs the program left out. They are kms_connection.inputs.DEFAULTS and
# MAX_TIMEOUT_SECONDS, copied because that module loads botocore; the tests check the copies.
DEFAULT_DESIRED_STATE = DesiredState.CONNECTED.value
DEFAULT_ON_DELETE = OnDelete.DISCONNECT.value
# kms_connection.inputs.GUARD_DEFAULT: check leaves a missing disconnect_guard out, and the provider reads it so.
DEFAULT_DISCONNECT_GUARD = DisconnectGuard.WARN.value
DEFAULT_CONNECT_TIMEOUT_SECONDS = 1800
DEFAULT_DISCONNECT_TIMEOUT_SECONDS = 900
MIN_TIMEOUT_SECONDS = 1
MAX_TIMEOUT_SECONDS = 86400

# Policy config defaults; each also appears as the "default" of its property in the policy's config schema.
DEFAULT_PROTECTED_STACKS: tuple[str, ...] = ("prod*", "production*")
# One bound for both store types, because the pack cannot tell them apart when it decides: a resource policy sees
# the connection's inputs, which name the store by id only (its type is an output, observed once KMS answered).
# An external key store usually connects in seconds to minutes, so a connect bound fitted to CloudHSM (about 20
# minutes) would flag every external store with a short timeout, and the project's own local stack. Below a
# minute even an external store may still be connecting; stacks of CloudHSM stores raise the minimum (README).
DEFAULT_MIN_CONNECT_TIMEOUT_SECONDS = 60
DEFAULT_MAX_CONNECT_TIMEOUT_SECONDS = 7200
DEFAULT_MIN_DISCONNECT_TIMEOUT_SECONDS = 60
DEFAULT_MAX_DISCONNECT_TIMEOUT_SECONDS = 3600

REDACTED = "[secret]"
"""What a message shows in place of a value the program marked secret."""

NOT_KNOWN_YET = "(known once the key store exists)"
"""What a message shows for a key store id that is unknown during preview."""

StackName = Callable[[], str]
"""Where a policy learns the name of the stack being analyzed."""


_configured_stack: str | None = None


def current_stack_name() -> str:
    """The stack being analyzed: as the engine's ``ConfigureStack`` call named it (see :func:`track_stack_name`),
    else as the analyzer server configured the Pulumi runtime from ``PULUMI_STACK``."""
    return _configured_stack or pulumi.get_stack()


def track_stack_name() -> bool:
    """Learn the stack's name from the engine's ``ConfigureStack`` call.

    The CLI starts a pack through its language host without ``PULUMI_STACK`` and names the stack in
    ``ConfigureStack`` instead, which pulumi-policy 1.21 reads only for the stack's tags: without this, every stack
    would look unprotected. Returns False, and changes nothing, if the server class has no such method."""
    servicer = getattr(pulumi_policy.policy, "_PolicyAnalyzerServicer", None)
    method = getattr(servicer, "ConfigureStack", None)
    if servicer is None or not callable(method):
        return False
    if not getattr(method, "tracks_stack_name", False):

        @functools.wraps(method)
        def configure_stack(self: Any, request: Any, context: Any) -> Any:
            global _configured_stack
            if request.stack:
                _configured_stack = request.stack
            return method(self, request, context)

        configure_stack.tracks_stack_name = True  # type: ignore[attr-defined]
        servicer.ConfigureStack = configure_stack
    return True


class PolicyConfigError(ValueError):
    """A policy's config cannot be applied (an unknown key, a wrong type, bounds out of order or out of range).

    Raised from the validation, so pulumi-policy's analyzer server fails the call and the CLI stops the
    deployment with this message: a policy that silently ignored a misspelt ``protectedStacks`` would protect
    nothing."""


class Deferred(UnknownValueError):
    """The policy's verdict waits for a value unknown during preview.

    pulumi-policy's analyzer server reports it as an advisory "can't run policy '<name>' ... during preview:
    <message>", after any violation already reported; ``pulumi up`` runs the policy again with every value known.
    """

    def __init__(self, cause: UnknownValueError, message: str) -> None:
        super().__init__(cause.unknown_type_sentinel, list(cause.props))
        self.message = message


# --- secret values -----------------------------------------------------------------------------------------------

_secret_values: contextvars.ContextVar[frozenset[Any]] = contextvars.ContextVar(
    "kms_connection_policies.secret_values", default=frozenset()
)


def secret_values_of(request: Any) -> frozenset[Any]:
    """The values that were secret in an ``AnalyzeRequest`` or ``AnalyzeStackRequest``: every value the engine
    sent marked as a secret (and, inside a secret object, its keys), and the values of the properties a
    resource's ``additionalSecretOutputs`` names."""
    found: set[Any] = set()
    resources = getattr(request, "resources", None)
    for resource in [request] if resources is None else resources:
        properties = json_format.MessageToDict(resource.properties)
        _collect_secrets(properties, found, secret=False)
        for key in resource.options.additionalSecretOutputs:
            if key in properties:
                _collect_secrets(properties[key], found, secret=True)
    return frozenset(found)


def _collect_secrets(value: Any, found: set[Any], *, secret: bool) -> None:
    if isinstance(value, dict):
        if value.get(SPECIAL_SIG_KEY) == SPECIAL_SECRET_SIG:
            _collect_secrets(value.get("value"), found, secret=True)
            return
        for key, item in value.items():
            if secret:
                _collect_secrets(key, found, secret=True)
            _collect_secrets(item, found, secret=secret)
    elif isinstance(value, list):
        for item in value:
            _collect_secrets(item, found, secret=secret)
    elif secret and value is not None:
        found.add(value)
        if isinstance(value, str):
            # Messages show ids stripped, as the provider's check reads them.
            found.add(value.strip())


def track_secret_values() -> bool:
    """Let the policies know, during each ``Analyze`` and ``AnalyzeStack`` call of pulumi-policy's analyzer server,
    which values of the request were secret, so that no message shows them.

    pulumi-policy drops the secret mark before it calls a validation; this wraps the two server methods to read
    the marks from the request first. Returns False, and changes nothing, if the server class is not the one this
    was written for (pulumi-policy 1.21); messages then show ``additional_secret_outputs`` redacted only."""
    servicer = getattr(pulumi_policy.policy, "_PolicyAnalyzerServicer", None)
    if servicer is None or not all(callable(getattr(servicer, name, None)) for name in ("Analyze", "AnalyzeStack")):
        return False
    for name in ("Analyze", "AnalyzeStack"):
        method = getattr(servicer, name)
        if not getattr(method, "tracks_secret_values", False):
            setattr(servicer, name, _tracking_secret_values(method))
    return True


def _tracking_secret_values(method: Callable[[Any, Any, Any], Any]) -> Callable[[Any, Any, Any], Any]:
    @functools.wraps(method)
    def analyze(self: Any, request: Any, context: Any) -> Any:
        token = _secret_values.set(secret_values_of(request))
        try:
            return method(self, request, context)
        finally:
            _secret_values.reset(token)

    analyze.tracks_secret_values = True  # type: ignore[attr-defined]
    return analyze


@contextlib.contextmanager
def _options_secret(resources: Iterable[tuple[Mapping[str, Any], Iterable[str]]]) -> Iterator[None]:
    """Within the block, the values of the properties each resource's ``additional_secret_outputs`` names are
    secret too: that option is what pulumi-policy itself passes a validation about secrets."""
    found: set[Any] = set()
    for props, additional_secret_outputs in resources:
        for key in additional_secret_outputs:
            _collect_secrets(_plain_property(props, key), found, secret=True)
    token = _secret_values.set(_secret_values.get() | found)
    try:
        yield
    finally:
        _secret_values.reset(token)


def _is_secret(value: Any) -> bool:
    try:
        return value in _secret_values.get()
    except TypeError:  # unhashable: a list or mapping, whose leaves are checked one by one
        return False


# --- showing values in messages ----------------------------------------------------------------------------------


class _Unknown:
    def __repr__(self) -> str:
        return "(unknown during preview)"


_UNKNOWN = _Unknown()


def _plain(value: Any) -> Any:
    """``value`` with pulumi-policy's proxies turned into lists and dicts, and unknown parts into a marker."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(key): _plain_property(value, key) for key in value}
    if isinstance(value, Sequence):
        return [_plain_property(value, index) for index in range(len(value))]
    return str(value)


def _plain_property(container: Any, key: Any) -> Any:
    try:
        return _plain(container[key])
    except UnknownValueError:
        return _UNKNOWN
    except (KeyError, IndexError):
        return None


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {(REDACTED if _is_secret(k) else k): _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return REDACTED if _is_secret(value) else value


def _shown(value: Any) -> str:
    """A property value for a message, whatever its shape, with secret values redacted: a string in quotes as
    written, a number as a number, anything else as JSON."""
    value = _redacted(_plain(value))
    if isinstance(value, str):
        # Identity, not equality: a value that merely reads "[secret]" is shown in quotes like any other.
        return REDACTED if value is REDACTED else f"'{value}'"
    if value is None:
        return "(not set)"
    if value is _UNKNOWN:
        return repr(_UNKNOWN)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:g}"
    shown = json.dumps(value, default=repr)
    return shown if len(shown) <= 100 else shown[:97] + "..."


def _text(value: str) -> str:
    """A string known to be a plain name or id, for a message: itself, unless it was secret."""
    return REDACTED if _is_secret(value) else value


def _seconds(value: Any) -> str:
    if _is_secret(value):
        return REDACTED
    return f"{value:g} s" if isinstance(value, int | float) and not isinstance(value, bool) else _shown(value)


# --- config ------------------------------------------------------------------------------------------------------


def _strings_schema(description: str, default: Sequence[str] = ()) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "default": list(default), "description": description}


def _seconds_schema(description: str, default: int) -> dict[str, Any]:
    return {
        "type": "integer",
        "minimum": MIN_TIMEOUT_SECONDS,
        "maximum": MAX_TIMEOUT_SECONDS,
        "default": default,
        "description": f"{description} Whole seconds, {MIN_TIMEOUT_SECONDS}..{MAX_TIMEOUT_SECONDS} as the provider "
        f"accepts.",
    }


_PROTECTED_STACKS_SCHEMA = _strings_schema(
    "Shell-style patterns (fnmatch, case-sensitive) of the stack names this policy protects, matched against the "
    "stack name without organization or project.",
    DEFAULT_PROTECTED_STACKS,
)
_ALLOWED_IDS_SCHEMA = _strings_schema("Custom key store ids (cks-...) this policy does not apply to.")

_PROTECTED_STACK_PROPERTIES = {"protectedStacks": _PROTECTED_STACKS_SCHEMA, "allowedKeyStores": _ALLOWED_IDS_SCHEMA}
_EVERY_STORE_PROPERTIES = {
    "allowedKeyStores": _strings_schema("Custom key store ids (cks-...) or names this policy does not apply to."),
}
_TIMEOUT_PROPERTIES = {
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
}
_NO_FAILED_PROPERTIES = {"allowedKeyStores": _ALLOWED_IDS_SCHEMA}
# Pairs of bounds that must not cross.
_BOUND_PAIRS = (
    ("minConnectTimeoutSeconds", "maxConnectTimeoutSeconds"),
    ("minDisconnectTimeoutSeconds", "maxDisconnectTimeoutSeconds"),
)


def checked_config(
    policy_name: str, properties: Mapping[str, Mapping[str, Any]], config: Mapping[str, Any]
) -> dict[str, Any]:
    """The policy's effective config (every property, defaults filled in), or :class:`PolicyConfigError` naming
    each problem: a key the schema does not declare (with the nearest one), a value of the wrong type or out of
    range, a minimum above its maximum."""
    problems: list[str] = []
    effective = {key: schema["default"] for key, schema in properties.items()}
    by_folded = {key.casefold(): key for key in properties}
    for key, value in config.items():
        if key == "enforcementLevel":  # the CLI's own key, should it ever reach the pack
            continue
        schema = properties.get(key)
        if schema is None:
            close = by_folded.get(key.casefold()) or next(
                iter(difflib.get_close_matches(key, list(properties), n=1, cutoff=0.6)), None
            )
            hint = f" Did you mean '{close}'?" if close else ""
            problems.append(f"'{key}' is not a property of this policy (properties: {', '.join(properties)}).{hint}")
            continue
        problem = _schema_problem(key, value, schema)
        if problem:
            problems.append(problem)
        else:
            effective[key] = [str(item).strip() for item in value] if schema["type"] == "array" else int(value)
    for low, high in _BOUND_PAIRS:
        if low in properties and high in properties and effective[low] > effective[high]:
            problems.append(
                f"{low}={effective[low]}{_defaulted(low, config)} is above "
                f"{high}={effective[high]}{_defaulted(high, config)}: no timeout could pass."
            )
    if problems:
        raise PolicyConfigError(
            f"policy '{policy_name}' of policy pack '{PACK_NAME}' has config it cannot apply: "
            + " ".join(problems)
            + " Fix the pack's config (pulumi --policy-pack-config, or the policy group in Pulumi Cloud)."
        )
    return effective


def _defaulted(key: str, config: Mapping[str, Any]) -> str:
    return "" if key in config else " (the default)"


def _schema_problem(key: str, value: Any, schema: Mapping[str, Any]) -> str | None:
    if schema["type"] == "array":
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return None
        return f"{key} must be a list of strings; got {json.dumps(value, default=repr)}."
    whole = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not whole or int(value) != value:
        return f"{key} must be a whole number of seconds; got {json.dumps(value, default=repr)}."
    low, high = schema["minimum"], schema["maximum"]
    if not low <= value <= high:
        return f"{key} must lie within {low}..{high} s, the timeouts the provider accepts; got {value:g}."
    return None


def _protecting_pattern(stack: str, config: Mapping[str, Any]) -> str | None:
    """The first configured protected-stack pattern that ``stack`` matches, or None."""
    for pattern in config["protectedStacks"]:
        if fnmatch.fnmatchcase(stack, pattern):
            return str(pattern)
    return None


# --- the resources the policies apply to and the key stores they name --------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """What the policies need to know of a connection resource type."""

    label: str
    stores_key: str
    """The input naming the key store(s): one id, or a list of ids."""
    many: bool
    camel: bool = False
    """Whether its property keys are camelCase (the plugin's native resources), not snake_case."""

    def key(self, name: str) -> str:
        """The resource's key for the property ``name`` (snake_case, as the dynamic resources write it)."""
        if not self.camel:
            return name
        head, *rest = name.split("_")
        return head + "".join(part.capitalize() for part in rest)


_KINDS = {
    CONNECTION_TYPE: _Kind("CustomKeyStoreConnection", "custom_key_store_id", many=False),
    CONNECTION_SET_TYPE: _Kind("CustomKeyStoreConnectionSet", "custom_key_store_ids", many=True),
    NATIVE_CONNECTION_TYPE: _Kind("CustomKeyStoreConnection", "customKeyStoreId", many=False, camel=True),
    NATIVE_CONNECTION_SET_TYPE: _Kind("CustomKeyStoreConnectionSet", "customKeyStoreIds", many=True, camel=True),
}
CONNECTION_TYPES = frozenset(_KINDS)
"""The types of the resources that connect key stores: a connection (one store) and a set (several), each as a
dynamic resource (Python) and as the provider plugin's native resource (any language)."""


def _read(props: Mapping[str, Any], key: str) -> tuple[Any, UnknownValueError | None]:
    """``props[key]`` (None when missing), or the error saying it is unknown during preview."""
    try:
        return props.get(key), None
    except UnknownValueError as unknown:
        return None, unknown


def _is(value: Any, expected: str) -> bool:
    """Whether ``value`` is the enum value ``expected``, in any letter case, as the provider's ``check`` reads it."""
    return isinstance(value, str) and value.strip().casefold() == expected.casefold()


def _known_string(props: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value, _ = _read(props, key)
        if isinstance(value, str):
            return value
    return None


@dataclass
class _StoreIds:
    """The key store ids a connection or set names, as far as they are known."""

    key: str
    many: bool
    known: list[str] = field(default_factory=list)
    """Ids that are non-empty strings, stripped as the provider's check strips them."""
    invalid: list[Any] = field(default_factory=list)
    """Values in place of an id that are not one (not a string, or empty), as plain values."""
    unknown: list[UnknownValueError] = field(default_factory=list)
    """One error per id unknown during preview, or one for the whole value (see ``whole_unknown``)."""
    whole_unknown: bool = False
    missing: bool = False
    """The value is missing, null, or an empty list."""
    empty: bool = False
    """The value is an empty list."""

    def all_known_and_in(self, allowed: set[str]) -> bool:
        """Whether every id is known and in ``allowed``, and there is at least one."""
        return not (self.unknown or self.invalid or self.missing) and all(s in allowed for s in self.known)

    @property
    def unknown_count(self) -> int | None:
        """How many ids are unknown; None when the whole value is, so that not even their number is known."""
        if self.whole_unknown:
            return 1 if not self.many else None
        return len(self.unknown)

    def unknown_where(self) -> str:
        """Where the first unknown id is, as a property path (``custom_key_store_ids[1]``)."""
        props = self.unknown[0].props
        path = props[0] + "".join(f"[{part}]" for part in props[1:])
        return path or self.key

    def shown(self, ids: Sequence[str] | None = None) -> str:
        """``ids`` (default: every known id) for a message, with invalid, unknown and missing ids said."""
        ids = self.known if ids is None else ids
        noun = "key stores" if self.many else "key store"
        parts = [", ".join(_text(store_id) for store_id in ids)] if ids else []
        parts += [f"{_shown(value)} (not a key store id)" for value in self.invalid]
        if self.whole_unknown:
            parts.append(NOT_KNOWN_YET)
        elif self.unknown:
            parts.append(f"{len(self.unknown)} more {NOT_KNOWN_YET}" if parts else NOT_KNOWN_YET)
        if self.missing and not parts:
            return f"no key store ({self.key} is {'an empty list' if self.empty else 'not set'})"
        return f"{noun} {' and '.join(parts) or '(none)'}"


def _store_ids(props: Mapping[str, Any], kind: _Kind) -> _StoreIds:
    """The store id of a connection, or the store ids of a set, never raising for unknown values."""
    ids = _StoreIds(kind.stores_key, kind.many)
    value, unknown = _read(props, kind.stores_key)
    if unknown is not None:
        ids.unknown.append(unknown)
        ids.whole_unknown = True
        return ids
    if value is None:
        ids.missing = True
        return ids
    if not kind.many:
        _add_store_id(ids, value)
        return ids
    if isinstance(value, str) or not isinstance(value, Sequence):
        # A set's ids must be a list; the provider's check refuses anything else.
        ids.invalid.append(_plain(value))
        return ids
    if len(value) == 0:
        ids.missing = ids.empty = True
    for index in range(len(value)):
        try:
            item = value[index]
        except UnknownValueError as unknown_item:
            ids.unknown.append(unknown_item)
            continue
        _add_store_id(ids, item)
    return ids


def _add_store_id(ids: _StoreIds, value: Any) -> None:
    if isinstance(value, str) and value.strip():
        ids.known.append(value.strip())
    else:
        ids.invalid.append(_plain(value))


def _subject(kind: _Kind, name: str, urn: str) -> str:
    return f"{kind.label} '{name}' ({urn})"


# --- 1., 2. and 6.: what a connection or set must say in protected stacks -----------------------------------------


@dataclass(frozen=True)
class _Required:
    """In protected stacks a connection's or set's ``key`` (``default`` when omitted) must be ``required``, unless
    each of the key stores it names is on the policy's allow-list."""

    policy_name: str
    key: str
    default: str
    required: str
    consequence: str

    def validation(self, stack_name: StackName) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
        """The policy's validation, learning the analyzed stack from ``stack_name``."""

        def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
            config = checked_config(self.policy_name, _PROTECTED_STACK_PROPERTIES, args.get_config())
            kind = _KINDS.get(args.resource_type)
            if kind is None:
                return
            stack = stack_name()
            pattern = _protecting_pattern(stack, config)
            if pattern is None:
                return
            with _options_secret([(args.props, args.opts.additional_secret_outputs)]):
                self._check(args, report_violation, kind, set(config["allowedKeyStores"]), stack, pattern)

        return validate

    def _check(
        self,
        args: ResourceValidationArgs,
        report_violation: ReportViolation,
        kind: _Kind,
        allowed: set[str],
        stack: str,
        pattern: str,
    ) -> None:
        key, required = kind.key(self.key), self.required
        subject = _subject(kind, args.name, args.urn)
        protected = f"stack '{stack}', which matches the protected-stack pattern '{pattern}'"
        stores = _store_ids(args.props, kind)
        value, value_unknown = _read(args.props, key)

        if value_unknown is not None:
            if stores.all_known_and_in(allowed):
                return
            raise Deferred(
                value_unknown,
                f"waits for {key} of {subject}, unknown during preview: {key} must be '{required}' in {protected}, "
                f"unless every key store it names is on allowedKeyStores ({stores.shown()}).",
            )
        if value is None:
            value = self.default
        if _is(value, required):
            return

        offending = [store for store in stores.known if store not in allowed]
        # An id unknown during preview could be on the allow-list only if the list has entries: with an empty one
        # (the default) the verdict does not wait for the id.
        unknown_offends = bool(stores.unknown) and not allowed
        if offending or stores.invalid or stores.missing or unknown_offends:
            fix = f"set {key}='{required}'"
            if offending:
                fix += f", or add {', '.join(_text(s) for s in offending)} to this policy's allowedKeyStores config"
            elif stores.invalid or stores.missing:
                fix += f" (and name the key store{'s' if kind.many else ''} in {kind.stores_key})"
            report_violation(
                f"{subject} has {key}={_shown(value)} for {stores.shown(offending)} in {protected}: "
                f"{self.consequence} Fix: {fix}.",
                None,
            )
        elif stores.unknown:
            raise Deferred(
                stores.unknown[0],
                f"waits for {stores.unknown_where()} of {subject}, unknown during preview: it has "
                f"{key}={_shown(value)}, which {protected} allows only for the key stores on allowedKeyStores "
                f"({', '.join(_text(s) for s in sorted(allowed))}).",
            )


_desired_connected = _Required(
    DESIRED_CONNECTED,
    "desired_state",
    DEFAULT_DESIRED_STATE,
    DesiredState.CONNECTED.value,
    "a disconnected key store makes every KMS key in it unusable.",
)

_retain_on_delete = _Required(
    RETAIN_ON_DELETE,
    "on_delete",
    DEFAULT_ON_DELETE,
    OnDelete.RETAIN.value,
    "deleting or replacing the resource (or removing a store from a set) would disconnect the key store and make "
    "every KMS key in it unusable.",
)

_refuse_disconnects = _Required(
    DISCONNECT_GUARD_REFUSE,
    "disconnect_guard",
    DEFAULT_DISCONNECT_GUARD,
    DisconnectGuard.REFUSE.value,
    "a disconnect of the key store (desired_state DISCONNECTED, a delete with on_delete='disconnect', a store "
    "leaving a set) would go ahead while the store holds enabled KMS keys, making them unusable; with 'refuse' the "
    "provider fails before any request instead, naming the keys (and fails closed when it cannot count them).",
)


# --- 3. every-custom-key-store-has-a-connection -------------------------------------------------------------------


@dataclass(frozen=True)
class _Store:
    resource: PolicyResource
    id: str | None
    """Its id, stripped; None when unknown during preview (being created or replaced) or missing."""
    id_unknown: bool
    name: str | None

    def shown_id(self) -> str:
        if self.id_unknown:
            return NOT_KNOWN_YET
        return _text(self.id) if self.id is not None else "(not set)"


def _key_store(resource: PolicyResource) -> _Store:
    store_id, unknown = _read(resource.props, "id")
    shown = store_id.strip() if isinstance(store_id, str) and store_id.strip() else None
    name = _known_string(resource.props, "customKeyStoreName", "custom_key_store_name")
    return _Store(resource, shown, unknown is not None, name)


@dataclass(frozen=True)
class _UnknownIds:
    """A connection's or set's ids still unknown during preview, and the key stores they can be the ids of."""

    resource: PolicyResource
    kind: _Kind
    ids: _StoreIds
    own: frozenset[str]
    """URNs of the stores whose own id, unknown too, these ids can be: the stores the property depends on."""
    opaque: bool
    """The ids may be any store's: the property depends on something else than key stores (or on nothing the
    policy sees), or lists more unknown ids than it depends on stores with unknown ids."""

    @property
    def traced(self) -> bool:
        """The ids are the ids of every store in ``own`` (as many ids as stores, each from a store's own id)."""
        count = self.ids.unknown_count
        return bool(self.own) and not self.opaque and (count is None or count >= len(self.own))

    def may_name(self, store: _Store) -> bool:
        return self.opaque or store.resource.urn in self.own

    def describe(self) -> str:
        deps = self.resource.property_dependencies.get(self.kind.stores_key, [])
        sources = ", ".join(f"{dep.resource_type} '{dep.name}'" for dep in deps) or "nothing the policy sees"
        return (
            f"{self.ids.unknown_where()} of {_subject(self.kind, self.resource.name, self.resource.urn)} "
            f"(computed from {sources})"
        )


def _unknown_ids(resource: PolicyResource, kind: _Kind, ids: _StoreIds, stores: Mapping[str, _Store]) -> _UnknownIds:
    deps = resource.property_dependencies.get(kind.stores_key, [])
    store_deps = [dep for dep in deps if dep.urn in stores]
    # A store whose id is known cannot be where an unknown id came from: a dependency on it is some other use.
    own = frozenset(dep.urn for dep in store_deps if stores[dep.urn].id_unknown)
    count = ids.unknown_count
    opaque = not deps or len(store_deps) < len(deps) or (count is not None and count > len(own))
    return _UnknownIds(resource, kind, ids, own, opaque)


def _every_store_connected(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = checked_config(EVERY_STORE_CONNECTED, _EVERY_STORE_PROPERTIES, args.get_config())
    allowed = set(config["allowedKeyStores"])
    stores = {r.urn: _key_store(r) for r in args.resources if r.resource_type == KEY_STORE_TYPE}
    if not stores:
        return
    with _options_secret((r.props, r.opts.additional_secret_outputs) for r in args.resources):
        _check_every_store_connected(args, stores, allowed, report_violation)


def _check_every_store_connected(
    args: StackValidationArgs, stores: Mapping[str, _Store], allowed: set[str], report_violation: ReportViolation
) -> None:
    # Known ids decide; property dependencies stand in only for ids still unknown, and only as far as they can be
    # where those ids came from.
    connected_ids: set[str] = set()
    unknowns: list[_UnknownIds] = []
    for resource in args.resources:
        kind = _KINDS.get(resource.resource_type)
        if kind is None:
            continue
        ids = _store_ids(resource.props, kind)
        connected_ids.update(ids.known)
        if ids.unknown:
            unknowns.append(_unknown_ids(resource, kind, ids, stores))

    undecided: list[_Store] = []
    for store in stores.values():
        if store.id is not None and (store.id in connected_ids or store.id in allowed):
            continue
        if store.name is not None and store.name in allowed:
            continue
        if any(u.traced and store.resource.urn in u.own for u in unknowns):
            continue
        if any(u.may_name(store) for u in unknowns):
            undecided.append(store)
        else:
            # Certain whatever the unknown ids turn out to be: reported before any deferral.
            _report_unconnected(store, report_violation)

    if undecided:
        waits_for = [u for u in unknowns if any(u.may_name(store) for store in undecided)]
        raise Deferred(
            waits_for[0].ids.unknown[0],
            f"waits for {'; '.join(u.describe() for u in waits_for)}, unknown during preview, which may be the id "
            f"of {', '.join(_store_label(store) for store in undecided)}: no known id connects "
            f"{'it' if len(undecided) == 1 else 'them'}.",
        )


def _store_label(store: _Store) -> str:
    shown = "id known once it exists" if store.id_unknown else f"id {store.shown_id()}"
    return f"key store '{store.resource.name}' ({shown})"


def _report_unconnected(store: _Store, report_violation: ReportViolation) -> None:
    name = _text(store.name) if store.name is not None else "(not set)"
    report_violation(
        f"Custom key store '{store.resource.name}' ({store.resource.urn}; id {store.shown_id()}, name {name}) has "
        f"no connection: no CustomKeyStoreConnection or CustomKeyStoreConnectionSet in this stack connects it, and "
        f"KMS keys can be created and used in a custom key store only while it is CONNECTED. Fix: declare "
        f"kms_connection.CustomKeyStoreConnection with custom_key_store_id=<the store>.id (or add <the store>.id "
        f"to a CustomKeyStoreConnectionSet's custom_key_store_ids), or add the store's id or name to this "
        f"policy's allowedKeyStores config.",
        store.resource.urn,
    )


# --- 4. connection-timeouts-within-bounds -------------------------------------------------------------------------

_TIMEOUT_REASONS = {
    "connect_timeout_seconds": (
        "Too short gives up on a store KMS is still connecting (a CloudHSM key store can take about 20 minutes, "
        "an external key store seconds to minutes); too long blocks `pulumi up` on a store that will not connect."
    ),
    "disconnect_timeout_seconds": (
        "Too short gives up on a store KMS is still disconnecting (faster than connecting, but not instant); too "
        "long blocks `pulumi up` and `pulumi destroy` on a store that will not disconnect."
    ),
}


def _timeouts_within_bounds(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    config = checked_config(TIMEOUTS_WITHIN_BOUNDS, _TIMEOUT_PROPERTIES, args.get_config())
    kind = _KINDS.get(args.resource_type)
    if kind is None:
        return
    with _options_secret([(args.props, args.opts.additional_secret_outputs)]):
        _check_timeouts(args, report_violation, kind, config)


def _check_timeouts(
    args: ResourceValidationArgs, report_violation: ReportViolation, kind: _Kind, config: Mapping[str, Any]
) -> None:
    subject = _subject(kind, args.name, args.urn)
    checks = (
        ("connect_timeout_seconds", DEFAULT_CONNECT_TIMEOUT_SECONDS, "ConnectTimeoutSeconds"),
        ("disconnect_timeout_seconds", DEFAULT_DISCONNECT_TIMEOUT_SECONDS, "DisconnectTimeoutSeconds"),
    )
    deferred: list[tuple[str, UnknownValueError]] = []
    for name, default, bounds in checks:
        key = kind.key(name)
        low, high = config[f"min{bounds}"], config[f"max{bounds}"]
        value, unknown = _read(args.props, key)
        if unknown is not None:
            deferred.append((key, unknown))
            continue
        defaulted = value is None
        if defaulted:
            value = default
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if is_number and low <= value <= high:
            continue
        report_violation(
            f"{subject} for {_store_ids(args.props, kind).shown()} has {key}={_seconds(value)}"
            f"{' (the default)' if defaulted else ''}, outside {low}..{high} s. {_TIMEOUT_REASONS[name]} Fix: set "
            f"{key} within the bounds, or change min{bounds}/max{bounds} in this policy's config.",
            None,
        )
    if deferred:
        keys = " and ".join(key for key, _ in deferred)
        raise Deferred(
            deferred[0][1],
            f"waits for {keys} of {subject}, unknown during preview: "
            f"{'it' if len(deferred) == 1 else 'each'} must lie within this policy's bounds.",
        )


# --- 5. no-failed-connections -------------------------------------------------------------------------------------


def _failed_stores(resource: PolicyResource, kind: _Kind) -> list[tuple[str | None, str | None]]:
    """(store id, ConnectionErrorCode) of each store the resource observed FAILED. A resource not created yet has
    observed nothing (its states are unknown), so nothing has failed."""
    props = resource.props
    if not kind.many:
        state, _ = _read(props, kind.key("connection_state"))
        if not _is(state, "FAILED"):
            return []
        id_key, code_key = kind.key("custom_key_store_id"), kind.key("connection_error_code")
        return [(_known_string(props, id_key), _known_string(props, code_key))]
    states = _plain_property(props, kind.key("connection_states"))
    codes = _plain_property(props, kind.key("connection_error_codes"))
    states = states if isinstance(states, dict) else {}
    codes = codes if isinstance(codes, dict) else {}
    failed: list[tuple[str | None, str | None]] = []
    # In the set's order: a map's order does not survive the wire.
    members = _store_ids(props, kind).known
    for store_id in sorted(states, key=lambda sid: (members.index(sid) if sid in members else len(members), sid)):
        if _is(states[store_id], "FAILED"):
            code = codes.get(store_id)
            failed.append((store_id, code if isinstance(code, str) else None))
    return failed


def _no_failed_connections(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    config = checked_config(NO_FAILED_CONNECTIONS, _NO_FAILED_PROPERTIES, args.get_config())
    allowed = set(config["allowedKeyStores"])
    for resource in args.resources:
        kind = _KINDS.get(resource.resource_type)
        if kind is None:
            continue
        with _options_secret([(resource.props, resource.opts.additional_secret_outputs)]):
            for store_id, error_code in _failed_stores(resource, kind):
                if store_id in allowed:
                    continue
                shown_code = _text(error_code) if error_code else "(none reported)"
                shown_remedy = remedy(error_code) if not error_code or not _is_secret(error_code) else remedy(None)
                report_violation(
                    f"{_subject(kind, resource.name, resource.urn)} observed key store "
                    f"{_text(store_id) if store_id else NOT_KNOWN_YET} in state FAILED with ConnectionErrorCode "
                    f"{shown_code}. Fix: {shown_remedy} A FAILED store must be disconnected before it can connect "
                    f"again; the provider does that on the next `pulumi up`.",
                    resource.urn,
                )


# --- the policies -------------------------------------------------------------------------------------------------


def build_policies(stack_name: StackName = current_stack_name) -> list[Policy]:
    """The pack's policies. ``stack_name`` tells the protected-stack policies which stack is analyzed."""
    return [
        ResourceValidationPolicy(
            name=DESIRED_CONNECTED,
            description=(
                "In protected stacks every CustomKeyStoreConnection and CustomKeyStoreConnectionSet must desire "
                "CONNECTED: a disconnected custom key store makes every KMS key in it unusable."
            ),
            validate=_desired_connected.validation(stack_name),
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=PolicyConfigSchema(properties=_copy(_PROTECTED_STACK_PROPERTIES)),
        ),
        ResourceValidationPolicy(
            name=RETAIN_ON_DELETE,
            description=(
                "In protected stacks every CustomKeyStoreConnection and CustomKeyStoreConnectionSet must set "
                "on_delete='retain', so that deleting or replacing it leaves its key stores connected."
            ),
            validate=_retain_on_delete.validation(stack_name),
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=PolicyConfigSchema(properties=_copy(_PROTECTED_STACK_PROPERTIES)),
        ),
        ResourceValidationPolicy(
            name=DISCONNECT_GUARD_REFUSE,
            description=(
                "In protected stacks every CustomKeyStoreConnection and CustomKeyStoreConnectionSet must set "
                "disconnect_guard='refuse', so that no disconnect makes a store's enabled KMS keys unusable."
            ),
            validate=_refuse_disconnects.validation(stack_name),
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=PolicyConfigSchema(properties=_copy(_PROTECTED_STACK_PROPERTIES)),
        ),
        StackValidationPolicy(
            name=EVERY_STORE_CONNECTED,
            description=(
                "Every aws.kms.CustomKeyStore in the stack must be connected: a CustomKeyStoreConnection's "
                "custom_key_store_id or a CustomKeyStoreConnectionSet's custom_key_store_ids must name it."
            ),
            validate=_every_store_connected,
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=PolicyConfigSchema(properties=_copy(_EVERY_STORE_PROPERTIES)),
        ),
        ResourceValidationPolicy(
            name=TIMEOUTS_WITHIN_BOUNDS,
            description=(
                "The connect and disconnect timeouts of a CustomKeyStoreConnection or CustomKeyStoreConnectionSet "
                "must lie within bounds."
            ),
            validate=_timeouts_within_bounds,
            enforcement_level=EnforcementLevel.ADVISORY,
            config_schema=PolicyConfigSchema(properties=_copy(_TIMEOUT_PROPERTIES)),
        ),
        StackValidationPolicy(
            name=NO_FAILED_CONNECTIONS,
            description=(
                "No CustomKeyStoreConnection or CustomKeyStoreConnectionSet may have observed a key store in "
                "connection state FAILED."
            ),
            validate=_no_failed_connections,
            enforcement_level=EnforcementLevel.ADVISORY,
            config_schema=PolicyConfigSchema(properties=_copy(_NO_FAILED_PROPERTIES)),
        ),
    ]


def _copy(properties: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    # The server serializes the schemas; each policy gets its own copy so that nothing it does reaches another.
    return json.loads(json.dumps(properties))  # type: ignore[no-any-return]
