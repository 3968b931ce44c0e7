"""Running the project's real Pulumi CLI on a copy of a project: what the engine benchmark and ``tests/cli`` share.

The CLI is the project's (``scripts/engine.sh``: a ``pulumi`` on PATH, else the pinned build from ``engine/``).
Each copy of the project has its own file backend and Pulumi home, runs the checkout's virtualenv wherever the
copy lives, and hides the developer's AWS settings: the provider reaches only the emulator it is configured for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from kms_connection.emulator import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY

ROOT = Path(__file__).resolve().parent.parent
# The variables through which botocore would find the developer's own credentials, profiles or endpoints.
AMBIENT_AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


class CliUnavailableError(RuntimeError):
    """No Pulumi CLI can be had here: neither ``pulumi`` nor ``go`` is on PATH."""


def pulumi_bin_dir() -> Path:
    """The folder of the project's Pulumi CLI, built on first use (minutes, once per machine)."""
    if shutil.which("pulumi") is None and shutil.which("go") is None:
        raise CliUnavailableError("neither `pulumi` nor `go` is on PATH: no Pulumi CLI can be had on this machine")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "engine.sh")], capture_output=True, text=True, timeout=3600, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"building the Pulumi CLI failed:\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])


def copy_project(project_dir: Path, program: str | None = None) -> None:
    """The project (``Pulumi.yaml`` and the stack program, or ``program`` instead) in ``project_dir``."""
    project_dir.mkdir(parents=True, exist_ok=True)
    project: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    project["runtime"]["options"]["virtualenv"] = str(ROOT / ".venv")
    (project_dir / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    if program is None:
        shutil.copy(ROOT / "__main__.py", project_dir / "__main__.py")
    else:
        (project_dir / "__main__.py").write_text(program)


def cli_env(bin_dir: Path, workspace: Path) -> dict[str, str]:
    """The CLI's environment: its own backend and home under ``workspace``, dummy credentials for the emulator."""
    (workspace / "state").mkdir(parents=True, exist_ok=True)
    (workspace / "home").mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key not in AMBIENT_AWS_VARIABLES}
    env.update(
        PATH=os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), env.get("PATH", "")]),
        PULUMI_HOME=str(workspace / "home"),
        PULUMI_BACKEND_URL=f"file://{workspace / 'state'}",
        PULUMI_CONFIG_PASSPHRASE="kms-connection-local",
        PULUMI_SKIP_UPDATE_CHECK="true",
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
        AWS_ACCESS_KEY_ID=DUMMY_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=DUMMY_SECRET_ACCESS_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def write_stack_config(project_dir: Path, stack: str, endpoint_url: str, **project_config: Any) -> dict[str, Any]:
    """``Pulumi.<stack>.yaml``: the emulator's endpoint, plus ``kms-connection:<key>`` entries; returns the config."""
    config: dict[str, Any] = {"aws:region": "us-east-1", "aws:endpoints": [{"kms": endpoint_url}]}
    for key, value in project_config.items():
        config[key if ":" in key else f"kms-connection:{key}"] = value
    path = project_dir / f"Pulumi.{stack}.yaml"
    existing = (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}
    document = {key: value for key, value in existing.items() if key != "config"}
    document["config"] = config
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return config


def run_pulumi(
    bin_dir: Path, project_dir: Path, env: dict[str, str], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``pulumi ARGS`` in ``project_dir``, non-interactive and uncoloured; stdout and stderr together."""
    return subprocess.run(
        [str(bin_dir / "pulumi"), *args, "--non-interactive", "--color", "never"],
        cwd=project_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
        check=False,
    )
