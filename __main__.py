"""The kms-connection stack: one CustomKeyStoreConnection per key store listed in the stack config.

    kms-connection:keyStores:
      - id: cks-0123456789abcdef0        # required
        name: primary-hsm                # resource name; default: the id
        desiredState: CONNECTED          # or DISCONNECTED
        onDelete: disconnect             # or retain
        connectTimeoutSeconds: 1800
        disconnectTimeoutSeconds: 900
        region: us-east-1                # default: aws:region
        roleArn: arn:aws:iam::222233334444:role/kms-connection   # optional: the store's account, with
        roleExternalId: ...              # roleExternalId and roleSessionName if the role asks for them
        disconnectGuard: refuse          # or warn (the default: say which keys a disconnect breaks), off

``kms-connection:keyStoreSets`` declares CustomKeyStoreConnectionSets instead: stores of one Region converged
together (entries take ``name``, ``ids`` and the keys above but ``id``).

Optionally, ``kms-connection:newCloudHsmKeyStore`` creates a CloudHSM key store with pulumi-aws and connects it
(``pulumi config set --secret kms-connection:newCloudHsmKeyStorePassword ...`` holds the kmsuser password); it takes
``name``, ``cloudHsmClusterId``, ``trustAnchorCertificate`` and the connection keys above but ``id`` and ``region``.
"""

from __future__ import annotations

import difflib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pulumi

from kms_connection import (
    CustomKeyStoreConnection,
    CustomKeyStoreConnectionArgs,
    CustomKeyStoreConnectionSet,
    CustomKeyStoreConnectionSetArgs,
)
from kms_connection.inputs import check_inputs, check_set_inputs

ENTRY_KEYS = {
    "id": "custom_key_store_id",
    "desiredState": "desired_state",
    "onDelete": "on_delete",
    "connectTimeoutSeconds": "connect_timeout_seconds",
    "disconnectTimeoutSeconds": "disconnect_timeout_seconds",
    "region": "region",
    "roleArn": "role_arn",
    "roleExternalId": "role_external_id",
    "roleSessionName": "role_session_name",
    "disconnectGuard": "disconnect_guard",
}
SET_KEYS = {**{key: value for key, value in ENTRY_KEYS.items() if key != "id"}, "ids": "custom_key_store_ids"}
SETTINGS = ("keyStores", "keyStoreSets", "newCloudHsmKeyStore", "newCloudHsmKeyStorePassword")
NEW_STORE_KEYS = (
    "name", "cloudHsmClusterId", "trustAnchorCertificate", *(key for key in ENTRY_KEYS if key not in ("id", "region"))
)

config = pulumi.Config()


class ConfigError(pulumi.RunError):
    """A stack config mistake: the CLI shows the message alone, with no traceback, and the program stops."""


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """`` (did you mean `x`?)`` for the known key nearest a misspelt one, else nothing."""
    nearest = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean `{nearest[0]}`?)" if nearest else ""


def refuse_unknown(where: str, keys: Iterable[str], known: Iterable[str]) -> None:
    """Stop on the first key that is not one of ``known``, naming it as written and the nearest known one."""
    known = list(known)
    for key in keys:
        if key not in known:
            raise ConfigError(
                f"{where} has an unknown key `{key}`{did_you_mean(key, known)}; known keys: {', '.join(known)}"
            )


def check_entry(where: str, keys: dict[str, str], args: dict[str, Any], is_set: bool) -> None:
    """The provider's own input checks, run here so a mistake names the config key as the user wrote it."""
    check = check_set_inputs if is_set else check_inputs
    _, failures = check(args, None, lambda value: False)
    written = {python: key for key, python in keys.items()}
    longest_first = sorted(written.items(), key=lambda item: -len(item[0]))
    for failure in failures:
        # The Region may come from aws:region or the environment at deploy time: the provider judges it then.
        if failure.property not in args:
            continue
        reason = failure.reason
        for python, key in longest_first:
            reason = reason.replace(python, key)
        raise ConfigError(f"{where}.{written.get(failure.property, failure.property)}: {reason}")


