"""The pack served the way the Pulumi CLI serves it: ``python -m pulumi.policy`` runs ``__main__.py`` in a process
of its own, and the test talks to its Analyzer gRPC service with the SDK's generated stubs, sending the resources a
small program registers under ``pulumi.runtime.set_mocks``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import empty_pb2
from kms_policy_testkit import (
    UNKNOWN,
    Diagnostic,
    ObservedState,
    Registration,
    SimulatedProviders,
    analyze_all,
    analyze_request,
    configure_like_the_cli,
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

UP = SimulatedProviders(preview=False, observed={"xks-connection": ObservedState("FAILED", "XKS_PROXY_TIMED_OUT")})
PREVIEW = SimulatedProviders(preview=True)


@pytest.fixture(scope="module")
def pack() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    with serving_policy_pack(STACK) as stub:
        yield stub


@pytest.fixture(scope="module")
def up_registrations() -> list[Registration]:
    return record_registrations(example_program, UP, stack=STACK)


def found(diagnostics: list[Diagnostic]) -> set[tuple[str, str, str]]:
    """(policy, resource name or "" for a resource policy's own resource, level) of each diagnostic."""
    return {(d.policy, d.urn.rsplit("::", 1)[-1] if d.urn else "", d.level) for d in diagnostics}


def test_program_registers_the_stores_and_connections_the_pack_is_sent(up_registrations: list[Registration]) -> None:
    by_name = {r.name: r for r in up_registrations}

    assert {r.name: r.type for r in up_registrations} == {
        "hsm-store": policies.KEY_STORE_TYPE,
        "orphan-store": policies.KEY_STORE_TYPE,
        "hsm-connection": policies.CONNECTION_TYPE,
        "xks-connection": policies.CONNECTION_TYPE,
    }
    assert by_name["hsm-store"].inputs["customKeyStoreName"] == "payments-hsm"
    assert by_name["hsm-connection"].inputs["custom_key_store_id"] == store_id("hsm-store")
    assert by_name["hsm-connection"].property_dependencies == {
        "custom_key_store_id": [(policies.KEY_STORE_TYPE, "hsm-store")]
    }


def test_pack_describes_its_policies_to_the_cli(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = pack.GetAnalyzerInfo(empty_pb2.Empty())

    assert info.name == policies.PACK_NAME and info.supportsConfig
    assert [p.name for p in info.policies] == [p.name for p in policies.build_policies()]
    assert all(p.description and p.configSchema.properties for p in info.policies)


def test_pack_reports_what_the_program_violates_in_a_protected_stack(
    pack: analyzer_pb2_grpc.AnalyzerStub, up_registrations: list[Registration]
) -> None:
    configure_like_the_cli(pack, {})

    diagnostics = analyze_all(pack, up_registrations, UP, stack=STACK)

    assert found(diagnostics) == {
        (policies.DESIRED_CONNECTED, "", "mandatory"),
        (policies.RETAIN_ON_DELETE, "", "mandatory"),
        (policies.TIMEOUTS_WITHIN_BOUNDS, "", "advisory"),
        (policies.EVERY_STORE_CONNECTED, "orphan-store", "mandatory"),
        (policies.NO_FAILED_CONNECTIONS, "xks-connection", "advisory"),
    }
    assert len(diagnostics) == 5
    by_policy = {d.policy: d.message for d in diagnostics}
    assert "'hsm-connection'" in by_policy[policies.DESIRED_CONNECTED]
    assert store_id("hsm-store") in by_policy[policies.DESIRED_CONNECTED]
    assert f"stack '{STACK}'" in by_policy[policies.DESIRED_CONNECTED]  # learnt from PULUMI_STACK
    assert remedy("XKS_PROXY_TIMED_OUT") in by_policy[policies.NO_FAILED_CONNECTIONS]


def test_pack_config_changes_enforcement_levels_and_properties(
    pack: analyzer_pb2_grpc.AnalyzerStub, up_registrations: list[Registration]
) -> None:
    configure_like_the_cli(
        pack,
        {
            policies.DESIRED_CONNECTED: "advisory",
            policies.TIMEOUTS_WITHIN_BOUNDS: {"enforcementLevel": "mandatory"},
            policies.NO_FAILED_CONNECTIONS: "disabled",
            policies.RETAIN_ON_DELETE: {"allowedKeyStores": [store_id("hsm-store")]},
            policies.EVERY_STORE_CONNECTED: {"allowedKeyStores": ["orphan-hsm"]},
        },
    )

    diagnostics = analyze_all(pack, up_registrations, UP, stack=STACK)

    assert found(diagnostics) == {
        (policies.DESIRED_CONNECTED, "", "advisory"),
        (policies.TIMEOUTS_WITHIN_BOUNDS, "", "mandatory"),
    }


def test_pack_defers_what_preview_cannot_know_and_reports_what_it_can(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    registrations = record_registrations(example_program, PREVIEW, stack=STACK)
    configure_like_the_cli(pack, {})

    diagnostics = analyze_all(pack, registrations, PREVIEW, stack=STACK)

    # The new store's id is unknown: the protected-stack policies cannot check the allow-list, so the analyzer
    # server says so (advisory) instead of reporting a violation; the timeout check needs no store id.
    deferred = [d for d in diagnostics if d.policy in (policies.DESIRED_CONNECTED, policies.RETAIN_ON_DELETE)]
    assert {(d.level, "during preview" in d.message) for d in deferred} == {("advisory", True)}
    assert len(deferred) == 2
    # The connection's unknown store id is traced to hsm-store through its property dependencies: only the store
    # that nothing connects is reported.
    assert found(d for d in diagnostics if d not in deferred) == {  # type: ignore[arg-type]
        (policies.TIMEOUTS_WITHIN_BOUNDS, "", "advisory"),
        (policies.EVERY_STORE_CONNECTED, "orphan-store", "mandatory"),
    }


def test_pack_analyzes_a_hand_written_registration_with_an_unknown_store_id(
    pack: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    configure_like_the_cli(pack, {})
    registration = Registration(
        policies.CONNECTION_TYPE,
        "conn",
        {"custom_key_store_id": UNKNOWN, "desired_state": "CONNECTED", "on_delete": "retain"},
    )

    response = pack.Analyze(analyze_request(registration, stack=STACK))

    assert list(response.diagnostics) == []


def test_pack_learns_an_unprotected_stack_from_the_cli_environment(up_registrations: list[Registration]) -> None:
    with serving_policy_pack("dev") as dev:
        configure_like_the_cli(dev, {})

        diagnostics = analyze_all(dev, up_registrations, UP, stack="dev")

    policies_found = {d.policy for d in diagnostics}
    assert policies.DESIRED_CONNECTED not in policies_found
    assert policies.RETAIN_ON_DELETE not in policies_found
    assert urn(policies.KEY_STORE_TYPE, "orphan-store", "dev") in {d.urn for d in diagnostics}


def test_a_stack_program_file_can_stand_in_for_the_example_program(tmp_path: Path) -> None:
    program = tmp_path / "__main__.py"
    program.write_text(
        "import pulumi_aws as aws\n"
        "aws.kms.CustomKeyStore('file-store', custom_key_store_name='from-a-file', cloud_hsm_cluster_id='cluster-1',\n"
        "                       key_store_password='pw', trust_anchor_certificate='cert')\n"
    )

    (registration,) = registrations_of_program_file(program, UP, stack=STACK)

    assert (registration.type, registration.name) == (policies.KEY_STORE_TYPE, "file-store")
    assert registration.inputs["customKeyStoreName"] == "from-a-file"
