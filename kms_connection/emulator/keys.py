"""KMS keys and aliases of one account, per Region, in and out of custom key stores: pure rules, no I/O.

Like ``store.py``, nothing here reads a clock, a file or a socket: every method takes ``now`` (the emulator's
clock) and, where a date is reported, ``wall`` (epoch seconds).

Rules, as KMS documents them (API Reference, and the Developer Guide's key state table):
    * ``CreateKey`` without ``CustomKeyStoreId`` makes an ``AWS_KMS`` key. With it, ``Origin`` must be the store's
      type (``AWS_CLOUDHSM``, or ``EXTERNAL_KEY_STORE`` with an ``XksKeyId`` unused in the store), the key a
      single-Region ``SYMMETRIC_DEFAULT`` encryption key, and the store ``CONNECTED``
      (``CustomKeyStoreInvalidStateException`` otherwise; ``CustomKeyStoreNotFoundException`` for an unknown
      store). The key records the store's CloudHSM cluster. Keys are ``Enabled`` when created.
    * ``KeyState``: ``PendingDeletion`` while scheduled for deletion; else ``Unavailable`` while the key's store is
      not ``CONNECTED`` (KMS: "You can view and manage unavailable KMS keys, but you cannot use them in
      cryptographic operations"); else ``Enabled`` or ``Disabled``. ``Enabled`` (the boolean) is true exactly when
      ``KeyState`` is ``Enabled``.
    * ``EnableKey``/``DisableKey``: refused (``KMSInvalidStateException``) for a key pending deletion or
      unavailable; enabling an enabled key, or disabling a disabled one, changes nothing.
    * ``ScheduleKeyDeletion``: ``PendingWindowInDays`` 7 to 30 (default 30; the model allows 1 to 365, KMS 7 to
      30: ``ValidationException``); refused for a key already pending deletion. Once the window has passed the key
      is gone, with its aliases. ``CancelKeyDeletion`` leaves the key ``Disabled``, as KMS does; refused for a key
      not pending deletion. Both work on unavailable keys.
    * ``CreateAlias``: ``alias/`` followed by letters, digits, ``/_-`` and not ``alias/aws/``
      (``InvalidAliasNameException``), unique in the account and Region (``AlreadyExistsException``), for a key
      given by id or ARN (not an alias), not pending deletion.
    * ``Encrypt``, ``Decrypt``, ``GenerateDataKey``: only an ``Enabled`` key: ``DisabledException`` for a disabled
      one, ``KMSInvalidStateException`` for one pending deletion or unavailable. ``Decrypt`` reads the key from
      the ciphertext (``IncorrectKeyException`` when ``KeyId`` names another); a ciphertext that was not made
      here, was altered, or is given another encryption context is ``InvalidCiphertextException``.
      ``DryRun`` answers ``DryRunOperationException`` when the request would have succeeded.
    * Keys are named by key id, key ARN, alias name or alias ARN where KMS accepts each (``DescribeKey``, the
      cryptographic operations and ``Decrypt``'s ``KeyId`` take aliases; the others only ids and ARNs). An ARN
      that does not parse is ``InvalidArnException``; a key or alias of another account or Region, or none, is
      ``NotFoundException``.
    * ``ListKeys`` pages of 1 to 1000 (default 100), ``ListAliases`` of 1 to 100 (default 50), each in creation
      order; every key of the account and Region is listed, pending deletion or not.
    * Keys per account and Region: ``key_limit`` (KMS's default quota: 100,000), ``LimitExceededException``.

Choices where KMS leaves a case open or the emulator does less:
    * Only symmetric encryption keys (``KeySpec`` ``SYMMETRIC_DEFAULT``, ``KeyUsage`` ``ENCRYPT_DECRYPT``) and
      origins ``AWS_KMS``, ``AWS_CLOUDHSM`` and ``EXTERNAL_KEY_STORE``; other key specs, ``Origin`` ``EXTERNAL``
      (imported key material) and multi-Region keys answer ``UnsupportedOperationException``; ``Recipient``
      (Nitro Enclaves) answers ``ValidationException``.
    * No key policies or grants: a key is usable from its own account only, by any principal of it (IAM is
      emulated by the ``AccessDeniedException`` fault alone, per operation).
    * Ciphertexts are NOT secure: the key material of a key is derived from its ARN, so that a ciphertext survives
      a restart of the emulator without a secret in its state file. Never send real data through the emulator.
    * Key operations see the true current state: the consistency lag applies to DescribeCustomKeyStores only.
    * A store's keys show ``Unavailable`` from the moment its true state leaves ``CONNECTED`` (a ``CONNECTING``
      or ``FAILED`` store has unavailable keys too, since KMS cannot reach their key material).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from kms_connection.states import ConnectionState

from .errors import KmsError

if TYPE_CHECKING:
    from .store import StoreRecord

CLOUDHSM_ORIGIN = "AWS_CLOUDHSM"
EXTERNAL_ORIGIN = "EXTERNAL_KEY_STORE"
KMS_ORIGIN = "AWS_KMS"
#: The store type each custom key store origin needs (they happen to be spelt alike).
STORE_TYPE_OF_ORIGIN = {CLOUDHSM_ORIGIN: "AWS_CLOUDHSM", EXTERNAL_ORIGIN: "EXTERNAL_KEY_STORE"}
ORIGIN_OF_STORE_TYPE = {store_type: origin for origin, store_type in STORE_TYPE_OF_ORIGIN.items()}

SYMMETRIC = "SYMMETRIC_DEFAULT"
ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"

ENABLED = "Enabled"
DISABLED = "Disabled"
PENDING_DELETION = "PendingDeletion"
UNAVAILABLE = "Unavailable"

DEFAULT_KEY_LIMIT = 100_000
KEYS_PAGE = (100, 1000)
"""ListKeys' default and largest page."""
ALIASES_PAGE = (50, 100)
"""ListAliases' default and largest page."""
PENDING_WINDOW_DAYS = (7, 30)
DAY_SECONDS = 86400.0

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ARN = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):kms:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):"
    r"(?P<kind>key|alias)/(?P<name>.+)"
)
_ALIAS_NAME = re.compile(r"alias/[a-zA-Z0-9/_-]+")
_MAGIC = b"KMSEMU1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_ID_BYTES = 36


