"""Test support for the kms-connection policy pack: policy arguments built the way pulumi-policy builds them,
registrations recorded from a Pulumi program run under mocks, and the pack served the way the Pulumi CLI serves it.

Named so that it cannot collide with a helper module of the project's other test suite (pytest puts this directory
on ``sys.path``). It puts ``policy/`` on ``sys.path`` itself, as ``pulumi.policy`` does when it runs the pack.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import grpc
import pulumi
import pulumi.runtime
import pulumi_aws as aws
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime import proto
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi_policy import (
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import SPECIAL_SECRET_SIG, SPECIAL_SIG_KEY, deserialize_properties
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

POLICY_DIR = Path(__file__).resolve().parents[1]
if str(POLICY_DIR) not in sys.path:
    sys.path.insert(0, str(POLICY_DIR))

import kms_connection_policies as policies  # noqa: E402

from kms_connection import CustomKeyStoreConnection, CustomKeyStoreConnectionSet  # noqa: E402
from kms_connection.gateway import KeyStore  # noqa: E402
from kms_connection.inputs import check_inputs, check_set_inputs  # noqa: E402
from kms_connection.provider import is_unknown, outputs, set_outputs  # noqa: E402
from kms_connection.states import ConnectionState, remedy  # noqa: E402

__all__ = [
    "POLICY_DIR",
    "PROJECT",
    "STACK_PROGRAM",
    "UNKNOWN",
    "Diagnostic",
    "ObservedState",
    "Registration",
    "SimulatedProviders",
    "Violations",
    "analyze_all",
    "analyze_request",
    "analyze_stack_request",
    "annotate_secrets",
    "as_analyzed",
    "as_secret",
    "checked_inputs",
    "configure_like_the_cli",
    "connection_args",
    "example_program",
    "policies",
    "policy",
    "record_registrations",
    "registrations_of_program_file",
    "remedy",
    "reveal_secrets",
    "serving_policy_pack",
    "set_args",
    "stack_args",
    "stack_resource",
    "store_id",
    "urn",
    "validate",
]

UNKNOWN = UNKNOWN_STRING_VALUE
"""How the engine sends a string that is unknown during preview (``MarshalOptions{KeepUnknowns: true}``)."""

PROJECT = "kms-connection"

STACK_PROGRAM = POLICY_DIR.parent / "__main__.py"
"""The project's stack program."""


def urn(resource_type: str, name: str, stack: str = "prod") -> str:
    """The URN the engine gives a resource registered at the top of the stack."""
    return f"urn:pulumi:{stack}::{PROJECT}::{resource_type}::{name}"


def store_id(name: str) -> str:
    """A deterministic custom key store id (``cks-`` and 17 hex digits) for a store's resource name."""
    return "cks-" + hashlib.sha256(name.encode()).hexdigest()[:17]


# --- policy arguments, as pulumi_policy's analyzer server builds them ----------------------------------------------


def struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(dict(values))
    return message


def as_analyzed(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """``props`` through the wire and back, as ``_PolicyAnalyzerServicer`` does: a protobuf Struct (numbers become
    floats), ``deserialize_properties``, then the ``unknown_checking_proxy``."""
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct(props))))


