"""Custom key stores, their connection state machine, and the per-Region registry of an account (with the account's KMS
keys, ``keys.py``): pure rules, no I/O.

Nothing here reads a clock, a file or a socket: every method takes ``now`` (seconds of the emulator's clock),
so the same inputs always give the same answer and a ``FakeClock`` drives every transition.

State machine
=============
``ConnectCustomKeyStore``
    * ``DISCONNECTED -> CONNECTING``; after ``connect_seconds`` the store becomes ``CONNECTED``, or ``FAILED``
      with the configured ``ConnectionErrorCode``, or (outcome ``hang``) stays ``CONNECTING`` until disconnected.
    * ``CONNECTING`` and ``CONNECTED``: success and nothing changes (the pending connect keeps its deadline).
    * ``DISCONNECTING`` and ``FAILED``: refused with ``CustomKeyStoreInvalidStateException``; a ``FAILED`` store
      must be disconnected before it is connected again.
``DisconnectCustomKeyStore``
    * ``CONNECTED | CONNECTING | FAILED -> DISCONNECTING``, then ``DISCONNECTED`` after ``disconnect_seconds``.
    * ``DISCONNECTING`` and ``DISCONNECTED``: refused with ``CustomKeyStoreInvalidStateException``.
``UpdateCustomKeyStore``
    * Any change in ``DISCONNECTED``. In ``CONNECTED``, a rename only, and for external key stores a new proxy
      authentication credential and a new proxy URI path. Refused in every other state (``CONNECTING``,
      ``FAILED``, ``DISCONNECTING``), even a rename.
    * Changing ``XksProxyConnectivity`` needs a new ``XksProxyUriEndpoint`` in the same request.
``DeleteCustomKeyStore``
    * Requires ``DISCONNECTED`` and no KMS keys, pending deletion or not (``CustomKeyStoreHasCMKsException``
      otherwise). The keys are the registry's ``keys`` (``keys.py``).

Choices where the KMS documentation leaves a case open:
    * The outcome and the duration of a connect are fixed when the connect starts: changing them afterwards
      affects the next connect only.
    * ``ConnectionErrorCode`` is dropped as soon as the store leaves ``FAILED``.
    * Eventual consistency: with a lag ``L``, ``DescribeCustomKeyStores`` shows each store as it was at
      ``now - L`` (so a new store is invisible for ``L`` seconds, a deleted one lingers for ``L`` seconds, and
      a timed transition shows ``L`` seconds late). Every other operation sees the true current state.
      Stores created directly (seeds, test set-up, a loaded state file) are visible at once.
    * Describe lists stores in creation order. Giving both ``CustomKeyStoreId`` and ``CustomKeyStoreName`` is a
      ``ValidationException`` (the API reference says "either ... but not both").
    * Names are unique per account and Region, compared exactly (case-sensitive). Store ids are unique across
      every account and Region (the service sees to it across accounts), as KMS's are.
    * A CloudHSM cluster can back one store per Region (``CloudHsmClusterInUseException`` on create); an update
      to another cluster is not checked, since KMS only requires a related cluster, which the emulator cannot know.
    * A VPC endpoint service store created (or switched to ``VPC_ENDPOINT_SERVICE``) without
      ``XksProxyVpcEndpointServiceOwner`` is owned by the caller's account (the registry's account; see
      ``accounts`` for how a request's credentials tell it).
    * External key stores: the endpoint+path pair is unique (``XksProxyUriInUseException``); an endpoint used by
      a ``VPC_ENDPOINT_SERVICE`` store is not shared with any other store (``XksProxyUriEndpointInUseException``);
      a VPC endpoint service backs one store (``XksProxyVpcEndpointServiceInUseException``).
    * Secrets (``KeyStorePassword``, ``RawSecretAccessKey``) are checked for shape by the caller and then
      discarded: a store never holds one, so it can never be returned, logged or written to disk.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from kms_connection.states import ConnectionState

from .accounts import DEFAULT_ACCOUNT
from .errors import KmsError, not_found
from .keys import DEFAULT_KEY_LIMIT, KeyCheckpoint, KeyRing

CLOUDHSM = "AWS_CLOUDHSM"
EXTERNAL = "EXTERNAL_KEY_STORE"
PUBLIC_ENDPOINT = "PUBLIC_ENDPOINT"
VPC_ENDPOINT_SERVICE = "VPC_ENDPOINT_SERVICE"

#: The account of credentials mapped to no other (LocalStack-style local endpoints use it too).
ACCOUNT_ID = DEFAULT_ACCOUNT

DEFAULT_STORE_LIMIT = 10
#: The largest page DescribeCustomKeyStores returns (the model's maximum ``Limit``), also the default page.
MAX_PAGE = 1000

_CLOUDHSM_CREATE_FIELDS = ("CloudHsmClusterId", "TrustAnchorCertificate", "KeyStorePassword")
_XKS_FIELDS = (
    "XksProxyUriEndpoint",
    "XksProxyUriPath",
    "XksProxyVpcEndpointServiceName",
    "XksProxyVpcEndpointServiceOwner",
    "XksProxyAuthenticationCredential",
    "XksProxyConnectivity",
)
_XKS_REQUIRED = ("XksProxyUriEndpoint", "XksProxyUriPath", "XksProxyAuthenticationCredential", "XksProxyConnectivity")
# Update fields of an external key store that may change while it is CONNECTED (the name may, for every type).
# UpdateCustomKeyStore's documentation: "you can update the CustomKeyStoreName, XksProxyAuthenticationCredential,
# and XksProxyUriPath of an external key store when it is in the CONNECTED or DISCONNECTED state."
_XKS_UPDATABLE_CONNECTED = ("XksProxyAuthenticationCredential", "XksProxyUriPath")
_CLOUDHSM_UPDATE_FIELDS = ("KeyStorePassword", "CloudHsmClusterId")

OutcomeKind = Literal["succeed", "fail", "hang"]


@dataclass(frozen=True)
class ConnectOutcome:
    """What a connect ends in: ``succeed`` (CONNECTED), ``fail`` with ``error_code`` (FAILED), or ``hang``."""

    kind: OutcomeKind
    error_code: str | None = None

    def __str__(self) -> str:
        return f"fail:{self.error_code}" if self.kind == "fail" else self.kind


SUCCEED = ConnectOutcome("succeed")


@dataclass(frozen=True)
class Phase:
    """A connection state, and the transition under way if any.

    ``deadline`` and ``next_state`` describe a timed transition (connecting, disconnecting); a ``CONNECTING``
    phase without a deadline hangs. ``at(now)`` is the whole state machine's notion of time.
    """

    state: ConnectionState
    error_code: str | None = None
    deadline: float | None = None
    next_state: ConnectionState | None = None
    next_error_code: str | None = None

    def at(self, now: float) -> Phase:
        """This phase as it stands at ``now``: the transition's target once its deadline has passed."""
        if self.deadline is not None and self.next_state is not None and now >= self.deadline:
            return Phase(self.next_state, self.next_error_code)
        return self


