"""The plugin benchmark (`python -m bench.plugin`) runs: a smoke run of its cold-start measure."""

from __future__ import annotations

from pathlib import Path

from tests.bench_runs import run_bench


def test_the_cold_start_measure_times_both_providers_to_their_first_check(tmp_path: Path) -> None:
    out = tmp_path / "results.json"

    printed, results = run_bench("bench.plugin", "--only", "cold", "--runs", "2", out=out, timeout=300)

    figures = results["cold_start"]
    assert set(figures["summary"]) == {"plugin", "dynamic"}
    assert all(0 < summary["to_port"] <= summary["total"] for summary in figures["summary"].values())
    assert "plugin / dynamic" in printed
