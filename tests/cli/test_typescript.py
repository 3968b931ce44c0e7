"""The kms-connection provider plugin from TypeScript, through the real Pulumi CLI and our Node.js language host.

What is TypeScript's own: the generated SDK (sdk/nodejs) is what ``pulumi package gen-sdk`` makes of the schema,
``pulumi import`` prints TypeScript, and a program that throws fails cleanly. Converging, drift in preview and
destroy run for the TypeScript example beside the YAML one in test_plugin.py. The example's npm packages are
installed once per session into its own node_modules (``npm ci``, from the npm registry), which each test's copy
of the program links to.
"""

from __future__ import annotations

import filecmp
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.pulumi_cli import ROOT
from tests.cli.conftest import CliStack
from tests.cli.programs import use_typescript_program

pytestmark = pytest.mark.timeout(900)

SDK = ROOT / "sdk" / "nodejs"
CONNECTION = "kms-connection:index:CustomKeyStoreConnection"
NEW = "cks-3333333333333333c"
# What `scripts/gen-sdk` writes that the repository does not keep (npm's and tsc's output).
UNKEPT = {"node_modules", "bin"}


@pytest.fixture
def example(make_stack: Callable[..., CliStack], typescript_modules: Path) -> CliStack:
    """The TypeScript example against an emulator seeded with its two stores (both DISCONNECTED)."""
    seeded = make_stack(emulator_kwargs={"seed": ROOT / "local" / "seed.json"})
    return use_typescript_program(seeded, typescript_modules)


def kept_files(folder: Path) -> set[str]:
    return {
        str(path.relative_to(folder)) for path in folder.rglob("*")
        if path.is_file() and not UNKEPT & set(path.relative_to(folder).parts)
    }


def test_the_committed_typescript_sdk_is_what_gen_sdk_generates_from_the_schema(
    pulumi_bin_dir: Path, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "gen-sdk"), str(tmp_path)], capture_output=True, text=True, timeout=600, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    generated = tmp_path / "nodejs"
    assert kept_files(generated) == kept_files(SDK)
    _, mismatched, errors = filecmp.cmpfiles(generated, SDK, sorted(kept_files(SDK)), shallow=False)
    assert (mismatched, errors) == ([], []), "sdk/nodejs is stale: run scripts/gen-sdk and commit the result"


def test_pulumi_import_prints_typescript_for_the_adopted_store(example: CliStack) -> None:
    example.up()
    example.emulator.create_store(store_id=NEW, name="adopted", connection_state="CONNECTED")
    before = len(example.calls())

    result = example.cli("import", CONNECTION, "adopted", NEW, "--yes")

    assert example.mutating_calls(before) == []
    assert example.resources(CONNECTION)["adopted"]["id"] == NEW
    assert 'import * as kms_connection from "@kms-connection/pulumi";' in result.stdout
    assert 'new kms_connection.CustomKeyStoreConnection("adopted", {' in result.stdout
    assert f'customKeyStoreId: "{NEW}",' in result.stdout
    assert 'desiredState: "CONNECTED",' in result.stdout


def test_a_typescript_program_that_throws_fails_the_up_with_its_message_and_no_call(example: CliStack) -> None:
    (example.project_dir / "index.ts").write_text(
        'throw new Error("kms-connection example: no key stores configured");\n'
    )

    result = example.cli("up", "--yes", check=False)

    assert result.returncode != 0
    assert "no key stores configured" in result.stdout
    assert example.calls() == []


def test_a_typescript_program_without_its_npm_packages_fails_saying_to_install_them(example: CliStack) -> None:
    (example.project_dir / "node_modules").unlink()

    result = example.cli("preview", check=False)

    assert result.returncode != 0
    assert "the Pulumi Node.js SDK (@pulumi/pulumi) is not installed for" in result.stdout
    assert "run `npm install` in that folder (or `pulumi install`)" in result.stdout
    assert example.calls() == []
