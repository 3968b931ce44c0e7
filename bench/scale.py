"""Measure 5: N stores through one provider server, as N per-store resources or as one set.

Per-store: N threads each send Check then Create at once (the engine runs independent resources in parallel),
and the provider server answers with its four worker threads, so the connects go in turns of four: about
ceil(N/4) x T. Set: one Check and one Create that connects every store and waits for them together. Wall time is
from the first request to the last answer, divided by the transition time T.

Each run has a fresh emulator state (``reset``), so the set's one Describe lists only the run's stores. A
throttled run puts the emulator at KMS's default quota, 5 requests per second per operation and Region.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from seam.engine import ProviderError, Registration

from .harness import Bench, count, median

SERVER_THREADS = 4
KMS_QUOTA_RPS = 5.0


@dataclass(frozen=True)
class Run:
    wall: float
    counts: dict[str, int]
    converged: bool
    error: str = ""


def run(
    *, ns: Sequence[int], t: float, repeat: int, single_above: int, throttled_ns: Sequence[int]
) -> dict[str, Any]:
    """``repeat`` runs of each N, but one run for N > ``single_above`` (the 40-store per-store run takes
    ceil(40/4) x T by design); each N of ``throttled_ns`` once more with throttling at 5 rps."""
    rows: list[dict[str, Any]] = []
    with Bench(connect_seconds=t, disconnect_seconds=0.5) as bench:
        bench.warm()
        for n in ns:
            for kind in ("per-store", "set"):
                times = repeat if n <= single_above else 1
                rows.append(_row(bench, kind, n, t, times, throttle=None))
        for n in throttled_ns:
            for kind in ("per-store", "set"):
                rows.append(_row(bench, kind, n, t, 1, throttle=KMS_QUOTA_RPS))
    return {"t": t, "server_threads": SERVER_THREADS, "rows": rows}


def _row(bench: Bench, kind: str, n: int, t: float, times: int, throttle: float | None) -> dict[str, Any]:
    runs = [_once(bench, kind, n, throttle) for _ in range(times)]
    wall = median(r.wall for r in runs)
    expected = math.ceil(n / SERVER_THREADS) if kind == "per-store" else 1
    totals = runs[-1].counts
    return {
        "kind": kind,
        "n": n,
        "throttle_rps": throttle,
        "runs": len(runs),
        "wall": wall,
        "wall_over_t": wall / t,
        "expected_over_t": expected,
        "converged": all(r.converged for r in runs),
        "errors": [r.error for r in runs if r.error],
        "calls": totals,
        "calls_per_store": totals["total"] / n,
        "walls": [r.wall for r in runs],
    }


def _once(bench: Bench, kind: str, n: int, throttle: float | None) -> Run:
    bench.emu.reset()
    bench.emu.set_throttle(throttle)
    ids = bench.stores(n, "DISCONNECTED")
    registrations = [bench.connection_set(ids)] if kind == "set" else [bench.connection(i) for i in ids]
    mark = bench.mark()
    errors: list[str] = []
    lock = threading.Lock()
    gate = threading.Barrier(len(registrations) + 1)

    def step(registration: Registration) -> None:
        gate.wait()
        try:
            checked = bench.server.check(registration.urn, {}, registration.inputs)
            bench.server.create(registration.urn, checked.inputs)
        except ProviderError as error:
            with lock:
                errors.append(error.details.strip().splitlines()[-1][:300] if error.details else str(error))

    threads = [threading.Thread(target=step, args=(r,), daemon=True) for r in registrations]
    for thread in threads:
        thread.start()
    gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    converged = all(bench.emu.state_of(store_id) == "CONNECTED" for store_id in ids)
    bench.emu.set_throttle(None)
    return Run(wall, count(bench.calls_since(mark), ids).as_json(), converged and not errors, "; ".join(errors))
