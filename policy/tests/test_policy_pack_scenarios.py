"""The scenarios of issue 17, through pulumi-policy's analyzer server as the CLI serves it, in preview and in up.

Each scenario is a small stack program run under ``pulumi.runtime.set_mocks``; ``SimulatedProviders`` says what
the engine would hold (a store being created has an unknown id in preview), and the pack, served in a process of
its own (``python -m pulumi.policy``), answers the Analyze and AnalyzeStack calls the engine would make. Each test
asserts the exact diagnostics: policy, resource and enforcement level.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pulumi
import pulumi_aws as aws
import pytest
import yaml
from kms_policy_testkit import (
    POLICY_DIR,
    STACK_PROGRAM,
    Diagnostic,
    ObservedState,
    Registration,
    SimulatedProviders,
    analyze_all,
    analyze_request,
    configure_like_the_cli,
    diagnostics,
    policies,
    record_registrations,
    registrations_of_program_file,
    serving_policy_pack,
    store_id,
)
from pulumi.runtime.proto import analyzer_pb2_grpc

from kms_connection import CustomKeyStoreConnection, CustomKeyStoreConnectionSet

STACK = "prod-eu"
PHASES = ("preview", "up")
STACK_WIDE = ""
"""The resource of a diagnostic about the whole stack (the analyzer server gives it no URN): a deferral of a stack
policy."""

DESIRED_CONNECTED = policies.DESIRED_CONNECTED
RETAIN_ON_DELETE = policies.RETAIN_ON_DELETE
EVERY_STORE = policies.EVERY_STORE_CONNECTED
TIMEOUTS = policies.TIMEOUTS_WITHIN_BOUNDS
NO_FAILED = policies.NO_FAILED_CONNECTIONS
GUARD = policies.DISCONNECT_GUARD_REFUSE

EXISTING_STORE = "cks-1a2b3c4d5e6f70811"
CERTIFICATE = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

Packs = Mapping[str, analyzer_pb2_grpc.AnalyzerStub]
Found = list[tuple[str, str, str]]


@pytest.fixture(scope="module")
def packs() -> Iterator[Packs]:
    """The pack served for a protected stack, once as for `pulumi preview` and once as for `pulumi up`."""
    with serving_policy_pack(STACK, dry_run=True) as preview, serving_policy_pack(STACK) as up:
        yield {"preview": preview, "up": up}


def new_store(name: str, **overrides: Any) -> aws.kms.CustomKeyStore:
    """A CloudHSM key store the stack creates (or, if the scenario says it exists, already created)."""
    args: dict[str, Any] = {
        "custom_key_store_name": name,
        "cloud_hsm_cluster_id": "cluster-234abcdefgh",
        "key_store_password": "kmsuser-password",
        "trust_anchor_certificate": CERTIFICATE,
        **overrides,
    }
    return aws.kms.CustomKeyStore(f"{name}-store", **args)


def analyze(
    packs: Packs,
    phase: str,
    program: Callable[[], None],
    *,
    config: Mapping[str, Any] | None = None,
    existing: Iterable[str] = (),
    observed: Mapping[str, ObservedState] | None = None,
) -> list[Diagnostic]:
    """What the pack reports on ``program`` in ``phase``: Analyze for each resource, then AnalyzeStack."""
    providers = SimulatedProviders(preview=phase == "preview", existing=existing, observed=observed)
    registrations = record_registrations(program, providers, stack=STACK)
    configure_like_the_cli(packs[phase], config or {})
    return analyze_all(packs[phase], registrations, providers, stack=STACK)


def found(reported: Iterable[Diagnostic]) -> Found:
    """(policy, resource name, level) of each diagnostic, sorted, repeats kept."""
    return sorted((d.policy, d.resource, d.level) for d in reported)


def message_of(reported: Iterable[Diagnostic], policy_name: str) -> str:
    (message,) = (d.message for d in reported if d.policy == policy_name)
    return message


# --- defect 1: a protected stack creating a store and its connection ----------------------------------------------


def store_and_connection_with_default_on_delete() -> None:
    store = new_store("ledger")
    CustomKeyStoreConnection("ledger-connection", custom_key_store_id=store.id, disconnect_guard="refuse")


@pytest.mark.parametrize("phase", PHASES)
def test_a_new_stores_connection_with_the_default_on_delete_is_reported_before_the_store_exists(
    packs: Packs, phase: str
) -> None:
    reported = analyze(packs, phase, store_and_connection_with_default_on_delete)

    assert found(reported) == [(RETAIN_ON_DELETE, "ledger-connection", "mandatory")]
    assert "on_delete='disconnect' for key store" in message_of(reported, RETAIN_ON_DELETE)


def store_and_disconnected_connection() -> None:
    store = new_store("ledger")
    CustomKeyStoreConnection(
        "ledger-connection",
        custom_key_store_id=store.id,
        desired_state="DISCONNECTED",
        on_delete="retain",
        disconnect_guard="refuse",
    )


@pytest.mark.parametrize("phase", PHASES)
def test_a_new_stores_connection_desiring_disconnected_is_reported_before_the_store_exists(
    packs: Packs, phase: str
) -> None:
    reported = analyze(packs, phase, store_and_disconnected_connection)

    assert found(reported) == [(DESIRED_CONNECTED, "ledger-connection", "mandatory")]


def new_stores_in_a_set_with_the_default_on_delete() -> None:
    primary, standby = new_store("ledger-a"), new_store("ledger-b")
    CustomKeyStoreConnectionSet(
        "ledger-stores", custom_key_store_ids=[primary.id, standby.id], disconnect_guard="refuse"
    )


@pytest.mark.parametrize("phase", PHASES)
def test_a_set_of_new_stores_with_the_default_on_delete_is_reported_before_the_stores_exist(
    packs: Packs, phase: str
) -> None:
    reported = analyze(packs, phase, new_stores_in_a_set_with_the_default_on_delete)

    assert found(reported) == [(RETAIN_ON_DELETE, "ledger-stores", "mandatory")]


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("preview", [(RETAIN_ON_DELETE, "ledger-connection", "advisory")]),
        ("up", [(RETAIN_ON_DELETE, "ledger-connection", "mandatory")]),
    ],
)
def test_a_new_stores_connection_waits_for_the_id_only_when_the_allow_list_could_hold_it(
    packs: Packs, phase: str, expected: Found
) -> None:
    config = {RETAIN_ON_DELETE: {"allowedKeyStores": [EXISTING_STORE]}}

    reported = analyze(packs, phase, store_and_connection_with_default_on_delete, config=config)

    assert found(reported) == expected
    if phase == "preview":
        assert message_of(reported, RETAIN_ON_DELETE).startswith(
            f"can't run policy '{RETAIN_ON_DELETE}' from policy pack 'kms-connection@v0.0.1' during preview: "
            f"waits for custom_key_store_id of CustomKeyStoreConnection 'ledger-connection' "
        )


# --- defect 2: an unknown id that comes through another resource does not block a deployable stack ---------------


def set_naming_a_new_store_through_a_parameter() -> None:
    old, new = new_store("old"), new_store("new")
    parameter = aws.ssm.Parameter("new-store-id", type="String", insecure_value=new.id)
    CustomKeyStoreConnectionSet(
        "stores",
        custom_key_store_ids=[old.id, parameter.insecure_value],
        on_delete="retain",
        disconnect_guard="refuse",
    )


def set_of_wholly_unknown_ids_through_a_parameter() -> None:
    old, new = new_store("old"), new_store("new")
    parameter = aws.ssm.Parameter("new-store-id", type="String", insecure_value=new.id)
    CustomKeyStoreConnectionSet(
        "stores",
        custom_key_store_ids=pulumi.Output.all(old.id, parameter.insecure_value),
        on_delete="retain",
        disconnect_guard="refuse",
    )


@pytest.mark.parametrize(
    "program", [set_naming_a_new_store_through_a_parameter, set_of_wholly_unknown_ids_through_a_parameter]
)
def test_a_set_naming_a_new_store_through_a_parameter_waits_in_preview_instead_of_failing(
    packs: Packs, program: Callable[[], None]
) -> None:
    reported = analyze(packs, "preview", program, existing=["old-store"])

    assert found(reported) == [(EVERY_STORE, STACK_WIDE, "advisory")]
    message = message_of(reported, EVERY_STORE)
    assert "during preview: waits for custom_key_store_ids" in message
    assert "of CustomKeyStoreConnectionSet 'stores'" in message
    assert "aws:ssm/parameter:Parameter 'new-store-id'" in message and "key store 'new-store'" in message


@pytest.mark.parametrize(
    "program", [set_naming_a_new_store_through_a_parameter, set_of_wholly_unknown_ids_through_a_parameter]
)
def test_a_set_naming_a_new_store_through_a_parameter_passes_at_up(packs: Packs, program: Callable[[], None]) -> None:
    assert found(analyze(packs, "up", program, existing=["old-store"])) == []


# --- defect 3: a dependency on a store does not stand in for its id ----------------------------------------------


def connection_naming_the_first_of_two_stores() -> None:
    primary, standby = new_store("primary"), new_store("standby")
    CustomKeyStoreConnection(
        "primary-connection",
        custom_key_store_id=pulumi.Output.all(primary.id, standby.id).apply(lambda ids: ids[0]),
        on_delete="retain",
        disconnect_guard="refuse",
    )


def test_a_store_the_connection_depends_on_but_does_not_name_is_reported_at_up(packs: Packs) -> None:
    reported = analyze(packs, "up", connection_naming_the_first_of_two_stores)

    assert found(reported) == [(EVERY_STORE, "standby-store", "mandatory")]
    assert store_id("standby-store") in message_of(reported, EVERY_STORE)


def test_a_store_the_connection_depends_on_but_does_not_name_is_reported_in_preview_once_both_exist(
    packs: Packs,
) -> None:
    reported = analyze(
        packs, "preview", connection_naming_the_first_of_two_stores, existing=["primary-store", "standby-store"]
    )

    assert found(reported) == [(EVERY_STORE, "standby-store", "mandatory")]


def test_one_unknown_id_depending_on_two_new_stores_waits_in_preview(packs: Packs) -> None:
    reported = analyze(packs, "preview", connection_naming_the_first_of_two_stores)

    assert found(reported) == [(EVERY_STORE, STACK_WIDE, "advisory")]
    message = message_of(reported, EVERY_STORE)
    assert "may be the id of key store 'primary-store' (id known once it exists), key store 'standby-store'" in message


# --- issue 13: the disconnect guard in protected stacks -----------------------------------------------------------


def connection_with_the_default_disconnect_guard() -> None:
    CustomKeyStoreConnection("payments", custom_key_store_id=EXISTING_STORE, on_delete="retain")


def connection_and_set_that_refuse_disconnects() -> None:
    CustomKeyStoreConnection(
        "payments", custom_key_store_id=EXISTING_STORE, on_delete="retain", disconnect_guard="refuse"
    )
    CustomKeyStoreConnectionSet(
        "ledger-stores", custom_key_store_ids=[EXISTING_STORE], on_delete="retain", disconnect_guard="REFUSE"
    )


def new_stores_connection_with_a_warning_guard() -> None:
    store = new_store("ledger")
    CustomKeyStoreConnection(
        "ledger-connection", custom_key_store_id=store.id, on_delete="retain", disconnect_guard="warn"
    )


@pytest.mark.parametrize("phase", PHASES)
def test_a_connection_with_the_default_disconnect_guard_is_a_mandatory_violation_naming_the_fix(
    packs: Packs, phase: str
) -> None:
    reported = analyze(packs, phase, connection_with_the_default_disconnect_guard)

    assert found(reported) == [(GUARD, "payments", "mandatory")]
    message = message_of(reported, GUARD)
    assert f"disconnect_guard='warn' for key store {EXISTING_STORE} in stack '{STACK}'" in message
    assert "enabled KMS keys" in message and "Fix: set disconnect_guard='refuse'" in message


@pytest.mark.parametrize("phase", PHASES)
def test_a_connection_and_a_set_that_refuse_disconnects_pass(packs: Packs, phase: str) -> None:
    assert found(analyze(packs, phase, connection_and_set_that_refuse_disconnects)) == []


@pytest.mark.parametrize("phase", PHASES)
def test_a_new_stores_connection_with_a_warning_guard_is_reported_before_the_store_exists(
    packs: Packs, phase: str
) -> None:
    reported = analyze(packs, phase, new_stores_connection_with_a_warning_guard)

    assert found(reported) == [(GUARD, "ledger-connection", "mandatory")]
    shown = "(known once the key store exists)" if phase == "preview" else store_id("ledger-store")
    assert f"disconnect_guard='warn' for key store {shown}" in message_of(reported, GUARD)


def test_the_disconnect_guard_policy_can_be_made_advisory(packs: Packs) -> None:
    reported = analyze(packs, "up", connection_with_the_default_disconnect_guard, config={GUARD: "advisory"})

    assert found(reported) == [(GUARD, "payments", "advisory")]


# --- messages: the right reason per timeout, readable values of any shape, missing ids ----------------------------


def connection_with_a_long_disconnect_timeout() -> None:
    CustomKeyStoreConnection(
        "payments",
        custom_key_store_id=EXISTING_STORE,
        on_delete="retain",
        disconnect_timeout_seconds=7200,
        disconnect_guard="refuse",
    )


@pytest.mark.parametrize("phase", PHASES)
def test_a_disconnect_timeout_out_of_bounds_gets_the_disconnect_reason(packs: Packs, phase: str) -> None:
    reported = analyze(packs, phase, connection_with_a_long_disconnect_timeout)

    assert found(reported) == [(TIMEOUTS, "payments", "advisory")]
    message = message_of(reported, TIMEOUTS)
    assert "disconnect_timeout_seconds=7200 s, outside 60..3600 s" in message
    assert "still disconnecting" in message and "still connecting" not in message


def analyze_as_written(packs: Packs, phase: str, registration: Registration) -> list[Diagnostic]:
    """Analyze of inputs the provider's check refused: the engine analyzes them as written, and stops there."""
    configure_like_the_cli(packs[phase], {})
    return diagnostics(packs[phase].Analyze(analyze_request(registration, stack=STACK)), registration.name)