def settled(state: ConnectionState, error_code: str | None = None) -> Phase:
    """A phase with no transition under way (``error_code`` only for FAILED)."""
    return Phase(state, error_code if state is ConnectionState.FAILED else None)


def connecting(now: float, seconds: float, outcome: ConnectOutcome) -> Phase:
    """The phase a connect starts at ``now``, ending after ``seconds`` in ``outcome``."""
    if outcome.kind == "hang":
        return Phase(ConnectionState.CONNECTING)
    if outcome.kind == "fail":
        return Phase(ConnectionState.CONNECTING, None, now + seconds, ConnectionState.FAILED, outcome.error_code)
    return Phase(ConnectionState.CONNECTING, None, now + seconds, ConnectionState.CONNECTED)


def disconnecting(now: float, seconds: float) -> Phase:
    """The phase a disconnect starts at ``now``, ending DISCONNECTED after ``seconds``."""
    return Phase(ConnectionState.DISCONNECTING, None, now + seconds, ConnectionState.DISCONNECTED)


@dataclass(frozen=True)
class StoreRecord:
    """One version of one custom key store. Holds no secret, by construction."""

    store_id: str
    region: str
    name: str
    store_type: str
    creation_date: float
    seq: int
    phase: Phase
    cloudhsm_cluster_id: str | None = None
    trust_anchor_certificate: str | None = None
    xks_uri_endpoint: str | None = None
    xks_uri_path: str | None = None
    xks_connectivity: str | None = None
    xks_vpc_endpoint_service_name: str | None = None
    xks_vpc_endpoint_service_owner: str | None = None
    xks_access_key_id: str | None = None
    account: str = DEFAULT_ACCOUNT

    def entry(self, at: float) -> dict[str, Any]:
        """The ``CustomKeyStoresListEntry`` for this store as it stands at ``at``."""
        phase = self.phase.at(at)
        entry: dict[str, Any] = {
            "CustomKeyStoreId": self.store_id,
            "CustomKeyStoreName": self.name,
            "CustomKeyStoreType": self.store_type,
            "ConnectionState": phase.state.value,
        }
        if phase.state is ConnectionState.FAILED and phase.error_code is not None:
            entry["ConnectionErrorCode"] = phase.error_code
        entry["CreationDate"] = self.creation_date
        if self.store_type == CLOUDHSM:
            entry["CloudHsmClusterId"] = self.cloudhsm_cluster_id
            entry["TrustAnchorCertificate"] = self.trust_anchor_certificate
        else:
            config: dict[str, Any] = {
                "Connectivity": self.xks_connectivity,
                "AccessKeyId": self.xks_access_key_id,
                "UriEndpoint": self.xks_uri_endpoint,
                "UriPath": self.xks_uri_path,
            }
            if self.xks_vpc_endpoint_service_name is not None:
                config["VpcEndpointServiceName"] = self.xks_vpc_endpoint_service_name
            if self.xks_vpc_endpoint_service_owner is not None:
                config["VpcEndpointServiceOwner"] = self.xks_vpc_endpoint_service_owner
            entry["XksProxyConfiguration"] = config
        return entry


