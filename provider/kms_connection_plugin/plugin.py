"""The kms-connection resource provider plugin: the engine's provider protocol, on the SDK's
``pulumi.provider.experimental`` server, as a thin edge over the same core as the dynamic provider.

Every check, diff, converge and read is the dynamic provider's own (``kms_connection.provider``, itself an edge
over ``plan``, ``reconciler``, ``gateway``, ``inputs`` and ``settings``), called through its public
``ResourceProvider`` methods. What this module adds is only what a native provider has and a dynamic one cannot:

- property names as every Pulumi schema writes them (camelCase; translated both ways, messages included);
- ``customTimeouts``: the engine's timeout for a create, update or delete bounds the wait, in place of the
  timeout inputs, which stay the defaults;
- ``pulumi import``: Read with only an id adopts the store as it is (a settled state becomes the desired one);
- no pickled provider in any resource's state, and a schema (``schema.py``);
- an asynchronous server: each operation waits in a thread of its own, so many resources wait at once instead
  of in turns of the dynamic provider server's four worker threads.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from typing import Any, TypeVar

from pulumi.dynamic import CheckResult, ConfigureRequest
from pulumi.dynamic.config import Config
from pulumi.provider.experimental import provider as api
from pulumi.provider.experimental.server import main as serve

from kms_connection import inputs
from kms_connection.plan import Observation
from kms_connection.provider import CustomKeyStoreConnectionProvider, CustomKeyStoreConnectionSetProvider
from kms_connection.states import ConnectionState, DesiredState

from .diagnostics import Diagnostics
from .names import (
    CONFIG_KEYS,
    CONNECTION_TYPE,
    PACKAGE,
    SET_TYPE,
    camel,
    to_core,
    users_text,
)
from .values import plain_map, wire_map

T = TypeVar("T")

MAX_OPERATIONS = 256
"""Operations that may wait at once. Each holds a thread for its whole wait (the core waits by sleeping), and
the engine runs up to ``--parallel`` of them at once; asyncio's default executor (min(32, CPUs + 4) threads: 6 on
two cores) would put the seventh store in turns, the very limit of the dynamic provider this plugin lifts."""

# An imported store becomes a resource that declares the state it is in; a store on its way somewhere is not
# adopted, since declaring either state would make the import's own diff ask for a change.
_ADOPTED = {
    ConnectionState.CONNECTED.value: DesiredState.CONNECTED.value,
    ConnectionState.DISCONNECTED.value: DesiredState.DISCONNECTED.value,
}
_TIMEOUT_INPUTS = (inputs.CONNECT_TIMEOUT, inputs.DISCONNECT_TIMEOUT)

_Core = CustomKeyStoreConnectionProvider | CustomKeyStoreConnectionSetProvider
"""The dynamic provider of a resource type: the core's edge this plugin calls."""


class PluginError(Exception):
    """An operation failed; the message is the core's, in the users' names."""


