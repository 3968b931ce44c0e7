"""Section ``engine``: what the provider adds to the real Pulumi engine's own time, through the real CLI.

Two stacks of the same shape run side by side, their commands alternating: ours (the stack program with N
per-store connections, every store already CONNECTED) and a no-op stack (N dynamic resources of
``bench/noop_provider.py``). Measured: a no-change ``pulumi preview`` and a no-change ``pulumi up`` (wall time of
the CLI process, and our Describe calls, which must be exactly one per store for a preview), then ``pulumi up`` of
one set of N DISCONNECTED stores that take T seconds to connect, against the no-op stack's ``pulumi up`` creating
N resources: the set's goal is T + that time + 1 s.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from kms_connection.emulator import Emulator

from .pulumi_cli import ROOT, cli_env, copy_project, pulumi_bin_dir, run_pulumi, write_stack_config

DESCRIBE = "DescribeCustomKeyStores"
MUTATING = ("ConnectCustomKeyStore", "DisconnectCustomKeyStore")

NOOP_PROGRAM = """
import pulumi
from pulumi.dynamic import Resource

from bench.noop_provider import NoopProvider


class Noop(Resource, module="bench", name="Noop"):
    pass


for index in range({n}):
    Noop(NoopProvider(), f"noop-{{index}}", {{"custom_key_store_id": f"cks-{{index:017d}}"}})
"""


class _Stack:
    """One stack of a project copy, with its own backend; ``run`` times a CLI command."""

    def __init__(self, bin_dir: Path, workspace: Path, name: str, program: str | None = None) -> None:
        self.bin_dir = bin_dir
        self.project = workspace / "project"
        copy_project(self.project, program)
        self.env = cli_env(bin_dir, workspace)
        # The no-op program imports bench.noop_provider; both stacks get the same path, so the comparison is fair.
        self.env["PYTHONPATH"] = str(ROOT)
        self.name = name
        self.run("stack", "init")

    def run(self, *args: str) -> float:
        started = time.perf_counter()
        result = run_pulumi(self.bin_dir, self.project, self.env, *args, "--stack", self.name)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(f"pulumi {' '.join(args)} failed:\n{result.stdout}")
        return seconds


def _store_ids(prefix: str, n: int) -> list[str]:
    return [f"cks-{prefix}{index:0{17 - len(prefix)}d}" for index in range(n)]


def run(*, stores: int, runs: int, t: float) -> dict[str, Any]:
    """The engine section's figures: ``runs`` alternating runs of each command, medians reported."""
    bin_dir = pulumi_bin_dir()
    with tempfile.TemporaryDirectory(prefix="kms-bench-engine-") as scratch, Emulator(connect_seconds=t) as emulator:
        root = Path(scratch)
        steady_ids = _store_ids("a", stores)
        for store_id in steady_ids:
            emulator.create_store(store_id=store_id, name=store_id, connection_state="CONNECTED")
        ours = _Stack(bin_dir, root / "ours", "bench")
        write_stack_config(ours.project, "bench", emulator.endpoint_url,
                           keyStores=[{"id": store_id, "name": store_id} for store_id in steady_ids])
        noop = _Stack(bin_dir, root / "noop", "bench", NOOP_PROGRAM.format(n=stores))
        write_stack_config(noop.project, "bench", emulator.endpoint_url)
        ours.run("up", "--yes")
        noop.run("up", "--yes")

        timings: dict[str, dict[str, list[float]]] = {
            command: {"ours": [], "noop": []} for command in ("preview", "up")
        }
        reads: dict[str, list[int]] = {"preview": [], "up": []}
        mutating: dict[str, list[int]] = {"preview": [], "up": []}
        for command in ("preview", "up"):
            args = ("preview",) if command == "preview" else ("up", "--yes")
            for _ in range(runs):
                before = len(emulator.calls)
                timings[command]["ours"].append(ours.run(*args))
                calls = emulator.calls[before:]
                reads[command].append(sum(call.operation == DESCRIBE for call in calls))
                mutating[command].append(sum(call.operation in MUTATING for call in calls))
                timings[command]["noop"].append(noop.run(*args))

        set_runs: list[dict[str, float]] = []
        for index in range(runs):
            set_ids = _store_ids(f"c{index}", stores)
            for store_id in set_ids:
                emulator.create_store(store_id=store_id, name=store_id)
            ours_set = _Stack(bin_dir, root / f"set-{index}", "bench")
            write_stack_config(ours_set.project, "bench", emulator.endpoint_url,
                               keyStoreSets=[{"name": "stores", "ids": set_ids}])
            noop_new = _Stack(bin_dir, root / f"noop-{index}", "bench", NOOP_PROGRAM.format(n=stores))
            write_stack_config(noop_new.project, "bench", emulator.endpoint_url)
            set_runs.append({"ours": ours_set.run("up", "--yes"), "noop": noop_new.run("up", "--yes")})

    def median(values: list[float]) -> float:
        return statistics.median(values)

    steady = {
        command: {
            "ours": median(timings[command]["ours"]),
            "noop": median(timings[command]["noop"]),
            "ratio": median(timings[command]["ours"]) / median(timings[command]["noop"]),
            "paired_ratio": median([a / b for a, b in zip(timings[command]["ours"], timings[command]["noop"],
                                                           strict=True)]),
            "describe_per_run": sorted(set(reads[command])),
            "mutating_per_run": sorted(set(mutating[command])),
        }
        for command in ("preview", "up")
    }
    set_ours = median([r["ours"] for r in set_runs])
    set_noop = median([r["noop"] for r in set_runs])
    return {
        "stores": stores,
        "runs": runs,
        "t": t,
        "steady": steady,
        "set_up": {"ours": set_ours, "noop": set_noop, "budget": t + set_noop + 1.0,
                   "runs": [dict(r) for r in set_runs]},
    }