def new_store_id() -> str:
    """A random id shaped like KMS's: ``cks-`` and 17 lowercase hex digits."""
    return "cks-" + secrets.token_hex(9)[:17]


def invalid_state(message: str) -> KmsError:
    """A ``CustomKeyStoreInvalidStateException``."""
    return KmsError("CustomKeyStoreInvalidStateException", message)


def _invalid(message: str) -> KmsError:
    return KmsError("ValidationException", message)


def store_fields(store_type: str, params: Mapping[str, Any], account: str = DEFAULT_ACCOUNT) -> dict[str, Any]:
    """The record fields of a new store of ``store_type`` from create parameters, checking the per-type rules.

    The model cannot say which members each type needs, so this is where a missing or misplaced member is
    caught (``ValidationException``). Secrets are checked for presence and dropped.
    """
    if store_type == CLOUDHSM:
        misplaced = [name for name in _XKS_FIELDS if params.get(name) is not None]
        if misplaced:
            raise _invalid(f"{misplaced[0]} is not valid for a custom key store of type {CLOUDHSM}.")
        missing = [name for name in _CLOUDHSM_CREATE_FIELDS if params.get(name) is None]
        if missing:
            raise _invalid(f"A custom key store of type {CLOUDHSM} requires {', '.join(missing)}.")
        return {
            "cloudhsm_cluster_id": params["CloudHsmClusterId"],
            "trust_anchor_certificate": params["TrustAnchorCertificate"],
        }
    misplaced = [name for name in _CLOUDHSM_CREATE_FIELDS if params.get(name) is not None]
    if misplaced:
        raise _invalid(f"{misplaced[0]} is not valid for a custom key store of type {EXTERNAL}.")
    missing = [name for name in _XKS_REQUIRED if params.get(name) is None]
    if missing:
        raise _invalid(f"A custom key store of type {EXTERNAL} requires {', '.join(missing)}.")
    fields = {
        "xks_uri_endpoint": params["XksProxyUriEndpoint"],
        "xks_uri_path": params["XksProxyUriPath"],
        "xks_connectivity": params["XksProxyConnectivity"],
        "xks_vpc_endpoint_service_name": params.get("XksProxyVpcEndpointServiceName"),
        "xks_vpc_endpoint_service_owner": params.get("XksProxyVpcEndpointServiceOwner"),
        "xks_access_key_id": params["XksProxyAuthenticationCredential"]["AccessKeyId"],
    }
    _check_connectivity(fields)
    return _default_owner(fields, account)


