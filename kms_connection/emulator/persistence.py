"""The state file: custom key stores that survive a restart of the emulator.

Format (JSON, version 1)::

    {"format": "kms-connection-emulator-state", "version": 1, "saved_at": <epoch seconds>,
     "stores": [{"Account": ..., "Region": ..., "CustomKeyStoreId": ..., "Sequence": n, ..., "Connection": {...}}]}

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
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from kms_connection.states import ConnectionState

from .accounts import DEFAULT_ACCOUNT, check_account_id
from .errors import EmulatorConfigError, EmulatorStateError
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
        "KeyCount": record.key_count,
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
        key_count=reader.integer("KeyCount"),
        account=account,
        **optional,
    )


def save(path: Path, records: Iterable[StoreRecord], now: float, wall_now: float) -> None:
    """Write every store to ``path`` atomically (temporary file in the same directory, then ``os.replace``)."""
    document = {
        "format": FORMAT,
        "version": VERSION,
        "saved_at": wall_now,
        "stores": [record_to_json(record, now, wall_now) for record in records],
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


def load(path: Path, now: float, wall_now: float) -> list[StoreRecord] | None:
    """The stores saved in ``path``, None if there is no such file; ``EmulatorStateError`` if it is unusable."""
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
    return records
