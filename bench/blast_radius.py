"""``python -m bench.blast_radius``: what saying what a disconnect breaks costs a preview.

A store holding 20 KMS keys (5 of them with an alias, all enabled) in a Region of 1,000 keys, CONNECTED and
recorded in the stack; the program now declares it DISCONNECTED. The preview (the engine's Check and Diff of the
resource, through the SDK's real provider server, as ``bench/harness.py`` drives it) runs with
``disconnect_guard="off"`` (no key call: the preview as it was) and ``"warn"`` (the default: ListKeys, DescribeKey
of every key of the Region, ListAliases of the keys the line names), alternating, ``--repeat`` times each; the
figure is the difference of the medians, and the key calls the ``warn`` preview made. The emulator applies KMS's
request quotas (DescribeKey 2,000/s, ListKeys and ListAliases 100/s, the custom key store operations 5/s).

The emulator answers on loopback in well under a millisecond, which no KMS endpoint does, so each run is made
twice: as is, and with ``--latency`` (default 20 ms, a same-Region AWS API call) added to every KMS request before
the emulator handles it (outside its lock, so requests in flight at once wait at once, as they would on the
network). Figures go to stdout and to ``--out`` (JSON, not committed).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kms_connection.gateway import DESCRIBE_KEY_WORKERS
from kms_connection.plan import KEYS_NAMED

from .harness import REGION, Bench, isolate_environment
from .report import table

DEFAULT_OUT = Path(__file__).resolve().parent / "results-blast-radius.json"
KEY_CALLS = ("ListKeys", "DescribeKey", "ListAliases")
GUARDS = ("off", "warn")


def add_latency(bench: Bench, seconds: float) -> Callable[[], None]:
    """Make every KMS request wait ``seconds`` before the emulator handles it; returns what undoes it."""
    service = bench.emu.service
    handle = service.handle

    def slow(*args: Any, **kwargs: Any) -> dict[str, Any]:
        time.sleep(seconds)
        answer: dict[str, Any] = handle(*args, **kwargs)
        return answer

    service.handle = slow  # type: ignore[method-assign]

    def undo() -> None:
        service.handle = handle  # type: ignore[method-assign]

    return undo


def measure(keys: int, in_store: int, aliased: int, latency: float, repeat: int) -> dict[str, Any]:
    """Previews of a planned disconnect, ``repeat`` times per guard, alternating; medians and the key calls."""
    with Bench(connect_seconds=1.0, disconnect_seconds=0.5, throttle_rps=5) as bench:
        bench.warm()
        store_id = bench.store("CONNECTED")
        for index in range(in_store):
            aliases = [f"alias/app-{index}"] if index < aliased else []
            bench.emu.create_key(store_id, REGION, aliases=aliases)
        for _ in range(keys - in_store):
            bench.emu.create_key(region=REGION)
        bench.stack.up(bench.connection(store_id, name="hsm"))
        planned = {
            guard: bench.connection(store_id, name="hsm", desired_state="DISCONNECTED", disconnect_guard=guard)
            for guard in GUARDS
        }
        undo = add_latency(bench, latency) if latency else (lambda: None)
        seconds: dict[str, list[float]] = {guard: [] for guard in GUARDS}
        calls: dict[str, Counter[str]] = {}
        throttled: dict[str, int] = {}
        try:
            for run in range(repeat):
                for guard in GUARDS if run % 2 == 0 else reversed(GUARDS):
                    mark = bench.mark()
                    started = time.perf_counter()
                    result = bench.stack.preview(planned[guard])
                    seconds[guard].append(time.perf_counter() - started)
                    assert result.op == "update", result
                    made = bench.calls_since(mark)
                    calls[guard] = Counter(call.operation for call in made)
                    throttled[guard] = sum(1 for call in made if call.outcome == "ThrottlingException")
        finally:
            undo()
        line = next((line for line in bench.server.stderr_lines() if "enabled keys become unusable" in line), "")
        assert bench.emu.state_of(store_id, REGION) == "CONNECTED"
    medians = {guard: statistics.median(values) for guard, values in seconds.items()}
    return {
        "keys": keys,
        "in_store": in_store,
        "aliased": aliased,
        "latency_s": latency,
        "repeat": repeat,
        "seconds": seconds,
        "median_s": medians,
        "added_s": medians["warn"] - medians["off"],
        "calls": {guard: dict(counts) for guard, counts in calls.items()},
        "throttled": throttled,
        "line": line,
    }


def report(results: Sequence[dict[str, Any]]) -> str:
    rows = []
    for result in results:
        for guard in GUARDS:
            counts = result["calls"][guard]
            rows.append(
                [
                    f"{result['latency_s'] * 1000:g} ms",
                    guard,
                    result["median_s"][guard],
                    result["added_s"] if guard == "warn" else None,
                    *(counts.get(operation, 0) for operation in KEY_CALLS),
                    counts.get("DescribeCustomKeyStores", 0),
                    result["throttled"][guard],
                ]
            )
    first = results[0]
    head = (
        f"Preview of a planned disconnect: a store of {first['in_store']} keys ({first['aliased']} aliased) in a "
        f"Region of {first['keys']} keys, KMS's request quotas on, medians of {first['repeat']} "
        f"({DESCRIBE_KEY_WORKERS} DescribeKey in flight, at most {KEYS_NAMED} keys named)"
    )
    headers = ["latency", "guard", "preview s", "added s", *KEY_CALLS, "Describe stores", "throttled"]
    return f"{head}\n{table(headers, rows)}\n    the line: {first['line'].strip()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.blast_radius", description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000, help="KMS keys in the Region (1000)")
    parser.add_argument("--in-store", type=int, default=20, help="of which in the store (20)")
    parser.add_argument("--aliased", type=int, default=5, help="of which with an alias (5)")
    parser.add_argument("--latency", type=float, default=0.020, help="seconds added to each KMS request (0.020)")
    parser.add_argument("--repeat", type=int, default=5, help="previews per guard and latency (5)")
    parser.add_argument("--quick", action="store_true", help="100 keys, 1 run: a smoke run, figures mean nothing")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.keys, args.repeat = 100, 1
    isolate_environment()
    started = time.perf_counter()
    results = [
        measure(args.keys, args.in_store, args.aliased, latency, args.repeat) for latency in (0.0, args.latency)
    ]
    took = time.perf_counter() - started
    print(report(results))
    print(f"({platform.python_version()}, took {took:.0f} s)")
    meta = {"python": platform.python_version(), "took_s": took, "quick": args.quick}
    args.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