def as_config(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Policy config as ``Configure`` stores it (``MessageToDict`` of the properties Struct)."""
    return None if config is None else json_format.MessageToDict(struct(config))


def default_options(additional_secret_outputs: Sequence[str] = ()) -> PolicyResourceOptions:
    """The options ``_get_resource_options`` builds for a request without options (but for
    ``additionalSecretOutputs``)."""
    return PolicyResourceOptions(
        False, [], None, [], PolicyCustomTimeouts(0, 0, 0), list(additional_secret_outputs), None
    )


def connection_args(
    props: Mapping[str, Any],
    *,
    name: str = "conn",
    stack: str = "prod",
    config: Mapping[str, Any] | None = None,
    resource_type: str = policies.CONNECTION_TYPE,
    additional_secret_outputs: Sequence[str] = (),
) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        resource_type,
        as_analyzed(props),
        urn(resource_type, name, stack),
        name,
        default_options(additional_secret_outputs),
        None,
        as_config(config),
        {},
    )


def set_args(
    props: Mapping[str, Any],
    *,
    name: str = "stores",
    stack: str = "prod",
    config: Mapping[str, Any] | None = None,
) -> ResourceValidationArgs:
    """``ResourceValidationArgs`` of a ``CustomKeyStoreConnectionSet``."""
    return connection_args(props, name=name, stack=stack, config=config, resource_type=policies.CONNECTION_SET_TYPE)


def stack_resource(resource_type: str, name: str, props: Mapping[str, Any], *, stack: str = "prod") -> PolicyResource:
    return PolicyResource(
        resource_type, as_analyzed(props), urn(resource_type, name, stack), name, default_options(), None, None, [], {}
    )


def stack_args(
    resources: Sequence[PolicyResource],
    *,
    property_dependencies: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    config: Mapping[str, Any] | None = None,
) -> StackValidationArgs:
    """``StackValidationArgs`` with ``property_dependencies`` (resource URN -> property -> URNs) resolved to the
    resource objects, as ``AnalyzeStack`` resolves them."""
    by_urn = {resource.urn: resource for resource in resources}
    for resource_urn, deps in (property_dependencies or {}).items():
        for key, urns in deps.items():
            by_urn[resource_urn].property_dependencies[key] = [by_urn[u] for u in urns if u in by_urn]
    return StackValidationArgs(list(resources), as_config(config), {})


@dataclass
class Violations:
    """A ``ReportViolation`` that records what it is given."""

    reported: list[tuple[str, str | None]] = field(default_factory=list)

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.reported.append((message, urn))

    @property
    def messages(self) -> list[str]:
        return [message for message, _ in self.reported]


def policy(name: str, stack: str = "prod") -> Policy:
    """The pack's policy ``name``, told that the analyzed stack is ``stack``."""
    (found,) = [p for p in policies.build_policies(stack_name=lambda: stack) if p.name == name]
    return found


def validate(
    policy_: Policy, args: ResourceValidationArgs | StackValidationArgs, violations: Violations | None = None
) -> Violations:
    """Call the policy as the analyzer server does (the pack's validations are synchronous), recording violations
    in ``violations`` (a new recorder by default), which keeps them when the policy defers by raising."""
    violations = Violations() if violations is None else violations
    if isinstance(policy_, ResourceValidationPolicy):
        assert isinstance(args, ResourceValidationArgs)
        result = policy_.validate(args, violations)
    else:
        assert isinstance(policy_, StackValidationPolicy) and isinstance(args, StackValidationArgs)
        result = policy_.validate(args, violations)
    assert result is None
    return violations


# --- registrations recorded from a program run under mocks ---------------------------------------------------------


class Registration(NamedTuple):
    """A resource as the program registered it: its inputs as they went over the wire (unknowns as the engine's
    sentinel, secrets marked as secrets), for each input the resources, as (type, name), it was computed from, and
    the outputs its ``additional_secret_outputs`` option names."""

    type: str
    name: str
    inputs: dict[str, Any]
    property_dependencies: Mapping[str, Sequence[tuple[str, str]]] = MappingProxyType({})
    additional_secret_outputs: Sequence[str] = ()


class _RecordingMonitor(MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                Registration(
                    request.type,
                    request.name,
                    json_format.MessageToDict(request.object),
                    {
                        key: [self._type_and_name(u) for u in deps.urns]
                        for key, deps in request.propertyDependencies.items()
                        if deps.urns
                    },
                    tuple(request.additionalSecretOutputs),
                )
            )
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]

    @staticmethod
    def _type_and_name(resource_urn: str) -> tuple[str, str]:
        # urn:pulumi:<stack>::<project>::<qualified type>::<name>; a qualified type is "<parent type>$<type>".
        _, _, qualified_type, name = resource_urn.split("::", 3)
        return qualified_type.split("$")[-1], name


class ObservedState(NamedTuple):
    connection_state: str
    connection_error_code: str | None = None


def as_secret(value: Any) -> dict[str, Any]:
    """``value`` marked as a secret, as the engine sends it (``MarshalOptions{KeepSecrets: true}``)."""
    return {SPECIAL_SIG_KEY: SPECIAL_SECRET_SIG, "value": value}


def _is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SPECIAL_SIG_KEY) == SPECIAL_SECRET_SIG


def _contains_secret(value: Any) -> bool:
    if _is_secret(value):
        return True
    if isinstance(value, dict):
        return any(_contains_secret(item) for item in value.values())
    if isinstance(value, list):
        return any(_contains_secret(item) for item in value)
    return False


