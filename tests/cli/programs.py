"""The programs in other languages that the CLI tests run: the YAML and TypeScript examples (examples/yaml/,
examples/typescript/), each using the provider plugin from this checkout against a test's own emulator."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from bench.pulumi_cli import ROOT, run_pulumi
from tests.cli.conftest import CliStack

YAML_EXAMPLE = ROOT / "examples" / "yaml"
TYPESCRIPT_EXAMPLE = ROOT / "examples" / "typescript"
# The files of the TypeScript example a test's copy of it takes (its node_modules is linked, not copied).
TYPESCRIPT_FILES = ("index.ts", "tsconfig.json", "package.json")


def connection(store_id: Any, **properties: Any) -> dict[str, Any]:
    """A CustomKeyStoreConnection in a YAML program."""
    properties = {"customKeyStoreId": store_id, **properties}
    return {"type": "kms-connection:CustomKeyStoreConnection", "properties": properties}


def use_yaml_program(stack: CliStack, resources: dict[str, Any] | None = None) -> CliStack:
    """Make the stack's project the YAML example (or the example's project with ``resources`` instead of its
    own)."""
    project = yaml.safe_load((YAML_EXAMPLE / "Pulumi.yaml").read_text())
    if resources is not None:
        project["resources"] = resources
        project.pop("outputs", None)
    return _use_project(stack, project)


def use_typescript_program(stack: CliStack, node_modules: Path) -> CliStack:
    """Make the stack's project the TypeScript example, with the npm packages installed in ``node_modules``."""
    project = yaml.safe_load((TYPESCRIPT_EXAMPLE / "Pulumi.yaml").read_text())
    _use_project(stack, project)
    for name in TYPESCRIPT_FILES:
        shutil.copy(TYPESCRIPT_EXAMPLE / name, stack.project_dir / name)
    (stack.project_dir / "node_modules").symlink_to(node_modules, target_is_directory=True)
    return stack


def install_typescript_example() -> Path:
    """The TypeScript example's npm packages, installed from its lock file as a user would (``npm ci``)."""
    if shutil.which("npm") is None:
        raise RuntimeError("npm is not on PATH: the TypeScript tests need Node.js and npm")
    result = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"], cwd=TYPESCRIPT_EXAMPLE, capture_output=True, text=True,
        timeout=900, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"npm ci in {TYPESCRIPT_EXAMPLE} failed:\n{result.stdout}\n{result.stderr}")
    return TYPESCRIPT_EXAMPLE / "node_modules"


def _use_project(stack: CliStack, project: dict[str, Any]) -> CliStack:
    """Replace the stack's project with ``project`` (a Pulumi.yaml), running the plugin from this checkout,
    configured for the stack's emulator."""
    for path in stack.project_dir.iterdir():
        path.unlink()
    project["plugins"]["providers"][0]["path"] = str(ROOT / "provider")
    (stack.project_dir / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    config = {"kms-connection:region": "us-east-1", "kms-connection:endpoints": [{"kms": stack.emulator.endpoint_url}]}
    (stack.project_dir / f"Pulumi.{stack.name}.yaml").write_text(yaml.safe_dump({"config": config}))
    created = run_pulumi(stack.pulumi_bin_dir, stack.project_dir, stack.env, "stack", "init", stack.name)
    assert created.returncode == 0, created.stdout
    return stack
