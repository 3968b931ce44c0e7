"""The Pulumi dynamic provider behind ``CustomKeyStoreConnection``: check, diff, create, update, delete, read.

The engine runs it in its own process (``python -u -m pulumi.dynamic``), unpickling one instance that every
resource of the stack shares across the server's four worker threads. The instance pickles to a reference to
this class and nothing else; boto3 clients are made lazily in the provider process, one per Region.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Mapping
from typing import Any

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown
from pulumi.runtime import rpc

from . import inputs as names
from .gateway import KeyStore, KmsGateway, make_client
from .inputs import INPUT_NAMES, SET_INPUT_NAMES, check_inputs, check_set_inputs
from .plan import Observation, describe_plan, plan
from .reconciler import Goal, Reconciler
from .settings import REGION_HELP, AwsSettings
from .states import DesiredState, OnDelete

OUTPUT_NAMES = (
    "connection_state",
    "connection_error_code",
    "custom_key_store_type",
    "custom_key_store_name",
    "cloud_hsm_cluster_id",
    "xks_proxy_uri_endpoint",
)
SET_OUTPUT_NAMES = ("connection_states", "connection_error_codes")
# Inputs whose change points the resource at another store, so it is replaced rather than updated.
REPLACE_ON_CHANGE = (names.CUSTOM_KEY_STORE_ID, names.REGION)
UPDATE_IN_PLACE = (names.DESIRED_STATE, names.ON_DELETE, names.CONNECT_TIMEOUT, names.DISCONNECT_TIMEOUT)


def log(line: str) -> None:
    """Tell the user something: the engine shows a dynamic provider's stderr lines as info diagnostics."""
    print(line, file=sys.stderr, flush=True)


class _KmsProvider(ResourceProvider):
    """What both providers share: settings from the stack config, and one KMS gateway per Region."""

    def __init__(self) -> None:
        super().__init__()
        self._setup()

    def _setup(self) -> None:
        self._settings: AwsSettings | None = None
        self._gateways: dict[str, KmsGateway] = {}
        self._lock = threading.Lock()

    # Pickled into every resource's state: keep it to the class reference. Settings and clients belong to the
    # provider process, and a boto3 client cannot be pickled at all.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self._setup()

    def configure(self, req: ConfigureRequest) -> None:
        self._settings = AwsSettings.from_stack_config(req.config.get)

    @property
    def settings(self) -> AwsSettings:
        # Without configure() (the engine always calls it) the environment still gives a Region.
        if self._settings is None:
            self._settings = AwsSettings.from_stack_config(lambda _key: None)
        return self._settings

    def gateway(self, region: str) -> KmsGateway:
        """The KMS gateway for ``region``, made on first use and shared by every resource and thread."""
        with self._lock:
            gateway = self._gateways.get(region)
            if gateway is None:
                gateway = KmsGateway(make_client(self.settings, region), region)
                self._gateways[region] = gateway
            return gateway

    def reconciler(self, region: str) -> Reconciler:
        return Reconciler(self.gateway(region), log=log)


