"""The kms-connection stack: one CustomKeyStoreConnection per key store listed in the stack config.

    kms-connection:keyStores:
      - id: cks-0123456789abcdef0        # required
        name: primary-hsm                # resource name; default: the id
        desiredState: CONNECTED          # or DISCONNECTED
        onDelete: disconnect             # or retain
        connectTimeoutSeconds: 1800
        disconnectTimeoutSeconds: 900
        region: us-east-1                # default: aws:region

Optionally, ``kms-connection:newCloudHsmKeyStore`` creates a CloudHSM key store with pulumi-aws and connects it
(``pulumi config set --secret kms-connection:newCloudHsmKeyStorePassword ...`` holds the kmsuser password).
"""

from __future__ import annotations

from typing import Any

import pulumi

from kms_connection import CustomKeyStoreConnection, CustomKeyStoreConnectionArgs

ENTRY_KEYS = {
    "id": "custom_key_store_id",
    "desiredState": "desired_state",
    "onDelete": "on_delete",
    "connectTimeoutSeconds": "connect_timeout_seconds",
    "disconnectTimeoutSeconds": "disconnect_timeout_seconds",
    "region": "region",
}

config = pulumi.Config()


def connection_args(index: int, entry: Any) -> tuple[str, CustomKeyStoreConnectionArgs]:
    """The resource name and arguments for one ``keyStores`` entry; a malformed entry stops the program."""
    where = f"kms-connection:keyStores[{index}]"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object with at least an `id`; got {entry!r}")
    unknown = sorted(set(entry) - set(ENTRY_KEYS) - {"name"})
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; known keys: name, {', '.join(ENTRY_KEYS)}")
    if not entry.get("id"):
        raise ValueError(f"{where} needs `id`, the key store id (cks-...)")
    args = CustomKeyStoreConnectionArgs(**{ENTRY_KEYS[key]: value for key, value in entry.items() if key != "name"})
    return str(entry.get("name") or entry["id"]), args


connections: dict[str, CustomKeyStoreConnection] = {}
for index, entry in enumerate(config.get_object("keyStores") or []):
    name, args = connection_args(index, entry)
    connections[name] = CustomKeyStoreConnection(name, args)

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
    connections[new_store["name"]] = CustomKeyStoreConnection(
        f"{new_store['name']}-connection",
        custom_key_store_id=store.id,
        desired_state=new_store.get("desiredState", "CONNECTED"),
        connect_timeout_seconds=new_store.get("connectTimeoutSeconds", 1800),
    )

pulumi.export("connection_states", {name: conn.connection_state for name, conn in connections.items()})
pulumi.export(
    "connection_error_codes", {name: conn.connection_error_code for name, conn in connections.items()}
)
