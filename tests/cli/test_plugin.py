"""The kms-connection provider plugin (provider/) through the real Pulumi CLI, from a Pulumi YAML program.

Each test runs the YAML example (examples/yaml/), or a program like it, against its own emulator seeded from
local/seed.json (the example's two stores), with the plugin taken from this checkout, and asserts on KMS's
state, the emulator's call log, the stack's state and what the CLI prints. Converging, drift in preview and
destroy run the TypeScript example (examples/typescript/) too; test_typescript.py has what is TypeScript's own.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from bench.pulumi_cli import ROOT
from tests.cli.conftest import CliStack
from tests.cli.programs import connection, use_typescript_program, use_yaml_program

pytestmark = pytest.mark.timeout(900)

CONNECTION = "kms-connection:index:CustomKeyStoreConnection"
SET = "kms-connection:index:CustomKeyStoreConnectionSet"
# The two stores of local/seed.json, as the example names them.
HSM = "cks-0123456789abcdef0"
XKS = "cks-0fedcba9876543210"
NEW = "cks-3333333333333333c"
# How the state marks a secret value (the Automation API's export shows it decrypted, but still marked).
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"


@pytest.fixture
def seeded(make_stack: Callable[..., CliStack]) -> CliStack:
    """A stack whose emulator holds the stores of local/seed.json, both DISCONNECTED; no program yet."""
    return make_stack(emulator_kwargs={"seed": ROOT / "local" / "seed.json"})


@pytest.fixture
def example(seeded: CliStack) -> CliStack:
    """The YAML example against the seeded emulator."""
    return use_yaml_program(seeded)


@pytest.fixture(params=["yaml", "typescript"])
def example_in_each_language(request: pytest.FixtureRequest, seeded: CliStack) -> CliStack:
    """The YAML example, then the TypeScript one (the same two resources), against the seeded emulator."""
    if request.param == "yaml":
        return use_yaml_program(seeded)
    return use_typescript_program(seeded, request.getfixturevalue("typescript_modules"))


def wait_for_state(stack: CliStack, store_id: str, state: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while stack.emulator.state_of(store_id) != state:
        assert time.monotonic() < deadline, f"{store_id} is still {stack.emulator.state_of(store_id)}"
        time.sleep(0.1)


def test_the_example_connects_the_seeded_stores_through_the_plugin(example_in_each_language: CliStack) -> None:
    example = example_in_each_language

    result = example.up()

    assert result.summary.result == "succeeded"
    assert example.outputs()["connectionStates"] == {"local-hsm": "CONNECTED", "local-xks": "CONNECTED"}
    assert set(example.resources(CONNECTION)) == {"local-hsm", "local-xks"}
    assert example.emulator.state_of(HSM) == example.emulator.state_of(XKS) == "CONNECTED"
    assert sorted(example.mutating_calls()) == [("ConnectCustomKeyStore", HSM), ("ConnectCustomKeyStore", XKS)]


def test_the_state_holds_camel_case_properties_and_no_pickled_provider(example: CliStack) -> None:
    example.up()

    recorded = example.resources(CONNECTION)["local-hsm"]
    assert recorded["outputs"]["customKeyStoreId"] == HSM
    assert recorded["outputs"]["connectionState"] == "CONNECTED"
    assert recorded["outputs"]["customKeyStoreType"] == "AWS_CLOUDHSM"
    assert not any("__provider" in key or "_" in key for key in {*recorded["inputs"], *recorded["outputs"]})


def test_a_second_up_changes_nothing_and_only_reads(example: CliStack) -> None:
    example.up()
    before = len(example.calls())

    result = example.up()

    assert result.summary.resource_changes == {"same": 3}
    assert {call.operation for call in example.calls(before)} == {"DescribeCustomKeyStores"}


def test_preview_of_drift_shows_the_update_and_our_plan_line_on_the_resource(
    example_in_each_language: CliStack,
) -> None:
    example = example_in_each_language
    example.up()
    example.emulator.client().disconnect_custom_key_store(CustomKeyStoreId=HSM)
    before = len(example.calls())

    preview = example.cli("preview")

    assert "~ 1 to update" in preview.stdout
    assert f"{HSM}: observed DISCONNECTED, desired CONNECTED: will connect" in preview.stdout
    assert "(local-hsm)" in preview.stdout  # the line is shown on the resource it is about
    assert example.mutating_calls(before) == []
    assert example.emulator.state_of(HSM) == "DISCONNECTED"


def test_up_repairs_drift(example: CliStack) -> None:
    example.up()
    example.emulator.client().disconnect_custom_key_store(CustomKeyStoreId=HSM)
    before = len(example.calls())

    result = example.up()

    assert result.summary.resource_changes == {"update": 1, "same": 2}
    assert example.mutating_calls(before) == [("ConnectCustomKeyStore", HSM)]
    assert example.emulator.state_of(HSM) == "CONNECTED"


def test_destroy_disconnects_by_default_and_leaves_on_delete_retain_stores_connected(
    example_in_each_language: CliStack,
) -> None:
    example = example_in_each_language
    example.up()
    before = len(example.calls())

    example.stack.destroy(color="never")

    assert example.mutating_calls(before) == [("DisconnectCustomKeyStore", HSM)]
    assert example.emulator.state_of(HSM) == "DISCONNECTED"
    assert example.emulator.state_of(XKS) == "CONNECTED"
    assert example.resources(CONNECTION) == {}


def test_pulumi_import_adopts_a_connected_store_with_no_mutating_call(example: CliStack) -> None:
    example.up()
    example.emulator.create_store(store_id=NEW, name="adopted", connection_state="CONNECTED")
    before = len(example.calls())

    result = example.cli("import", CONNECTION, "adopted", NEW, "--yes")

    assert example.mutating_calls(before) == []
    assert {call.operation for call in example.calls(before)} == {"DescribeCustomKeyStores"}
    adopted = example.resources(CONNECTION)["adopted"]
    assert adopted["id"] == NEW
    assert adopted["outputs"]["connectionState"] == adopted["outputs"]["desiredState"] == "CONNECTED"
    # The code to add, in the program's language: the store's id and the state it is in.
    assert "type: kms-connection:CustomKeyStoreConnection" in result.stdout
    assert f"customKeyStoreId: {NEW}" in result.stdout
    assert "desiredState: CONNECTED" in result.stdout


def test_pulumi_import_refuses_a_failed_store_naming_its_state(example: CliStack) -> None:
    example.emulator.create_store(store_id=NEW, name="failing")
    example.emulator.set_connect_outcome(NEW, "fail", "USER_LOCKED_OUT")
    example.emulator.client().connect_custom_key_store(CustomKeyStoreId=NEW)
    wait_for_state(example, NEW, "FAILED")
    before = len(example.calls())

    result = example.cli("import", CONNECTION, "failing", NEW, "--yes", check=False)

    assert result.returncode != 0
    assert f"custom key store {NEW} is FAILED (USER_LOCKED_OUT)" in result.stdout
    assert "not settled" in result.stdout
    assert example.mutating_calls(before) == []
    assert "failing" not in example.resources(CONNECTION)


def test_custom_timeouts_create_bounds_a_hanging_connect_to_about_two_seconds(seeded: CliStack) -> None:
    stack = use_yaml_program(
        seeded,
        {"hanging": {**connection(HSM, connectTimeoutSeconds=600), "options": {"customTimeouts": {"create": "2s"}}}},
    )
    stack.emulator.set_connect_outcome(HSM, "hang")

    result = stack.cli("up", "--yes", check=False)

    assert result.returncode != 0
    assert f"custom key store {HSM} in us-east-1: still CONNECTING after waiting 2 s for CONNECTED" in result.stdout
    assert "raise customTimeouts.create" in result.stdout
    # From the Connect to the last look at the store, on the emulator's clock: the wait the engine's timeout bounded.
    calls = [call for call in stack.calls() if call.store_id == HSM]
    connect = next(call for call in calls if call.operation == "ConnectCustomKeyStore")
    waited = calls[-1].time - connect.time
    assert 1.5 <= waited <= 4.0, waited
    assert stack.resources(CONNECTION) == {}


def test_custom_timeouts_delete_bounds_the_wait_of_a_destroy(make_stack: Callable[..., CliStack]) -> None:
    seeded = make_stack(emulator_kwargs={"seed": ROOT / "local" / "seed.json", "disconnect_seconds": 30})
    stack = use_yaml_program(seeded, {"slow": {**connection(HSM), "options": {"customTimeouts": {"delete": "2s"}}}})
    stack.up()

    result = stack.cli("destroy", "--yes", check=False)

    assert result.returncode != 0
    assert f"custom key store {HSM} in us-east-1: still DISCONNECTING after waiting 2 s for DISCONNECTED" in (
        result.stdout
    )
    assert "customTimeouts.delete" in result.stdout
    assert set(stack.resources(CONNECTION)) == {"slow"}  # a failed delete keeps the resource


def test_custom_timeouts_leave_the_recorded_timeout_inputs_as_the_program_wrote_them(example: CliStack) -> None:
    example.up()

    # local-xks has customTimeouts (create: 5m) and no connectTimeoutSeconds: the input keeps its default.
    recorded = example.resources(CONNECTION)["local-xks"]
    assert recorded["inputs"]["connectTimeoutSeconds"] == recorded["outputs"]["connectTimeoutSeconds"] == 1800


def test_a_set_converges_its_stores(seeded: CliStack) -> None:
    stack = use_yaml_program(
        seeded, {"both": {"type": "kms-connection:CustomKeyStoreConnectionSet", "properties": {
            "customKeyStoreIds": [HSM, XKS], "onDelete": "retain"}}}
    )

    stack.up()

    recorded = stack.resources(SET)["both"]["outputs"]
    assert recorded["connectionStates"] == {HSM: "CONNECTED", XKS: "CONNECTED"}
    assert sorted(stack.mutating_calls()) == [("ConnectCustomKeyStore", HSM), ("ConnectCustomKeyStore", XKS)]


def test_a_malformed_store_id_fails_preview_naming_the_camel_case_property(seeded: CliStack) -> None:
    stack = use_yaml_program(seeded, {"typo": connection("local-hsm")})

    result = stack.cli("preview", check=False)

    assert result.returncode != 0
    assert "customKeyStoreId must be the key store's id" in result.stdout
    assert "aws kms describe-custom-key-stores --custom-key-store-name local-hsm" in result.stdout
    assert "custom_key_store_id" not in result.stdout
    assert stack.calls() == []


def test_provider_config_allowed_account_ids_refuses_a_connect_to_another_account(seeded: CliStack) -> None:
    stack = use_yaml_program(seeded)
    endpoint = stack.emulator.endpoint_url
    config = {
        "kms-connection:region": "us-east-1",
        "kms-connection:endpoints": [{"kms": endpoint, "sts": endpoint}],
        "kms-connection:allowedAccountIds": ["111122223333"],
    }
    (stack.project_dir / f"Pulumi.{stack.name}.yaml").write_text(yaml.safe_dump({"config": config}))

    result = stack.cli("up", "--yes", check=False)

    assert result.returncode != 0
    assert "kms-connection:allowedAccountIds" in result.stdout
    assert "aws:allowedAccountIds" not in result.stdout
    assert stack.mutating_calls() == []


def test_package_get_schema_prints_a_schema_naming_both_resources() -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "pulumi"), "package", "get-schema", "./provider"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )

    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["name"] == "kms-connection"
    assert set(schema["resources"]) == {CONNECTION, SET}
    connection_schema = schema["resources"][CONNECTION]
    assert connection_schema["requiredInputs"] == ["customKeyStoreId"]
    assert connection_schema["inputProperties"]["customKeyStoreId"]["replaceOnChanges"] is True
    assert "replaceOnChanges" not in connection_schema["inputProperties"]["desiredState"]
    assert schema["resources"][SET]["inputProperties"]["region"]["replaceOnChanges"] is True
    assert {"region", "profile", "endpoints", "assumeRoles", "allowedAccountIds"} <= set(schema["config"]["variables"])
    assert schema["config"]["variables"]["secretKey"]["secret"] is True


def test_the_policy_pack_stops_a_native_connection_that_disconnects_on_delete_in_a_protected_stack(
    make_stack: Callable[..., CliStack], policy_venv: Path
) -> None:
    stack = use_yaml_program(make_stack(name="prod", emulator_kwargs={"seed": ROOT / "local" / "seed.json"}))

    result = stack.cli("up", "--yes", "--policy-pack", str(ROOT / "policy"), check=False)

    assert result.returncode != 0
    assert "no-disconnect-on-delete-in-protected-stacks" in result.stdout
    # local-hsm disconnects on delete (the default); local-xks says onDelete: retain.
    hsm, xks = (
        f"CustomKeyStoreConnection '{name}' (urn:pulumi:prod::kms-connection-yaml::{CONNECTION}::{name})"
        for name in ("local-hsm", "local-xks")
    )
    assert f"{hsm} has onDelete='disconnect'" in result.stdout
    assert f"{xks} has onDelete" not in result.stdout
    # Neither sets disconnectGuard: refuse, which a protected stack requires too.
    assert "disconnect-guard-in-protected-stacks" in result.stdout
    assert f"{hsm} has disconnectGuard='warn'" in result.stdout
    assert f"{xks} has disconnectGuard='warn'" in result.stdout
    assert stack.resources(CONNECTION) == {}
    assert stack.mutating_calls() == []


def test_a_secret_store_id_stays_secret_in_the_recorded_properties(seeded: CliStack) -> None:
    stack = use_yaml_program(seeded, {"hidden": connection({"fn::secret": HSM})})

    stack.up()

    # The engine encrypts each property named like a secret input (the plugin accepts no secrets). The resource's
    # id is the core's `<store id>/<suffix>`, as for the dynamic provider: ids are never secret.
    recorded = stack.resources(CONNECTION)["hidden"]
    assert SECRET_SIGNATURE in recorded["inputs"]["customKeyStoreId"]
    assert SECRET_SIGNATURE in recorded["outputs"]["customKeyStoreId"]
    assert stack.emulator.state_of(HSM) == "CONNECTED"
