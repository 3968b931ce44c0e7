"""Validation and normalisation of a CustomKeyStoreConnection's inputs: what ``check`` does, with no I/O.

Every failure names the property and says what is expected, because the engine shows ``check`` failures to the
user as they are. Values still unknown during a preview pass through untouched: they are checked when known.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .settings import REGION_HELP
from .settings import ROLE_ARN as ROLE_ARN_FORM
from .states import DesiredState, DisconnectGuard, OnDelete

CUSTOM_KEY_STORE_ID = "custom_key_store_id"
CUSTOM_KEY_STORE_IDS = "custom_key_store_ids"
DESIRED_STATE = "desired_state"
ON_DELETE = "on_delete"
CONNECT_TIMEOUT = "connect_timeout_seconds"
DISCONNECT_TIMEOUT = "disconnect_timeout_seconds"
REGION = "region"
ROLE_ARN = "role_arn"
ROLE_EXTERNAL_ID = "role_external_id"
ROLE_SESSION_NAME = "role_session_name"
ROLE_INPUT_NAMES = (ROLE_ARN, ROLE_EXTERNAL_ID, ROLE_SESSION_NAME)
"""A resource's own role, assumed from the stack's credentials (after ``aws:assumeRoles``, if any)."""
DISCONNECT_GUARD = "disconnect_guard"
"""What the resource does before it disconnects a store: ``warn`` (say which keys go dark), ``refuse`` or ``off``."""
GUARD_DEFAULT = DisconnectGuard.WARN
"""What a missing ``disconnect_guard`` means. Check does not fill it in: a stack recorded before the input existed
would otherwise show an update of every resource at its next preview."""
RESOURCE_NAME = "resource_name"
"""Set by the resource classes to the resource's name: the dynamic provider API shows a provider no URN, and the
provider must tell apart the resources that name one store (``deployment.py``)."""

DEFAULTS: dict[str, Any] = {
    DESIRED_STATE: DesiredState.CONNECTED.value,
    ON_DELETE: OnDelete.DISCONNECT.value,
    # Connecting a CloudHSM key store can take about 20 minutes.
    CONNECT_TIMEOUT: 1800,
    DISCONNECT_TIMEOUT: 900,
}
COMMON_INPUT_NAMES = (
    DESIRED_STATE,
    ON_DELETE,
    CONNECT_TIMEOUT,
    DISCONNECT_TIMEOUT,
    REGION,
    *ROLE_INPUT_NAMES,
    DISCONNECT_GUARD,
)
INPUT_NAMES = (CUSTOM_KEY_STORE_ID, *COMMON_INPUT_NAMES)
SET_INPUT_NAMES = (CUSTOM_KEY_STORE_IDS, *COMMON_INPUT_NAMES)
MAX_TIMEOUT_SECONDS = 86400
# Properties the dynamic provider machinery, or the resource classes, add themselves.
_INTERNAL = frozenset({"__provider", RESOURCE_NAME})

_STORE_ID = re.compile(r"^cks-[0-9a-f]{1,60}$")
_KEY_ID = re.compile(r"^(mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$", re.I)
_DURATION = re.compile(r"^\s*([0-9]{1,6})\s*([smhSMH])\s*$")
# ASCII digits only: str.isdigit() and \d also accept digits int() cannot read, such as "²".
_WHOLE = re.compile(r"^\s*[0-9]{1,9}\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
_STORE_ID_FORM = "the key store's id, 'cks-' followed by hex digits, e.g. cks-1234567890abcdef0"
# STS's constraints (botocore's STS model: externalIdType, roleSessionNameType).
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")


@dataclass(frozen=True)
class InputFailure:
    """A check failure: the property and what is wrong with it."""

    property: str
    reason: str


def check_inputs(
    news: Mapping[str, Any], default_region: str | None, is_unknown: Callable[[Any], bool]
) -> tuple[dict[str, Any], list[InputFailure]]:
    """Validate a ``CustomKeyStoreConnection``'s ``news``; return the normalised inputs (defaults filled in,
    enums canonical) and the failures.

    ``is_unknown`` tells a value that stands for "not known until apply" during a preview.
    """
    return _check(news, default_region, is_unknown, "CustomKeyStoreConnection", CUSTOM_KEY_STORE_ID, _store_id)


def check_set_inputs(
    news: Mapping[str, Any], default_region: str | None, is_unknown: Callable[[Any], bool]
) -> tuple[dict[str, Any], list[InputFailure]]:
    """Validate a ``CustomKeyStoreConnectionSet``'s ``news``, as :func:`check_inputs` does for one store."""
    validate = functools.partial(_store_ids, is_unknown)
    return _check(news, default_region, is_unknown, "CustomKeyStoreConnectionSet", CUSTOM_KEY_STORE_IDS, validate)


