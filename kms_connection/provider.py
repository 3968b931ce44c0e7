"""The Pulumi dynamic providers behind ``CustomKeyStoreConnection`` and ``CustomKeyStoreConnectionSet``: check,
diff, create, update, delete, read.

The engine runs them in one process per deployment (``python -u -m pulumi.dynamic``), unpickling one instance
of each class that every resource of the stack shares across the server's four worker threads. An instance
pickles to a reference to its class and nothing else; boto3 clients are made lazily in the provider process, one
per Region. Deciding what to do is ``plan.py``'s and waiting is ``reconciler.py``'s; this module translates
between them and the engine's properties.
"""

from __future__ import annotations

import dataclasses
import functools
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
from .reconciler import NOT_FOUND_GRACE_SECONDS, Goal, Reconciler
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


class Claims:
    """Which resources of this deployment want which stores CONNECTED.

    The engine creates a resource's replacement before it deletes the old one, and creates renamed resources
    (or a set a store moved into) before it deletes the ones they replace. A delete that disconnected a store
    another resource had just connected would leave the state saying CONNECTED over a disconnected store, with
    every key in it unusable. The engine runs one provider process per deployment, so a process-wide record of
    who converged what is exactly the deployment's knowledge; resources are told apart by their ids.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[tuple[str, str], set[str]] = {}

    def record(self, region: str, store_id: str, resource_id: str, connected: bool) -> None:
        """Record whether ``resource_id`` wants the store CONNECTED."""
        with self._lock:
            holders = self._holders.setdefault((region, store_id), set())
            if connected:
                holders.add(resource_id)
            else:
                holders.discard(resource_id)

    def clear(self) -> None:
        """Forget every claim (a new deployment, in tests that run several in one process)."""
        with self._lock:
            self._holders.clear()

    def others(self, region: str, store_id: str, resource_id: str) -> set[str]:
        """The other resources that want the store CONNECTED."""
        with self._lock:
            return self._holders.get((region, store_id), set()) - {resource_id}


CLAIMS = Claims()


def new_deployment() -> None:
    """Forget the claims of the process: what a new provider process starts with. The engine starts one per
    deployment; tests that run many deployments in one process call this between them."""
    CLAIMS.clear()


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
        """The KMS gateway for ``region``, made on first use and shared by every resource and thread: one client,
        so botocore's adaptive retry mode paces all their calls together."""
        with self._lock:
            gateway = self._gateways.get(region)
            if gateway is None:
                gateway = KmsGateway(region, functools.partial(make_client, self.settings, region))
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
        # Unique per resource, so that two resources of one store (a rename, a replacement) can be told apart.
        resource_id = f"{store_id}/{uuid.uuid4().hex[:8]}"
        try:
            return CreateResult(resource_id, self._converge(resource_id, props, created=True))
        except Exception:
            # A failed create records no resource, so it holds no claim either.
            CLAIMS.record(str(props[names.REGION]), store_id, resource_id, False)
            raise

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._converge(id_, news, created=False))

    def _converge(self, resource_id: str, props: Mapping[str, Any], *, created: bool) -> dict[str, Any]:
        store_id, region = str(props[names.CUSTOM_KEY_STORE_ID]), str(props[names.REGION])
        goal = desired_goal(props, grace=NOT_FOUND_GRACE_SECONDS if created else 0.0)
        CLAIMS.record(region, store_id, resource_id, goal.desired is DesiredState.CONNECTED)
        store = self.reconciler(region).converge(store_id, goal)
        assert store is not None  # converge() raises for a missing store unless the goal is missing_ok
        return outputs(props, store)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        store_id, region = str(props[names.CUSTOM_KEY_STORE_ID]), str(props[names.REGION])
        CLAIMS.record(region, store_id, id_, False)
        if props.get(names.ON_DELETE) == OnDelete.RETAIN.value:
            log(f"{store_id}: on_delete is 'retain': leaving the store as it is")
            return
        if _claimed_elsewhere(region, store_id, id_):
            return
        store = self.reconciler(region).converge(store_id, disconnect_goal(props))
        _warn_missing({store_id: store}, region)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        store_id = str(props.get(names.CUSTOM_KEY_STORE_ID) or id_.split("/")[0])
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
        goals = set_goals(olds, news, grace=0.0)
        # One read for the whole set, however many stores it holds.
        stores = self.gateway(str(region)).describe_many(goals)
        work = [
            announce(store_id, str(region), stores[store_id], goal.desired)
            for store_id, goal in goals.items()
            if stores[store_id] is not None or not goal.missing_ok
        ]
        return DiffResult(changes=inputs_changed or any(work), replaces=[])

    def create(self, props: dict[str, Any]) -> CreateResult:
        resource_id = f"ckss-{uuid.uuid4().hex[:17]}"
        try:
            return CreateResult(resource_id, self._converge(resource_id, {}, props))
        except Exception:
            # A failed create records no resource, so it holds no claim either.
            for store_id in props[names.CUSTOM_KEY_STORE_IDS]:
                CLAIMS.record(str(props[names.REGION]), store_id, resource_id, False)
            raise

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(self._converge(id_, olds, news))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        region = str(props[names.REGION])
        store_ids = list(props.get(names.CUSTOM_KEY_STORE_IDS) or [])
        for store_id in store_ids:
            CLAIMS.record(region, store_id, id_, False)
        if props.get(names.ON_DELETE) == OnDelete.RETAIN.value:
            log(f"{', '.join(store_ids)}: on_delete is 'retain': leaving the stores as they are")
            return
        goal = disconnect_goal(props)
        goals = {store_id: goal for store_id in store_ids if not _claimed_elsewhere(region, store_id, id_)}
        _warn_missing(self.reconciler(region).converge_many(goals), region)

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

    def _converge(self, resource_id: str, olds: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
        region = str(props[names.REGION])
        connected = props[names.DESIRED_STATE] == DesiredState.CONNECTED.value
        for store_id in olds.get(names.CUSTOM_KEY_STORE_IDS) or []:
            CLAIMS.record(region, store_id, resource_id, False)
        for store_id in props[names.CUSTOM_KEY_STORE_IDS]:
            CLAIMS.record(region, store_id, resource_id, connected)
        members = props[names.CUSTOM_KEY_STORE_IDS]
        goals = {
            store_id: goal
            for store_id, goal in set_goals(olds, props, grace=NOT_FOUND_GRACE_SECONDS).items()
            if store_id in members or not _claimed_elsewhere(region, store_id, resource_id)
        }
        stores = self.reconciler(region).converge_many(goals)
        members = {store_id: stores[store_id] for store_id in props[names.CUSTOM_KEY_STORE_IDS]}
        return set_outputs(props, members)


def desired_goal(props: Mapping[str, Any], grace: float = 0.0) -> Goal:
    """The goal a resource's inputs ask for: its desired state, within that state's timeout input."""
    desired = DesiredState(props[names.DESIRED_STATE])
    timeout_input = names.CONNECT_TIMEOUT if desired is DesiredState.CONNECTED else names.DISCONNECT_TIMEOUT
    return Goal(desired, float(props[timeout_input]), timeout_input, not_found_grace=grace)


def disconnect_goal(props: Mapping[str, Any]) -> Goal:
    """What ``on_delete="disconnect"`` asks of a store: DISCONNECTED, or gone."""
    timeout = float(props.get(names.DISCONNECT_TIMEOUT) or names.DEFAULTS[names.DISCONNECT_TIMEOUT])
    return Goal(DesiredState.DISCONNECTED, timeout, names.DISCONNECT_TIMEOUT, missing_ok=True)


def set_goals(olds: Mapping[str, Any], news: Mapping[str, Any], *, grace: float) -> dict[str, Goal]:
    """Each member's goal (a new member may get ``grace`` to show up), and for stores leaving the set what
    ``on_delete`` asks of them."""
    old_members = list(olds.get(names.CUSTOM_KEY_STORE_IDS) or [])
    goal = desired_goal(news)
    goals = {
        store_id: dataclasses.replace(goal, not_found_grace=0.0 if store_id in old_members else grace)
        for store_id in news[names.CUSTOM_KEY_STORE_IDS]
    }
    if news.get(names.ON_DELETE) == OnDelete.DISCONNECT.value:
        leaving = disconnect_goal(news)
        for store_id in old_members:
            goals.setdefault(store_id, leaving)
    return goals


def _warn_missing(stores: Mapping[str, KeyStore | None], region: str) -> None:
    for store_id, store in stores.items():
        if store is None:
            log(f"warning: {store_id}: not found in {region} (deleted?); nothing left to disconnect")


def _claimed_elsewhere(region: str, store_id: str, resource_id: str) -> bool:
    if CLAIMS.others(region, store_id, resource_id):
        log(f"{store_id}: another resource of this stack connected it: leaving it connected")
        return True
    return False


def set_outputs(inputs: Mapping[str, Any], stores: Mapping[str, KeyStore | None]) -> dict[str, Any]:
    """A set's full outputs: its inputs, and each member's observed state (and error code when FAILED)."""
    result = {key: inputs[key] for key in SET_INPUT_NAMES if inputs.get(key) is not None}
    result[SET_OUTPUT_NAMES[0]] = {sid: s.connection_state.value for sid, s in stores.items() if s is not None}
    result[SET_OUTPUT_NAMES[1]] = {
        sid: s.connection_error_code for sid, s in stores.items() if s is not None and s.connection_error_code
    }
    return result