def reveal_secrets(value: Any) -> Any:
    """``value`` without secret marks: what the engine sends a provider that does not accept secrets, as the
    Python dynamic provider server does not (``acceptSecrets: False``)."""
    if _is_secret(value):
        return reveal_secrets(value["value"])
    if isinstance(value, dict):
        return {key: reveal_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [reveal_secrets(item) for item in value]
    return value


def annotate_secrets(outs: Mapping[str, Any], ins: Mapping[str, Any]) -> dict[str, Any]:
    """``outs`` with the secret marks of ``ins`` restored, as the engine does for a provider that does not accept
    secrets (pulumi/pulumi ``annotateSecrets``): a property that contains a secret in ``ins`` is secret as a whole
    in ``outs``, except that objects on both sides are annotated key by key."""
    annotated = dict(outs)
    for key, in_value in ins.items():
        if key not in annotated:
            continue
        out_value = annotated[key]
        if isinstance(out_value, dict) and isinstance(in_value, dict) and not _is_secret(in_value):
            if not _is_secret(out_value):
                annotated[key] = annotate_secrets(out_value, in_value)
        elif not _is_secret(out_value) and _contains_secret(in_value):
            annotated[key] = as_secret(out_value)
    return annotated


def checked_inputs(resource_type: str, inputs: Mapping[str, Any], default_region: str) -> dict[str, Any]:
    """What the provider's ``check`` makes of a dynamic resource's inputs (defaults filled in, values canonical,
    unknowns kept, secrets marked again by the engine): the engine analyzes these, and they are the outputs of a
    resource created in a preview. Inputs ``check`` refuses fail the test, since the engine would stop there.
    Other types pass unchanged."""
    if resource_type not in policies.CONNECTION_TYPES:
        return dict(inputs)
    check = check_inputs if resource_type == policies.CONNECTION_TYPE else check_set_inputs
    checked, failures = check(reveal_secrets(inputs), default_region, is_unknown)
    assert not failures, f"{resource_type}: check refuses the inputs {dict(inputs)}: {failures}"
    return annotate_secrets({key: value for key, value in checked.items() if value is not None}, inputs)


class SimulatedProviders(pulumi.runtime.Mocks):
    """What the engine's state would hold after each step, with the property keys the engine uses.

    pulumi-aws gives a store an id: unknown in a preview, when it is being created, unless the store is one of
    ``existing`` (resource names), whose ids are known. The dynamic resources' outputs come from their provider's
    own ``check`` and output functions; each store reports the state given for its id in ``observed``, else the
    desired one. A preview creates nothing, so nothing is observed."""

    def __init__(
        self,
        *,
        preview: bool,
        observed: Mapping[str, ObservedState] | None = None,
        region: str = "eu-west-1",
        existing: Iterable[str] = (),
    ) -> None:
        self.preview = preview
        self.observed = dict(observed or {})
        self.region = region
        self.existing = frozenset(existing)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        outputs = self.outputs(args.typ, args.name, args.inputs)
        resource_id = outputs.get("id", f"{args.name}-id")
        return ("" if resource_id == UNKNOWN else resource_id), outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        return {}, None

    def analyzed_inputs(self, registration: Registration) -> dict[str, Any]:
        """The properties the engine sends ``Analyze`` for a registration."""
        return checked_inputs(registration.type, registration.inputs, self.region)

    def outputs(self, resource_type: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if resource_type == policies.KEY_STORE_TYPE:
            return {
                **inputs,
                "id": UNKNOWN if self.preview and name not in self.existing else store_id(name),
                "customKeyStoreType": inputs.get("customKeyStoreType", "AWS_CLOUDHSM"),
            }
        checked = checked_inputs(resource_type, inputs, self.region)
        if resource_type not in policies.CONNECTION_TYPES or self.preview:
            return checked
        plain = reveal_secrets(checked)
        if resource_type == policies.CONNECTION_TYPE:
            result = outputs(plain, self._observe(plain["custom_key_store_id"], plain["desired_state"]))
        else:
            ids = plain["custom_key_store_ids"]
            result = set_outputs(plain, {sid: self._observe(sid, plain["desired_state"]) for sid in ids})
        return annotate_secrets({key: value for key, value in result.items() if value is not None}, inputs)

    def _observe(self, store: str, desired_state: str) -> KeyStore:
        observed = self.observed.get(store, ObservedState(desired_state))
        return KeyStore(store, ConnectionState(observed.connection_state), observed.connection_error_code)


def record_registrations(
    program: Callable[[], None],
    providers: SimulatedProviders,
    *,
    stack: str = "prod",
    config: Mapping[str, Any] | None = None,
    secret_keys: Iterable[str] = (),
) -> list[Registration]:
    """Run ``program`` under ``pulumi.runtime.set_mocks`` with the stack ``config`` (``"namespace:key" -> value``;
    values that are not strings are JSON-encoded, as the CLI passes structured config) and return what it
    registered, in order.

    The Pulumi runtime keeps its settings, config and root resource in context variables: running in a copy of the
    current context leaves whatever other tests configured untouched."""
    monitor = _RecordingMonitor(providers)
    encoded = {key: value if isinstance(value, str) else json.dumps(value) for key, value in (config or {}).items()}

    def run() -> None:
        pulumi.runtime.set_mocks(providers, project=PROJECT, stack=stack, preview=providers.preview, monitor=monitor)
        pulumi.runtime.set_all_config(encoded, list(secret_keys))
        pulumi.runtime.test(program)()  # type: ignore[no-untyped-call]

    contextvars.copy_context().run(run)
    return monitor.registrations


def example_program() -> None:
    """A small stack for what the project's stack program cannot declare: a set whose ids include a store created
    in the same stack, and a store that nothing connects."""
    hsm = aws.kms.CustomKeyStore(
        "hsm-store",
        custom_key_store_name="payments-hsm",
        cloud_hsm_cluster_id="cluster-234abcdefgh",
        key_store_password="kmsuser-password",
        trust_anchor_certificate="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    CustomKeyStoreConnectionSet(
        "payments-stores",
        custom_key_store_ids=[hsm.id, "cks-0123456789abcdef0"],
        on_delete="retain",
        connect_timeout_seconds=600,
        disconnect_guard="refuse",
    )
    aws.kms.CustomKeyStore(
        "orphan-store",
        custom_key_store_name="orphan-hsm",
        cloud_hsm_cluster_id="cluster-567abcdefgh",
        key_store_password="kmsuser-password",
        trust_anchor_certificate="-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n",
    )
    CustomKeyStoreConnection(
        "xks-connection", custom_key_store_id="cks-0fedcba9876543210", on_delete="retain", disconnect_guard="refuse"
    )


def registrations_of_program_file(
    path: Path,
    providers: SimulatedProviders,
    *,
    stack: str = "prod",
    config: Mapping[str, Any] | None = None,
    secret_keys: Iterable[str] = (),
) -> list[Registration]:
    """The registrations of a stack program file (e.g. the project's ``__main__.py``, :data:`STACK_PROGRAM`), run
    under the same mocks with the stack ``config``."""

    def program() -> None:
        runpy.run_path(str(path), run_name="__main__")

    return record_registrations(program, providers, stack=stack, config=config, secret_keys=secret_keys)


# --- the pack served the way the Pulumi CLI serves it --------------------------------------------------------------


@contextlib.contextmanager
def serving_policy_pack(
    stack: str, *, dry_run: bool = False, stack_in_environment: bool = True
) -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """Start the pack as the CLI does and connect to it.

    The CLI runs the ``pulumi-analyzer-policy-python`` shim in the pack's directory with ``PULUMI_PROJECT``,
    ``PULUMI_STACK``, ``PULUMI_DRY_RUN`` (and ``PULUMI_ORGANIZATION``, ``PULUMI_CONFIG``) set; the shim runs
    ``python -u -m pulumi.policy <engine address> .``, which runs ``__main__.py``, whose ``PolicyPack`` starts the
    Analyzer gRPC server and prints its port on stdout. Through a language host (``stack_in_environment=False``)
    the CLI sets none of those variables: the stack's name comes only in ``ConfigureStack``.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("PULUMI_")}
    if stack_in_environment:
        env.update(
            PULUMI_PROJECT=PROJECT,
            PULUMI_STACK=stack,
            PULUMI_DRY_RUN="true" if dry_run else "false",
            PULUMI_ORGANIZATION="organization",
        )
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", "."],
            cwd=POLICY_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            assert process.stdout is not None
            port = process.stdout.readline().decode().strip()
            if not port.isdigit():
                process.wait(timeout=10)
                stderr.seek(0)
                raise RuntimeError(f"the policy pack did not start: {stderr.read().decode()}")
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                grpc.channel_ready_future(channel).result(timeout=30)
                stub = analyzer_pb2_grpc.AnalyzerStub(channel)
                stub.ConfigureStack(proto.AnalyzerStackConfigureRequest(stack=stack, project=PROJECT, dry_run=dry_run))
                yield stub
        finally:
            process.terminate()
            process.wait(timeout=10)


_LEVELS = {
    "advisory": proto.ADVISORY,
    "mandatory": proto.MANDATORY,
    "remediate": proto.REMEDIATE,
    "disabled": proto.DISABLED,
}


def configure_like_the_cli(stub: analyzer_pb2_grpc.AnalyzerStub, config: Mapping[str, Any]) -> None:
    """Send ``Configure`` as the CLI does after reconciling a ``--policy-pack-config`` file with the pack's info:
    every policy gets its effective enforcement level (the configured one, else its default) and its properties.
    A policy's config is a level name or an object with an optional ``enforcementLevel``."""
    info = stub.GetAnalyzerInfo(empty_pb2.Empty())
    request = proto.ConfigureAnalyzerRequest()
    for policy_info in info.policies:
        entry = config.get(policy_info.name, {})
        if isinstance(entry, str):
            entry = {"enforcementLevel": entry}
        properties = {k: v for k, v in entry.items() if k != "enforcementLevel"}
        level = entry.get("enforcementLevel")
        request.policyConfig[policy_info.name].CopyFrom(
            proto.PolicyConfig(
                enforcementLevel=_LEVELS[level] if level else policy_info.enforcementLevel,
                properties=struct(properties),
            )
        )
    stub.Configure(request)


def analyze_request(
    registration: Registration, providers: SimulatedProviders | None = None, *, stack: str = "prod"
) -> proto.AnalyzeRequest:
    """``Analyze`` for one registration, without internal keys (the engine skips them). The engine analyzes
    inputs after the provider's ``check``: with ``providers``, the checked inputs; without, the inputs as given."""
    inputs = registration.inputs if providers is None else providers.analyzed_inputs(registration)
    return proto.AnalyzeRequest(
        type=registration.type,
        name=registration.name,
        urn=urn(registration.type, registration.name, stack),
        properties=struct({k: v for k, v in inputs.items() if not k.startswith("__")}),
        options=proto.AnalyzerResourceOptions(additionalSecretOutputs=registration.additional_secret_outputs),
    )


def analyze_stack_request(
    registrations: Sequence[Registration], providers: SimulatedProviders, *, stack: str = "prod"
) -> proto.AnalyzeStackRequest:
    """``AnalyzeStack`` for the registrations: each resource's outputs (those its ``additional_secret_outputs``
    names marked secret, as the engine stores them), dependencies and property dependencies."""
    resources = []
    for registration in registrations:
        outputs = providers.outputs(registration.type, registration.name, registration.inputs)
        for key in registration.additional_secret_outputs:
            if key in outputs and not _is_secret(outputs[key]):
                outputs[key] = as_secret(outputs[key])
        property_dependencies = {
            key: [urn(dep_type, dep_name, stack) for dep_type, dep_name in deps]
            for key, deps in registration.property_dependencies.items()
        }
        resources.append(
            proto.AnalyzerResource(
                type=registration.type,
                name=registration.name,
                urn=urn(registration.type, registration.name, stack),
                properties=struct({k: v for k, v in outputs.items() if not k.startswith("__")}),
                options=proto.AnalyzerResourceOptions(additionalSecretOutputs=registration.additional_secret_outputs),
                dependencies=sorted({u for urns in property_dependencies.values() for u in urns}),
                propertyDependencies={
                    key: proto.AnalyzerPropertyDependencies(urns=urns) for key, urns in property_dependencies.items()
                },
            )
        )
    return proto.AnalyzeStackRequest(resources=resources)


class Diagnostic(NamedTuple):
    policy: str
    resource: str
    """The name of the resource the diagnostic is about: the one analyzed, or the one a stack policy names."""
    level: str
    message: str
    urn: str
    """The diagnostic's own URN: empty for a resource policy's (the engine shows the analyzed resource)."""


def diagnostics(response: proto.AnalyzeResponse, analyzed: str = "") -> list[Diagnostic]:
    levels = {number: name for name, number in _LEVELS.items()}
    return [
        Diagnostic(
            d.policyName,
            d.urn.rsplit("::", 1)[-1] if d.urn else analyzed,
            levels[d.enforcementLevel],
            d.message,
            d.urn,
        )
        for d in response.diagnostics
    ]


def analyze_all(
    stub: analyzer_pb2_grpc.AnalyzerStub,
    registrations: Sequence[Registration],
    providers: SimulatedProviders,
    *,
    stack: str = "prod",
) -> list[Diagnostic]:
    """What a deployment asks of the pack: ``Analyze`` for every registration, then ``AnalyzeStack``."""
    found: list[Diagnostic] = []
    for registration in registrations:
        found += diagnostics(stub.Analyze(analyze_request(registration, providers, stack=stack)), registration.name)
    found += diagnostics(stub.AnalyzeStack(analyze_stack_request(registrations, providers, stack=stack)))
    return found