class CustomKeyStoreConnectionProvider(_KmsProvider):
    """Converges a custom key store's connection state; see ``CustomKeyStoreConnection``."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        checked, failures = check_inputs(news, self.settings.region, is_unknown)
        return CheckResult(checked, [CheckFailure(f.property, f.reason) for f in failures])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        replaces = [key for key in REPLACE_ON_CHANGE if is_unknown(news.get(key)) or news.get(key) != olds.get(key)]
        if replaces:
            return DiffResult(changes=True, replaces=replaces, delete_before_replace=False)
        inputs_changed = any(news.get(key) != olds.get(key) for key in UPDATE_IN_PLACE)
        desired = news.get(names.DESIRED_STATE)
        if is_unknown(desired):
            return DiffResult(changes=True, replaces=[])
        store_id, region = str(news[names.CUSTOM_KEY_STORE_ID]), str(news[names.REGION])
        # The one read a preview makes: drift shows against what KMS says now, not what the state file says.
        store = self.gateway(region).describe(store_id)
        work = announce(store_id, region, store, DesiredState(desired))
        return DiffResult(changes=inputs_changed or work, replaces=[])

    def create(self, props: dict[str, Any]) -> CreateResult:
        store_id = str(props[names.CUSTOM_KEY_STORE_ID])
        return CreateResult(store_id, self._converge(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._converge(news))

    def _converge(self, props: Mapping[str, Any]) -> dict[str, Any]:
        desired = DesiredState(props[names.DESIRED_STATE])
        timeout_input = names.CONNECT_TIMEOUT if desired is DesiredState.CONNECTED else names.DISCONNECT_TIMEOUT
        store = self.reconciler(str(props[names.REGION])).converge(
            str(props[names.CUSTOM_KEY_STORE_ID]),
            desired,
            float(props[timeout_input]),
            timeout_input=timeout_input,
        )
        assert store is not None  # converge() raises for a missing store unless missing_ok
        return outputs(props, store)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        store_id, region = str(props[names.CUSTOM_KEY_STORE_ID]), str(props[names.REGION])
        if props.get(names.ON_DELETE) == OnDelete.RETAIN.value:
            log(f"{store_id}: on_delete is 'retain': leaving the store as it is")
            return
        store = self.reconciler(region).converge(
            store_id,
            DesiredState.DISCONNECTED,
            float(props.get(names.DISCONNECT_TIMEOUT) or names.DEFAULTS[names.DISCONNECT_TIMEOUT]),
            timeout_input=names.DISCONNECT_TIMEOUT,
            missing_ok=True,
        )
        if store is None:
            log(f"warning: {store_id}: not found in {region}; nothing to disconnect")

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        store_id = str(props.get(names.CUSTOM_KEY_STORE_ID) or id_)
        region = props.get(names.REGION) or self.settings.region
        if not region:
            raise ValueError(f"custom key store {store_id}: no AWS Region to read it from: {REGION_HELP}.")
        store = self.gateway(str(region)).describe(store_id)
        if store is None:
            log(f"warning: {store_id}: not found in {region}; removing the connection from the stack")
            return ReadResult("", {})
        given = {key: props[key] for key in INPUT_NAMES if props.get(key) is not None}
        given.setdefault(names.CUSTOM_KEY_STORE_ID, store_id)
        given.setdefault(names.REGION, region)
        return ReadResult(id_ or store_id, outputs(given, store), given)


def announce(store_id: str, region: str, store: KeyStore | None, desired: DesiredState) -> bool:
    """Print what an update will do to a store, if anything (the preview's plan line); return whether it will."""
    observation = store.observation if store else Observation(None)
    steps = plan(observation, desired)
    if not steps:
        return False
    if store is None:
        log(
            f"{store_id}: not found in {region}, desired {desired.value}: the update will fail; "
            "run `pulumi refresh` to drop the connection from the stack if the store was deleted"
        )
    else:
        log(f"{store_id}: observed {observation.describe()}, desired {desired.value}: {describe_plan(steps)}")
    return True


def outputs(inputs: Mapping[str, Any], store: KeyStore) -> dict[str, Any]:
    """The resource's full outputs: its inputs and what KMS said about the store."""
    result = {key: inputs[key] for key in INPUT_NAMES if inputs.get(key) is not None}
    result.update(
        connection_state=store.connection_state.value,
        connection_error_code=store.connection_error_code,
        custom_key_store_type=store.custom_key_store_type,
        custom_key_store_name=store.custom_key_store_name,
        cloud_hsm_cluster_id=store.cloud_hsm_cluster_id,
        xks_proxy_uri_endpoint=store.xks_proxy_uri_endpoint,
    )
    return result


def is_unknown(value: Any) -> bool:
    """Whether a property value is unknown during a preview.

    The provider server deserializes unknowns as ``pulumi.output.Unknown`` instances; the raw sentinel string
    is accepted too, as it appears before deserialization.
    """
    return isinstance(value, Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN)


class CustomKeyStoreConnectionSetProvider(_KmsProvider):
    """Converges several stores of one Region at once; see ``CustomKeyStoreConnectionSet``.

    One resource waits for all its stores in one worker thread, with one DescribeCustomKeyStores call per poll,
    so ten stores settle in about the time of the slowest rather than in turns of the server's four threads.
    """

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        checked, failures = check_set_inputs(news, self.settings.region, is_unknown)
        return CheckResult(checked, [CheckFailure(f.property, f.reason) for f in failures])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        region = news.get(names.REGION)
        if is_unknown(region) or region != olds.get(names.REGION):
            return DiffResult(changes=True, replaces=[names.REGION], delete_before_replace=False)
        store_ids = news.get(names.CUSTOM_KEY_STORE_IDS)
        desired = news.get(names.DESIRED_STATE)
        if is_unknown(store_ids) or any(is_unknown(i) for i in store_ids or []) or is_unknown(desired):
            return DiffResult(changes=True, replaces=[])
        inputs_changed = any(
            news.get(key) != olds.get(key) for key in (names.CUSTOM_KEY_STORE_IDS, *UPDATE_IN_PLACE)
        )
        goals = self._goals(olds, news)
        # One read for the whole set, however many stores it holds.
        stores = self.gateway(str(region)).describe_many(goals)
        work = [
            announce(store_id, str(region), stores[store_id], goal.desired)
            for store_id, goal in goals.items()
            if stores[store_id] is not None or not goal.missing_ok
        ]
        return DiffResult(changes=inputs_changed or any(work), replaces=[])

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(f"ckss-{uuid.uuid4().hex[:17]}", self._converge({}, props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._converge(olds, news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        store_ids = list(props.get(names.CUSTOM_KEY_STORE_IDS) or [])
        if props.get(names.ON_DELETE) == OnDelete.RETAIN.value:
            log(f"{', '.join(store_ids)}: on_delete is 'retain': leaving the stores as they are")
            return
        timeout = float(props.get(names.DISCONNECT_TIMEOUT) or names.DEFAULTS[names.DISCONNECT_TIMEOUT])
        goal = Goal(DesiredState.DISCONNECTED, timeout, names.DISCONNECT_TIMEOUT, missing_ok=True)
        stores = self.reconciler(str(props[names.REGION])).converge_many(dict.fromkeys(store_ids, goal))
        for store_id, store in stores.items():
            if store is None:
                log(f"warning: {store_id}: not found in {props[names.REGION]}; nothing to disconnect")

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        region = props.get(names.REGION) or self.settings.region
        if not region:
            raise ValueError(f"custom key store set {id_}: no AWS Region to read it from: {REGION_HELP}.")
        store_ids = list(props.get(names.CUSTOM_KEY_STORE_IDS) or [])
        stores = self.gateway(str(region)).describe_many(store_ids)
        for store_id, store in stores.items():
            if store is None:
                log(f"warning: {store_id}: not found in {region}")
        if not any(stores.values()):
            return ReadResult("", {})
        given = {key: props[key] for key in SET_INPUT_NAMES if props.get(key) is not None}
        given.setdefault(names.REGION, region)
        return ReadResult(id_, set_outputs(given, stores), given)

    def _goals(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> dict[str, Goal]:
        """Each member's goal, and for stores leaving the set what ``on_delete`` asks of them."""
        desired = DesiredState(news[names.DESIRED_STATE])
        timeout_input = names.CONNECT_TIMEOUT if desired is DesiredState.CONNECTED else names.DISCONNECT_TIMEOUT
        goal = Goal(desired, float(news[timeout_input]), timeout_input)
        goals = dict.fromkeys(news[names.CUSTOM_KEY_STORE_IDS], goal)
        if news.get(names.ON_DELETE) == OnDelete.DISCONNECT.value:
            leaving = Goal(
                DesiredState.DISCONNECTED, float(news[names.DISCONNECT_TIMEOUT]), names.DISCONNECT_TIMEOUT, True
            )
            for store_id in olds.get(names.CUSTOM_KEY_STORE_IDS) or []:
                goals.setdefault(store_id, leaving)
        return goals

    def _converge(self, olds: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
        goals = self._goals(olds, props)
        stores = self.reconciler(str(props[names.REGION])).converge_many(goals)
        members = {store_id: stores[store_id] for store_id in props[names.CUSTOM_KEY_STORE_IDS]}
        return set_outputs(props, members)


def set_outputs(inputs: Mapping[str, Any], stores: Mapping[str, KeyStore | None]) -> dict[str, Any]:
    """A set's full outputs: its inputs, and each member's observed state (and error code when FAILED)."""
    result = {key: inputs[key] for key in SET_INPUT_NAMES if inputs.get(key) is not None}
    result[SET_OUTPUT_NAMES[0]] = {sid: s.connection_state.value for sid, s in stores.items() if s is not None}
    result[SET_OUTPUT_NAMES[1]] = {
        sid: s.connection_error_code for sid, s in stores.items() if s is not None and s.connection_error_code
    }
    return result