def disconnect_guard(props: Mapping[str, Any]) -> DisconnectGuard:
    """A resource's ``disconnect_guard`` (``warn`` when it is missing, or not known yet in a preview)."""
    value = props.get(DISCONNECT_GUARD)
    return DisconnectGuard(value) if value in {guard.value for guard in DisconnectGuard} else GUARD_DEFAULT


def _check(
    news: Mapping[str, Any],
    default_region: str | None,
    is_unknown: Callable[[Any], bool],
    resource: str,
    stores_key: str,
    validate_stores: Callable[[Any], tuple[Any, str | None]],
) -> tuple[dict[str, Any], list[InputFailure]]:
    names = (stores_key, *COMMON_INPUT_NAMES)
    inputs = {key: value for key, value in news.items() if key in _INTERNAL}
    failures: list[InputFailure] = []

    for key in news:
        if key not in names and key not in _INTERNAL:
            failures.append(InputFailure(key, _unknown_property(key, names, resource)))

    def take(key: str, validate: Callable[[Any], tuple[Any, str | None]]) -> None:
        value = news.get(key)
        if value is None:
            if key in DEFAULTS:
                inputs[key] = DEFAULTS[key]
            return
        if is_unknown(value):
            inputs[key] = value
            return
        normalised, reason = validate(value)
        if reason is not None:
            failures.append(InputFailure(key, reason))
            inputs[key] = value
        else:
            inputs[key] = normalised

    if news.get(stores_key) is None:
        failures.append(InputFailure(stores_key, f"{stores_key} is required: {_STORE_ID_FORM}."))
    take(stores_key, validate_stores)
    take(DESIRED_STATE, functools.partial(_choice, DESIRED_STATE, [s.value for s in DesiredState], str.upper))
    take(ON_DELETE, functools.partial(_choice, ON_DELETE, [o.value for o in OnDelete], str.lower))
    take(CONNECT_TIMEOUT, functools.partial(_timeout, CONNECT_TIMEOUT))
    take(DISCONNECT_TIMEOUT, functools.partial(_timeout, DISCONNECT_TIMEOUT))
    take(REGION, _region)
    take(ROLE_ARN, _role_arn)
    take(ROLE_EXTERNAL_ID, functools.partial(_sts_text, ROLE_EXTERNAL_ID, _EXTERNAL_ID, "2 to 1224"))
    take(ROLE_SESSION_NAME, functools.partial(_sts_text, ROLE_SESSION_NAME, _SESSION_NAME, "2 to 64"))
    take(DISCONNECT_GUARD, functools.partial(_choice, DISCONNECT_GUARD, [g.value for g in DisconnectGuard], str.lower))
    for key in (ROLE_EXTERNAL_ID, ROLE_SESSION_NAME):
        # An unknown value may turn out to be None, so only a known one needs its role.
        if news.get(key) is not None and not is_unknown(news.get(key)) and news.get(ROLE_ARN) is None:
            failures.append(InputFailure(key, f"{key} goes with role_arn, the role it is used to assume; set both."))
    if inputs.get(REGION) is None:
        if default_region is None:
            failures.append(InputFailure(REGION, f"no AWS Region is set for this resource: {REGION_HELP}."))
        else:
            normalised, reason = _region(default_region)
            if reason is not None:
                failures.append(InputFailure(REGION, f"the stack's default Region is not usable: {reason}"))
            inputs[REGION] = normalised
    return inputs, failures


def _store_ids(is_unknown: Callable[[Any], bool], value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, list) or not value:
        return value, (
            f"{CUSTOM_KEY_STORE_IDS} must be a non-empty list of key store ids ({_STORE_ID_FORM}); "
            f"got {_show(value)}."
        )
    normalised: list[Any] = []
    for index, item in enumerate(value):
        if is_unknown(item):
            normalised.append(item)
            continue
        store_id, reason = _store_id(item)
        if reason is not None:
            return value, f"{CUSTOM_KEY_STORE_IDS}[{index}]: {reason}"
        if store_id in normalised:
            return value, f"{CUSTOM_KEY_STORE_IDS}[{index}]: {store_id} is listed twice."
        normalised.append(store_id)
    return normalised, None


def _unknown_property(key: str, names: tuple[str, ...], resource: str) -> str:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
    matches = difflib.get_close_matches(snake, names, n=1, cutoff=0.6)
    hint = f" Did you mean '{matches[0]}'?" if matches else ""
    return f"'{key}' is not an input of {resource} (inputs: {', '.join(names)}).{hint}"


