"""The goals, judged from the figures, and the printed tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .analytic import baseline

COLD_START_GOAL = 1.3
PROVIDER_BYTES_GOAL = 200
SPEEDUP_GOAL = 3.0
SCALE_GOAL = 1.5
SCALE_N = 10
ENGINE_PREVIEW_GOAL = 1.2
DESCRIBE_BUDGET_20_MIN = 60
TWENTY_MINUTES = 1200.0


def _goal(key: str, goal: str, figure: str, met: bool) -> dict[str, Any]:
    return {"id": key, "goal": goal, "figure": figure, "met": met}


def _t(t: float) -> str:
    if t >= 60 and t % 60 == 0:
        return f"{t / 60:g} min"
    return f"{t:g} s"


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every goal of the issue that the sections run could judge, met or not, with its figure."""
    out: list[dict[str, Any]] = []
    if "calls" in results:
        out += _call_goals(results["calls"])
    if "lag" in results:
        out += _lag_goals(results["lag"])
    if "overhead" in results:
        out += _overhead_goals(results["overhead"])
    if "scale" in results:
        out += _scale_goals(results["scale"])
    if "engine" in results:
        out += _engine_goals(results["engine"])
    return out


def _call_goals(calls: dict[str, Any]) -> list[dict[str, Any]]:
    rows = calls["rows"]
    out = []
    for resource in ("per-store", "set"):
        row = next(r for r in rows if r["operation"] == "preview" and r["resource"] == resource)
        n = row["stores"]
        met = row["mutating"] == 0 and (row["describe"] == n if resource == "per-store" else row["describe"] <= n)
        goal = (
            "preview: exactly one Describe per store, no mutating call"
            if resource == "per-store"
            else "preview of a set: at most one Describe per store, no mutating call"
        )
        out.append(
            _goal(
                f"preview-{resource}",
                goal,
                f"{row['describe']} Describe, {row['mutating']} mutating for {n} stores",
                met,
            )
        )
    adoptions = [r for r in rows if r["operation"].startswith("adopt")]
    figure = "; ".join(
        f"{r['resource']} x{r['stores']}: {r['describe']} Describe, {r['mutating']} mutating" for r in adoptions
    )
    out.append(_goal("adoption", "adoption: no mutating call", figure, all(r["mutating"] == 0 for r in adoptions)))
    return out