def check_alias_name(name: str) -> None:
    """Raise ``InvalidAliasNameException`` unless ``name`` is an alias name a customer may create."""
    if not _ALIAS_NAME.fullmatch(name) or name.startswith("alias/aws/"):
        raise KmsError(
            "InvalidAliasNameException",
            f"Alias name {name} is not valid: it must begin with alias/ followed by letters, digits, slashes, "
            "underscores or dashes, and must not begin with alias/aws/, which is reserved for Amazon Web "
            "Services managed keys.",
        )


class Stores(Protocol):
    """What the key rules need of the account's custom key stores."""

    def find(self, region: str, store_id: str) -> StoreRecord | None:
        """The current record of a store, or None."""
        ...


def partition(region: str) -> str:
    """The ARN partition of a Region (``aws``, ``aws-cn``, ``aws-us-gov``)."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def key_arn(region: str, account: str, key_id: str) -> str:
    """The ARN of a key."""
    return f"arn:{partition(region)}:kms:{region}:{account}:key/{key_id}"


def alias_arn(region: str, account: str, name: str) -> str:
    """The ARN of an alias (``name`` starts with ``alias/``)."""
    return f"arn:{partition(region)}:kms:{region}:{account}:{name}"


def new_key_id() -> str:
    """A random key id, a UUID as KMS's are."""
    return str(uuid.uuid4())


def is_key_id(text: str) -> bool:
    """Whether ``text`` is shaped like a KMS key id (a lower-case UUID)."""
    return _UUID.fullmatch(text) is not None


