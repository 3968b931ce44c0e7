"""The plugin benchmark (`python -m bench.plugin`) runs: a smoke run of its cold-start measure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.pulumi_cli import ROOT


def test_the_cold_start_measure_times_both_providers_to_their_first_check(tmp_path: Path) -> None:
    out = tmp_path / "results.json"

    result = subprocess.run(
        [sys.executable, "-m", "bench.plugin", "--only", "cold", "--runs", "2", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )

    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())["cold_start"]
    assert set(figures["summary"]) == {"plugin", "dynamic"}
    assert all(0 < summary["to_port"] <= summary["total"] for summary in figures["summary"].values())
    assert "plugin / dynamic" in result.stdout
