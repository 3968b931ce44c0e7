"""``python -m bench --quick``: every section is written with sane figures, and the exact call minima hold.

No timing is asserted (the machine is shared and noisy); call counts for preview and adoption are exact. The
``engine`` section, which runs the real Pulumi CLI, is left to ``tests/cli/test_bench_engine.py``: here it would
only add time under this fixture's bound.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from tests.bench_runs import run_bench

SECTIONS = ("calls", "lag", "overhead", "scale")

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    printed, loaded = run_bench("bench", "--quick", "--only", ",".join(SECTIONS), out=out, timeout=110)
    assert "Goals" in printed
    assert isinstance(loaded, dict)
    return loaded


def numbers(value: Any) -> Iterator[float]:
    """Every number in a JSON value, at any depth (booleans excluded)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item)


def test_every_section_is_there_with_finite_non_negative_numbers(results: dict[str, Any]) -> None:
    for section in (*SECTIONS, "meta", "goals"):
        assert section in results, section
    assert results["meta"]["quick"] is True
    for section in SECTIONS:
        figures = list(numbers(results[section]))
        assert figures, section
        assert all(math.isfinite(x) and x >= 0 for x in figures), section


def test_each_section_holds_its_figures(results: dict[str, Any]) -> None:
    assert {row["operation"] for row in results["calls"]["rows"]} >= {
        "preview",
        "adopt (already CONNECTED)",
        "connect (up, new resource)",
        "repair FAILED (up)",
        "disconnect (up, desired_state)",
        "destroy (CONNECTED store)",
    }
    lag = results["lag"]
    assert lag["measured"] and all(row["ours"]["lag"] is not None for row in lag["measured"])
    assert {row["t"] for row in lag["schedule"]} >= {30.0, 60.0, 300.0, 1200.0}
    assert lag["grid"]["bands"]
    overhead = results["overhead"]
    assert set(overhead["cold_start"]) == {"ours", "noop"}
    assert set(overhead["provider_bytes"]) == {"CustomKeyStoreConnection", "CustomKeyStoreConnectionSet", "noop"}
    scale = results["scale"]
    assert {row["kind"] for row in scale["rows"]} == {"per-store", "set"}
    assert any(row["throttle_rps"] for row in scale["rows"])
    assert all(row["converged"] for row in scale["rows"])
    assert {goal["id"] for goal in results["goals"]} >= {
        "preview-per-store",
        "preview-set",
        "adoption",
        "lag",
        "lag-calls",
        "cold-start",
        "provider-size",
        "scale-set",
        "scale-per-store",
    }


def test_preview_reads_each_store_once_and_changes_nothing(results: dict[str, Any]) -> None:
    rows = {(r["operation"], r["resource"]): r for r in results["calls"]["rows"]}
    per_store = rows[("preview", "per-store")]
    assert per_store["describe"] == per_store["stores"]
    assert per_store["mutating"] == 0
    assert per_store["changes"] >= 1  # the drifted stores still show
    the_set = rows[("preview", "set")]
    assert the_set["describe"] == 1  # one Describe lists every store of the Region
    assert the_set["mutating"] == 0
    # Check reads a new resource's stores once, to say what up will do: each store, or the set's with one call.
    new_per_store, new_set = rows[("preview (new stack)", "per-store")], rows[("preview (new stack)", "set")]
    assert (new_per_store["describe"], new_per_store["mutating"]) == (per_store["stores"], 0)
    assert (new_set["describe"], new_set["mutating"]) == (1, 0)


def test_adoption_makes_no_mutating_call(results: dict[str, Any]) -> None:
    adoptions = [r for r in results["calls"]["rows"] if r["operation"].startswith("adopt")]
    assert {r["resource"] for r in adoptions} == {"per-store", "set"}
    for row in adoptions:
        assert row["mutating"] == 0
        # Check's read and Create's: per store, or one Describe each for the set.
        assert row["describe"] == (2 if row["resource"] == "set" else 2 * row["stores"])


def test_changes_make_exactly_their_mutating_calls(results: dict[str, Any]) -> None:
    rows = {r["operation"]: r for r in results["calls"]["rows"] if r["resource"] == "per-store"}
    assert (rows["connect (up, new resource)"]["connect"], rows["connect (up, new resource)"]["disconnect"]) == (1, 0)
    assert (rows["repair FAILED (up)"]["connect"], rows["repair FAILED (up)"]["disconnect"]) == (1, 1)
    assert rows["disconnect (up, desired_state)"]["mutating"] == 1
    assert rows["destroy (CONNECTED store)"]["mutating"] == 1


def test_the_goals_are_judged(results: dict[str, Any]) -> None:
    goals = {goal["id"]: goal for goal in results["goals"]}
    # Exact and machine-independent: these hold on any run.
    for key in ("preview-per-store", "preview-set", "adoption", "provider-size"):
        assert goals[key]["met"] is True, goals[key]
    # Arithmetic on the schedule, not timing: no polling schedule meets both halves of the lag goal.
    assert goals["lag-calls"]["met"] is False
