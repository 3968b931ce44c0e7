"""The kms-connection stack: one CustomKeyStoreConnection per key store listed in the stack config.

    kms-connection:keyStores:
      - id: cks-0123456789abcdef0        # required
        name: primary-hsm                # resource name; default: the id
        desiredState: CONNECTED          # or DISCONNECTED
        onDelete: disconnect             # or retain
        connectTimeoutSeconds: 1800
        disconnectTimeoutSeconds: 900
        region: us-east-1                # default: aws:region

``kms-connection:keyStoreSets`` declares CustomKeyStoreConnectionSets instead: stores of one Region converged
together (entries take ``name``, ``ids`` and the keys above but ``id``).

Optionally, ``kms-connection:newCloudHsmKeyStore`` creates a CloudHSM key store with pulumi-aws and connects it
(``pulumi config set --secret kms-connection:newCloudHsmKeyStorePassword ...`` holds the kmsuser password); it takes
``name``, ``cloudHsmClusterId``, ``trustAnchorCertificate`` and the connection keys above but ``id`` and ``region``.
"""

from __future__ import annotations

from typing import Any

import pulumi

from kms_connection import (
    CustomKeyStoreConnection,
    CustomKeyStoreConnectionArgs,
    CustomKeyStoreConnectionSet,
    CustomKeyStoreConnectionSetArgs,
)

ENTRY_KEYS = {
    "id": "custom_key_store_id",
    "desiredState": "desired_state",
    "onDelete": "on_delete",
    "connectTimeoutSeconds": "connect_timeout_seconds",
    "disconnectTimeoutSeconds": "disconnect_timeout_seconds",
    "region": "region",
}

config = pulumi.Config()


def entry_args(setting: str, index: int, entry: Any, ids_key: str) -> tuple[str, dict[str, Any]]:
    """The resource name and keyword arguments for one config entry; a malformed entry stops the program."""
    where = f"kms-connection:{setting}[{index}]"
    keys = {**ENTRY_KEYS, "ids": "custom_key_store_ids"}
    allowed = {key for key in keys if key not in ("id", "ids")} | {ids_key, "name"}
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object with at least `{ids_key}`; got {entry!r}")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; known keys: {', '.join(sorted(allowed))}")
    if not entry.get(ids_key):
        raise ValueError(f"{where} needs `{ids_key}`: key store ids (cks-...)")
    if ids_key == "ids" and not entry.get("name"):
        raise ValueError(f"{where} needs `name`, the resource name of the set")
    args = {keys[key]: value for key, value in entry.items() if key != "name"}
    return str(entry.get("name") or entry[ids_key]), args


class StoreIndex:
    """Where each store id of the config is listed: one store belongs in one entry.

    Two entries of one store would be two resources that both converge it; with opposite desired states every
    `up` would undo the other. The provider refuses that case, but a store listed twice is a mistake either way
    (a move takes the id out of one entry and into another in the same change), so the program refuses it.
    """

    def __init__(self) -> None:
        self._where: dict[str, str] = {}

    def add(self, store_ids: Any, where: str) -> None:
        """Note the ids of one entry; a ValueError names both places of an id listed twice."""
        ids = store_ids if isinstance(store_ids, list) else [store_ids]
        # An id twice in one set is for the provider's check to report, by index.
        keys = {store_id.strip().lower() if isinstance(store_id, str) else repr(store_id): store_id for store_id in ids}
        for key, store_id in keys.items():
            if key in self._where:
                raise ValueError(
                    f"{where} lists {store_id}, which {self._where[key]} lists too: a key store belongs in one entry "
                    "(to move it, take it out of the one entry as you add it to the other)"
                )
            self._where[key] = where


listed = StoreIndex()

connections: dict[str, CustomKeyStoreConnection] = {}
for index, entry in enumerate(config.get_object("keyStores") or []):
    name, args = entry_args("keyStores", index, entry, "id")
    listed.add(args["custom_key_store_id"], f"kms-connection:keyStores[{index}]")
    connections[name] = CustomKeyStoreConnection(name, CustomKeyStoreConnectionArgs(**args))

sets: dict[str, CustomKeyStoreConnectionSet] = {}
for index, entry in enumerate(config.get_object("keyStoreSets") or []):
    name, args = entry_args("keyStoreSets", index, entry, "ids")
    listed.add(args["custom_key_store_ids"], f"kms-connection:keyStoreSets[{index}]")
    sets[name] = CustomKeyStoreConnectionSet(name, CustomKeyStoreConnectionSetArgs(**args))

new_store = config.get_object("newCloudHsmKeyStore")
if new_store:
    # Imported only when asked for: pulumi-aws is large, and the local stack does not need it.
    import pulumi_aws as aws

    store = aws.kms.CustomKeyStore(
        new_store["name"],
        custom_key_store_name=new_store["name"],
        cloud_hsm_cluster_id=new_store["cloudHsmClusterId"],
        trust_anchor_certificate=new_store["trustAnchorCertificate"],
        key_store_password=config.require_secret("newCloudHsmKeyStorePassword"),
    )
    # The connection depends on the store through its id, so `destroy` disconnects before it deletes the store.
    connection_settings = {
        ENTRY_KEYS[key]: value for key, value in new_store.items() if key in ENTRY_KEYS and key not in ("id", "region")
    }
    connections[new_store["name"]] = CustomKeyStoreConnection(
        f"{new_store['name']}-connection",
        CustomKeyStoreConnectionArgs(custom_key_store_id=store.id, **connection_settings),
    )

pulumi.export("connection_states", {name: conn.connection_state for name, conn in connections.items()})
pulumi.export(
    "connection_error_codes", {name: conn.connection_error_code for name, conn in connections.items()}
)
if sets:
    pulumi.export("set_connection_states", {name: group.connection_states for name, group in sets.items()})