@pytest.mark.parametrize("phase", PHASES)
def test_store_ids_of_the_wrong_shape_are_shown_as_written(packs: Packs, phase: str) -> None:
    odd = Registration(
        policies.CONNECTION_SET_TYPE,
        "odd-stores",
        {"custom_key_store_ids": [EXISTING_STORE, 42, [EXISTING_STORE]], "desired_state": "DISCONNECTED"},
    )

    reported = analyze_as_written(packs, phase, odd)

    assert found(reported) == [
        (DESIRED_CONNECTED, "odd-stores", "mandatory"),
        (GUARD, "odd-stores", "mandatory"),
        (RETAIN_ON_DELETE, "odd-stores", "mandatory"),
    ]
    message = message_of(reported, DESIRED_CONNECTED)
    assert f'{EXISTING_STORE} and 42 (not a key store id) and ["{EXISTING_STORE}"] (not a key store id)' in message
    assert "Proxy" not in message and "None" not in message


@pytest.mark.parametrize("phase", PHASES)
def test_an_empty_list_of_store_ids_is_reported(packs: Packs, phase: str) -> None:
    empty = Registration(
        policies.CONNECTION_SET_TYPE,
        "empty-stores",
        {
            "custom_key_store_ids": [],
            "desired_state": "DISCONNECTED",
            "on_delete": "retain",
            "disconnect_guard": "refuse",
        },
    )

    reported = analyze_as_written(packs, phase, empty)

    assert found(reported) == [(DESIRED_CONNECTED, "empty-stores", "mandatory")]
    assert "for no key store (custom_key_store_ids is an empty list)" in message_of(reported, DESIRED_CONNECTED)


