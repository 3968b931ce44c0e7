"""The state file: custom key stores that survive a restart of the emulator.

Format (JSON, version 1)::

    {"format": "kms-connection-emulator-state", "version": 1, "saved_at": <epoch seconds>,
     "stores": [{"Account": ..., "Region": ..., "CustomKeyStoreId": ..., "Sequence": n, ..., "Connection": {...}}],
     "keys": [{"Account": ..., "Region": ..., "KeyId": ..., "Sequence": n, "Origin": ..., "Enabled": true, ...}],
     "aliases": [{"Account": ..., "Region": ..., "AliasName": "alias/...", "TargetKeyId": ..., ...}]}

Choices:
    * A transition under way is stored with its deadline as wall-clock epoch seconds (``time.time()``), since
      the emulator's own clock is monotonic and means nothing to another process. Time while the emulator is
      down therefore counts: a store still CONNECTING at shutdown may come back CONNECTED. A transition
      already complete is saved as its result, and the file is saved again when the emulator stops, so what
      the emulator's own clock (real or fake) has settled stays settled.
    * The file never holds a secret: stores do not keep ``KeyStorePassword`` or the XKS ``RawSecretAccessKey``.
    * The file is replaced atomically (a temporary file in the same directory, then ``os.replace``), so a
      crash mid-write leaves the previous version. A file that cannot be read or understood raises
      ``EmulatorStateError`` naming the file and the problem; it is never treated as empty.
    * Faults, connect outcomes and the call log are run-time settings, not state: they are not saved, and
      neither are accounts or the sessions STS issued (a session's credentials never reach the disk).
    * ``Account`` was added after version 1 was first written: a store without one is the default account's.
      ``keys`` and ``aliases`` came later still: a file without them has none. The ``KeyCount`` of stores in files
      written before the emulator had keys (a test hook that pretended a store held keys) is ignored.
    * A key's key material is never saved: it is derived from the key's ARN (``keys.py``). A key pending deletion
      keeps its ``DeletionDate`` (epoch seconds); one whose date passed while the emulator was down is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kms_connection.states import ConnectionState

from .accounts import DEFAULT_ACCOUNT, check_account_id
from .errors import EmulatorConfigError, EmulatorStateError
from .keys import KMS_ORIGIN, STORE_TYPE_OF_ORIGIN, AliasRecord, KeyRecord, is_key_id
from .model import connection_error_codes
from .store import CLOUDHSM, EXTERNAL, PUBLIC_ENDPOINT, VPC_ENDPOINT_SERVICE, Phase, StoreRecord

FORMAT = "kms-connection-emulator-state"
VERSION = 1

# Record attribute <-> JSON key, for the optional per-type fields.
_OPTIONAL_FIELDS = {
    "cloudhsm_cluster_id": "CloudHsmClusterId",
    "trust_anchor_certificate": "TrustAnchorCertificate",
    "xks_uri_endpoint": "XksProxyUriEndpoint",
    "xks_uri_path": "XksProxyUriPath",
    "xks_connectivity": "XksProxyConnectivity",
    "xks_vpc_endpoint_service_name": "XksProxyVpcEndpointServiceName",
    "xks_vpc_endpoint_service_owner": "XksProxyVpcEndpointServiceOwner",
    "xks_access_key_id": "XksProxyAccessKeyId",
}
_REQUIRED_BY_TYPE = {
    CLOUDHSM: ("cloudhsm_cluster_id", "trust_anchor_certificate"),
    EXTERNAL: ("xks_uri_endpoint", "xks_uri_path", "xks_connectivity", "xks_access_key_id"),
}


def _to_wall(deadline: float | None, now: float, wall_now: float) -> float | None:
    return None if deadline is None else wall_now + (deadline - now)


def _from_wall(wall: float | None, now: float, wall_now: float) -> float | None:
    return None if wall is None else now + (wall - wall_now)


def record_to_json(record: StoreRecord, now: float, wall_now: float) -> dict[str, Any]:
    """The JSON form of a store as it stands at ``now``, a pending deadline converted to wall-clock time."""
    # A transition already complete is saved as its result: the deadline of a fake clock means nothing later.
    phase = record.phase.at(now)
    data: dict[str, Any] = {
        "Account": record.account,
        "Region": record.region,
        "CustomKeyStoreId": record.store_id,
        "CustomKeyStoreName": record.name,
        "CustomKeyStoreType": record.store_type,
        "CreationDate": record.creation_date,
        "Sequence": record.seq,
        "Connection": {
            "State": phase.state.value,
            "ErrorCode": phase.error_code,
            "CompletesAt": _to_wall(phase.deadline, now, wall_now),
            "Then": phase.next_state.value if phase.next_state else None,
            "ThenErrorCode": phase.next_error_code,
        },
    }
    for attribute, key in _OPTIONAL_FIELDS.items():
        value = getattr(record, attribute)
        if value is not None:
            data[key] = value
    return data


class _Reader:
    """Typed access to one JSON object, with errors that say where in the file the problem is."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, problem: str) -> EmulatorStateError:
        return EmulatorStateError(f"{self.where}: {problem}")

    def string(self, key: str, optional: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(f"{key} must be a non-empty string (found {value!r})")
        return value

    def number(self, key: str, optional: bool = False) -> float | None:
        value = self.data.get(key)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{key} must be a number (found {value!r})")
        return float(value)

    def integer(self, key: str) -> int:
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(f"{key} must be an integer >= 0 (found {value!r})")
        return value

    def state(self, key: str, optional: bool = False) -> ConnectionState | None:
        value = self.string(key, optional)
        if value is None:
            return None
        try:
            return ConnectionState(value)
        except ValueError:
            raise self.fail(f"{key} must be a ConnectionState (found {value!r})") from None

    def error_code(self, key: str) -> str | None:
        value = self.string(key, optional=True)
        if value is not None and value not in connection_error_codes():
            raise self.fail(f"{key} must be a ConnectionErrorCode (found {value!r})")
        return value


def record_from_json(data: object, where: str, now: float, wall_now: float) -> StoreRecord:
    """A store from its JSON form; ``EmulatorStateError`` (mentioning ``where``) if anything is off."""
    if not isinstance(data, dict):
        raise EmulatorStateError(f"{where}: a store must be a JSON object (found {type(data).__name__})")
    reader = _Reader(data, where)
    store_type = reader.string("CustomKeyStoreType")
    if store_type not in _REQUIRED_BY_TYPE:
        raise reader.fail(f"CustomKeyStoreType must be {CLOUDHSM} or {EXTERNAL} (found {store_type!r})")
    connection = data.get("Connection")
    if not isinstance(connection, dict):
        raise reader.fail(f"Connection must be a JSON object (found {connection!r})")
    conn = _Reader(connection, f"{where}.Connection")
    state = conn.state("State")
    assert state is not None
    next_state = conn.state("Then", optional=True)
    completes_at = conn.number("CompletesAt", optional=True)
    if (next_state is None) != (completes_at is None):
        raise conn.fail("Then and CompletesAt must be given together")
    phase = Phase(
        state,
        conn.error_code("ErrorCode"),
        _from_wall(completes_at, now, wall_now),
        next_state,
        conn.error_code("ThenErrorCode"),
    )
    optional = {attribute: reader.string(key, optional=True) for attribute, key in _OPTIONAL_FIELDS.items()}
    for attribute in _REQUIRED_BY_TYPE[store_type]:
        if optional[attribute] is None:
            raise reader.fail(f"{_OPTIONAL_FIELDS[attribute]} is required for a store of type {store_type}")
    if store_type == EXTERNAL and optional["xks_connectivity"] not in (PUBLIC_ENDPOINT, VPC_ENDPOINT_SERVICE):
        raise reader.fail(f"XksProxyConnectivity must be {PUBLIC_ENDPOINT} or {VPC_ENDPOINT_SERVICE}")
    account = reader.string("Account", optional=True) or DEFAULT_ACCOUNT
    try:
        check_account_id(account, "Account")
    except EmulatorConfigError as error:
        raise reader.fail(str(error)) from None
    if optional["xks_connectivity"] == VPC_ENDPOINT_SERVICE and optional["xks_vpc_endpoint_service_owner"] is None:
        # Files saved before the owner defaulted to the caller's account (as CreateCustomKeyStore documents) lack it.
        optional["xks_vpc_endpoint_service_owner"] = account
    creation_date = reader.number("CreationDate")
    assert creation_date is not None
    return StoreRecord(
        store_id=str(reader.string("CustomKeyStoreId")),
        region=str(reader.string("Region")),
        name=str(reader.string("CustomKeyStoreName")),
        store_type=store_type,
        creation_date=creation_date,
        seq=reader.integer("Sequence"),
        phase=phase,
        account=account,
        **optional,
    )


def key_to_json(key: KeyRecord) -> dict[str, Any]:
    """The JSON form of a key (no key material: there is none to save)."""
    data: dict[str, Any] = {
        "Account": key.account,
        "Region": key.region,
        "KeyId": key.key_id,
        "Sequence": key.seq,
        "CreationDate": key.creation_date,
        "Origin": key.origin,
        "Description": key.description,
        "Enabled": key.enabled,
    }
    for name, value in (
        ("CustomKeyStoreId", key.custom_key_store_id),
        ("CloudHsmClusterId", key.cloudhsm_cluster_id),
        ("XksKeyId", key.xks_key_id),
        ("DeletionDate", key.deletion_date),
    ):
        if value is not None:
            data[name] = value
    return data


def key_from_json(data: object, where: str, now: float, wall_now: float) -> KeyRecord:
    """A key from its JSON form; ``EmulatorStateError`` (mentioning ``where``) if anything is off."""
    if not isinstance(data, dict):
        raise EmulatorStateError(f"{where}: a key must be a JSON object (found {type(data).__name__})")
    reader = _Reader(data, where)
    key_id = str(reader.string("KeyId"))
    if not is_key_id(key_id):
        raise reader.fail(f"KeyId must be a lower-case UUID (found {key_id!r})")
    origin = str(reader.string("Origin"))
    if origin != KMS_ORIGIN and origin not in STORE_TYPE_OF_ORIGIN:
        raise reader.fail(f"Origin must be {KMS_ORIGIN} or one of {', '.join(STORE_TYPE_OF_ORIGIN)} (found {origin!r})")
    store_id = reader.string("CustomKeyStoreId", optional=True)
    if (origin == KMS_ORIGIN) != (store_id is None):
        raise reader.fail("CustomKeyStoreId goes with Origin AWS_CLOUDHSM or EXTERNAL_KEY_STORE, and only with them")
    enabled = data.get("Enabled")
    if not isinstance(enabled, bool):
        raise reader.fail(f"Enabled must be true or false (found {enabled!r})")
    description = data.get("Description", "")
    if not isinstance(description, str):
        raise reader.fail("Description must be a string")
    deletion_date = reader.number("DeletionDate", optional=True)
    account = str(reader.string("Account"))
    try:
        check_account_id(account, "Account")
    except EmulatorConfigError as error:
        raise reader.fail(str(error)) from None
    creation_date = reader.number("CreationDate")
    assert creation_date is not None
    return KeyRecord(
        key_id=key_id,
        region=str(reader.string("Region")),
        account=account,
        creation_date=creation_date,
        seq=reader.integer("Sequence"),
        origin=origin,
        description=description,
        custom_key_store_id=store_id,
        cloudhsm_cluster_id=reader.string("CloudHsmClusterId", optional=True),
        xks_key_id=reader.string("XksKeyId", optional=True),
        enabled=enabled,
        deletion_at=_from_wall(deletion_date, now, wall_now),
        deletion_date=deletion_date,
    )


def alias_to_json(alias: AliasRecord) -> dict[str, Any]:
    """The JSON form of an alias."""
    return {
        "Account": alias.account,
        "Region": alias.region,
        "AliasName": alias.name,
        "TargetKeyId": alias.target_key_id,
        "CreationDate": alias.creation_date,
        "LastUpdatedDate": alias.last_updated_date,
        "Sequence": alias.seq,
    }


def alias_from_json(data: object, where: str) -> AliasRecord:
    """An alias from its JSON form; ``EmulatorStateError`` (mentioning ``where``) if anything is off."""
    if not isinstance(data, dict):
        raise EmulatorStateError(f"{where}: an alias must be a JSON object (found {type(data).__name__})")
    reader = _Reader(data, where)
    created, updated = reader.number("CreationDate"), reader.number("LastUpdatedDate")
    assert created is not None and updated is not None
    return AliasRecord(
        name=str(reader.string("AliasName")),
        region=str(reader.string("Region")),
        account=str(reader.string("Account")),
        target_key_id=str(reader.string("TargetKeyId")),
        creation_date=created,
        last_updated_date=updated,
        seq=reader.integer("Sequence"),
    )


@dataclass(frozen=True)
class Saved:
    """What a state file holds: stores, keys and aliases."""

    stores: list[StoreRecord]
    keys: list[KeyRecord] = field(default_factory=list)
    aliases: list[AliasRecord] = field(default_factory=list)


def save(
    path: Path,
    records: Iterable[StoreRecord],
    now: float,
    wall_now: float,
    keys: Iterable[KeyRecord] = (),
    aliases: Iterable[AliasRecord] = (),
) -> None:
    """Write every store, key and alias to ``path`` atomically (temporary file in the same directory, then
    ``os.replace``)."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": wall_now,
        "stores": [record_to_json(record, now, wall_now) for record in records],
        "keys": [key_to_json(key) for key in keys],
        "aliases": [alias_to_json(alias) for alias in aliases],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def load(path: Path, now: float, wall_now: float) -> Saved | None:
    """What ``path`` holds, None if there is no such file; ``EmulatorStateError`` if it is unusable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise EmulatorStateError(f"state file {path}: cannot be read: {error}") from error
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise EmulatorStateError(
            f"state file {path}: not valid JSON ({error.msg} at line {error.lineno} column {error.colno}); "
            "fix or remove it"
        ) from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise EmulatorStateError(f'state file {path}: not an emulator state file (no "format": "{FORMAT}")')
    if document.get("version") != VERSION:
        raise EmulatorStateError(
            f"state file {path}: version {document.get('version')!r} is not supported (this emulator reads {VERSION})"
        )
    stores = document.get("stores")
    if not isinstance(stores, list):
        raise EmulatorStateError(f'state file {path}: "stores" must be a list')
    records = [
        record_from_json(item, f"state file {path}: stores[{index}]", now, wall_now)
        for index, item in enumerate(stores)
    ]
    seen: set[str] = set()
    names: set[tuple[str, str, str]] = set()
    for record in records:
        if record.store_id in seen:
            raise EmulatorStateError(f"state file {path}: custom key store id {record.store_id} appears twice")
        if (record.account, record.region, record.name) in names:
            raise EmulatorStateError(
                f"state file {path}: custom key store name {record.name} appears twice in {record.region} "
                f"of account {record.account}"
            )
        seen.add(record.store_id)
        names.add((record.account, record.region, record.name))
    keys_data, aliases_data = document.get("keys", []), document.get("aliases", [])
    if not isinstance(keys_data, list) or not isinstance(aliases_data, list):
        raise EmulatorStateError(f'state file {path}: "keys" and "aliases" must be lists')
    keys = [
        key_from_json(item, f"state file {path}: keys[{index}]", now, wall_now) for index, item in enumerate(keys_data)
    ]
    aliases = [alias_from_json(item, f"state file {path}: aliases[{index}]") for index, item in enumerate(aliases_data)]
    return Saved(records, keys, aliases)
