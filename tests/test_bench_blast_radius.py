"""``python -m bench.blast_radius --quick``: the figures are written, and the key calls of a planned disconnect's
preview are exactly one listing of the Region's keys and aliases (none with ``disconnect_guard="off"``).

No timing is asserted (the machine is shared and noisy)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "results-blast-radius.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.blast_radius", "--quick", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"},
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Preview of a planned disconnect" in proc.stdout
    loaded: list[dict[str, Any]] = json.loads(out.read_text(encoding="utf-8"))["results"]
    return loaded


def test_a_warning_preview_lists_the_regions_keys_and_aliases_once_whatever_the_latency(
    results: list[dict[str, Any]],
) -> None:
    assert [result["latency_s"] > 0 for result in results] == [False, True]
    for result in results:
        calls = result["calls"]["warn"]
        assert (calls["ListKeys"], calls["DescribeKey"], calls["ListAliases"]) == (1, result["keys"], 1)
        assert calls["DescribeCustomKeyStores"] == 1


def test_a_preview_with_the_guard_off_makes_no_key_call(results: list[dict[str, Any]]) -> None:
    for result in results:
        assert set(result["calls"]["off"]) == {"DescribeCustomKeyStores"}


def test_the_line_names_the_aliased_keys_first_and_counts_the_rest(results: list[dict[str, Any]]) -> None:
    line = results[0]["line"]
    assert "will disconnect; 20 enabled keys become unusable: alias/app-" in line
    assert line.rstrip().endswith("and 15 more")