@pytest.mark.parametrize("phase", PHASES)
def test_a_connection_without_a_store_id_is_reported(packs: Packs, phase: str) -> None:
    missing = Registration(
        policies.CONNECTION_TYPE, "no-store", {"on_delete": "disconnect", "disconnect_guard": "refuse"}
    )

    reported = analyze_as_written(packs, phase, missing)

    assert found(reported) == [(RETAIN_ON_DELETE, "no-store", "mandatory")]
    assert "for no key store (custom_key_store_id is not set)" in message_of(reported, RETAIN_ON_DELETE)


# --- config the pack cannot apply stops the deployment -----------------------------------------------------------


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize(
    ("config", "said"),
    [
        ({RETAIN_ON_DELETE: {"protectedStack": ["live-*"]}}, "Did you mean 'protectedStacks'?"),
        ({TIMEOUTS: {"minConnectTimeoutSeconds": 9000}}, "is above maxConnectTimeoutSeconds=7200 (the default)"),
        ({TIMEOUTS: {"maxDisconnectTimeoutSeconds": 100000}}, "must lie within 1..86400 s"),
    ],
    ids=["unknown-key", "min-above-max", "out-of-provider-bounds"],
)
def test_config_the_pack_cannot_apply_fails_the_analysis_with_the_reason(
    packs: Packs, phase: str, config: dict[str, Any], said: str
) -> None:
    providers = SimulatedProviders(preview=phase == "preview")
    (registration,) = record_registrations(connection_with_a_long_disconnect_timeout, providers, stack=STACK)
    configure_like_the_cli(packs[phase], config)

    with pytest.raises(grpc.RpcError) as failed:
        packs[phase].Analyze(analyze_request(registration, providers, stack=STACK))

    assert failed.value.code() == grpc.StatusCode.UNKNOWN
    assert "has config it cannot apply" in str(failed.value.details()) and said in str(failed.value.details())