def _default_owner(fields: dict[str, Any], account: str) -> dict[str, Any]:
    # CreateCustomKeyStore's XksProxyVpcEndpointServiceOwner: "If not provided, the Amazon Web Services account ID
    # calling the action will be used."
    if fields["xks_connectivity"] == VPC_ENDPOINT_SERVICE and fields["xks_vpc_endpoint_service_owner"] is None:
        return {**fields, "xks_vpc_endpoint_service_owner": account}
    return fields


def _check_connectivity(fields: Mapping[str, Any]) -> None:
    if fields["xks_connectivity"] == VPC_ENDPOINT_SERVICE:
        if fields["xks_vpc_endpoint_service_name"] is None:
            raise _invalid(
                f"XksProxyVpcEndpointServiceName is required when XksProxyConnectivity is {VPC_ENDPOINT_SERVICE}."
            )
    elif fields["xks_vpc_endpoint_service_name"] is not None or fields["xks_vpc_endpoint_service_owner"] is not None:
        raise _invalid(
            "XksProxyVpcEndpointServiceName and XksProxyVpcEndpointServiceOwner are valid only when "
            f"XksProxyConnectivity is {VPC_ENDPOINT_SERVICE}."
        )


@dataclass
class _Slot:
    """The recent versions of one store id, oldest first, for eventually consistent reads.

    ``versions`` holds ``(effective_time, record or None once deleted)``; ``born`` is when the store became
    visible (``-inf`` for stores created directly).
    """

    born: float
    versions: list[tuple[float, StoreRecord | None]]

    @property
    def latest(self) -> StoreRecord | None:
        return self.versions[-1][1]

    def as_of(self, when: float) -> StoreRecord | None:
        if when < self.born:
            return None
        chosen = self.versions[0][1]
        for effective, record in self.versions:
            if effective > when:
                break
            chosen = record
        return chosen


@dataclass
class _Region:
    slots: dict[str, _Slot]
    next_seq: int = 0


@dataclass(frozen=True)
class Checkpoint:
    """An opaque copy of a registry's contents (its keys too), to roll back a change that could not be saved."""

    regions: dict[str, _Region]
    keys: KeyCheckpoint