def _lag_goals(lag: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    measured_ts = {row["t"] for row in lag["measured"]}
    parts = [
        f"{_t(row['t'])}: {row['ours']['lag']:.2f} s (max {row['ours']['lag_max']:.2f}, goal {row['lag_goal']:.2f})"
        for row in lag["measured"]
    ]
    parts += [
        f"{_t(row['t'])}: bound {row['ours']['lag_bound']:.2f} s (goal {row['ours']['lag_goal']:.2f})"
        for row in lag["schedule"]
        if row["t"] not in measured_ts
    ]
    met = all(row["lag_goal_met"] for row in lag["measured"]) and all(
        row["lag_goal_met"] for row in lag["schedule"] if row["t"] not in measured_ts
    )
    out.append(_goal("lag", "lag <= max(0.5 s, 5% of T) for every T (measured short T, schedule long T)",
                     "; ".join(parts), met))
    twenty = next((row for row in lag["schedule"] if row["t"] == TWENTY_MINUTES), None)
    if twenty is not None:
        feasible = lag["feasibility"]
        polls = twenty["ours"]["polls"]
        out.append(
            _goal(
                "lag-calls",
                f"a 20-minute wait spends at most {DESCRIBE_BUDGET_20_MIN} Describe calls",
                f"{polls} polls (no jitter; {twenty['ours']['polls_max_jitter']} with the largest jitter); any "
                f"schedule meeting the lag goal needs >= {feasible['minimum_polls']:.0f}",
                polls <= DESCRIBE_BUDGET_20_MIN,
            )
        )
    short = [row for row in lag["measured"] if row["t"] <= 10.0]
    if short:
        out.append(
            _goal(
                "speedup",
                f"at least {SPEEDUP_GOAL:g}x faster than the 30-second script for T up to 10 s",
                ", ".join(
                    f"{_t(r['t'])}: {r['speedup']:.2f}x (ceiling {_ceiling(r['t'], lag['baseline_interval']):.1f}x)"
                    for r in short
                )
                + "; the ceiling is the script's wall time over T, reached only with zero lag and zero overhead",
                all(r["speedup"] >= SPEEDUP_GOAL for r in short),
            )
        )
    grid = lag["grid"]["all"]
    slowest = min([r["speedup"] for r in lag["measured"]] + [r["speedup"] for r in lag["schedule"]])
    out.append(
        _goal(
            "never-slower",
            "never slower than the 30-second script, for any T",
            f"slowest at the T run/evaluated: {slowest:.2f}x; on a {lag['grid']['step']:g} s grid of T to 20 min "
            f"ours is slower for {grid['slower_fraction']:.0%} of T, by at most {grid['worst_wall_ratio']:.3f}x "
            f"(T = {grid['worst_t']:g} s)",
            slowest >= 1.0 and grid["slower_fraction"] == 0.0,
        )
    )
    ratios = [r["call_ratio"] for r in lag["measured"]] + [r["call_ratio"] for r in lag["schedule"]]
    out.append(
        _goal(
            "calls-vs-baseline",
            "no more KMS calls than the 30-second script",
            f"ours / baseline calls: {min(ratios):.1f}x to {max(ratios):.1f}x; more calls for "
            f"{grid['more_calls_fraction']:.0%} of T on the grid",
            max(ratios) <= 1.0 and grid["more_calls_fraction"] == 0.0,
        )
    )
    return out


def _ceiling(t: float, interval: float) -> float:
    """The most any provider can gain on the script: the script's wall time over the transition time."""
    return baseline(t, interval).noticed / t


def _overhead_goals(overhead: dict[str, Any]) -> list[dict[str, Any]]:
    cold = overhead["cold_start"]
    sizes = overhead["provider_bytes"]
    return [
        _goal(
            "cold-start",
            f"cold start to the first Check at most {COLD_START_GOAL:g}x the no-op provider's",
            f"ratio of medians {overhead['ratio']:.2f}x ({cold['ours']['total']:.3f} s vs {cold['noop']['total']:.3f} "
            f"s, {overhead['runs']} runs each), median of paired ratios {overhead['paired_ratio']:.2f}x, CPU "
            f"{overhead['cpu_ratio']:.2f}x (met when both wall-time ratios are <= {COLD_START_GOAL:g}x)",
            max(overhead["ratio"], overhead["paired_ratio"]) <= COLD_START_GOAL,
        ),
        _goal(
            "provider-size",
            f"serialized __provider at most {PROVIDER_BYTES_GOAL} bytes",
            f"CustomKeyStoreConnection {sizes['CustomKeyStoreConnection']} B, "
            f"CustomKeyStoreConnectionSet {sizes['CustomKeyStoreConnectionSet']} B",
            max(sizes["CustomKeyStoreConnection"], sizes["CustomKeyStoreConnectionSet"]) <= PROVIDER_BYTES_GOAL,
        ),
    ]


def _scale_goals(scale: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for kind in ("set", "per-store"):
        rows = [r for r in scale["rows"] if r["kind"] == kind and r["throttle_rps"] is None]
        row = next((r for r in rows if r["n"] == SCALE_N), None) or (rows[-1] if rows else None)
        if row is None:
            continue
        out.append(
            _goal(
                f"scale-{kind}",
                f"{row['n']} stores converge in at most {SCALE_GOAL:g} x T through one server ({kind} resources)",
                f"{row['wall_over_t']:.2f} x T (T = {scale['t']:g} s, median of {row['runs']}; "
                f"turns of {scale['server_threads']} threads predict {row['expected_over_t']} x T)",
                row["wall_over_t"] <= SCALE_GOAL and row["converged"],
            )
        )
    return out


def _engine_goals(engine: dict[str, Any]) -> list[dict[str, Any]]:
    preview = engine["steady"]["preview"]
    set_up = engine["set_up"]
    n = engine["stores"]
    return [
        _goal(
            "engine-preview",
            f"no-change `pulumi preview` of {n} stores at most {ENGINE_PREVIEW_GOAL:g}x the no-op stack's wall time",
            f"ratio of medians {preview['ratio']:.2f}x ({preview['ours']:.2f} s vs {preview['noop']:.2f} s), median "
            f"of paired ratios {preview['paired_ratio']:.2f}x, {engine['runs']} runs each",
            max(preview["ratio"], preview["paired_ratio"]) <= ENGINE_PREVIEW_GOAL,
        ),
        _goal(
            "engine-preview-reads",
            "a no-change `pulumi preview` reads each store exactly once and changes nothing",
            f"Describe calls per preview {preview['describe_per_run']}, mutating {preview['mutating_per_run']} "
            f"for {n} stores",
            preview["describe_per_run"] == [n] and preview["mutating_per_run"] == [0],
        ),
        _goal(
            "engine-set-up",
            f"`pulumi up` of a set of {n} stores with T = {_t(engine['t'])} within T + the no-op stack's up + 1 s",
            f"{set_up['ours']:.2f} s against {set_up['budget']:.2f} s (no-op up {set_up['noop']:.2f} s), median of "
            f"{engine['runs']}",
            set_up["ours"] <= set_up["budget"],
        ),
    ]


# --------------------------------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _g(value: float) -> str:
    """A median count: whole unless two runs disagreed."""
    return f"{value:g}"


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.2f}"
    if value is None:
        return "-"
    return str(value)


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    out = [
        f"kms-connection benchmark ({'quick smoke run' if meta['quick'] else 'full run'}): {meta['cpus']} CPUs, "
        f"Python {meta['python']}, repeat {meta['repeat']}, took {meta['seconds']:.0f} s",
    ]
    if "calls" in results:
        out += ["", _render_calls(results["calls"])]
    if "lag" in results:
        out += ["", _render_lag(results["lag"])]
    if "overhead" in results:
        out += ["", _render_overhead(results["overhead"])]
    if "scale" in results:
        out += ["", _render_scale(results["scale"])]
    if "engine" in results:
        out += ["", _render_engine(results["engine"])]
    out += ["", _render_goals(results["goals"], quick=bool(meta["quick"]))]
    return "\n".join(out)


def _render_goals(found: list[dict[str, Any]], *, quick: bool) -> str:
    title = "Goals" + (" (quick smoke run: small N and T, figures not representative)" if quick else "")
    lines = [title]
    for g in found:
        lines.append(f"  {'met    ' if g['met'] else 'NOT met'}  {g['goal']}")
        lines.append(f"           {g['figure']}")
    return "\n".join(lines)


def _render_calls(calls: dict[str, Any]) -> str:
    rows = [
        (
            r["operation"], r["resource"], r["stores"], r["describe"], r["connect"], r["disconnect"],
            r["min_describe"], r["min_mutating"], r["at_minimum"], r["note"],
        )
        for r in calls["rows"]
    ]
    return (
        f"1. KMS calls per operation, through the provider server (connect {calls['connect_seconds']:g} s, "
        f"disconnect {calls['disconnect_seconds']:g} s)\n"
        + table(
            ("operation", "resource", "N", "Describe", "Connect", "Disconnect", "min Describe", "min mutating",
             "mutating at min", "note"),
            rows,
        )
    )


def _render_lag(lag: dict[str, Any]) -> str:
    interval = lag["baseline_interval"]
    measured = [
        (
            _t(r["t"]), r["ours"]["wall"], r["ours"]["lag"], r["ours"]["lag_max"], r["lag_goal"], r["lag_goal_met"],
            _g(r["ours"]["waiting_describes"]), r["schedule"]["polls"],
        )
        for r in lag["measured"]
    ]
    schedule = [
        (
            _t(r["t"]), r["ours"]["lag"], r["ours"]["lag_bound"], r["ours"]["lag_goal"], r["lag_goal_met"],
            r["ours"]["polls"], r["ours"]["polls_max_jitter"],
        )
        for r in lag["schedule"]
    ]
    versus = [
        (
            _t(r["t"]), "measured", r["ours"]["wall"], r["baseline"]["wall"], f"{r['speedup']:.2f}x",
            _g(r["ours"]["calls"]), _g(r["baseline"]["calls"]), f"{r['call_ratio']:.1f}x",
        )
        for r in lag["measured"]
    ]
    versus += [
        (
            _t(r["t"]), "schedules", r["ours"]["noticed"], r["baseline"]["noticed"], f"{r['speedup']:.2f}x",
            r["ours"]["calls"], r["baseline"]["calls"], f"{r['call_ratio']:.1f}x",
        )
        for r in lag["schedule"]
    ]
    bands = [
        (
            f"{b['from']:g}-{b['to']:g} s", b["mean_lag_ours"], b["mean_lag_baseline"], f"{b['min_speedup']:.2f}x",
            f"{b['slower_fraction']:.0%}", f"{b['worst_wall_ratio']:.3f}x at {b['worst_t']:g} s",
            f"{b['more_calls_fraction']:.0%}",
        )
        for b in [*lag["grid"]["bands"], lag["grid"]["all"]]
    ]
    f = lag["feasibility"]
    return "\n".join(
        [
            f"2. Convergence lag, measured (median of {lag['repeat']}; lag = Create answered - store CONNECTED per "
            "the emulator)",
            table(("T", "wall s", "lag s", "lag max s", "goal s", "met", "Describes waiting", "schedule polls"),
                  measured),
            "",
            "2b. Lag from the waiter's own PollSchedule (poll_times, no jitter; bound = delay(T), any jitter)",
            table(("T", "lag s", "lag bound s", "goal s", "met", "polls", "polls max jitter"), schedule),
            f"    Feasibility: lag <= max(0.5 s, 5% T) needs {f['polls_in_floor_phase']} polls to 10 s + "
            f"ln(120)/ln(1.05) = {f['polls_in_ratio_phase']:.1f} from 10 s to 20 min = "
            f">= {f['minimum_polls']:.0f} polls (schedule: {f['schedule_polls']}); with {f['budget']} polls the best "
            f"uniform lag is {f['best_ratio_within_budget']:.1%} of T.",
            "",
            f"3. Against the polling script (boto3 Connect, then Describe every {interval:g} s, run side by side); "
            "'schedules' rows compute both from the schedules (the script polls at 0, 30, 60, ... s)",
            table(("T", "how", "ours s", "baseline s", "speedup", "ours calls", "baseline calls", "call ratio"),
                  versus),
            "",
            f"3b. Every T on a {lag['grid']['step']:g} s grid, from the schedules (no jitter; 30-s script)",
            table(("T band", "mean lag ours s", "mean lag script s", "min speedup", "ours slower", "worst",
                   "ours more calls"), bands),
        ]
    )


def _render_overhead(overhead: dict[str, Any]) -> str:
    cold = overhead["cold_start"]
    rows = [
        (kind, cold[kind]["total"], cold[kind]["to_port"], cold[kind]["port_to_check"], cold[kind]["cpu"],
         overhead["provider_bytes"][name], overhead["pickle_bytes"][name])
        for kind, name in (("ours", "CustomKeyStoreConnection"), ("noop", "noop"))
    ]
    return "\n".join(
        [
            f"4. Provider overhead: start of `python -u -m pulumi.dynamic` to the first Check answered (medians of "
            f"{overhead['runs']}, interleaved): ratio of medians {overhead['ratio']:.2f}x, median of paired ratios "
            f"{overhead['paired_ratio']:.2f}x, CPU {overhead['cpu_ratio']:.2f}x",
            table(("provider", "cold start s", "to port s", "port to Check s", "CPU s", "__provider B", "pickle B"),
                  rows),
            "    __provider of CustomKeyStoreConnectionSet: "
            f"{overhead['provider_bytes']['CustomKeyStoreConnectionSet']} B",
        ]
    )


def _render_scale(scale: dict[str, Any]) -> str:
    rows = [
        (
            r["kind"], r["n"], f"{r['throttle_rps']:g} rps" if r["throttle_rps"] else "off", r["runs"], r["wall"],
            r["wall_over_t"], r["expected_over_t"], r["calls"]["connect"], r["calls"]["describe"],
            r["calls"]["throttled"], r["calls_per_store"], r["converged"],
        )
        for r in scale["rows"]
    ]
    return (
        f"5. Scale: N stores through one provider server ({scale['server_threads']} worker threads), T = "
        f"{scale['t']:g} s; per-store Creates sent from N threads at once\n"
        + table(("resource", "N", "throttle", "runs", "wall s", "wall/T", "predicted", "Connect", "Describe",
                 "throttled", "calls/store", "converged"), rows)
    )


def _render_engine(engine: dict[str, Any]) -> str:
    steady = engine["steady"]
    rows = [
        (command, steady[command]["ours"], steady[command]["noop"], steady[command]["ratio"],
         steady[command]["paired_ratio"], ", ".join(map(str, steady[command]["describe_per_run"])),
         ", ".join(map(str, steady[command]["mutating_per_run"])))
        for command in ("preview", "up")
    ]
    set_up = engine["set_up"]
    return "\n".join(
        [
            f"6. Through the real Pulumi CLI: {engine['stores']} stores, ours against a no-op dynamic stack of the "
            f"same shape, commands alternating (medians of {engine['runs']})",
            table(("no-change command", "ours s", "no-op s", "ratio", "paired ratio", "Describe/run", "mutating/run"),
                  rows),
            f"    `pulumi up` of one set of {engine['stores']} stores, T = {_t(engine['t'])}: {set_up['ours']:.2f} s; "
            f"no-op stack creating {engine['stores']} resources: {set_up['noop']:.2f} s; budget T + no-op + 1 s = "
            f"{set_up['budget']:.2f} s",
        ]
    )