class KmsConnectionProvider(api.Provider):
    """``CustomKeyStoreConnection`` and ``CustomKeyStoreConnectionSet`` as native resources."""

    def __init__(self, diagnostics: Diagnostics | None = None) -> None:
        self._diagnostics = diagnostics
        self._resources: dict[str, _Core] = {
            CONNECTION_TYPE: CustomKeyStoreConnectionProvider(),
            SET_TYPE: CustomKeyStoreConnectionSetProvider(),
        }
        self._pool = ThreadPoolExecutor(max_workers=MAX_OPERATIONS, thread_name_prefix=PACKAGE)

    # --- the package ---------------------------------------------------------------------------------------------

    async def get_schema(self, request: api.GetSchemaRequest) -> api.GetSchemaResponse:
        # Imported here: only `pulumi package get-schema` and SDK generation ask, never a deployment's start.
        from .schema import schema_json

        return api.GetSchemaResponse(schema=schema_json())

    async def configure(self, request: api.ConfigureRequest) -> api.ConfigureResponse:
        """Hand the provider config to the core as the stack config it reads (``aws:region`` and so on)."""
        args = plain_map(request.args)
        stack_config: dict[str, Any] = {}
        for key, core_key in CONFIG_KEYS.items():
            value = args.get(key, request.variables.get(f"{PACKAGE}:config:{key}"))
            if value is not None:
                stack_config[core_key] = value
        try:
            for resource in self._resources.values():
                resource.configure(ConfigureRequest(Config(stack_config, PACKAGE)))
        except ValueError as error:  # a config value the core cannot use, named
            raise PluginError(users_text(str(error))) from None
        # Secrets and resource references are left to the engine: it unwraps them for the plugin and marks as
        # secret each output named like a secret input. No preview Create or Update: a preview only reads.
        return api.ConfigureResponse(
            accept_secrets=False, supports_preview=False, accept_resources=False, accept_outputs=False
        )

    # --- resources -----------------------------------------------------------------------------------------------

    async def check(self, request: api.CheckRequest) -> api.CheckResponse:
        resource = self._resource(request.type)
        olds, news = self._core(request.old_inputs, request.name), self._core(request.new_inputs, request.name)
        result: CheckResult = await self._run(request.urn, lambda: resource.check(olds, news))
        failures = [api.CheckFailure(camel(f.property), users_text(f.reason)) for f in result.failures or []]
        return api.CheckResponse(inputs=self._wire(result.inputs), failures=failures)

    async def diff(self, request: api.DiffRequest) -> api.DiffResponse:
        resource = self._resource(request.type)
        olds, news = self._core(request.old_state), self._core(request.new_inputs, request.name)
        result = await self._run(request.urn, lambda: resource.diff(request.resource_id, olds, news))
        replaces = list(result.replaces or [])
        detailed = {}
        for key in self._inputs(request.type):
            if olds.get(key) != news.get(key):
                kind = api.PropertyDiffKind.UPDATE_REPLACE if key in replaces else api.PropertyDiffKind.UPDATE
                detailed[camel(key)] = api.PropertyDiff(kind, input_diff=True)
        if result.changes and not detailed:
            # Nothing the program says changed, yet KMS says the store is not as declared: drift, shown on the
            # observed state.
            drifted = "connection_state" if request.type == CONNECTION_TYPE else "connection_states"
            detailed[camel(drifted)] = api.PropertyDiff(api.PropertyDiffKind.UPDATE, input_diff=False)
        return api.DiffResponse(
            changes=bool(result.changes),
            replaces=[camel(key) for key in replaces],
            delete_before_replace=bool(result.delete_before_replace),
            diffs=list(detailed),
            detailed_diff=detailed,
        )

    async def create(self, request: api.CreateRequest) -> api.CreateResponse:
        resource = self._resource(request.type)
        props = self._core(request.properties, request.name)
        bounded, names = _bounded(props, request.timeout, "create")
        result = await self._run(request.urn, lambda: resource.create(bounded), names)
        return api.CreateResponse(result.id, self._wire(_unbounded(result.outs or {}, props)))

    async def update(self, request: api.UpdateRequest) -> api.UpdateResponse:
        resource = self._resource(request.type)
        olds, news = self._core(request.olds), self._core(request.news, request.name)
        bounded, names = _bounded(news, request.timeout, "update")
        result = await self._run(request.urn, lambda: resource.update(request.resource_id, olds, bounded), names)
        return api.UpdateResponse(self._wire(_unbounded(result.outs or {}, news)))

    async def delete(self, request: api.DeleteRequest) -> None:
        resource = self._resource(request.type)
        props = self._core(request.properties, request.name)
        bounded, names = _bounded(props, request.timeout, "delete", (inputs.DISCONNECT_TIMEOUT,))
        await self._run(request.urn, lambda: resource.delete(request.resource_id, bounded), names)

    async def read(self, request: api.ReadRequest) -> api.ReadResponse:
        """``pulumi refresh`` (the state's properties given), or ``pulumi import`` (only an id)."""
        resource = self._resource(request.type)
        if not request.properties:
            return await self._adopt(resource, request)
        props = self._core(request.properties, request.name)
        result = await self._run(request.urn, lambda: resource.read(request.resource_id, props))
        return api.ReadResponse(result.id or "", self._wire(result.outs or {}), self._wire(result.inputs or {}))

    async def _adopt(self, resource: _Core, request: api.ReadRequest) -> api.ReadResponse:
        """Import: the store named by the id, declared in the state it is in; no request but reads."""
        if request.type != CONNECTION_TYPE:
            raise PluginError(
                f"{request.type} cannot be imported: import each store as a {CONNECTION_TYPE} (its id is the "
                "store's id), or declare the set in the program: a store already in its desired state gets no "
                "request but a read."
            )
        store_id = request.resource_id
        given = {inputs.CUSTOM_KEY_STORE_ID: store_id, inputs.RESOURCE_NAME: request.name}
        checked: CheckResult = await self._run(request.urn, lambda: resource.check({}, given))
        if checked.failures:
            raise PluginError("; ".join(users_text(failure.reason) for failure in checked.failures))
        found = await self._run(request.urn, lambda: resource.read(store_id, checked.inputs))
        if not found.id:
            return api.ReadResponse("", {}, {})
        outputs = found.outs or {}
        desired = _ADOPTED.get(str(outputs.get("connection_state")))
        if desired is None:
            observed = Observation(ConnectionState(outputs["connection_state"]), outputs.get("connection_error_code"))
            raise PluginError(
                f"custom key store {store_id} is {observed.describe()}: import adopts a store in the state it is "
                "in, and this one is not settled. Import it once it is CONNECTED or DISCONNECTED, or declare it in "
                "the program with the desiredState you want: `pulumi up` converges it."
            )
        # The code `pulumi import` prints declares the store's id and its state; the rest is the defaults.
        declared = {inputs.CUSTOM_KEY_STORE_ID: checked.inputs[inputs.CUSTOM_KEY_STORE_ID]}
        declared[inputs.DESIRED_STATE] = desired
        if checked.inputs.get(inputs.REGION) != resource.settings.region:
            declared[inputs.REGION] = checked.inputs[inputs.REGION]
        adopted: CheckResult = await self._run(request.urn, lambda: resource.check({}, {**given, **declared}))
        return api.ReadResponse(store_id, self._wire({**outputs, **adopted.inputs}), self._wire(declared))

    # --- the edge ------------------------------------------------------------------------------------------------

    def _resource(self, type_token: str) -> _Core:
        try:
            return self._resources[type_token]
        except KeyError:
            known = ", ".join(self._resources)
            raise PluginError(f"unknown resource type {type_token}; this provider has {known}") from None

    def _inputs(self, type_token: str) -> tuple[str, ...]:
        return inputs.INPUT_NAMES if type_token == CONNECTION_TYPE else inputs.SET_INPUT_NAMES

    @staticmethod
    def _core(props: Mapping[str, Any], name: str | None = None) -> dict[str, Any]:
        """Wire properties in the core's names; with the resource's name, which the core tells resources by."""
        core = to_core(plain_map(props))
        if name:
            core[inputs.RESOURCE_NAME] = name
        return core

    @staticmethod
    def _wire(props: Mapping[str, Any]) -> dict[str, Any]:
        """Core properties as the engine's, in the users' names, without the core's own bookkeeping."""
        return wire_map({camel(key): value for key, value in props.items() if key != inputs.RESOURCE_NAME})

    async def _run(self, urn: str, call: Callable[[], T], names: Mapping[str, str] | None = None) -> T:
        """Run a blocking core call on its own thread, its lines shown on ``urn``; its errors reach the user in
        the users' names."""

        def run() -> T:
            if self._diagnostics is None:
                return call()
            with self._diagnostics.operation(urn, names):
                return call()

        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, run)
        except Exception as error:
            if type(error).__module__.split(".")[0] != "kms_connection" and not isinstance(error, ValueError):
                raise  # a bug: the server reports it with its frames
            raise PluginError(users_text(str(error), names)) from None


