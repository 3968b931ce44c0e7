"""Seeds: custom key stores with fixed ids that exist from the start (for demos and tests).

A seed is a JSON file holding a list of entries, or the same list in Python. Each entry::

    {"CustomKeyStoreId": "cks-0123456789abcdef0", "CustomKeyStoreName": "local-hsm",
     "CustomKeyStoreType": "AWS_CLOUDHSM",                       # default AWS_CLOUDHSM
     "CloudHsmClusterId": "...", "TrustAnchorCertificate": "...",   # AWS_CLOUDHSM
     "XksProxyUriEndpoint": "https://...", "XksProxyUriPath": "/kms/xks/v1",
     "XksProxyConnectivity": "PUBLIC_ENDPOINT",                  # EXTERNAL_KEY_STORE (+ VPC fields)
     "XksProxyAuthenticationCredential": {"AccessKeyId": "..."},   # the secret may be omitted
     "Region": "us-east-1",                                        # default us-east-1
     "Account": "111122223333",                                    # default 000000000000
     "ConnectionState": "DISCONNECTED",                            # default; FAILED needs ConnectionErrorCode
     "ConnectOutcome": "succeed" | "hang" | "fail:CODE",           # optional
     "Keys": [{"KeyId": "1234abcd-...",                            # optional, default derived from the store id
               "Description": "...",                               # optional
               "KeyState": "Enabled" | "Disabled",                 # default Enabled
               "XksKeyId": "...",                                  # external key stores; default derived
               "Aliases": ["alias/payments"]}]}                     # optional

Choices: fields are checked against the model's types, lengths and enums but not its patterns, so a demo
can use readable placeholder ids; a password or secret in a seed is accepted and discarded; an unknown key is
an error (a typo must not silently change a store). A seed whose id already exists (e.g. loaded from the state
file) is skipped, with its keys, but its ``ConnectOutcome`` still applies. A seeded key is made in its store whatever
the store's state (as if it was made while the store was connected), with the store's origin; a key id left out is
a UUID derived from the store id and the key's place in the list, so that it is the same at every start. Aliases
are unique per account and Region across the whole seed.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kms_connection.states import ConnectionState

from .accounts import DEFAULT_ACCOUNT
from .errors import EmulatorConfigError, EmulatorStateError, KmsError
from .faults import outcome_misfit, parse_outcome
from .keys import check_alias_name, is_key_id
from .model import check_value, connection_error_codes, error_code_store_types
from .store import CLOUDHSM, EXTERNAL, ConnectOutcome, StoreRecord, settled, store_fields

DEFAULT_REGION = "us-east-1"
ACCOUNT_PATTERN = re.compile(r"[0-9]{12}")

SeedSource = str | Path | Sequence[Mapping[str, Any]]

# Seed keys checked against a shape of the CreateCustomKeyStore input, by name.
_SHAPES = {
    "CustomKeyStoreId": "CustomKeyStoreIdType",
    "CustomKeyStoreName": "CustomKeyStoreNameType",
    "CustomKeyStoreType": "CustomKeyStoreType",
    "CloudHsmClusterId": "CloudHsmClusterIdType",
    "TrustAnchorCertificate": "TrustAnchorCertificateType",
    "KeyStorePassword": "KeyStorePasswordType",
    "XksProxyUriEndpoint": "XksProxyUriEndpointType",
    "XksProxyUriPath": "XksProxyUriPathType",
    "XksProxyVpcEndpointServiceName": "XksProxyVpcEndpointServiceNameType",
    "XksProxyVpcEndpointServiceOwner": "AccountIdType",
    "XksProxyConnectivity": "XksProxyConnectivityType",
    "ConnectionState": "ConnectionStateType",
    "ConnectionErrorCode": "ConnectionErrorCodeType",
}
_OTHER_KEYS = {"Account", "Region", "ConnectOutcome", "CreationDate", "XksProxyAuthenticationCredential", "Keys"}
_KEY_KEYS = {"KeyId", "Description", "KeyState", "XksKeyId", "Aliases"}
_KEY_STATES = ("Enabled", "Disabled")


@dataclass(frozen=True)
class SeedKey:
    """One KMS key of a seeded store."""

    key_id: str
    description: str
    enabled: bool
    aliases: tuple[str, ...]
    xks_key_id: str | None


@dataclass(frozen=True)
class SeedEntry:
    """One seeded store: its record (sequence assigned on insertion), initial state, connect outcome and keys."""

    record: StoreRecord
    state: ConnectionState
    error_code: str | None
    outcome: ConnectOutcome | None
    keys: tuple[SeedKey, ...] = ()


def _source_name(source: SeedSource) -> str:
    return f"seed {source}" if isinstance(source, str | Path) else "seed"


def read_seed(source: SeedSource, created_at: float) -> list[SeedEntry]:
    """Parse and check a seed (a JSON file path, or a list of dicts); ``EmulatorStateError`` if it is unusable."""
    where = _source_name(source)
    entries: object
    if isinstance(source, str | Path):
        try:
            entries = json.loads(Path(source).read_text(encoding="utf-8"))
        except OSError as error:
            raise EmulatorStateError(f"{where}: cannot be read: {error}") from error
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise EmulatorStateError(f"{where}: not valid JSON: {error}") from error
    else:
        entries = list(source)
    if not isinstance(entries, list):
        raise EmulatorStateError(f"{where}: must be a JSON list of stores")
    parsed = [_entry(item, f"{where}: entry {index}", created_at) for index, item in enumerate(entries)]
    ids = [entry.record.store_id for entry in parsed]
    duplicates = sorted({store_id for store_id in ids if ids.count(store_id) > 1})
    if duplicates:
        raise EmulatorStateError(f"{where}: custom key store id {duplicates[0]} appears more than once")
    key_ids = [key.key_id for entry in parsed for key in entry.keys]
    twice = sorted({key_id for key_id in key_ids if key_ids.count(key_id) > 1})
    if twice:
        raise EmulatorStateError(f"{where}: KMS key id {twice[0]} appears more than once")
    aliases = [
        (entry.record.account, entry.record.region, alias)
        for entry in parsed
        for key in entry.keys
        for alias in key.aliases
    ]
    taken = sorted({alias for alias in aliases if aliases.count(alias) > 1})
    if taken:
        raise EmulatorStateError(f"{where}: alias {taken[0][2]} appears more than once in {taken[0][1]}")
    return parsed


def _keys(item: dict[str, Any], store_id: str, store_type: str, where: str) -> tuple[SeedKey, ...]:
    keys = item.get("Keys", [])
    if not isinstance(keys, list):
        raise EmulatorStateError(f"{where}: Keys must be a list of keys")
    parsed: list[SeedKey] = []
    for index, key in enumerate(keys):
        at = f"{where}: Keys[{index}]"
        if not isinstance(key, dict):
            raise EmulatorStateError(f"{at}: must be a JSON object")
        unknown = sorted(set(key) - _KEY_KEYS)
        if unknown:
            raise EmulatorStateError(f"{at}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(_KEY_KEYS))})")
        key_id = key.get("KeyId", str(uuid.uuid5(uuid.NAMESPACE_URL, f"kms-connection-seed:{store_id}/{index}")))
        if not isinstance(key_id, str) or not is_key_id(key_id):
            raise EmulatorStateError(f"{at}: KeyId must be a lower-case UUID (found {key_id!r})")
        state = key.get("KeyState", "Enabled")
        if state not in _KEY_STATES:
            raise EmulatorStateError(f"{at}: KeyState must be Enabled or Disabled (found {state!r})")
        description = key.get("Description", "")
        if not isinstance(description, str):
            raise EmulatorStateError(f"{at}: Description must be a string")
        aliases = key.get("Aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(alias, str) for alias in aliases):
            raise EmulatorStateError(f"{at}: Aliases must be a list of alias names")
        for alias in aliases:
            try:
                check_alias_name(alias)
            except KmsError as error:
                raise EmulatorStateError(f"{at}: {error.message}") from None
        xks_key_id = key.get("XksKeyId")
        if store_type == EXTERNAL:
            xks_key_id = xks_key_id if xks_key_id is not None else f"xks-{key_id}"
            problems = check_value(xks_key_id, "XksKeyIdType", "XksKeyId")
            if problems:
                raise EmulatorStateError(f"{at}: {'; '.join(problems)}")
        elif xks_key_id is not None:
            raise EmulatorStateError(f"{at}: XksKeyId is for a key in an external key store")
        parsed.append(SeedKey(key_id, description, state == "Enabled", tuple(aliases), xks_key_id))
    return tuple(parsed)


def _entry(item: object, where: str, created_at: float) -> SeedEntry:
    if not isinstance(item, dict):
        raise EmulatorStateError(f"{where}: must be a JSON object")
    unknown = sorted(set(item) - set(_SHAPES) - _OTHER_KEYS)
    if unknown:
        raise EmulatorStateError(f"{where}: unknown key {unknown[0]!r}")
    for key in ("CustomKeyStoreId", "CustomKeyStoreName"):
        if key not in item:
            raise EmulatorStateError(f"{where}: {key} is required")
    problems: list[str] = []
    for key, shape_name in _SHAPES.items():
        if key in item:
            problems += check_value(item[key], shape_name, key, patterns=False)
    credential = item.get("XksProxyAuthenticationCredential")
    if credential is not None and (
        not isinstance(credential, dict) or not isinstance(credential.get("AccessKeyId"), str)
    ):
        problems.append("XksProxyAuthenticationCredential must be an object with an AccessKeyId")
    region = item.get("Region", DEFAULT_REGION)
    if not isinstance(region, str) or not region:
        problems.append("Region must be a non-empty string")
    account = item.get("Account", DEFAULT_ACCOUNT)
    if not isinstance(account, str) or not ACCOUNT_PATTERN.fullmatch(account):
        problems.append(f"Account must be an account id, 12 digits (found {account!r})")
    if problems:
        raise EmulatorStateError(f"{where}: {'; '.join(problems)}")
    store_type = item.get("CustomKeyStoreType", CLOUDHSM)
    params = dict(item)
    if store_type == CLOUDHSM and "KeyStorePassword" not in params:
        # A seed needs no password: the emulator never keeps one.
        params["KeyStorePassword"] = "unused-seed-password"
    if store_type == EXTERNAL and credential is not None:
        params["XksProxyAuthenticationCredential"] = {"AccessKeyId": credential["AccessKeyId"]}
    params.pop("ConnectionState", None)
    try:
        fields = store_fields(store_type, params, account)
    except KmsError as error:
        raise EmulatorStateError(f"{where}: {error.message}") from None
    state = ConnectionState(item.get("ConnectionState", ConnectionState.DISCONNECTED.value))
    error_code = item.get("ConnectionErrorCode")
    if state is ConnectionState.FAILED and error_code is None:
        raise EmulatorStateError(
            f"{where}: ConnectionState FAILED needs a ConnectionErrorCode, one of {', '.join(connection_error_codes())}"
        )
    if error_code is not None and store_type not in error_code_store_types(error_code):
        types = " and ".join(sorted(error_code_store_types(error_code)))
        raise EmulatorStateError(
            f"{where}: ConnectionErrorCode {error_code} belongs to {types} stores, not {store_type}"
        )
    if state is not ConnectionState.FAILED and error_code is not None:
        raise EmulatorStateError(f"{where}: ConnectionErrorCode is valid only with ConnectionState FAILED")
    outcome = None
    if "ConnectOutcome" in item:
        try:
            outcome = parse_outcome(str(item["ConnectOutcome"]))
        except EmulatorConfigError as error:
            raise EmulatorStateError(f"{where}: ConnectOutcome: {error}") from None
        problem = outcome_misfit(outcome, store_type)
        if problem is not None:
            raise EmulatorStateError(f"{where}: ConnectOutcome: {problem}")
    creation = item.get("CreationDate", created_at)
    if isinstance(creation, bool) or not isinstance(creation, int | float):
        raise EmulatorStateError(f"{where}: CreationDate must be epoch seconds")
    record = StoreRecord(
        store_id=item["CustomKeyStoreId"],
        region=region,
        name=item["CustomKeyStoreName"],
        store_type=store_type,
        creation_date=float(creation),
        seq=0,
        phase=settled(ConnectionState.DISCONNECTED),
        account=account,
        **fields,
    )
    return SeedEntry(record, state, error_code, outcome, _keys(item, record.store_id, store_type, where))