class StoreRegistry:
    """Every custom key store of one account, per Region, with the operations' rules; ``keys`` holds the account's
    KMS keys and aliases.

    Not thread-safe: the caller holds one lock around every call.
    """

    def __init__(
        self,
        store_limit: int | None = DEFAULT_STORE_LIMIT,
        consistency_lag: float = 0.0,
        new_id: Callable[[], str] = new_store_id,
        account: str = DEFAULT_ACCOUNT,
        key_limit: int | None = DEFAULT_KEY_LIMIT,
    ) -> None:
        self.account = account
        self.store_limit = store_limit
        self.consistency_lag = consistency_lag
        self._new_id = new_id
        self._regions: dict[str, _Region] = {}
        self.keys = KeyRing(account, self, key_limit)

    # -- reading ---------------------------------------------------------------------------------------

    def regions(self) -> list[str]:
        """Regions that hold at least one store."""
        return sorted(name for name, region in self._regions.items() if any(s.latest for s in region.slots.values()))

    def stores(self, region: str) -> list[StoreRecord]:
        """The current (true) stores of ``region`` in creation order."""
        slots = self._regions.get(region)
        if slots is None:
            return []
        current = [slot.latest for slot in slots.slots.values() if slot.latest is not None]
        return sorted(current, key=lambda record: record.seq)

    def all_stores(self) -> list[StoreRecord]:
        """Every current store of every Region."""
        return [record for region in sorted(self._regions) for record in self.stores(region)]

    def find(self, region: str, store_id: str) -> StoreRecord | None:
        """The current record of ``store_id`` in ``region``, or None."""
        slots = self._regions.get(region)
        slot = slots.slots.get(store_id) if slots else None
        return slot.latest if slot else None

    def get(self, region: str, store_id: str) -> StoreRecord:
        """The current record of ``store_id`` in ``region``, or ``CustomKeyStoreNotFoundException``."""
        record = self.find(region, store_id)
        if record is None:
            raise not_found(store_id)
        return record

    def state_of(self, region: str, store_id: str, now: float) -> Phase:
        """The true phase of a store at ``now``, ignoring the consistency lag."""
        return self.get(region, store_id).phase.at(now)

    # -- operations ------------------------------------------------------------------------------------

    def create(self, region: str, params: Mapping[str, Any], now: float, created_at: float) -> StoreRecord:
        """CreateCustomKeyStore: a new DISCONNECTED store (``params`` already valid against the model)."""
        store_type = params.get("CustomKeyStoreType") or CLOUDHSM
        fields = store_fields(store_type, params, self.account)
        current = self.stores(region)
        self._check_name_free(current, params["CustomKeyStoreName"], None)
        if store_type == CLOUDHSM:
            cluster = fields["cloudhsm_cluster_id"]
            if any(record.cloudhsm_cluster_id == cluster for record in current):
                raise KmsError(
                    "CloudHsmClusterInUseException",
                    f"CloudHSM cluster {cluster} is already associated with a custom key store in this account "
                    "and Region.",
                )
        else:
            self._check_xks_free(current, fields, None)
        if self.store_limit is not None and len(current) >= self.store_limit:
            raise KmsError(
                "LimitExceededException",
                f"This account already has {len(current)} custom key stores in {region}; the quota is "
                f"{self.store_limit}.",
            )
        record = StoreRecord(
            store_id=self.fresh_id(),
            region=region,
            name=params["CustomKeyStoreName"],
            store_type=store_type,
            creation_date=created_at,
            seq=self._region(region).next_seq,
            phase=settled(ConnectionState.DISCONNECTED),
            account=self.account,
            **fields,
        )
        self._put(record, now, new=True)
        return record

    def connect(self, region: str, store_id: str, now: float, seconds: float, outcome: ConnectOutcome) -> bool:
        """ConnectCustomKeyStore; True when a connect started, False for the no-op in CONNECTING/CONNECTED."""
        record = self.get(region, store_id)
        phase = record.phase.at(now)
        if phase.state is ConnectionState.FAILED:
            raise invalid_state(
                f"Custom key store {store_id} cannot be connected: its connection state is FAILED "
                f"(ConnectionErrorCode {phase.error_code}). Disconnect it, then connect it again."
            )
        if phase.state is ConnectionState.DISCONNECTING:
            raise invalid_state(
                f"Custom key store {store_id} cannot be connected: its connection state is DISCONNECTING. "
                "Wait until it is DISCONNECTED, then connect it."
            )
        if phase.state in (ConnectionState.CONNECTED, ConnectionState.CONNECTING):
            return False
        self._put(replace(record, phase=connecting(now, seconds, outcome)), now)
        return True

    def disconnect(self, region: str, store_id: str, now: float, seconds: float) -> None:
        """DisconnectCustomKeyStore from CONNECTED, CONNECTING or FAILED."""
        record = self.get(region, store_id)
        phase = record.phase.at(now)
        if phase.state in (ConnectionState.DISCONNECTED, ConnectionState.DISCONNECTING):
            raise invalid_state(
                f"Custom key store {store_id} cannot be disconnected: its connection state is {phase.state.value}."
            )
        self._put(replace(record, phase=disconnecting(now, seconds)), now)

    def update(self, region: str, store_id: str, params: Mapping[str, Any], now: float) -> None:
        """UpdateCustomKeyStore, with the per-state rules of the module docstring."""
        record = self.get(region, store_id)
        state = record.phase.at(now).state
        given = {name for name, value in params.items() if value is not None}
        if record.store_type == CLOUDHSM:
            misplaced = [name for name in _XKS_FIELDS if name in given]
            guarded = [name for name in _CLOUDHSM_UPDATE_FIELDS if name in given]
        else:
            misplaced = [name for name in _CLOUDHSM_UPDATE_FIELDS if name in given]
            guarded = [name for name in _XKS_FIELDS if name in given and name not in _XKS_UPDATABLE_CONNECTED]
        if misplaced:
            raise _invalid(f"{misplaced[0]} is not valid for a custom key store of type {record.store_type}.")
        # CustomKeyStoreInvalidStateException's documentation: "You requested the UpdateCustomKeyStore or
        # DeleteCustomKeyStore operation on a custom key store that is not disconnected. UpdateCustomKeyStore can be
        # called on a custom key store in the CONNECTED state only to update NewCustomKeyStoreName." (The operation's
        # own documentation adds an external store's credential and URI path.) No other state allows any change.
        if state not in (ConnectionState.DISCONNECTED, ConnectionState.CONNECTED):
            raise invalid_state(
                f"Custom key store {store_id} cannot be updated: its connection state is {state.value}. Update it "
                "when it is DISCONNECTED (or, for a rename"
                + (", a new proxy credential or URI path" if record.store_type == EXTERNAL else "")
                + ", CONNECTED)."
            )
        if guarded and state is not ConnectionState.DISCONNECTED:
            raise invalid_state(
                f"Custom key store {store_id} must be DISCONNECTED to update {', '.join(guarded)}: its connection "
                f"state is {state.value}."
            )
        changes: dict[str, Any] = {}
        new_name = params.get("NewCustomKeyStoreName")
        if new_name is not None and new_name != record.name:
            self._check_name_free(self.stores(region), new_name, store_id)
            changes["name"] = new_name
        if record.store_type == CLOUDHSM:
            if params.get("CloudHsmClusterId") is not None:
                changes["cloudhsm_cluster_id"] = params["CloudHsmClusterId"]
        else:
            changes.update(self._xks_changes(record, params))
        self._put(replace(record, **changes), now)

    def _xks_changes(self, record: StoreRecord, params: Mapping[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "xks_uri_endpoint": params.get("XksProxyUriEndpoint") or record.xks_uri_endpoint,
            "xks_uri_path": params.get("XksProxyUriPath") or record.xks_uri_path,
            "xks_connectivity": params.get("XksProxyConnectivity") or record.xks_connectivity,
            "xks_vpc_endpoint_service_name": params.get("XksProxyVpcEndpointServiceName")
            or record.xks_vpc_endpoint_service_name,
            "xks_vpc_endpoint_service_owner": params.get("XksProxyVpcEndpointServiceOwner")
            or record.xks_vpc_endpoint_service_owner,
            "xks_access_key_id": record.xks_access_key_id,
        }
        credential = params.get("XksProxyAuthenticationCredential")
        if credential is not None:
            fields["xks_access_key_id"] = credential["AccessKeyId"]
        connectivity = params.get("XksProxyConnectivity")
        # UpdateCustomKeyStore's XksProxyConnectivity: "If you change the XksProxyConnectivity to
        # VPC_ENDPOINT_SERVICE, you must also change the XksProxyUriEndpoint [...]. If you change the
        # XksProxyConnectivity to PUBLIC_ENDPOINT, you must also change the XksProxyUriEndpoint [...]."
        if connectivity is not None and connectivity != record.xks_connectivity:
            endpoint = params.get("XksProxyUriEndpoint")
            if endpoint is None or endpoint == record.xks_uri_endpoint:
                raise _invalid(
                    f"Changing XksProxyConnectivity to {connectivity} requires a new XksProxyUriEndpoint in the same "
                    f"request (the current one is {record.xks_uri_endpoint})."
                )
        if connectivity == PUBLIC_ENDPOINT:
            # Switching to a public endpoint drops the VPC settings unless the same request sets them (an error).
            if params.get("XksProxyVpcEndpointServiceName") is None:
                fields["xks_vpc_endpoint_service_name"] = None
            if params.get("XksProxyVpcEndpointServiceOwner") is None:
                fields["xks_vpc_endpoint_service_owner"] = None
        _check_connectivity(fields)
        fields = _default_owner(fields, record.account)
        self._check_xks_free(self.stores(record.region), fields, record.store_id)
        return fields

    def delete(self, region: str, store_id: str, now: float) -> None:
        """DeleteCustomKeyStore: only a DISCONNECTED store with no KMS keys."""
        record = self.get(region, store_id)
        state = record.phase.at(now).state
        if state is not ConnectionState.DISCONNECTED:
            raise invalid_state(
                f"Custom key store {store_id} cannot be deleted: its connection state is {state.value}. "
                "Disconnect it first."
            )
        count = self.keys.count_in_store(region, store_id, now)
        if count:
            raise KmsError(
                "CustomKeyStoreHasCMKsException",
                f"Custom key store {store_id} cannot be deleted: it contains {count} KMS keys. "
                "Schedule their deletion and wait until they are deleted.",
            )
        self._put_deleted(region, store_id, now)

    def describe(
        self,
        region: str,
        now: float,
        store_id: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        marker: str | None = None,
    ) -> dict[str, Any]:
        """DescribeCustomKeyStores as of ``now - consistency_lag``, one page."""
        if store_id is not None and name is not None:
            raise _invalid("Specify either CustomKeyStoreId or CustomKeyStoreName, not both.")
        when = now - self.consistency_lag
        self._prune(region, now)
        region_slots = self._regions.get(region)
        visible: list[StoreRecord] = []
        if region_slots is not None:
            for slot in region_slots.slots.values():
                record = slot.as_of(when)
                if record is not None:
                    visible.append(record)
        visible.sort(key=lambda record: record.seq)
        if store_id is not None:
            visible = [record for record in visible if record.store_id == store_id]
            if not visible:
                raise not_found(store_id)
        if name is not None:
            visible = [record for record in visible if record.name == name]
            if not visible:
                raise KmsError(
                    "CustomKeyStoreNotFoundException",
                    f"No custom key store named {name} exists in this account and Region.",
                )
        if marker is not None:
            after = decode_marker(marker, region)
            visible = [record for record in visible if record.seq > after]
        page_size = MAX_PAGE if limit is None else limit
        page, rest = visible[:page_size], visible[page_size:]
        response: dict[str, Any] = {"CustomKeyStores": [record.entry(when) for record in page], "Truncated": bool(rest)}
        if rest:
            response["NextMarker"] = encode_marker(region, page[-1].seq)
        return response

    # -- direct changes (seeds, test set-up, persistence) ----------------------------------------------

    def insert(self, record: StoreRecord) -> StoreRecord:
        """Add a store as it is, visible at once, bypassing the quota; the id and name must be free.

        ``record.seq`` is replaced by the next sequence number of its Region unless it is already past it
        (a store loaded from a state file keeps its order).
        """
        if record.account != self.account:
            raise ValueError(f"custom key store {record.store_id} is of account {record.account}, not {self.account}")
        if any(self.find(region, record.store_id) for region in self._regions):
            raise ValueError(f"custom key store {record.store_id} already exists")
        self._check_name_free(self.stores(record.region), record.name, None)
        region = self._region(record.region)
        if record.seq < region.next_seq:
            record = replace(record, seq=region.next_seq)
        region.next_seq = record.seq + 1
        region.slots[record.store_id] = _Slot(-math.inf, [(-math.inf, record)])
        return record

    def set_phase(self, region: str, store_id: str, phase: Phase) -> None:
        """Put a store in ``phase`` directly, visible at once (test set-up and seeds)."""
        record = self.get(region, store_id)
        slot = self._regions[region].slots[store_id]
        slot.versions = [(-math.inf, replace(record, phase=phase))]

    def clear(self) -> None:
        """Forget every store of every Region, and every key."""
        self._regions.clear()
        self.keys.clear()

    def checkpoint(self) -> Checkpoint:
        """A copy of the contents, for ``restore``."""
        copied: dict[str, _Region] = {}
        for name, region in self._regions.items():
            slots = {store_id: _Slot(slot.born, list(slot.versions)) for store_id, slot in region.slots.items()}
            copied[name] = _Region(slots, region.next_seq)
        return Checkpoint(copied, self.keys.checkpoint())

    def restore(self, checkpoint: Checkpoint) -> None:
        """Go back to the contents of ``checkpoint``."""
        self._regions = checkpoint.regions
        self.keys.restore(checkpoint.keys)

    # -- internals -------------------------------------------------------------------------------------

    def _region(self, region: str) -> _Region:
        return self._regions.setdefault(region, _Region({}))

    def fresh_id(self) -> str:
        """A new store id not used in any Region."""
        while True:
            candidate = self._new_id()
            if not any(candidate in region.slots for region in self._regions.values()):
                return candidate

    def _put(self, record: StoreRecord, now: float, new: bool = False) -> None:
        region = self._region(record.region)
        if new:
            region.next_seq = record.seq + 1
            region.slots[record.store_id] = _Slot(now, [(now, record)])
        else:
            region.slots[record.store_id].versions.append((now, record))
        self._prune(record.region, now)

    def _put_deleted(self, region: str, store_id: str, now: float) -> None:
        self._regions[region].slots[store_id].versions.append((now, None))
        self._prune(region, now)

    def _prune(self, region: str, now: float) -> None:
        # Keep the newest version that is already visible plus everything newer; drop ids whose deletion is
        # visible. This bounds history to what a reader lagging by `consistency_lag` can still see.
        region_slots = self._regions.get(region)
        if region_slots is None:
            return
        horizon = now - self.consistency_lag
        for store_id in list(region_slots.slots):
            slot = region_slots.slots[store_id]
            keep_from = 0
            for index, (effective, _record) in enumerate(slot.versions):
                if effective <= horizon:
                    keep_from = index
            slot.versions = slot.versions[keep_from:]
            if slot.versions[0][1] is None and slot.versions[0][0] <= horizon and len(slot.versions) == 1:
                del region_slots.slots[store_id]

    @staticmethod
    def _check_name_free(current: Iterable[StoreRecord], name: str, own_id: str | None) -> None:
        if any(record.name == name and record.store_id != own_id for record in current):
            raise KmsError(
                "CustomKeyStoreNameInUseException",
                f"A custom key store named {name} already exists in this account and Region.",
            )

    @staticmethod
    def _check_xks_free(current: Iterable[StoreRecord], fields: Mapping[str, Any], own_id: str | None) -> None:
        endpoint = fields["xks_uri_endpoint"]
        is_vpc = fields["xks_connectivity"] == VPC_ENDPOINT_SERVICE
        service = fields["xks_vpc_endpoint_service_name"]
        for other in current:
            if other.store_id == own_id or other.store_type != EXTERNAL:
                continue
            if other.xks_uri_endpoint == endpoint and other.xks_uri_path == fields["xks_uri_path"]:
                raise KmsError(
                    "XksProxyUriInUseException",
                    f"The proxy URI {endpoint}{fields['xks_uri_path']} is already associated with custom key store "
                    f"{other.store_id}.",
                )
            if other.xks_uri_endpoint == endpoint and (is_vpc or other.xks_connectivity == VPC_ENDPOINT_SERVICE):
                raise KmsError(
                    "XksProxyUriEndpointInUseException",
                    f"The proxy URI endpoint {endpoint} is already associated with custom key store {other.store_id}.",
                )
            if service is not None and other.xks_vpc_endpoint_service_name == service:
                raise KmsError(
                    "XksProxyVpcEndpointServiceInUseException",
                    f"The VPC endpoint service {service} is already associated with custom key store {other.store_id}.",
                )


def encode_marker(region: str, seq: int) -> str:
    """An opaque pagination marker: the last sequence number returned, bound to its Region."""
    raw = json.dumps({"r": region, "s": seq}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_marker(marker: str, region: str) -> int:
    """The sequence number in ``marker``, or ``InvalidMarkerException`` if it is not one of ours for ``region``."""
    invalid = KmsError(
        "InvalidMarkerException",
        "The marker is not valid: pass the NextMarker of the previous DescribeCustomKeyStores response unchanged.",
    )
    try:
        decoded = json.loads(base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid from None
    if not isinstance(decoded, dict) or decoded.get("r") != region:
        raise invalid
    seq = decoded.get("s")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise invalid
    return seq