# --- secret values stay out of messages ---------------------------------------------------------------------------


def disconnected_connection_to_a_secret_store() -> None:
    CustomKeyStoreConnection(
        "secret-connection",
        custom_key_store_id=pulumi.Output.secret(EXISTING_STORE),
        desired_state="DISCONNECTED",
        on_delete="retain",
        disconnect_guard="refuse",
    )


def disconnected_connection_with_additional_secret_outputs() -> None:
    CustomKeyStoreConnection(
        "secret-connection",
        custom_key_store_id=EXISTING_STORE,
        desired_state="DISCONNECTED",
        on_delete="retain",
        disconnect_guard="refuse",
        opts=pulumi.ResourceOptions(additional_secret_outputs=["custom_key_store_id"]),
    )


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize(
    "program", [disconnected_connection_to_a_secret_store, disconnected_connection_with_additional_secret_outputs]
)
def test_a_secret_store_id_is_redacted_in_a_resource_policys_message(
    packs: Packs, phase: str, program: Callable[[], None]
) -> None:
    reported = analyze(packs, phase, program)

    assert found(reported) == [(DESIRED_CONNECTED, "secret-connection", "mandatory")]
    message = message_of(reported, DESIRED_CONNECTED)
    assert "for key store [secret] in stack" in message and EXISTING_STORE not in message


