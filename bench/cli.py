"""``python -m bench``: run the measures, print the tables, write the figures as JSON."""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import calls, engine, lag, overhead, report, scale
from .harness import isolate_environment

SECTIONS = ("calls", "lag", "overhead", "scale", "engine")
DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"
LONG_TS = (30.0, 60.0, 300.0, 1200.0)


@dataclass(frozen=True)
class Plan:
    """What a run measures: a full run, or a quick smoke run of the same code paths with small numbers."""

    stores: int
    connect_seconds: float
    disconnect_seconds: float
    lag_ts: tuple[float, ...]
    baseline_interval: float
    overhead_runs: int
    scale_ns: tuple[int, ...]
    scale_t: float
    scale_single_above: int
    throttled_ns: tuple[int, ...]
    engine_stores: int
    engine_runs: int
    engine_t: float


FULL = Plan(
    stores=10,
    connect_seconds=1.0,
    disconnect_seconds=0.5,
    lag_ts=(1.0, 2.0, 5.0, 10.0),
    baseline_interval=30.0,
    overhead_runs=9,
    scale_ns=(1, 4, 10, 40),
    scale_t=2.0,
    scale_single_above=10,
    throttled_ns=(10, 40),
    engine_stores=10,
    engine_runs=5,
    engine_t=5.0,
)
QUICK = Plan(
    stores=3,
    connect_seconds=0.2,
    disconnect_seconds=0.1,
    lag_ts=(0.3, 0.6),
    baseline_interval=1.0,
    overhead_runs=1,
    scale_ns=(1, 4),
    scale_t=0.5,
    scale_single_above=4,
    throttled_ns=(4,),
    engine_stores=2,
    engine_runs=1,
    engine_t=0.5,
)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark kms-connection against the local KMS emulator, through the SDK's provider server.",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds: small N, short T, 1 repeat")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="where to write the JSON (default bench/results.json)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per figure, medians reported (default 3, quick 1)")
    parser.add_argument("--overhead-runs", type=int, default=None,
                        help="cold starts per provider, interleaved (default 9; quick 1)")
    parser.add_argument("--show", type=Path, default=None, metavar="JSON",
                        help="print the tables of an earlier run's JSON (e.g. bench/results.json) and exit")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run, of {', '.join(SECTIONS)} (default all)")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.overhead_runs is not None and args.overhead_runs < 1:
        parser.error("--overhead-runs must be at least 1")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = QUICK if args.quick else FULL
    repeat = args.repeat or (1 if args.quick else 3)
    started = time.perf_counter()
    results: dict[str, Any] = {}
    for section in args.sections:
        print(f"... {section}", file=sys.stderr, flush=True)
        section_started = time.perf_counter()
        if section == "calls":
            results["calls"] = calls.run(
                stores=plan.stores, connect_seconds=plan.connect_seconds, disconnect_seconds=plan.disconnect_seconds
            )
        elif section == "lag":
            results["lag"] = lag.run(
                ts=plan.lag_ts, long_ts=LONG_TS, repeat=repeat, baseline_interval=plan.baseline_interval
            )
        elif section == "overhead":
            results["overhead"] = overhead.run(runs=args.overhead_runs or plan.overhead_runs)
        elif section == "engine":
            results["engine"] = engine.run(stores=plan.engine_stores, runs=plan.engine_runs, t=plan.engine_t)
        else:
            results["scale"] = scale.run(
                ns=plan.scale_ns,
                t=plan.scale_t,
                repeat=repeat,
                single_above=plan.scale_single_above,
                throttled_ns=plan.throttled_ns,
            )
        results[section]["seconds"] = time.perf_counter() - section_started
    results["meta"] = {
        "quick": bool(args.quick),
        "repeat": repeat,
        "sections": list(args.sections),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": time.perf_counter() - started,
    }
    results["goals"] = report.goals(results)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.show is not None:
        shown: dict[str, Any] = json.loads(args.show.read_text(encoding="utf-8"))
        shown["goals"] = report.goals(shown)
        print(report.render(shown))
        return 0
    isolate_environment()
    results = run(args)
    print(report.render(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(_finite(results), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


def _finite(value: Any) -> Any:
    """JSON has no infinity or NaN: write them as null (a figure that could not be computed)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
