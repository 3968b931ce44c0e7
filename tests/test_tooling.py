"""The project's own checks ignore every virtual environment: a contributor who follows the policy pack's README (and
makes ``policy/venv``) still gets a green ``scripts/test``.

Each test copies ``pyproject.toml`` into a scratch tree shaped like the project, puts third-party code that breaks the
tool under ``policy/venv`` (as a real venv's ``bin/jp.py`` does), and runs the tool as ``scripts/test`` runs it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
# Code no checker accepts: a type error (mypy), an unused import and a bare except (ruff), a failing test (pytest).
BROKEN_THIRD_PARTY = """import os


def test_third_party_code_is_not_ours() -> None:
    try:
        value: int = "text"
    except:
        pass
    assert False
"""


@pytest.fixture
def project_with_policy_venv(tmp_path: Path) -> Path:
    """A tree with the project's configuration, one clean module per checked folder, and a broken ``policy/venv``."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    checked = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["files"]
    for folder in (*checked, "policy/tests"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "tests" / "test_ok.py").write_text("def test_ok() -> None:\n    assert 1 + 1 == 2\n")
    for venv in ("policy/venv", ".venv", "venv"):
        scripts = tmp_path / venv / "bin"
        scripts.mkdir(parents=True)
        (tmp_path / venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
        (scripts / "jp.py").write_text(BROKEN_THIRD_PARTY)
        (scripts / "test_jp.py").write_text(BROKEN_THIRD_PARTY)
    return tmp_path


def _run(tree: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=tree, capture_output=True, text=True, timeout=300)


def test_mypy_skips_the_policy_packs_virtualenv(project_with_policy_venv: Path) -> None:
    result = _run(project_with_policy_venv, "mypy", "--no-incremental")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "jp.py" not in result.stdout


def test_ruff_skips_the_policy_packs_virtualenv(project_with_policy_venv: Path) -> None:
    result = _run(project_with_policy_venv, "ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_pytest_collects_no_test_from_a_virtualenv(project_with_policy_venv: Path) -> None:
    result = _run(project_with_policy_venv, "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests/test_ok.py: 1" in result.stdout
    assert "jp" not in result.stdout
