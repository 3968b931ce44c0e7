"""The Pulumi dynamic provider behind ``CustomKeyStoreConnection``: check, diff, create, update, delete, read.

The engine runs it in its own process (``python -u -m pulumi.dynamic``), unpickling one instance that every
resource of the stack shares across the server's four worker threads. The instance pickles to a reference to
this class and nothing else; boto3 clients are made lazily in the provider process, one per Region.
"""

from __future__ import annotations

import sys
import threading
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
from .inputs import INPUT_NAMES, check_inputs
from .plan import Observation, describe_plan, plan
from .reconciler import Reconciler
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
# Inputs whose change points the resource at another store, so it is replaced rather than updated.
REPLACE_ON_CHANGE = (names.CUSTOM_KEY_STORE_ID, names.REGION)
UPDATE_IN_PLACE = (names.DESIRED_STATE, names.ON_DELETE, names.CONNECT_TIMEOUT, names.DISCONNECT_TIMEOUT)


def log(line: str) -> None:
    """Tell the user something: the engine shows a dynamic provider's stderr lines as info diagnostics."""
    print(line, file=sys.stderr, flush=True)


class CustomKeyStoreConnectionProvider(ResourceProvider):
    """Converges a custom key store's connection state; see ``CustomKeyStoreConnection``."""

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
        observation = store.observation if store else Observation(None)
        steps = plan(observation, DesiredState(desired))
        if steps:
            if store is None:
                log(
                    f"{store_id}: not found in {region}, desired {desired}: the update will fail; "
                    "run `pulumi refresh` to drop the connection from the stack if the store was deleted"
                )
            else:
                log(f"{store_id}: observed {observation.describe()}, desired {desired}: {describe_plan(steps)}")
        return DiffResult(changes=inputs_changed or bool(steps), replaces=[])

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
