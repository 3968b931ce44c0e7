"""The pack served the way the Pulumi CLI serves it: ``python -m pulumi.policy`` runs ``__main__.py`` in a process
of its own, and the test talks to its Analyzer gRPC service with the SDK's generated stubs, sending what the
project's stack program (``__main__.py`` at the repository root) registers under ``pulumi.runtime.set_mocks`` with
a stack config: per-store connections, a connection set, and a new CloudHSM key store with its connection."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from google.protobuf import empty_pb2
from kms_policy_testkit import (
    STACK_PROGRAM,
    UNKNOWN,
    Diagnostic,
    ObservedState,
    Registration,
    SimulatedProviders,
    analyze_all,
    analyze_request,
    configure_like_the_cli,
    diagnostics,
    example_program,
    policies,
    record_registrations,
    registrations_of_program_file,
    remedy,
    serving_policy_pack,
    store_id,
    urn,
)
from pulumi.runtime.proto import analyzer_pb2_grpc

STACK = "prod-eu"

PAYMENTS = "cks-1a2b3c4d5e6f70811"
REPORTING = "cks-2b3c4d5e6f7081922"
DR_PRIMARY = "cks-3c4d5e6f708192a33"
DR_SECONDARY = "cks-4d5e6f708192a3b44"
NEW_STORE = "ledger-hsm"
NEW_STORE_ID = store_id(NEW_STORE)  # the id SimulatedProviders gives the store pulumi-aws creates

CONFIG: dict[str, Any] = {
    "aws:region": "eu-west-1",
    "kms-connection:keyStores": [
        {
            "id": PAYMENTS,
            "name": "payments-hsm",
            "desiredState": "CONNECTED",
            "onDelete": "retain",
            "connectTimeoutSeconds": 1800,
            "disconnectGuard": "refuse",
        },
        # The one entry a protected stack refuses, written in lower case as a user may write it (and with the default
        # disconnect_guard, 'warn').
        {"id": REPORTING, "name": "reporting-xks", "desiredState": "disconnected", "onDelete": "disconnect"},
    ],
    "kms-connection:keyStoreSets": [
        {
            "name": "dr-stores",
            "ids": [DR_PRIMARY, DR_SECONDARY],
            "desiredState": "CONNECTED",
            "onDelete": "retain",
            "connectTimeoutSeconds": 2400,
            "region": "eu-central-1",
            "disconnectGuard": "refuse",
        },
    ],
    "kms-connection:newCloudHsmKeyStore": {
        "name": NEW_STORE,
        "cloudHsmClusterId": "cluster-234abcdefgh",
        "trustAnchorCertificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        "disconnectGuard": "refuse",
    },
    "kms-connection:newCloudHsmKeyStorePassword": "kmsuser-password",
}
SECRET_KEYS = ["kms-connection:newCloudHsmKeyStorePassword"]

UP = SimulatedProviders(preview=False, observed={DR_SECONDARY: ObservedState("FAILED", "USER_LOGGED_IN")})
PREVIEW = SimulatedProviders(preview=True)


@pytest.fixture(scope="module")
def pack() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    with serving_policy_pack(STACK) as stub:
        yield stub


def stack_program(providers: SimulatedProviders, stack: str = STACK) -> list[Registration]:
    return registrations_of_program_file(STACK_PROGRAM, providers, stack=stack, config=CONFIG, secret_keys=SECRET_KEYS)


@pytest.fixture(scope="module")
def up_registrations() -> list[Registration]:
    return stack_program(UP)


def found(diagnostics: Iterable[Diagnostic]) -> set[tuple[str, str, str]]:
    """(policy, resource name, level) of each diagnostic."""
    return {(d.policy, d.resource, d.level) for d in diagnostics}


def diagnostics_of(diagnostics: Iterable[Diagnostic]) -> list[tuple[str, str, str]]:
    """(policy, resource name, level) of each diagnostic, sorted, repeats kept."""
    return sorted((d.policy, d.resource, d.level) for d in diagnostics)


def test_stack_program_registers_connections_a_set_and_a_new_store_with_its_connection(
    up_registrations: list[Registration],
) -> None:
    by_name = {r.name: r for r in up_registrations}

    assert {r.name: r.type for r in up_registrations} == {
        "payments-hsm": policies.CONNECTION_TYPE,
        "reporting-xks": policies.CONNECTION_TYPE,
        "dr-stores": policies.CONNECTION_SET_TYPE,
        NEW_STORE: policies.KEY_STORE_TYPE,
        f"{NEW_STORE}-connection": policies.CONNECTION_TYPE,
    }
    assert by_name["reporting-xks"].inputs["desired_state"] == "disconnected"  # as written; check normalises it
    assert by_name["dr-stores"].inputs["custom_key_store_ids"] == [DR_PRIMARY, DR_SECONDARY]
    assert by_name[f"{NEW_STORE}-connection"].inputs["custom_key_store_id"] == NEW_STORE_ID
    assert by_name[f"{NEW_STORE}-connection"].property_dependencies == {
        "custom_key_store_id": [(policies.KEY_STORE_TYPE, NEW_STORE)]
    }


def test_pack_describes_its_policies_to_the_cli(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = pack.GetAnalyzerInfo(empty_pb2.Empty())

    assert info.name == policies.PACK_NAME and info.supportsConfig
    assert [p.name for p in info.policies] == [p.name for p in policies.build_policies()]
    assert all(p.description and p.configSchema.properties for p in info.policies)


def test_pack_reports_what_the_stack_program_violates_in_a_protected_stack(
    pack: analyzer_pb2_grpc.AnalyzerStub, up_registrations: list[Registration]
) -> None:
    configure_like_the_cli(pack, {})

    diagnostics = analyze_all(pack, up_registrations, UP, stack=STACK)

    assert sorted(found(diagnostics)) == sorted(
        {
            (policies.DESIRED_CONNECTED, "reporting-xks", "mandatory"),
            (policies.RETAIN_ON_DELETE, "reporting-xks", "mandatory"),
            (policies.DISCONNECT_GUARD_REFUSE, "reporting-xks", "mandatory"),
            # The program gives the new store's connection no on_delete, so it has the default "disconnect".
            (policies.RETAIN_ON_DELETE, f"{NEW_STORE}-connection", "mandatory"),
            (policies.NO_FAILED_CONNECTIONS, "dr-stores", "advisory"),
        }
    )
    assert len(diagnostics) == 5
    messages = {(d.policy, d.resource): d.message for d in diagnostics}
    desired = messages[policies.DESIRED_CONNECTED, "reporting-xks"]
    assert "CustomKeyStoreConnection 'reporting-xks'" in desired and REPORTING in desired
    assert f"stack '{STACK}'" in desired  # learnt from PULUMI_STACK
    assert NEW_STORE_ID in messages[policies.RETAIN_ON_DELETE, f"{NEW_STORE}-connection"]
    failed = messages[policies.NO_FAILED_CONNECTIONS, "dr-stores"]
    assert "CustomKeyStoreConnectionSet 'dr-stores'" in failed and DR_SECONDARY in failed and DR_PRIMARY not in failed
    assert "USER_LOGGED_IN" in failed and remedy("USER_LOGGED_IN") in failed


def test_pack_config_changes_enforcement_levels_and_properties(
    pack: analyzer_pb2_grpc.AnalyzerStub, up_registrations: list[Registration]
) -> None:
    configure_like_the_cli(
        pack,
        {
            policies.DESIRED_CONNECTED: "advisory",
            policies.RETAIN_ON_DELETE: {"allowedKeyStores": [REPORTING, NEW_STORE_ID]},
            policies.TIMEOUTS_WITHIN_BOUNDS: {"enforcementLevel": "mandatory", "minConnectTimeoutSeconds": 2000},
            policies.NO_FAILED_CONNECTIONS: {"allowedKeyStores": [DR_SECONDARY]},
        },
    )

    diagnostics = analyze_all(pack, up_registrations, UP, stack=STACK)

    # Only the set waits 2400 s to connect; the connections wait 1800 s, given or by default.
    assert found(diagnostics) == {
        (policies.DESIRED_CONNECTED, "reporting-xks", "advisory"),
        (policies.DISCONNECT_GUARD_REFUSE, "reporting-xks", "mandatory"),
        (policies.TIMEOUTS_WITHIN_BOUNDS, "payments-hsm", "mandatory"),
        (policies.TIMEOUTS_WITHIN_BOUNDS, "reporting-xks", "mandatory"),
        (policies.TIMEOUTS_WITHIN_BOUNDS, f"{NEW_STORE}-connection", "mandatory"),
    }


def test_pack_reports_in_preview_what_no_unknown_id_can_change(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    registrations = stack_program(PREVIEW)
    configure_like_the_cli(pack, {})

    diagnostics = analyze_all(pack, registrations, PREVIEW, stack=STACK)

    # The new store's id is unknown, but with no allow-list configured it cannot change the verdict on its
    # connection's default on_delete: preview reports it before the store is created. The store is traced to its
    # connection through property dependencies, and nothing has been observed yet, so no stack policy reports.
    assert sorted(found(diagnostics)) == sorted(
        {
            (policies.DESIRED_CONNECTED, "reporting-xks", "mandatory"),
            (policies.RETAIN_ON_DELETE, "reporting-xks", "mandatory"),
            (policies.DISCONNECT_GUARD_REFUSE, "reporting-xks", "mandatory"),
            (policies.RETAIN_ON_DELETE, f"{NEW_STORE}-connection", "mandatory"),
        }
    )
    assert len(diagnostics) == 4


def test_pack_learns_an_unprotected_stack_from_the_cli_environment() -> None:
    registrations = stack_program(UP, stack="dev")
    with serving_policy_pack("dev") as dev:
        configure_like_the_cli(dev, {})

        diagnostics = analyze_all(dev, registrations, UP, stack="dev")

    assert found(diagnostics) == {(policies.NO_FAILED_CONNECTIONS, "dr-stores", "advisory")}
    assert {d.urn for d in diagnostics} == {urn(policies.CONNECTION_SET_TYPE, "dr-stores", "dev")}


def test_pack_learns_a_protected_stack_from_configure_stack_when_the_environment_names_none(
    up_registrations: list[Registration],
) -> None:
    # Through a language host the CLI starts the pack without PULUMI_STACK and names the stack in ConfigureStack.
    with serving_policy_pack(STACK, stack_in_environment=False) as pack:
        configure_like_the_cli(pack, {})

        diagnostics = analyze_all(pack, up_registrations, UP, stack=STACK)

    assert (policies.DESIRED_CONNECTED, "reporting-xks", "mandatory") in found(diagnostics)
    assert (policies.RETAIN_ON_DELETE, f"{NEW_STORE}-connection", "mandatory") in found(diagnostics)


def test_pack_analyzes_inputs_as_written_when_check_has_not_normalised_them(
    pack: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    configure_like_the_cli(pack, {})
    connected_set = Registration(
        policies.CONNECTION_SET_TYPE,
        "new-stores",
        {
            "custom_key_store_ids": [UNKNOWN, PAYMENTS],
            "desired_state": "connected",
            "on_delete": "Retain",
            "disconnect_guard": " Refuse",
        },
    )
    disconnected = Registration(
        policies.CONNECTION_TYPE, "conn", {"custom_key_store_id": PAYMENTS, "desired_state": "disconnected"}
    )

    set_response = pack.Analyze(analyze_request(connected_set, stack=STACK))
    response = pack.Analyze(analyze_request(disconnected, stack=STACK))

    assert list(set_response.diagnostics) == []
    assert found(diagnostics(response, "conn")) == {
        (policies.DESIRED_CONNECTED, "conn", "mandatory"),
        (policies.RETAIN_ON_DELETE, "conn", "mandatory"),
        (policies.DISCONNECT_GUARD_REFUSE, "conn", "mandatory"),
    }


@pytest.mark.parametrize("providers", [PREVIEW, UP], ids=["preview", "up"])
def test_pack_traces_a_sets_store_ids_to_the_stores_they_come_from(
    pack: analyzer_pb2_grpc.AnalyzerStub, providers: SimulatedProviders
) -> None:
    # example_program: a set of [new store's id, an existing store's id], and a store that nothing connects.
    registrations = record_registrations(example_program, providers, stack=STACK)
    configure_like_the_cli(pack, {})

    diagnostics = analyze_all(pack, registrations, providers, stack=STACK)

    by_name = {r.name: r for r in registrations}
    assert by_name["payments-stores"].property_dependencies == {
        "custom_key_store_ids": [(policies.KEY_STORE_TYPE, "hsm-store")]
    }
    assert diagnostics_of(diagnostics) == [(policies.EVERY_STORE_CONNECTED, "orphan-store", "mandatory")]