@dataclass(frozen=True)
class KeyRecord:
    """One KMS key. ``deletion_at`` (emulator clock) and ``deletion_date`` (epoch seconds, as reported) are set
    while it is scheduled for deletion."""

    key_id: str
    region: str
    account: str
    creation_date: float
    seq: int
    origin: str = KMS_ORIGIN
    description: str = ""
    custom_key_store_id: str | None = None
    cloudhsm_cluster_id: str | None = None
    xks_key_id: str | None = None
    enabled: bool = True
    deletion_at: float | None = None
    deletion_date: float | None = None

    @property
    def arn(self) -> str:
        return key_arn(self.region, self.account, self.key_id)

    def state(self, stores: Stores, now: float) -> str:
        """The ``KeyState`` at ``now`` (see the module docstring)."""
        if self.deletion_at is not None:
            return PENDING_DELETION
        if self.custom_key_store_id is not None:
            store = stores.find(self.region, self.custom_key_store_id)
            if store is None or store.phase.at(now).state is not ConnectionState.CONNECTED:
                return UNAVAILABLE
        return ENABLED if self.enabled else DISABLED

    def metadata(self, stores: Stores, now: float) -> dict[str, Any]:
        """The ``KeyMetadata`` of DescribeKey and CreateKey."""
        state = self.state(stores, now)
        metadata: dict[str, Any] = {
            "AWSAccountId": self.account,
            "KeyId": self.key_id,
            "Arn": self.arn,
            "CreationDate": self.creation_date,
            "Enabled": state == ENABLED,
            "Description": self.description,
            "KeyUsage": ENCRYPT_DECRYPT,
            "KeyState": state,
            "Origin": self.origin,
            "KeyManager": "CUSTOMER",
            "CustomerMasterKeySpec": SYMMETRIC,
            "KeySpec": SYMMETRIC,
            "EncryptionAlgorithms": [SYMMETRIC],
            "MultiRegion": False,
        }
        if self.deletion_date is not None:
            metadata["DeletionDate"] = self.deletion_date
        if self.custom_key_store_id is not None:
            metadata["CustomKeyStoreId"] = self.custom_key_store_id
        if self.cloudhsm_cluster_id is not None:
            metadata["CloudHsmClusterId"] = self.cloudhsm_cluster_id
        if self.xks_key_id is not None:
            metadata["XksKeyConfiguration"] = {"Id": self.xks_key_id}
        return metadata


@dataclass(frozen=True)
class AliasRecord:
    """One alias: its name (``alias/...``), the key it points to, and when it was made and last pointed."""

    name: str
    region: str
    account: str
    target_key_id: str
    creation_date: float
    last_updated_date: float
    seq: int

    def entry(self) -> dict[str, Any]:
        """The ``AliasListEntry`` of ListAliases."""
        return {
            "AliasName": self.name,
            "AliasArn": alias_arn(self.region, self.account, self.name),
            "TargetKeyId": self.target_key_id,
            "CreationDate": self.creation_date,
            "LastUpdatedDate": self.last_updated_date,
        }


@dataclass
class _Region:
    keys: dict[str, KeyRecord] = field(default_factory=dict)
    aliases: dict[str, AliasRecord] = field(default_factory=dict)
    next_seq: int = 0


@dataclass(frozen=True)
class KeyCheckpoint:
    """An opaque copy of a key ring's contents, to roll back a change that could not be saved."""

    regions: dict[str, _Region]


def _not_found(what: str) -> KmsError:
    return KmsError("NotFoundException", what)


def _invalid_state(message: str) -> KmsError:
    return KmsError("KMSInvalidStateException", message)


def _unsupported(message: str) -> KmsError:
    return KmsError("UnsupportedOperationException", message)


def _validation(message: str) -> KmsError:
    return KmsError("ValidationException", message)


