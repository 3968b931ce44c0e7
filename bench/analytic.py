"""Long waits evaluated as functions, with no sleeping: the provider's real poll schedule and the baseline's.

``PollSchedule`` is the very object the reconciler waits with (``delay(waited, draw)``); its ``poll_times`` is
the schedule without jitter. Jitter only shortens delays, so with jitter a wait makes more polls and notices
sooner: the no-jitter schedule gives the typical lag, ``delay(T)`` bounds the lag for any draw (a gap that
starts before T is at most ``delay(T)``, since the delay does not decrease as the wait goes on), and drawing
the largest jitter every time gives the most polls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kms_connection.schedule import PollSchedule

BASELINE_INTERVAL = 30.0
# Calls a wait costs besides its polls: ours reads the store once to decide, then sends Connect; the baseline
# sends Connect and reads at once (its poll at 0).
OURS_FIXED_CALLS = 2
BASELINE_FIXED_CALLS = 1


@dataclass(frozen=True)
class OursAtT:
    """The provider's wait for a transition of ``t`` seconds, from the schedule."""

    t: float
    noticed: float
    """When the first poll at or after ``t`` happens (no jitter): the provider's wall time, less overhead."""
    lag: float
    """``noticed - t`` (no jitter)."""
    lag_bound: float
    """The most lag any jitter draw gives: ``delay(t)``."""
    polls: int
    """Describe calls while waiting, no jitter."""
    polls_max_jitter: int
    """Describe calls while waiting when every delay gets the largest jitter."""

    @property
    def calls(self) -> int:
        return OURS_FIXED_CALLS + self.polls

    def as_json(self) -> dict[str, Any]:
        return {
            "t": self.t,
            "noticed": self.noticed,
            "lag": self.lag,
            "lag_bound": self.lag_bound,
            "lag_goal": lag_goal(self.t),
            "polls": self.polls,
            "polls_max_jitter": self.polls_max_jitter,
            "calls": self.calls,
        }


@dataclass(frozen=True)
class BaselineAtT:
    """The 30-second polling script for a transition of ``t`` seconds: polls at 0, 30, 60, ..."""

    t: float
    interval: float
    noticed: float
    polls: int

    @property
    def lag(self) -> float:
        return self.noticed - self.t

    @property
    def calls(self) -> int:
        return BASELINE_FIXED_CALLS + self.polls

    def as_json(self) -> dict[str, Any]:
        return {"t": self.t, "interval": self.interval, "noticed": self.noticed, "lag": self.lag,
                "polls": self.polls, "calls": self.calls}


def lag_goal(t: float) -> float:
    """The lag goal: at most max(0.5 s, 5% of T)."""
    return max(0.5, 0.05 * t)


def ours(t: float, schedule: PollSchedule | None = None) -> OursAtT:
    schedule = schedule or PollSchedule()
    times = schedule.poll_times(t)
    return OursAtT(
        t=t,
        noticed=times[-1],
        lag=times[-1] - t,
        lag_bound=schedule.delay(t),
        polls=len(times),
        polls_max_jitter=_polls(schedule, t, draw=1.0),
    )


def _polls(schedule: PollSchedule, horizon: float, draw: float) -> int:
    now, polls = 0.0, 0
    while True:
        now += schedule.delay(now, draw)
        polls += 1
        if now >= horizon:
            return polls


def baseline(t: float, interval: float = BASELINE_INTERVAL) -> BaselineAtT:
    """Polls at 0, interval, 2 x interval, ...: the first that sees CONNECTED is the first at or after ``t``
    (a poll at exactly k x interval comes a few milliseconds after it, past the transition)."""
    k = max(0, math.ceil(t / interval))
    return BaselineAtT(t=t, interval=interval, noticed=k * interval, polls=k + 1)


@dataclass(frozen=True)
class Feasibility:
    """Why the lag goal and the 60-Describe budget of a 20-minute wait cannot both hold, for any schedule."""

    floor: float
    ratio: float
    horizon: float
    polls_in_floor_phase: int
    """Gaps of at most ``floor`` up to ``floor / ratio`` seconds (where 5% of T reaches 0.5 s)."""
    polls_in_ratio_phase: float
    """Gaps of at most ``ratio`` x elapsed from ``floor / ratio`` to ``horizon``:
    ln(horizon / start) / ln(1 + ratio)."""
    schedule_polls: int
    """What the provider's default schedule makes in ``horizon`` (no jitter)."""
    budget: int
    best_ratio_within_budget: float
    """The best uniform lag fraction a ``budget``-poll schedule can keep, with the same floor phase."""

    @property
    def minimum_polls(self) -> float:
        return self.polls_in_floor_phase + self.polls_in_ratio_phase

    def as_json(self) -> dict[str, Any]:
        return {
            "floor": self.floor,
            "ratio": self.ratio,
            "horizon": self.horizon,
            "polls_in_floor_phase": self.polls_in_floor_phase,
            "polls_in_ratio_phase": self.polls_in_ratio_phase,
            "minimum_polls": self.minimum_polls,
            "schedule_polls": self.schedule_polls,
            "budget": self.budget,
            "best_ratio_within_budget": self.best_ratio_within_budget,
        }


def feasibility(horizon: float = 1200.0, budget: int = 60, floor: float = 0.5, ratio: float = 0.05) -> Feasibility:
    """A lag of at most max(floor, ratio x T) for every T forces consecutive polls t_k < t_k+1 to satisfy
    t_k+1 <= max(t_k + floor, (1 + ratio) t_k): a transition ending just after t_k is seen at t_k+1."""
    switch = floor / ratio
    in_floor = math.ceil(switch / floor)
    in_ratio = math.log(horizon / switch) / math.log(1.0 + ratio)
    left = budget - in_floor
    best = math.exp(math.log(horizon / switch) / left) - 1.0 if left > 0 else math.inf
    return Feasibility(floor, ratio, horizon, in_floor, in_ratio, len(PollSchedule().poll_times(horizon)), budget, best)