def _bounded(
    props: dict[str, Any], seconds: float, operation: str, timeouts: tuple[str, ...] = _TIMEOUT_INPUTS
) -> tuple[dict[str, Any], dict[str, str]]:
    """``props`` with the engine's timeout for the operation (``customTimeouts``; 0: none) in place of the timeout
    inputs, and how messages name it."""
    if not seconds or seconds <= 0:
        return props, {}
    bounded = {**props, **dict.fromkeys(timeouts, seconds)}
    return bounded, dict.fromkeys(timeouts, f"customTimeouts.{operation}")


def _unbounded(outputs: Mapping[str, Any], props: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs that record the timeout inputs as the program gave them, whatever bounded this operation."""
    result = dict(outputs)
    for key in _TIMEOUT_INPUTS:
        if key in props:
            result[key] = props[key]
    return result


def main() -> None:
    """Serve the plugin: print the port, answer the engine until it hangs up."""
    args = sys.argv[1:]
    # The engine passes its address first, as to every plugin (the server reads it the same way).
    engine = next((arg for arg in args if not arg.startswith("-")), None)
    diagnostics = Diagnostics(sys.stderr, engine)
    sys.stderr = diagnostics
    serve(args, metadata.version(PACKAGE), KmsConnectionProvider(diagnostics))