class KeyRing:
    """Every KMS key and alias of one account, per Region, with the key operations' rules.

    ``stores`` is the account's custom key stores (``StoreRegistry``). Not thread-safe: the caller holds one lock
    around every call.
    """

    def __init__(self, account: str, stores: Stores, key_limit: int | None = DEFAULT_KEY_LIMIT) -> None:
        self.account = account
        self.stores = stores
        self.key_limit = key_limit
        self._regions: dict[str, _Region] = {}

    # -- reading ---------------------------------------------------------------------------------------

    def keys(self, region: str, now: float) -> list[KeyRecord]:
        """The keys of ``region`` at ``now``, in creation order."""
        self._purge(region, now)
        found = self._regions.get(region)
        return sorted(found.keys.values(), key=lambda key: key.seq) if found else []

    def all_keys(self, now: float) -> list[KeyRecord]:
        """Every key of every Region at ``now``."""
        return [key for region in sorted(self._regions) for key in self.keys(region, now)]

    def aliases(self, region: str, now: float) -> list[AliasRecord]:
        """The aliases of ``region`` at ``now``, in creation order."""
        self._purge(region, now)
        found = self._regions.get(region)
        return sorted(found.aliases.values(), key=lambda alias: alias.seq) if found else []

    def all_aliases(self, now: float) -> list[AliasRecord]:
        """Every alias of every Region at ``now``."""
        return [alias for region in sorted(self._regions) for alias in self.aliases(region, now)]

    def find(self, key_id: str) -> KeyRecord | None:
        """The key with this id in any Region (deleted or not yet purged included), or None."""
        for region in self._regions.values():
            if key_id in region.keys:
                return region.keys[key_id]
        return None

    def count_in_store(self, region: str, store_id: str, now: float) -> int:
        """How many keys (pending deletion or not) a custom key store holds at ``now``."""
        return sum(1 for key in self.keys(region, now) if key.custom_key_store_id == store_id)

    # -- operations ------------------------------------------------------------------------------------

    def create_key(self, region: str, params: Mapping[str, Any], now: float, wall: float) -> KeyRecord:
        """CreateKey (``params`` already valid against the model)."""
        origin = params.get("Origin") or KMS_ORIGIN
        spec = params.get("KeySpec") or params.get("CustomerMasterKeySpec") or SYMMETRIC
        usage = params.get("KeyUsage") or ENCRYPT_DECRYPT
        store_id = params.get("CustomKeyStoreId")
        xks_key_id = params.get("XksKeyId")
        if spec != SYMMETRIC or usage != ENCRYPT_DECRYPT:
            raise _unsupported(
                f"The KMS emulator makes symmetric encryption keys only (KeySpec {SYMMETRIC}, KeyUsage "
                f"{ENCRYPT_DECRYPT}), not KeySpec {spec} with KeyUsage {usage}."
            )
        if params.get("MultiRegion"):
            raise _unsupported("The KMS emulator does not make multi-Region keys.")
        if origin == "EXTERNAL":
            raise _unsupported("The KMS emulator does not import key material: Origin EXTERNAL is not supported.")
        cluster = None
        if store_id is None:
            if origin != KMS_ORIGIN:
                raise _validation(f"Origin {origin} requires a CustomKeyStoreId: the custom key store of the key.")
            if xks_key_id is not None:
                raise _validation("XksKeyId is valid only with Origin EXTERNAL_KEY_STORE and a CustomKeyStoreId.")
        else:
            store = self.stores.find(region, store_id)
            if store is None:
                raise KmsError(
                    "CustomKeyStoreNotFoundException",
                    f"Custom key store {store_id} does not exist in this account and Region.",
                )
            needed = ORIGIN_OF_STORE_TYPE[store.store_type]
            if origin != needed:
                raise _unsupported(
                    f"To create a KMS key in custom key store {store_id} ({store.store_type}), set Origin to "
                    f"{needed}; got {origin}."
                )
            if origin == EXTERNAL_ORIGIN and xks_key_id is None:
                raise _validation("A KMS key in an external key store needs XksKeyId, the id of its external key.")
            if origin != EXTERNAL_ORIGIN and xks_key_id is not None:
                raise _validation("XksKeyId is valid only with Origin EXTERNAL_KEY_STORE.")
            state = store.phase.at(now).state
            if state is not ConnectionState.CONNECTED:
                raise KmsError(
                    "CustomKeyStoreInvalidStateException",
                    f"Custom key store {store_id} is {state.value}: KMS keys can be created in a custom key store "
                    "only while it is CONNECTED.",
                )
            if xks_key_id is not None:
                taken = [k for k in self.keys(region, now) if k.custom_key_store_id == store_id]
                if any(k.xks_key_id == xks_key_id for k in taken):
                    raise KmsError(
                        "XksKeyAlreadyInUseException",
                        f"External key {xks_key_id} is already associated with a KMS key in custom key store "
                        f"{store_id}.",
                    )
            cluster = store.cloudhsm_cluster_id
        if self.key_limit is not None and len(self.keys(region, now)) >= self.key_limit:
            raise KmsError(
                "LimitExceededException",
                f"This account already has {self.key_limit} KMS keys in {region}, its quota.",
            )
        record = KeyRecord(
            key_id=self._fresh_key_id(),
            region=region,
            account=self.account,
            creation_date=wall,
            seq=self._region(region).next_seq,
            origin=origin,
            description=params.get("Description") or "",
            custom_key_store_id=store_id,
            cloudhsm_cluster_id=cluster,
            xks_key_id=xks_key_id,
        )
        self._put_key(record)
        return record

    def describe_key(self, region: str, key_ref: str, now: float) -> dict[str, Any]:
        """DescribeKey: ``{"KeyMetadata": ...}``."""
        key = self.resolve(region, key_ref, now, aliases=True)
        return {"KeyMetadata": key.metadata(self.stores, now)}

    def list_keys(self, region: str, now: float, limit: int | None, marker: str | None) -> dict[str, Any]:
        """ListKeys, one page."""
        entries = [(key.seq, {"KeyId": key.key_id, "KeyArn": key.arn}) for key in self.keys(region, now)]
        return _page(entries, region, "ListKeys", "Keys", limit, marker, KEYS_PAGE)

    def create_alias(self, region: str, name: str, target: str, now: float, wall: float) -> None:
        """CreateAlias."""
        check_alias_name(name)
        key = self.resolve(region, target, now, aliases=False, bad_arn="NotFoundException")
        if key.deletion_at is not None:
            raise _invalid_state(f"{key.arn} is pending deletion.")
        found = self._region(region)
        if name in found.aliases:
            raise KmsError(
                "AlreadyExistsException",
                f"An alias with the name {alias_arn(region, self.account, name)} already exists",
            )
        found.aliases[name] = AliasRecord(name, region, self.account, key.key_id, wall, wall, found.next_seq)
        found.next_seq += 1

    def list_aliases(
        self, region: str, now: float, key_ref: str | None, limit: int | None, marker: str | None
    ) -> dict[str, Any]:
        """ListAliases, one page (only the key's aliases when ``key_ref`` is given)."""
        aliases = self.aliases(region, now)
        if key_ref is not None:
            if key_ref.startswith("alias/") or (key_ref.startswith("arn:") and ":alias/" in key_ref):
                raise KmsError(
                    "InvalidArnException", f"{key_ref} is an alias: ListAliases takes a key id or a key ARN."
                )
            key = self.resolve(region, key_ref, now, aliases=False)
            aliases = [alias for alias in aliases if alias.target_key_id == key.key_id]
        entries = [(alias.seq, alias.entry()) for alias in aliases]
        return _page(entries, region, "ListAliases", "Aliases", limit, marker, ALIASES_PAGE)

    def enable_key(self, region: str, key_ref: str, now: float) -> None:
        """EnableKey."""
        self._set_enabled(region, key_ref, now, True)

    def disable_key(self, region: str, key_ref: str, now: float) -> None:
        """DisableKey."""
        self._set_enabled(region, key_ref, now, False)

    def schedule_deletion(self, region: str, key_ref: str, days: int | None, now: float, wall: float) -> dict[str, Any]:
        """ScheduleKeyDeletion."""
        low, high = PENDING_WINDOW_DAYS
        window = high if days is None else days
        if not low <= window <= high:
            raise _validation(
                f"1 validation error detected: Value '{window}' at 'pendingWindowInDays' failed to satisfy "
                f"constraint: Member must have value between {low} and {high}"
            )
        key = self.resolve(region, key_ref, now, aliases=False)
        if key.deletion_at is not None:
            raise _invalid_state(f"{key.arn} is pending deletion.")
        seconds = window * DAY_SECONDS
        scheduled = replace(key, deletion_at=now + seconds, deletion_date=wall + seconds)
        self._put_key(scheduled)
        return {
            "KeyId": key.arn,
            "DeletionDate": scheduled.deletion_date,
            "KeyState": PENDING_DELETION,
            "PendingWindowInDays": window,
        }

    def cancel_deletion(self, region: str, key_ref: str, now: float) -> dict[str, Any]:
        """CancelKeyDeletion: the key is Disabled afterwards."""
        key = self.resolve(region, key_ref, now, aliases=False)
        if key.deletion_at is None:
            raise _invalid_state(f"{key.arn} is not pending deletion.")
        self._put_key(replace(key, deletion_at=None, deletion_date=None, enabled=False))
        return {"KeyId": key.arn}

    def encrypt(
        self, region: str, key_ref: str, plaintext: bytes, context: Mapping[str, str], now: float
    ) -> tuple[KeyRecord, bytes]:
        """Encrypt: the key and the ciphertext."""
        key = self.usable(region, key_ref, now)
        return key, _seal(key, plaintext, context)

    def decrypt(
        self, region: str, ciphertext: bytes, key_ref: str | None, context: Mapping[str, str], now: float
    ) -> tuple[KeyRecord, bytes]:
        """Decrypt: the key the ciphertext names, and the plaintext."""
        key_id = _ciphertext_key_id(ciphertext)
        if key_ref is not None:
            named = self.resolve(region, key_ref, now, aliases=True, bad_arn="NotFoundException")
            if named.key_id != key_id:
                raise KmsError(
                    "IncorrectKeyException",
                    "The key ID in the request does not identify a CMK that can perform this operation.",
                )
        found = self._region(region).keys.get(key_id)
        if found is None or self._expired(found, now):
            raise KmsError("InvalidCiphertextException", "The ciphertext refers to a KMS key that does not exist here.")
        key = self.usable(region, key_id, now)
        return key, _open(key, ciphertext, context)

    def usable(self, region: str, key_ref: str, now: float) -> KeyRecord:
        """The key, if a cryptographic operation may use it now; else the error KMS answers."""
        key = self.resolve(region, key_ref, now, aliases=True, bad_arn="NotFoundException")
        state = key.state(self.stores, now)
        if state == DISABLED:
            raise KmsError("DisabledException", f"{key.arn} is disabled.")
        if state == PENDING_DELETION:
            raise _invalid_state(f"{key.arn} is pending deletion.")
        if state == UNAVAILABLE:
            store = self.stores.find(region, key.custom_key_store_id or "")
            shown = store.phase.at(now).state.value if store is not None else "gone"
            raise _invalid_state(
                f"{key.arn} is unavailable: its custom key store {key.custom_key_store_id} is {shown}, not "
                "CONNECTED. You cannot use a KMS key in a custom key store in cryptographic operations while the "
                "store is not connected."
            )
        return key

    # -- direct changes (seeds, test set-up, persistence) ----------------------------------------------

    def insert_key(self, record: KeyRecord) -> KeyRecord:
        """Add a key as it is (no rule but a free id); its ``seq`` is renumbered unless already past the Region's."""
        if record.account != self.account:
            raise ValueError(f"KMS key {record.key_id} is of account {record.account}, not {self.account}")
        if any(record.key_id in region.keys for region in self._regions.values()):
            raise ValueError(f"KMS key {record.key_id} already exists")
        found = self._region(record.region)
        if record.seq < found.next_seq:
            record = replace(record, seq=found.next_seq)
        found.next_seq = record.seq + 1
        found.keys[record.key_id] = record
        return record

    def insert_alias(self, record: AliasRecord) -> AliasRecord:
        """Add an alias as it is; its name must be free and its key must exist."""
        found = self._region(record.region)
        if record.name in found.aliases:
            raise ValueError(f"alias {record.name} already exists in {record.region}")
        if record.target_key_id not in found.keys:
            raise ValueError(f"alias {record.name} names KMS key {record.target_key_id}, which does not exist")
        if record.seq < found.next_seq:
            record = replace(record, seq=found.next_seq)
        found.next_seq = record.seq + 1
        found.aliases[record.name] = record
        return record

    def remove_key(self, region: str, key_id: str) -> None:
        """Delete a key and its aliases at once (test set-up; KMS itself waits out the deletion window)."""
        found = self._region(region)
        found.keys.pop(key_id, None)
        found.aliases = {name: a for name, a in found.aliases.items() if a.target_key_id != key_id}

    def clear(self) -> None:
        """Forget every key and alias."""
        self._regions.clear()

    def checkpoint(self) -> KeyCheckpoint:
        """A copy of the contents, for ``restore``."""
        return KeyCheckpoint(
            {name: _Region(dict(r.keys), dict(r.aliases), r.next_seq) for name, r in self._regions.items()}
        )

    def restore(self, checkpoint: KeyCheckpoint) -> None:
        """Go back to the contents of ``checkpoint``."""
        self._regions = checkpoint.regions

    # -- internals -------------------------------------------------------------------------------------

    def resolve(
        self, region: str, key_ref: str, now: float, *, aliases: bool, bad_arn: str = "InvalidArnException"
    ) -> KeyRecord:
        """The key ``key_ref`` names (key id, key ARN, and with ``aliases`` an alias name or ARN); an ARN that does
        not parse is ``bad_arn`` (``NotFoundException`` for the operations that do not document
        ``InvalidArnException``)."""
        self._purge(region, now)
        found = self._region(region)
        name = key_ref
        if key_ref.startswith("arn:"):
            match = _ARN.fullmatch(key_ref)
            if match is None:
                raise KmsError(bad_arn, f"{key_ref} is not a valid KMS key or alias ARN.")
            if match["kind"] == "alias" and not aliases:
                raise _not_found(f"{key_ref} is an alias: this operation takes a key id or a key ARN.")
            if match["region"] != region or match["account"] != self.account:
                raise _not_found(f"{_shown_missing(key_ref)} does not exist in this account and Region.")
            name = f"{match['kind']}/{match['name']}" if match["kind"] == "alias" else match["name"]
        if name.startswith("alias/"):
            if not aliases:
                raise _not_found(f"{key_ref} is an alias: this operation takes a key id or a key ARN.")
            alias = found.aliases.get(name)
            if alias is None:
                raise _not_found(f"Alias {alias_arn(region, self.account, name)} is not found.")
            name = alias.target_key_id
        key = found.keys.get(name)
        if key is None:
            raise _not_found(f"Key '{key_arn(region, self.account, name)}' does not exist")
        return key

    def _set_enabled(self, region: str, key_ref: str, now: float, enabled: bool) -> None:
        key = self.resolve(region, key_ref, now, aliases=False)
        state = key.state(self.stores, now)
        if state == PENDING_DELETION:
            raise _invalid_state(f"{key.arn} is pending deletion.")
        if state == UNAVAILABLE:
            raise _invalid_state(
                f"{key.arn} is unavailable: its custom key store {key.custom_key_store_id} is not CONNECTED."
            )
        if key.enabled != enabled:
            self._put_key(replace(key, enabled=enabled))

    def _region(self, region: str) -> _Region:
        return self._regions.setdefault(region, _Region())

    def _put_key(self, record: KeyRecord) -> None:
        found = self._region(record.region)
        if record.key_id not in found.keys:
            found.next_seq = max(found.next_seq, record.seq + 1)
        found.keys[record.key_id] = record

    def _fresh_key_id(self) -> str:
        while True:
            candidate = new_key_id()
            if not any(candidate in region.keys for region in self._regions.values()):
                return candidate

    @staticmethod
    def _expired(key: KeyRecord, now: float) -> bool:
        return key.deletion_at is not None and key.deletion_at <= now

    def _purge(self, region: str, now: float) -> None:
        # A key whose deletion window has passed is gone, and its aliases with it.
        found = self._regions.get(region)
        if found is None:
            return
        gone = [key_id for key_id, key in found.keys.items() if self._expired(key, now)]
        for key_id in gone:
            self.remove_key(region, key_id)


