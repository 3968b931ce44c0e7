"""A stack program that declares exactly the resources its config lists, in order, with none of ``__main__.py``'s
rules: several resources may name one store, as a library user's own program may.

    kms-connection:resources:
      - {kind: connection, name: hsm, id: cks-..., desiredState: CONNECTED, disconnectGuard: refuse}
      - {kind: set, name: fleet, ids: [cks-..., cks-...], onDelete: retain}
"""

from __future__ import annotations

from typing import Any

import pulumi

from kms_connection import CustomKeyStoreConnection, CustomKeyStoreConnectionSet

KEYS = {
    "id": "custom_key_store_id",
    "ids": "custom_key_store_ids",
    "desiredState": "desired_state",
    "onDelete": "on_delete",
    "connectTimeoutSeconds": "connect_timeout_seconds",
    "disconnectTimeoutSeconds": "disconnect_timeout_seconds",
    "region": "region",
    "disconnectGuard": "disconnect_guard",
}

for entry in pulumi.Config().get_object("resources") or []:
    settings: dict[str, Any] = {KEYS[key]: value for key, value in entry.items() if key in KEYS}
    if entry["kind"] == "connection":
        CustomKeyStoreConnection(entry["name"], **settings)
    else:
        CustomKeyStoreConnectionSet(entry["name"], **settings)
