"""``python -m bench.blast_radius --quick``: the figures are written, and the key calls of a planned disconnect's
preview are exactly one listing of the Region's keys and aliases (none with ``disconnect_guard="off"``).

No timing is asserted (the machine is shared and noisy)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.bench_runs import run_bench

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "results-blast-radius.json"
    printed, loaded = run_bench("bench.blast_radius", "--quick", out=out, timeout=110)
    assert "Preview of a planned disconnect" in printed
    results: list[dict[str, Any]] = loaded["results"]
    return results


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
