"""Names as the plugin's users write them: camelCase properties and ``kms-connection:*`` provider config.

The core (``kms_connection``) speaks the dynamic provider's snake_case names and pulumi-aws's ``aws:*`` stack
config, and every message it writes names them. The plugin translates at its edge, in both directions: property
keys on the way in and out, and the same names inside every text a user reads (check failures, errors, progress
lines, schema descriptions), so that no message is written twice.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from kms_connection import inputs
from kms_connection.provider import OUTPUT_NAMES, SET_OUTPUT_NAMES

PACKAGE = "kms-connection"
CONNECTION_TYPE = f"{PACKAGE}:index:CustomKeyStoreConnection"
SET_TYPE = f"{PACKAGE}:index:CustomKeyStoreConnectionSet"

CONNECTION_PROPERTIES = (*inputs.INPUT_NAMES, *OUTPUT_NAMES)
"""A ``CustomKeyStoreConnection``'s properties, inputs first, as the core names them."""
SET_PROPERTIES = (*inputs.SET_INPUT_NAMES, *SET_OUTPUT_NAMES)
"""A ``CustomKeyStoreConnectionSet``'s properties, inputs first, as the core names them."""

CONFIG_KEYS = {
    key: f"aws:{key}"
    for key in (
        "region",
        "profile",
        "endpoints",
        "sharedCredentialsFiles",
        "sharedConfigFiles",
        "accessKey",
        "secretKey",
        "token",
        "assumeRoles",
        "assumeRole",
        "allowedAccountIds",
        "forbiddenAccountIds",
    )
}
"""The plugin's provider config (``kms-connection:<key>``) and the stack config key the core reads for it: the
pulumi-aws keys ``kms_connection.settings`` reads, under the plugin's own namespace."""


def camel(name: str) -> str:
    """``custom_key_store_id`` -> ``customKeyStoreId``."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@functools.cache
def _to_core() -> dict[str, str]:
    names = {*CONNECTION_PROPERTIES, *SET_PROPERTIES}
    return {camel(name): name for name in names}


def core_name(name: str) -> str:
    """The core's name of a property a user wrote; a name the plugin does not know is kept as written, so that
    ``check`` reports it as the user wrote it."""
    return _to_core().get(name, name)


def to_core(props: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys in the core's names (values are left alone: map keys of outputs are store ids)."""
    return {core_name(key): value for key, value in props.items()}


def to_users(props: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level keys in the users' names."""
    return {camel(key): value for key, value in props.items()}


@functools.cache
def _text_names() -> tuple[re.Pattern[str], dict[str, str]]:
    table = {core: user for user, core in _to_core().items() if user != core}
    table.update({core: f"{PACKAGE}:{key}" for key, core in CONFIG_KEYS.items()})
    # Longest first, so that custom_key_store_ids is not read as custom_key_store_id followed by "s".
    alternatives = "|".join(re.escape(name) for name in sorted(table, key=len, reverse=True))
    return re.compile(rf"(?<![\w:-])({alternatives})(?![\w])"), table


def users_text(text: str, also: Mapping[str, str] | None = None) -> str:
    """``text`` with the core's property and config names replaced by the users' (``also`` overrides some, e.g.
    a timeout input by the ``customTimeouts`` option that stood in for it)."""
    pattern, table = _text_names()
    names = {**table, **(also or {})}
    return pattern.sub(lambda match: names.get(match.group(1), match.group(1)), text)
