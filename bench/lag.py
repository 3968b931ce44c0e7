"""Measures 2 and 3: convergence lag, and the 30-second polling script side by side.

For short transition times T the provider and the baseline script connect real stores of one emulator in the
same window: the baseline runs (which sleep 30 s between polls) in background threads, started first, while the
provider's runs go one after another through the provider server. The emulator's ``connect_seconds`` is fixed
when a connect starts, so each run's Connect is sent with ``connect_seconds`` = its T.

Lag is the time from the store reaching CONNECTED (the emulator's Connect time + T, on the same clock) to the
provider's Create returning to the engine; for the baseline, to the script returning. Long T are evaluated
from the schedules (``bench.analytic``): nobody sleeps for 20 minutes.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kms_connection.schedule import PollSchedule

from . import analytic, baseline
from .harness import DESCRIBE, REGION, Bench, connect_time, count, median

# Grid points sit mid-way between multiples of the step, so they never coincide with a poll of either schedule.
GRID_STEP = 0.25
# Bands of T for the grid evaluation: external stores (seconds), then longer and longer CloudHSM connects.
GRID_BANDS = ((0.5, 10.0), (10.0, 30.0), (30.0, 300.0), (300.0, 1200.0))


@dataclass(frozen=True)
class Run:
    """One connect, by the provider or by the baseline script."""

    t: float
    wall: float
    """Seconds from the start of the engine step (or the script) to its return."""
    lag: float
    """Seconds from the store reaching CONNECTED to the return."""
    waiting_describes: int
    """Describe calls after the Connect."""
    calls: int
    """Every KMS call of the operation."""

    def as_json(self) -> dict[str, float]:
        return {"t": self.t, "wall": self.wall, "lag": self.lag, "waiting_describes": self.waiting_describes,
                "calls": self.calls}


def run(*, ts: Sequence[float], long_ts: Sequence[float], repeat: int, baseline_interval: float) -> dict[str, Any]:
    with Bench(connect_seconds=ts[0], disconnect_seconds=0.5) as bench:
        bench.warm()
        script = _Baselines(bench, baseline_interval)
        for t in ts:
            for _ in range(repeat):
                script.start(t)
        ours: dict[float, list[Run]] = {t: [] for t in ts}
        for t in ts:
            bench.emu.connect_seconds = t
            for _ in range(repeat):
                ours[t].append(_ours_once(bench, t))
        theirs = script.join()

    measured = []
    for t in ts:
        mine, base = ours[t], theirs[t]
        row = _summary(mine)
        base_row = _summary(base)
        measured.append(
            {
                "t": t,
                "ours": row,
                "baseline": base_row,
                "speedup": base_row["wall"] / row["wall"],
                "call_ratio": row["calls"] / base_row["calls"],
                "lag_goal": analytic.lag_goal(t),
                "lag_goal_met": row["lag_max"] <= analytic.lag_goal(t),
                "schedule": analytic.ours(t).as_json(),
                "runs": {"ours": [r.as_json() for r in mine], "baseline": [r.as_json() for r in base]},
            }
        )
    evaluated = []
    for t in sorted({*ts, *long_ts}):
        mine_at, base_at = analytic.ours(t), analytic.baseline(t)
        evaluated.append(
            {
                "t": t,
                "ours": mine_at.as_json(),
                "baseline": base_at.as_json(),
                "speedup": base_at.noticed / mine_at.noticed,
                "call_ratio": mine_at.calls / base_at.calls,
                "lag_goal_met": mine_at.lag_bound <= analytic.lag_goal(t),
            }
        )
    return {
        "baseline_interval": baseline_interval,
        "repeat": repeat,
        "measured": measured,
        "schedule": evaluated,
        "grid": _grid(),
        "feasibility": analytic.feasibility().as_json(),
    }


def _summary(runs: list[Run]) -> dict[str, float]:
    return {
        "wall": median(r.wall for r in runs),
        "lag": median(r.lag for r in runs),
        "lag_max": max(r.lag for r in runs),
        "waiting_describes": median(r.waiting_describes for r in runs),
        "calls": median(r.calls for r in runs),
    }


def _ours_once(bench: Bench, t: float) -> Run:
    store_id = bench.store("DISCONNECTED")
    registration = bench.connection(store_id)
    mark = bench.mark()
    started = time.perf_counter()
    bench.stack.up(registration)
    returned = time.perf_counter()
    calls = [c for c in bench.calls_since(mark) if c.store_id == store_id]
    connected = connect_time(calls, store_id)
    waiting = sum(1 for c in calls if c.operation == DESCRIBE and c.time > connected)
    return Run(t, returned - started, returned - (connected + t), waiting, count(calls).total)


class _Baselines:
    """Baseline script runs in background threads against the bench's emulator."""

    def __init__(self, bench: Bench, interval: float) -> None:
        self.bench = bench
        self.interval = interval
        self.kms = baseline.client(bench.emu.endpoint_url, REGION)
        self._threads: list[threading.Thread] = []
        self._done: list[tuple[float, str, float, float]] = []
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()

    def start(self, t: float) -> None:
        """Start one run with transition time ``t``; return once its Connect has been accepted."""
        store_id = self.bench.store("DISCONNECTED")
        self.bench.emu.connect_seconds = t
        thread = threading.Thread(target=self._one, args=(t, store_id), daemon=True)
        thread.start()
        self._threads.append(thread)
        deadline = time.perf_counter() + 30.0
        while self.bench.emu.state_of(store_id, REGION) == "DISCONNECTED" and thread.is_alive():
            if time.perf_counter() > deadline:
                raise TimeoutError(f"the baseline script did not connect {store_id}")
            time.sleep(0.002)

    def _one(self, t: float, store_id: str) -> None:
        try:
            started = time.perf_counter()
            baseline.connect_and_wait(self.kms, store_id, self.interval)
            returned = time.perf_counter()
        except BaseException as error:
            with self._lock:
                self._errors.append(error)
            return
        with self._lock:
            self._done.append((t, store_id, started, returned))

    def join(self) -> dict[float, list[Run]]:
        for thread in self._threads:
            thread.join()
        if self._errors:
            raise RuntimeError(f"a baseline run failed: {self._errors[0]!r}") from self._errors[0]
        calls = self.bench.emu.calls
        runs: dict[float, list[Run]] = {}
        for t, store_id, started, returned in self._done:
            mine = [c for c in calls if c.store_id == store_id]
            connected = connect_time(mine, store_id)
            waiting = sum(1 for c in mine if c.operation == DESCRIBE and c.time > connected)
            runs.setdefault(t, []).append(
                Run(t, returned - started, returned - (connected + t), waiting, count(mine).total)
            )
        return runs


