"""The emulated service: KMS operations over the store registries (one per account, each with the account's KMS keys),
STS, faults, the call log and persistence.

This layer knows nothing of HTTP: it takes an operation name, its decoded parameters, the Region and the account
the request's credentials act in (``principal``), and returns the response object or raises ``KmsError`` /
``DropConnection``. One re-entrant lock serialises every request and every run-time change, so concurrent
clients can neither lose an update nor see half of one.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kms_connection.states import ConnectionState

from . import persistence, sts
from .accounts import DEFAULT_ACCOUNT, Accounts, Principal, check_account_id
from .calls import DROPPED, OK, Call, CallLog
from .clock import Clock
from .errors import EmulatorConfigError, EmulatorStateError, KmsError, not_found
from .faults import DropConnection, FaultPlan, drill_error, outcome_misfit, parse_outcome, store_drill_misfit
from .keys import (
    DEFAULT_KEY_LIMIT,
    KMS_ORIGIN,
    ORIGIN_OF_STORE_TYPE,
    AliasRecord,
    KeyRecord,
    KeyRing,
    check_alias_name,
    is_key_id,
    keys_in,
    new_key_id,
)
from .model import KEY_OPERATIONS, connection_error_codes, decode_blob, error_code_store_types, validate_input
from .seeding import DEFAULT_REGION, SeedSource, read_seed
from .store import (
    CLOUDHSM,
    EXTERNAL,
    PUBLIC_ENDPOINT,
    ConnectOutcome,
    Phase,
    StoreRecord,
    StoreRegistry,
    connecting,
    disconnecting,
    new_store_id,
    settled,
)

_MUTATING = frozenset(
    {
        "CreateCustomKeyStore",
        "ConnectCustomKeyStore",
        "DisconnectCustomKeyStore",
        "UpdateCustomKeyStore",
        "DeleteCustomKeyStore",
    }
)
_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
# Update members that only name the store: an update of these alone reaches neither the cluster nor the proxy.
_NAMING_MEMBERS = frozenset({"CustomKeyStoreId", "NewCustomKeyStoreName"})


def _non_negative(name: str, value: float) -> float:
    if value < 0:
        raise EmulatorConfigError(f"{name} cannot be negative (got {value!r})")
    return float(value)


def _raise_misfit(
    region: str, store_id: str, store_type: str, outcome: ConnectOutcome | None, drill: str | None
) -> None:
    for problem in (
        outcome_misfit(outcome, store_type) if outcome is not None else None,
        store_drill_misfit(drill, store_type) if drill is not None else None,
    ):
        if problem is not None:
            raise EmulatorConfigError(f"custom key store {store_id} in {region}: {problem}")


class KmsService:
    """One emulated endpoint's state and behaviour: KMS in every account and Region, and STS."""

    def __init__(
        self,
        *,
        clock: Clock,
        faults: Callable[[], FaultPlan],
        connect_seconds: float,
        disconnect_seconds: float,
        store_limit: int | None,
        consistency_lag: float,
        state_file: Path | None = None,
        seed: SeedSource | None = None,
        call_log_limit: int = 10_000,
        wall: Callable[[], float] = time.time,
        accounts: Accounts | None = None,
        key_limit: int | None = DEFAULT_KEY_LIMIT,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self._make_faults = faults
        self.faults = faults()
        self._initial = (connect_seconds, disconnect_seconds, consistency_lag)
        self._connect_seconds = _non_negative("connect_seconds", connect_seconds)
        self._disconnect_seconds = _non_negative("disconnect_seconds", disconnect_seconds)
        if store_limit is not None and store_limit < 0:
            raise EmulatorConfigError(f"store_limit cannot be negative (got {store_limit!r})")
        self._store_limit = store_limit
        if key_limit is not None and key_limit < 0:
            raise EmulatorConfigError(f"key_limit cannot be negative (got {key_limit!r})")
        self._key_limit = key_limit
        self._consistency_lag = _non_negative("consistency_lag", consistency_lag)
        self._registries: dict[str, StoreRegistry] = {}
        self.accounts = accounts if accounts is not None else Accounts(wall=wall)
        self.call_log = CallLog(call_log_limit)
        self.state_file = state_file
        self._wall = wall
        # Read the seed first: a broken seed must stop the emulator before it touches the state file.
        self._seed = read_seed(seed, wall()) if seed is not None else []
        if state_file is not None:
            loaded = persistence.load(state_file, clock.now(), wall())
            if loaded is not None:
                self._insert_saved(loaded, state_file)
        self._apply_seed()
        # Outcomes and drills given at construction name stores that exist only now (seeds, the state file).
        self._check_drills_fit()

    # -- settings --------------------------------------------------------------------------------------

    @property
    def connect_seconds(self) -> float:
        """How long a connect takes, for connects started from now on."""
        return self._connect_seconds

    @connect_seconds.setter
    def connect_seconds(self, value: float) -> None:
        with self.lock:
            self._connect_seconds = _non_negative("connect_seconds", value)

    @property
    def disconnect_seconds(self) -> float:
        """How long a disconnect takes, for disconnects started from now on."""
        return self._disconnect_seconds

    @disconnect_seconds.setter
    def disconnect_seconds(self, value: float) -> None:
        with self.lock:
            self._disconnect_seconds = _non_negative("disconnect_seconds", value)

    @property
    def consistency_lag(self) -> float:
        """How far behind the true state DescribeCustomKeyStores answers, in seconds."""
        return self._consistency_lag

    @consistency_lag.setter
    def consistency_lag(self, value: float) -> None:
        with self.lock:
            self._consistency_lag = _non_negative("consistency_lag", value)
            for registry in self._registries.values():
                registry.consistency_lag = self._consistency_lag

    # -- accounts --------------------------------------------------------------------------------------

    def registry(self, account: str) -> StoreRegistry:
        """The stores of one account (an empty registry for an account not seen yet)."""
        with self.lock:
            registry = self._registries.get(account)
            if registry is None:
                registry = StoreRegistry(
                    self._store_limit, self._consistency_lag, self._fresh_id, account=account, key_limit=self._key_limit
                )
                self._registries[account] = registry
            return registry

    def _fresh_id(self) -> str:
        # Ids are unique across accounts, as KMS's are: faults and drills name a store by Region and id alone.
        while True:
            candidate = new_store_id()
            if self._locate(candidate) is None:
                return candidate

    def _locate(self, store_id: str, region: str | None = None) -> StoreRecord | None:
        """The current record of ``store_id`` in any account (in ``region`` only, when given), or None."""
        for registry in self._registries.values():
            for name in [region] if region is not None else registry.regions():
                record = registry.find(name, store_id)
                if record is not None:
                    return record
        return None

    def account_of(self, store_id: str, region: str) -> str:
        """The account that holds ``store_id`` in ``region``; ``KmsError`` (not found) if none does."""
        with self.lock:
            record = self._locate(store_id, region)
            if record is None:
                raise not_found(store_id)
            return record.account

    def principal(self, access_key_id: str, session_token: str | None, service: str) -> Principal:
        """Who a request signed with ``access_key_id`` acts as; the AWS error if its session is not usable."""
        return self.accounts.principal(access_key_id, session_token, service=service)

    def all_records(self) -> list[StoreRecord]:
        """Every current store of every account and Region, accounts in order."""
        return [record for account in sorted(self._registries) for record in self._registries[account].all_stores()]

    # -- requests --------------------------------------------------------------------------------------

    def handle(
        self,
        operation: str,
        params: dict[str, Any],
        region: str,
        account: str = DEFAULT_ACCOUNT,
        caller: str | None = None,
    ) -> dict[str, Any]:
        """Answer one KMS request (``operation`` is one of ``OPERATIONS``) in ``account``, logging it in the call
        log; ``caller`` is the principal's ARN, as a denied request's message names it."""
        store_id = params.get("CustomKeyStoreId") if isinstance(params.get("CustomKeyStoreId"), str) else None
        with self.lock:
            now = self.clock.now()
            try:
                self.faults.check(
                    operation, region, now, account, caller, _resource(operation, params, region, account)
                )
                validate_input(operation, params)
                if operation in KEY_OPERATIONS:
                    response = self._dispatch_key(operation, params, region, now, account)
                else:
                    response = self._dispatch(operation, params, region, now, account)
            except DropConnection:
                self.record_call(operation, store_id, region, DROPPED, now, account)
                raise
            except KmsError as error:
                self.record_call(operation, store_id, region, error.code, now, account)
                raise
            if operation == "CreateCustomKeyStore":
                store_id = response["CustomKeyStoreId"]
            self.record_call(operation, store_id, region, OK, now, account)
            return response

    def handle_sts(self, action: str, params: dict[str, str], region: str, caller: Principal) -> dict[str, Any]:
        """Answer one STS request by ``caller`` (see ``sts``), logging it in the call log."""
        with self.lock:
            now = self.clock.now()
            try:
                result = sts.handle(self.accounts, action, params, caller)
            except KmsError as error:
                self.record_call(action, None, region, error.code, now, caller.account, "sts")
                raise
            self.record_call(action, None, region, OK, now, caller.account, "sts")
            return result

    def record_call(
        self,
        operation: str,
        store_id: str | None,
        region: str | None,
        outcome: str,
        now: float | None = None,
        account: str | None = None,
        service: str = "kms",
    ) -> None:
        """Add a request to the call log (also used by the HTTP layer for requests refused before dispatch)."""
        when = self.clock.now() if now is None else now
        self.call_log.record(Call(operation, store_id, region, when, outcome, account, service))

    def _dispatch(
        self, operation: str, params: dict[str, Any], region: str, now: float, account: str
    ) -> dict[str, Any]:
        registry = self.registry(account)
        if operation == "DescribeCustomKeyStores":
            return registry.describe(
                region,
                now,
                store_id=params.get("CustomKeyStoreId"),
                name=params.get("CustomKeyStoreName"),
                limit=params.get("Limit"),
                marker=params.get("Marker"),
            )
        assert operation in _MUTATING, operation
        checkpoint = registry.checkpoint()
        response: dict[str, Any] = {}
        changed = True
        # Whether the request reaches the store's CloudHSM cluster or proxy, where a drill's cause lies.
        reaches_backing = False
        store_id = params.get("CustomKeyStoreId", "")
        if operation == "CreateCustomKeyStore":
            record = registry.create(region, params, now, self._wall())
            response = {"CustomKeyStoreId": record.store_id}
            reaches_backing = True
        elif operation == "ConnectCustomKeyStore":
            outcome = self.faults.connect_outcome(region, store_id)
            changed = reaches_backing = registry.connect(region, store_id, now, self._connect_seconds, outcome)
        elif operation == "DisconnectCustomKeyStore":
            registry.disconnect(region, store_id, now, self._disconnect_seconds)
        elif operation == "UpdateCustomKeyStore":
            registry.update(region, store_id, params, now)
            reaches_backing = any(value is not None for name, value in params.items() if name not in _NAMING_MEMBERS)
        else:
            registry.delete(region, store_id, now)
            self.faults.forget_store(region, store_id)
        if reaches_backing:
            store_type = params.get("CustomKeyStoreType") or CLOUDHSM
            if operation != "CreateCustomKeyStore":
                store_type = registry.get(region, store_id).store_type
            error = self.faults.take_drill(operation, region, store_id or None, store_type)
            if error is not None:
                registry.restore(checkpoint)
                raise drill_error(error)
        if changed:
            try:
                self._save(now)
            except OSError as error:
                # Answer as KMS answers a failure on its side, and keep memory and disk in step.
                registry.restore(checkpoint)
                raise KmsError(
                    "KMSInternalException", f"The emulator could not save its state file: {error}", 500
                ) from error
        return response

    def _dispatch_key(
        self, operation: str, params: dict[str, Any], region: str, now: float, account: str
    ) -> dict[str, Any]:
        registry = self.registry(account)
        keys = registry.keys
        if operation == "DescribeKey":
            return keys.describe_key(region, params["KeyId"], now)
        if operation == "ListKeys":
            return keys.list_keys(region, now, params.get("Limit"), params.get("Marker"))
        if operation == "ListAliases":
            return keys.list_aliases(region, now, params.get("KeyId"), params.get("Limit"), params.get("Marker"))
        if operation in ("Encrypt", "Decrypt", "GenerateDataKey"):
            return _cryptographic(keys, operation, params, region, now)
        checkpoint = registry.checkpoint()
        wall = self._wall()
        response: dict[str, Any] = {}
        key_ref = params.get("KeyId", "")
        if operation == "CreateKey":
            record = keys.create_key(region, params, now, wall)
            store_id = record.custom_key_store_id
            if store_id is not None:
                # Making the key material reaches the store's cluster or proxy, where a drill's cause lies.
                store_type = registry.get(region, store_id).store_type
                error = self.faults.take_drill(operation, region, store_id, store_type)
                if error is not None:
                    registry.restore(checkpoint)
                    raise drill_error(error)
            response = {"KeyMetadata": record.metadata(registry, now)}
        elif operation == "CreateAlias":
            keys.create_alias(region, params["AliasName"], params["TargetKeyId"], now, wall)
        elif operation == "EnableKey":
            keys.enable_key(region, key_ref, now)
        elif operation == "DisableKey":
            keys.disable_key(region, key_ref, now)
        elif operation == "ScheduleKeyDeletion":
            response = keys.schedule_deletion(region, key_ref, params.get("PendingWindowInDays"), now, wall)
        else:
            assert operation == "CancelKeyDeletion", operation
            response = keys.cancel_deletion(region, key_ref, now)
        try:
            self._save(now)
        except OSError as error:
            registry.restore(checkpoint)
            raise KmsError(
                "KMSInternalException", f"The emulator could not save its state file: {error}", 500
            ) from error
        return response

    # -- direct access (tests, admin) ------------------------------------------------------------------

    def create_store(
        self,
        name: str,
        region: str = DEFAULT_REGION,
        store_type: str = CLOUDHSM,
        store_id: str | None = None,
        connection_state: str = "DISCONNECTED",
        error_code: str | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> str:
        """Create a store directly (not logged, no quota, visible at once), with placeholder settings."""
        check_account_id(account, "account")
        if store_type not in (CLOUDHSM, EXTERNAL):
            raise EmulatorConfigError(f"store_type must be {CLOUDHSM} or {EXTERNAL} (got {store_type!r})")
        state = self._state(connection_state)
        if error_code is not None and store_type not in error_code_store_types(error_code):
            types = " and ".join(sorted(error_code_store_types(error_code)))
            raise EmulatorConfigError(f"ConnectionErrorCode {error_code} belongs to {types} stores, not {store_type}")
        with self.lock:
            now = self.clock.now()
            if store_id is not None:
                # An outcome or drill set earlier for this id must fit the store it now names.
                self._check_fits(region, store_id, store_type)
            if store_id is not None and self._locate(store_id) is not None:
                raise EmulatorConfigError(f"custom key store {store_id} already exists")
            new_id = store_id or self._fresh_id()
            registry = self.registry(account)
            fields: dict[str, Any]
            if store_type == CLOUDHSM:
                fields = {
                    "cloudhsm_cluster_id": "cluster-" + "".join(secrets.choice(_BASE32) for _ in range(11)),
                    "trust_anchor_certificate": "-----BEGIN CERTIFICATE-----\nEMULATOR\n-----END CERTIFICATE-----",
                }
            else:
                fields = {
                    "xks_uri_endpoint": f"https://xks-{new_id.removeprefix('cks-')}.example.com",
                    "xks_uri_path": "/kms/xks/v1",
                    "xks_connectivity": PUBLIC_ENDPOINT,
                    "xks_access_key_id": "".join(secrets.choice(_BASE32.upper()) for _ in range(20)),
                }
            record = StoreRecord(
                store_id=new_id,
                region=region,
                name=name,
                store_type=store_type,
                creation_date=self._wall(),
                seq=0,
                phase=settled(ConnectionState.DISCONNECTED),
                account=account,
                **fields,
            )
            try:
                registry.insert(record)
            except ValueError as error:
                raise EmulatorConfigError(str(error)) from None
            except KmsError as error:
                raise EmulatorConfigError(error.message) from None
            registry.set_phase(region, new_id, self._initial_phase(region, new_id, state, error_code, now))
            self._save(now)
            return new_id

    def set_connect_outcome(
        self, region: str, store_id: str, outcome: str | ConnectOutcome, error_code: str | None = None
    ) -> None:
        """How connects of one store end; ``EmulatorConfigError`` for a code of the other store type."""
        parsed = parse_outcome(outcome, error_code)
        with self.lock:
            self.check_fits(region, store_id, outcome=parsed)
            self.faults.set_connect_outcome(region, store_id, parsed)

    def drill_store(self, region: str, store_id: str, error: str | None) -> None:
        """Set (or, with None, clear) one store's drill; ``EmulatorConfigError`` for an error of the other type."""
        with self.lock:
            if error is not None:
                self.check_fits(region, store_id, drill=error)
            self.faults.drill_store(region, store_id, error)

    def check_fits(
        self, region: str, store_id: str, outcome: ConnectOutcome | None = None, drill: str | None = None
    ) -> None:
        """Raise ``EmulatorConfigError`` if an outcome or drill for a store does not belong to its type.

        A store that does not exist yet is checked when it does (``create_store``, seeds, a state file).
        """
        record = self._locate(store_id, region)
        if record is not None:
            _raise_misfit(region, store_id, record.store_type, outcome, drill)

    def state_of(self, store_id: str, region: str = DEFAULT_REGION) -> Phase:
        """The true phase of a store now (in whichever account holds it), ignoring the consistency lag; ``KmsError``
        if there is none."""
        with self.lock:
            return self.registry(self.account_of(store_id, region)).state_of(region, store_id, self.clock.now())

    def create_key(
        self,
        store_id: str | None = None,
        region: str = DEFAULT_REGION,
        *,
        account: str | None = None,
        description: str = "",
        enabled: bool = True,
        aliases: tuple[str, ...] = (),
        key_id: str | None = None,
        xks_key_id: str | None = None,
    ) -> str:
        """Create a KMS key directly (not logged, no quota, whatever the store's state) and return its id.

        In ``store_id`` (then in the store's account; its origin follows the store's type, an external key gets an
        ``xks_key_id``) or, with None, an ``AWS_KMS`` key of ``account`` (default 000000000000). ``aliases`` are
        created for it. ``EmulatorConfigError`` for an unknown store, a taken id or alias, or a bad name.
        """
        with self.lock:
            now = self.clock.now()
            if store_id is not None:
                store = self._locate(store_id, region)
                if store is None:
                    raise EmulatorConfigError(f"no custom key store {store_id} in {region}")
                owner = store.account
                if account is not None and account != owner:
                    raise EmulatorConfigError(f"custom key store {store_id} is of account {owner}, not {account}")
            else:
                store = None
                owner = check_account_id(account or DEFAULT_ACCOUNT, "account")
            registry = self.registry(owner)
            new_id = key_id or new_key_id()
            if not is_key_id(new_id):
                raise EmulatorConfigError(f"a KMS key id is a lower-case UUID (got {new_id!r})")
            if store is not None and store.store_type == EXTERNAL:
                xks_key_id = xks_key_id or f"xks-{new_id}"
            elif xks_key_id is not None:
                raise EmulatorConfigError("xks_key_id is for a key in an external key store")
            record = KeyRecord(
                key_id=new_id,
                region=region,
                account=owner,
                creation_date=self._wall(),
                seq=0,
                origin=ORIGIN_OF_STORE_TYPE[store.store_type] if store is not None else KMS_ORIGIN,
                description=description,
                custom_key_store_id=store_id,
                cloudhsm_cluster_id=store.cloudhsm_cluster_id if store is not None else None,
                xks_key_id=xks_key_id,
                enabled=enabled,
            )
            checkpoint = registry.checkpoint()
            try:
                if any(self.registry(a).keys.find(new_id) for a in list(self._registries)):
                    raise ValueError(f"KMS key {new_id} already exists")
                registry.keys.insert_key(record)
                for name in aliases:
                    self._insert_alias(registry, region, name, new_id)
            except (ValueError, KmsError) as error:
                registry.restore(checkpoint)
                raise EmulatorConfigError(error.message if isinstance(error, KmsError) else str(error)) from None
            self._save(now)
            return new_id

    def _key_registry(self, key_id: str, region: str) -> StoreRegistry:
        for registry in self._registries.values():
            key = registry.keys.find(key_id)
            if key is not None and key.region == region:
                return registry
        raise EmulatorConfigError(f"no KMS key {key_id} in {region}")

    def _insert_alias(self, registry: StoreRegistry, region: str, name: str, key_id: str) -> None:
        check_alias_name(name)
        wall = self._wall()
        registry.keys.insert_alias(AliasRecord(name, region, registry.account, key_id, wall, wall, 0))

    def create_alias(self, name: str, key_id: str, region: str = DEFAULT_REGION) -> None:
        """Point a new alias at a key directly (not logged); ``EmulatorConfigError`` for a bad or taken name."""
        with self.lock:
            registry = self._key_registry(key_id, region)
            try:
                self._insert_alias(registry, region, name, key_id)
            except (ValueError, KmsError) as error:
                raise EmulatorConfigError(error.message if isinstance(error, KmsError) else str(error)) from None
            self._save(self.clock.now())

    def set_key_count(self, store_id: str, count: int, region: str = DEFAULT_REGION) -> None:
        """Make the store hold exactly ``count`` KMS keys: new enabled keys are created directly, or the newest
        are deleted at once (as if their deletion window had passed)."""
        if count < 0:
            raise EmulatorConfigError(f"a key count cannot be negative (got {count!r})")
        with self.lock:
            registry = self.registry(self.account_of(store_id, region))
            held = keys_in(registry.keys.keys(region, self.clock.now()), store_id)
            for key in held[count:][::-1]:
                registry.keys.remove_key(region, key.key_id)
        for _ in range(count - len(held)):
            self.create_key(store_id, region)
        with self.lock:
            self._save(self.clock.now())

    def keys(self) -> list[dict[str, Any]]:
        """Every KMS key of every account and Region as DescribeKey shows it, with its aliases, for the admin
        endpoint."""
        with self.lock:
            now = self.clock.now()
            found: list[dict[str, Any]] = []
            for account in sorted(self._registries):
                registry = self._registries[account]
                aliases = registry.keys.all_aliases(now)
                for key in registry.keys.all_keys(now):
                    names = [alias.name for alias in aliases if alias.target_key_id == key.key_id]
                    found.append({"Region": key.region, **key.metadata(registry, now), "Aliases": names})
            return found

    def stores(self) -> list[dict[str, Any]]:
        """Every store of every account and Region with its true current state (no secrets), for the admin
        endpoint."""
        with self.lock:
            now = self.clock.now()
            return [
                {"Account": record.account, "Region": record.region, **record.entry(now)}
                for record in self.all_records()
            ]

    def save(self) -> None:
        """Write the state file now (if any), e.g. on shutdown, so settled transitions are saved settled."""
        with self.lock:
            self._save(self.clock.now())

    def reset(self) -> None:
        """Back to the state at construction: no stores but the seeds, initial faults and timing, empty log."""
        with self.lock:
            self._registries.clear()
            self.faults = self._make_faults()
            self.accounts.reset()
            self._connect_seconds, self._disconnect_seconds, self._consistency_lag = self._initial
            self.call_log.clear()
            self._apply_seed(force_save=True)
            self._check_drills_fit()

    # -- internals -------------------------------------------------------------------------------------

    @staticmethod
    def _state(value: str) -> ConnectionState:
        try:
            return ConnectionState(value)
        except ValueError:
            raise EmulatorConfigError(
                f"unknown connection state {value!r}: one of {', '.join(s.value for s in ConnectionState)}"
            ) from None

    def _check_fits(self, region: str, store_id: str, store_type: str) -> None:
        outcome, drill = self.faults.outcome_of(region, store_id), self.faults.store_drill(region, store_id)
        _raise_misfit(region, store_id, store_type, outcome, drill)

    def _check_drills_fit(self) -> None:
        for record in self.all_records():
            self._check_fits(record.region, record.store_id, record.store_type)

    def _initial_phase(
        self, region: str, store_id: str, state: ConnectionState, error_code: str | None, now: float
    ) -> Phase:
        if state is ConnectionState.FAILED:
            if error_code not in connection_error_codes():
                raise EmulatorConfigError(
                    f"a FAILED store needs an error_code, one of {', '.join(connection_error_codes())}"
                )
            return settled(state, error_code)
        if error_code is not None:
            raise EmulatorConfigError("error_code is valid only with connection_state FAILED")
        if state is ConnectionState.CONNECTING:
            return connecting(now, self._connect_seconds, self.faults.connect_outcome(region, store_id))
        if state is ConnectionState.DISCONNECTING:
            return disconnecting(now, self._disconnect_seconds)
        return settled(state)

    def _apply_seed(self, force_save: bool = False) -> None:
        with self.lock:
            now = self.clock.now()
            added = False
            for entry in self._seed:
                record = entry.record
                if entry.outcome is not None:
                    self.faults.set_connect_outcome(record.region, record.store_id, entry.outcome)
                if self._locate(record.store_id) is not None:
                    continue
                try:
                    self.registry(record.account).insert(record)
                except KmsError as error:
                    raise EmulatorStateError(f"seed store {record.store_id}: {error.message}") from None
                phase = self._initial_phase(record.region, record.store_id, entry.state, entry.error_code, now)
                self.registry(record.account).set_phase(record.region, record.store_id, phase)
                for key in entry.keys:
                    try:
                        self.create_key(
                            record.store_id,
                            record.region,
                            description=key.description,
                            enabled=key.enabled,
                            aliases=key.aliases,
                            key_id=key.key_id,
                            xks_key_id=key.xks_key_id,
                        )
                    except EmulatorConfigError as error:
                        raise EmulatorStateError(f"seed store {record.store_id}: {error}") from None
                added = True
            if added or force_save:
                self._save(now)

    def _save(self, now: float) -> None:
        if self.state_file is not None:
            registries = [self._registries[account] for account in sorted(self._registries)]
            keys = [key for registry in registries for key in registry.keys.all_keys(now)]
            aliases = [alias for registry in registries for alias in registry.keys.all_aliases(now)]
            persistence.save(self.state_file, self.all_records(), now, self._wall(), keys, aliases)

    def _insert_saved(self, saved: persistence.Saved, state_file: Path) -> None:
        for record in saved.stores:
            self.registry(record.account).insert(record)
        try:
            for key in saved.keys:
                self.registry(key.account).keys.insert_key(key)
            for alias in saved.aliases:
                self.registry(alias.account).keys.insert_alias(alias)
        except ValueError as error:
            raise EmulatorStateError(f"state file {state_file}: {error}") from None


_DATA_KEY_BYTES = {"AES_256": 32, "AES_128": 16}
_DRY_RUN = "The request would have succeeded, but the DryRun option is set."


def _resource(operation: str, params: dict[str, Any], region: str, account: str) -> str:
    """The resource a denial names: the key a request acts on, or ``*`` for a request on no one key."""
    key_ref = params.get("KeyId") or params.get("TargetKeyId")
    if operation not in KEY_OPERATIONS or operation in ("CreateKey", "ListKeys") or not isinstance(key_ref, str):
        return "*"
    if key_ref.startswith("arn:"):
        return key_ref
    if key_ref.startswith("alias/"):
        return f"arn:aws:kms:{region}:{account}:{key_ref}"
    return f"arn:aws:kms:{region}:{account}:key/{key_ref}"


def _encoded(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _cryptographic(keys: KeyRing, operation: str, params: dict[str, Any], region: str, now: float) -> dict[str, Any]:
    """Encrypt, Decrypt or GenerateDataKey (``params`` already valid against the model)."""
    if params.get("Recipient") is not None:
        raise KmsError("ValidationException", "The KMS emulator does not support Recipient (Nitro Enclaves).")
    algorithm = params.get("EncryptionAlgorithm")
    if algorithm is not None and algorithm != "SYMMETRIC_DEFAULT":
        raise KmsError(
            "InvalidKeyUsageException",
            f"Symmetric encryption KMS keys support the SYMMETRIC_DEFAULT encryption algorithm, not {algorithm}.",
        )
    context: dict[str, str] = params.get("EncryptionContext") or {}
    if operation == "Decrypt":
        ciphertext = decode_blob(params.get("CiphertextBlob"))
        if ciphertext is None:
            raise KmsError("ValidationException", "CiphertextBlob is required.")
        key, plaintext = keys.decrypt(region, ciphertext, params.get("KeyId"), context, now)
        if params.get("DryRun"):
            raise KmsError("DryRunOperationException", _DRY_RUN)
        return {"KeyId": key.arn, "Plaintext": _encoded(plaintext), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    if operation == "Encrypt":
        plaintext = decode_blob(params["Plaintext"]) or b""
        key, sealed = keys.encrypt(region, params["KeyId"], plaintext, context, now)
        if params.get("DryRun"):
            raise KmsError("DryRunOperationException", _DRY_RUN)
        return {"CiphertextBlob": _encoded(sealed), "KeyId": key.arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    count, spec = params.get("NumberOfBytes"), params.get("KeySpec")
    if (count is None) == (spec is None):
        raise KmsError("ValidationException", "Specify either KeySpec or NumberOfBytes, but not both.")
    data_key = secrets.token_bytes(count if count is not None else _DATA_KEY_BYTES[str(spec)])
    key, sealed = keys.encrypt(region, params["KeyId"], data_key, context, now)
    if params.get("DryRun"):
        raise KmsError("DryRunOperationException", _DRY_RUN)
    return {"CiphertextBlob": _encoded(sealed), "Plaintext": _encoded(data_key), "KeyId": key.arn}
