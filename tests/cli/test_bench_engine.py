"""``python -m bench --quick --only engine``: the benchmark's section through the real Pulumi CLI runs, and what
it counts exactly holds (no timing is asserted: the machine is shared and noisy)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.bench_runs import run_bench

# Two stacks of two stores, one run of each command: about 20 s on an idle machine, several times that under load.
pytestmark = pytest.mark.timeout(330)


@pytest.mark.usefixtures("pulumi_bin_dir")  # the CLI, built here on first use; skips only where none can exist
def test_the_engine_section_counts_one_read_per_store_per_preview_and_no_mutating_call(tmp_path: Path) -> None:
    out = tmp_path / "results.json"

    printed, results = run_bench("bench", "--quick", "--only", "engine", out=out, timeout=300)

    engine = results["engine"]
    steady = engine["steady"]
    assert steady["preview"]["describe_per_run"] == [engine["stores"]]
    assert steady["preview"]["mutating_per_run"] == [0]
    assert steady["up"]["mutating_per_run"] == [0]
    set_up = engine["set_up"]
    assert all(math.isfinite(set_up[key]) and set_up[key] > 0 for key in ("ours", "noop", "budget"))
    assert "6. Through the real Pulumi CLI" in printed