def entry_args(setting: str, index: int, entry: Any, ids_key: str) -> tuple[str, dict[str, Any]]:
    """The resource name and keyword arguments for one config entry; a malformed entry stops the program."""
    where = f"kms-connection:{setting}[{index}]"
    keys = SET_KEYS if ids_key == "ids" else ENTRY_KEYS
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be an object with at least `{ids_key}`; got {entry!r}")
    refuse_unknown(where, entry, [*keys, "name"])
    if not entry.get(ids_key):
        raise ConfigError(f"{where} needs `{ids_key}`: key store ids (cks-...)")
    if ids_key == "ids" and not entry.get("name"):
        raise ConfigError(f"{where} needs `name`, the resource name of the set")
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
        """Note the ids of one entry; a ConfigError names both places of an id listed twice."""
        ids = store_ids if isinstance(store_ids, list) else [store_ids]
        # An id twice in one set is for the entry's own check to report, by index.
        keys = {store_id.strip().lower() if isinstance(store_id, str) else repr(store_id): store_id for store_id in ids}
        for key, store_id in keys.items():
            if key in self._where:
                raise ConfigError(
                    f"{where} lists {store_id}, which {self._where[key]} lists too: a key store belongs in one entry "
                    "(to move it, take it out of the one entry as you add it to the other)"
                )
            self._where[key] = where


# The SDK keeps the stack config where the language host put it: in its config map, else in PULUMI_CONFIG.
stack_config_keys = {*pulumi.runtime.config.CONFIG.get(), *pulumi.runtime.get_config_env()}
refuse_unknown(
    "the stack config",
    sorted(key.split(":", 1)[1] for key in stack_config_keys if key.startswith("kms-connection:")),
    SETTINGS,
)
listed = StoreIndex()

connections: dict[str, CustomKeyStoreConnection] = {}
for index, entry in enumerate(config.get_object("keyStores") or []):
    name, args = entry_args("keyStores", index, entry, "id")
    listed.add(args["custom_key_store_id"], f"kms-connection:keyStores[{index}]")
    check_entry(f"kms-connection:keyStores[{index}]", ENTRY_KEYS, args, is_set=False)
    connections[name] = CustomKeyStoreConnection(name, CustomKeyStoreConnectionArgs(**args))

sets: dict[str, CustomKeyStoreConnectionSet] = {}
for index, entry in enumerate(config.get_object("keyStoreSets") or []):
    name, args = entry_args("keyStoreSets", index, entry, "ids")
    listed.add(args["custom_key_store_ids"], f"kms-connection:keyStoreSets[{index}]")
    check_entry(f"kms-connection:keyStoreSets[{index}]", SET_KEYS, args, is_set=True)
    sets[name] = CustomKeyStoreConnectionSet(name, CustomKeyStoreConnectionSetArgs(**args))



def require_aws_plugin() -> None:
    """Stop with the reason when pulumi-aws's resource plugin is missing and this run may not download it."""
    if os.environ.get("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "").lower() not in ("1", "true"):
        return
    home = Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")
    if shutil.which("pulumi-resource-aws") or any((home / "plugins").glob("resource-aws-v*")):
        return
    raise ConfigError(
        "kms-connection:newCloudHsmKeyStore creates the key store with pulumi-aws, whose resource plugin "
        "(pulumi-resource-aws) is not installed, and this run downloads no plugins "
        "(PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION is set, as scripts/pulumi sets it: these machines reach no "
        "plugin server). Install the plugin where it can be downloaded (`pulumi plugin install resource aws`), or "
        "remove kms-connection:newCloudHsmKeyStore and connect an existing store with kms-connection:keyStores."
    )


new_store = config.get_object("newCloudHsmKeyStore")
if new_store:
    where = "kms-connection:newCloudHsmKeyStore"
    if not isinstance(new_store, dict):
        raise ConfigError(f"{where} must be an object with `name`, `cloudHsmClusterId` and `trustAnchorCertificate`")
    refuse_unknown(where, new_store, NEW_STORE_KEYS)
    for required in ("name", "cloudHsmClusterId", "trustAnchorCertificate"):
        if not new_store.get(required):
            raise ConfigError(f"{where} needs `{required}`")
    require_aws_plugin()
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
