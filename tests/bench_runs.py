"""The benchmark run as a user runs it (``python -m bench…`` from the repository), for the tests of what it writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.pulumi_cli import ROOT


def run_bench(module: str, *args: str, out: Path, timeout: float) -> tuple[str, Any]:
    """Run ``python -m <module> <args> --out <out>``; return what it printed and the JSON it wrote.

    Fails the test with the run's stderr when it exits non-zero; ``timeout`` bounds it, below the test's own."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args, "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(out.read_text(encoding="utf-8"))