def _grid() -> dict[str, Any]:
    """Ours against the baseline for every T on a 0.25 s grid from 0.5 s to 20 minutes, from the schedules (no
    jitter), overall and by band of T: how often ours is slower and by how much, each one's mean lag, and how
    often ours makes more calls. One evaluation of ``poll_times`` serves every T (it is a prefix-closed list)."""
    times = PollSchedule().poll_times(GRID_BANDS[-1][1])
    bands: list[dict[str, Any]] = []
    everything: list[_Point] = []
    for low, high in GRID_BANDS:
        points = []
        t = low + GRID_STEP / 2
        while t < high:
            polls = bisect.bisect_left(times, t) + 1
            base = analytic.baseline(t)
            points.append(_Point(t, times[polls - 1], analytic.OURS_FIXED_CALLS + polls, base.noticed, base.calls))
            t += GRID_STEP
        everything += points
        bands.append({"from": low, "to": high, **_grid_stats(points)})
    first, last = GRID_BANDS[0][0], GRID_BANDS[-1][1]
    return {"step": GRID_STEP, "bands": bands, "all": {"from": first, "to": last, **_grid_stats(everything)}}


@dataclass(frozen=True)
class _Point:
    t: float
    ours_noticed: float
    ours_calls: int
    baseline_noticed: float
    baseline_calls: int


def _grid_stats(points: list[_Point]) -> dict[str, Any]:
    worst = max(points, key=lambda p: p.ours_noticed / p.baseline_noticed)
    n = len(points)
    return {
        "points": n,
        "slower_fraction": sum(1 for p in points if p.ours_noticed > p.baseline_noticed + 1e-9) / n,
        "worst_wall_ratio": worst.ours_noticed / worst.baseline_noticed,
        "worst_t": worst.t,
        "mean_lag_ours": sum(p.ours_noticed - p.t for p in points) / n,
        "mean_lag_baseline": sum(p.baseline_noticed - p.t for p in points) / n,
        "min_speedup": min(p.baseline_noticed / p.ours_noticed for p in points),
        "more_calls_fraction": sum(1 for p in points if p.ours_calls > p.baseline_calls) / n,
    }