def _shown_missing(arn: str) -> str:
    return f"Key '{arn}'" if ":key/" in arn else f"Alias {arn}"


# -- pagination ----------------------------------------------------------------------------------------


def _page(
    entries: list[tuple[int, dict[str, Any]]],
    region: str,
    operation: str,
    result_key: str,
    limit: int | None,
    marker: str | None,
    bounds: tuple[int, int],
) -> dict[str, Any]:
    default, largest = bounds
    if limit is not None and limit > largest:
        raise _validation(
            f"1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must "
            f"have value less than or equal to {largest}"
        )
    if marker is not None:
        after = _decode_marker(marker, region, operation)
        entries = [entry for entry in entries if entry[0] > after]
    size = default if limit is None else limit
    page, rest = entries[:size], entries[size:]
    response: dict[str, Any] = {result_key: [entry for _, entry in page], "Truncated": bool(rest)}
    if rest:
        response["NextMarker"] = _encode_marker(region, operation, page[-1][0])
    return response


def _encode_marker(region: str, operation: str, seq: int) -> str:
    raw = json.dumps({"r": region, "o": operation, "s": seq}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_marker(marker: str, region: str, operation: str) -> int:
    invalid = KmsError(
        "InvalidMarkerException",
        f"The marker is not valid: pass the NextMarker of the previous {operation} response unchanged.",
    )
    try:
        decoded = json.loads(base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid from None
    if not isinstance(decoded, dict) or decoded.get("r") != region or decoded.get("o") != operation:
        raise invalid
    seq = decoded.get("s")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise invalid
    return seq


# -- ciphertexts ---------------------------------------------------------------------------------------
# KMSEMU1 | key id (36 ASCII bytes) | nonce (12) | tag (16) | encrypted bytes. The key stream and the tag are
# HMAC-SHA256 under material derived from the key's ARN: it binds the ciphertext to its key and its encryption
# context, and is not secret (see the module docstring).


def _material(key: KeyRecord) -> bytes:
    return hashlib.sha256(b"kms-connection emulator key material\0" + key.arn.encode()).digest()


def _context_bytes(context: Mapping[str, str]) -> bytes:
    return json.dumps(dict(sorted(context.items())), separators=(",", ":")).encode()


def _stream(material: bytes, nonce: bytes, size: int) -> bytes:
    blocks = (
        hmac.new(material, nonce + index.to_bytes(4, "big"), hashlib.sha256).digest() for index in range(size // 32 + 1)
    )
    return b"".join(blocks)[:size]


def _tag(material: bytes, nonce: bytes, body: bytes, context: Mapping[str, str]) -> bytes:
    return hmac.new(material, b"tag\0" + nonce + body + _context_bytes(context), hashlib.sha256).digest()[:_TAG_BYTES]


def _seal(key: KeyRecord, plaintext: bytes, context: Mapping[str, str]) -> bytes:
    material = _material(key)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    body = bytes(a ^ b for a, b in zip(plaintext, _stream(material, nonce, len(plaintext)), strict=True))
    return _MAGIC + key.key_id.encode() + nonce + _tag(material, nonce, body, context) + body


def _invalid_ciphertext() -> KmsError:
    return KmsError("InvalidCiphertextException", "The ciphertext is not valid, or not for this encryption context.")


def _ciphertext_key_id(ciphertext: bytes) -> str:
    head = len(_MAGIC)
    if not ciphertext.startswith(_MAGIC) or len(ciphertext) < head + _KEY_ID_BYTES + _NONCE_BYTES + _TAG_BYTES:
        raise _invalid_ciphertext()
    try:
        key_id = ciphertext[head : head + _KEY_ID_BYTES].decode("ascii")
    except UnicodeDecodeError:
        raise _invalid_ciphertext() from None
    if not is_key_id(key_id):
        raise _invalid_ciphertext()
    return key_id


def _open(key: KeyRecord, ciphertext: bytes, context: Mapping[str, str]) -> bytes:
    start = len(_MAGIC) + _KEY_ID_BYTES
    nonce = ciphertext[start : start + _NONCE_BYTES]
    tag = ciphertext[start + _NONCE_BYTES : start + _NONCE_BYTES + _TAG_BYTES]
    body = ciphertext[start + _NONCE_BYTES + _TAG_BYTES :]
    material = _material(key)
    if not hmac.compare_digest(tag, _tag(material, nonce, body, context)):
        raise _invalid_ciphertext()
    return bytes(a ^ b for a, b in zip(body, _stream(material, nonce, len(body)), strict=True))


def keys_in(keys: Iterable[KeyRecord], store_id: str) -> list[KeyRecord]:
    """The keys of one custom key store, in order."""
    return [key for key in keys if key.custom_key_store_id == store_id]