def _store_id(value: Any) -> tuple[Any, str | None]:
    prefix = f"{CUSTOM_KEY_STORE_ID} must be {_STORE_ID_FORM}"
    if not isinstance(value, str):
        return value, f"{prefix}; got {_show(value)}."
    text = value.strip()
    if _STORE_ID.match(text):
        return text, None
    if text.startswith("arn:"):
        return value, (
            f"{prefix}; got an ARN ({text}). Custom key stores are named by id, not ARN: find it with "
            "`aws kms describe-custom-key-stores`."
        )
    if _KEY_ID.match(text) or text.startswith("alias/"):
        return value, f"{prefix}; '{text}' is a KMS key id or alias, not a custom key store id."
    if text.lower().startswith("cks-"):
        return value, f"{prefix} (lower-case hex digits only); got '{text}'."
    return value, (
        f"{prefix}; got '{text}', which looks like a key store name. Find its id with "
        f"`aws kms describe-custom-key-stores --custom-key-store-name {text}`."
    )


def _role_arn(value: Any) -> tuple[Any, str | None]:
    expected = (
        f"{ROLE_ARN} must be an IAM role ARN, arn:aws:iam::ACCOUNT:role/NAME (the role is assumed from the stack's "
        "credentials, and the store is in its account)"
    )
    if not isinstance(value, str):
        return value, f"{expected}; got {_show(value)}."
    text = value.strip()
    if ROLE_ARN_FORM.fullmatch(text):
        return text, None
    return value, f"{expected}; got {_show(value)}."


def _sts_text(key: str, pattern: re.Pattern[str], length: str, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, str) and pattern.fullmatch(value.strip()):
        return value.strip(), None
    return value, (
        f"{key} must be {length} letters, digits or any of _+=,.@-"
        + (":/" if key == ROLE_EXTERNAL_ID else "")
        + f" (STS's rule); got {_show(value) if key != ROLE_EXTERNAL_ID else 'another value'}."
    )


def _choice(key: str, allowed: list[str], canonical: Any, value: Any) -> tuple[Any, str | None]:
    if isinstance(value, str):
        normalised = canonical(value.strip())
        if normalised in allowed:
            return normalised, None
    choices = " or ".join(f"'{a}'" for a in allowed)
    return value, f"{key} must be {choices} (any letter case); got {_show(value)}."


def _timeout(key: str, value: Any) -> tuple[Any, str | None]:
    expected = f"{key} must be a whole number of seconds from 1 to {MAX_TIMEOUT_SECONDS} (e.g. 1800 for 30 minutes)"
    # Numbers cross the engine's wire as doubles, so 1800.0 is a whole number too.
    if isinstance(value, str) and (duration := _DURATION.match(value)):
        seconds = int(duration.group(1)) * _UNIT_SECONDS[duration.group(2).lower()]
        if 1 <= seconds <= MAX_TIMEOUT_SECONDS:
            return value, f"{expected}; got {_show(value)}: write {seconds}."
        return value, f"{expected}; got {_show(value)}, which is {seconds} seconds."
    if isinstance(value, str) and _WHOLE.match(value) and 1 <= int(value) <= MAX_TIMEOUT_SECONDS:
        return value, f"{expected}; got {_show(value)}: write the number {int(value)}, not a string."
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value, f"{expected}; got {_show(value)}."
    if isinstance(value, float) and not value.is_integer():
        return value, f"{expected}; got {value}, which is not whole."
    seconds = int(value)
    if not 1 <= seconds <= MAX_TIMEOUT_SECONDS:
        return value, f"{expected}; got {seconds}."
    return seconds, None


@functools.cache
def _known_regions() -> dict[str, str]:
    """Every Region botocore knows, mapped to its partition (read from botocore's partitions data)."""
    # Read as a file: importing botocore's loaders would add a tenth of a second to the provider's cold start.
    data = json.loads(resources.files("botocore").joinpath("data", "partitions.json").read_text(encoding="utf-8"))
    regions: dict[str, str] = {}
    for partition in data.get("partitions", []):
        for region in partition.get("regions", {}):
            if not region.endswith("-global"):
                regions[region] = partition.get("id", "aws")
    return regions


def _region(value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, str):
        return value, f"{REGION} must be an AWS Region name such as 'us-east-1'; got {_show(value)}."
    text = value.strip()
    if text in _known_regions():
        return text, None
    lowered = text.lower().replace("_", "-")
    if lowered in _known_regions():
        return value, f"{REGION} must be written '{lowered}'; got '{text}'."
    close = difflib.get_close_matches(lowered, list(_known_regions()), n=1, cutoff=0.8)
    hint = f" Did you mean '{close[0]}'?" if close else " If it is new, upgrade boto3."
    return value, f"{REGION} '{text}' is not an AWS Region botocore knows.{hint}"


def _show(value: Any) -> str:
    """A value as a user wrote it, short: the repr of a string, else the JSON type name and value."""
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"the string {shown!r}"
    kind = {bool: "boolean", int: "number", float: "number", list: "list", dict: "object"}.get(type(value), "value")
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"the {kind} {shown}"