def unconnected_store_with_a_secret_name() -> None:
    new_store("hidden", custom_key_store_name=pulumi.Output.secret("hidden-hsm"))


@pytest.mark.parametrize("phase", PHASES)
def test_a_secret_store_name_is_redacted_in_a_stack_policys_message(packs: Packs, phase: str) -> None:
    reported = analyze(packs, phase, unconnected_store_with_a_secret_name)

    assert found(reported) == [(EVERY_STORE, "hidden-store", "mandatory")]
    message = message_of(reported, EVERY_STORE)
    assert "name [secret])" in message and "hidden-hsm" not in message


def set_of_secret_store_ids() -> None:
    CustomKeyStoreConnectionSet(
        "secret-stores",
        custom_key_store_ids=pulumi.Output.secret([EXISTING_STORE]),
        on_delete="retain",
        disconnect_guard="refuse",
    )


@pytest.mark.parametrize(("phase", "expected"), [("preview", []), ("up", [(NO_FAILED, "secret-stores", "advisory")])])
def test_a_secret_store_id_is_redacted_where_it_appears_as_a_map_key(packs: Packs, phase: str, expected: Found) -> None:
    # The set's connection_states is keyed by store id and is not itself secret: the id is redacted by value.
    observed = {EXISTING_STORE: ObservedState("FAILED", "USER_LOCKED_OUT")}

    reported = analyze(packs, phase, set_of_secret_store_ids, observed=observed)

    assert found(reported) == expected
    if expected:
        message = message_of(reported, NO_FAILED)
        assert "observed key store [secret] in state FAILED" in message and EXISTING_STORE not in message


# --- our own stack passes our own pack (issue 15, item 10) -------------------------------------------------------


def local_stack_config() -> dict[str, Any]:
    stack_file = Path(POLICY_DIR.parent, "Pulumi.local.yaml")
    config: dict[str, Any] = yaml.safe_load(stack_file.read_text())["config"]
    return config


@pytest.mark.parametrize("phase", PHASES)
def test_the_projects_local_stack_passes_the_pack_with_its_default_config(phase: str) -> None:
    providers = SimulatedProviders(preview=phase == "preview", region="us-east-1")
    registrations = registrations_of_program_file(STACK_PROGRAM, providers, stack="local", config=local_stack_config())

    with serving_policy_pack("local", dry_run=phase == "preview") as pack:
        configure_like_the_cli(pack, {})
        reported = analyze_all(pack, registrations, providers, stack="local")

    assert [r.name for r in registrations] == ["local-hsm", "local-xks"]
    assert [r.inputs["connect_timeout_seconds"] for r in registrations] == [300, 120]
    assert found(reported) == []
