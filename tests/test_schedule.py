"""The poll schedule: bounded delays, jitter that only shortens, and a lag that stays a fixed fraction of the wait."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kms_connection.schedule import PollSchedule

DEFAULT = PollSchedule()
TWENTY_MINUTES = 20 * 60.0

waited_seconds = st.floats(min_value=-10.0, max_value=7 * 24 * 3600.0, allow_nan=False)
draws = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
schedules = st.builds(
    PollSchedule,
    floor=st.floats(min_value=0.01, max_value=5.0),
    ratio=st.floats(min_value=0.001, max_value=0.5),
    cap=st.floats(min_value=5.0, max_value=600.0),
    jitter=st.floats(min_value=0.0, max_value=0.9),
)


def test_default_schedule_is_half_a_second_to_a_minute_with_a_fifth_of_jitter() -> None:
    assert (DEFAULT.floor, DEFAULT.ratio, DEFAULT.cap, DEFAULT.jitter) == (0.5, 0.05, 60.0, 0.2)


@settings(max_examples=100, deadline=None)
@given(schedule=schedules, waited=waited_seconds, draw=draws)
def test_delay_is_never_below_the_jittered_floor(schedule: PollSchedule, waited: float, draw: float) -> None:
    assert schedule.delay(waited, draw) >= schedule.floor * (1 - schedule.jitter) - 1e-12


@settings(max_examples=100, deadline=None)
@given(schedule=schedules, waited=waited_seconds, draw=draws)
def test_delay_is_never_above_the_cap(schedule: PollSchedule, waited: float, draw: float) -> None:
    assert schedule.delay(waited, draw) <= schedule.cap


@settings(max_examples=100, deadline=None)
@given(schedule=schedules, waited=waited_seconds, draw=draws)
def test_jitter_only_shortens_a_delay(schedule: PollSchedule, waited: float, draw: float) -> None:
    unjittered = schedule.delay(waited)
    jittered = schedule.delay(waited, draw)
    assert unjittered * (1 - schedule.jitter) - 1e-9 <= jittered <= unjittered


@pytest.mark.parametrize(
    ("draw", "expected"),
    [
        pytest.param(-5.0, 10.0, id="below-zero-is-no-jitter"),
        pytest.param(0.0, 10.0, id="zero-is-no-jitter"),
        pytest.param(0.5, 9.0, id="half-takes-a-tenth"),
        pytest.param(1.0, 8.0, id="one-takes-the-whole-jitter"),
        pytest.param(7.0, 8.0, id="above-one-is-clamped"),
    ],
)
def test_draw_is_clamped_to_the_unit_interval(draw: float, expected: float) -> None:
    assert DEFAULT.delay(200.0, draw) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("waited", "expected"),
    [
        pytest.param(-30.0, 0.5, id="negative-wait-is-the-floor"),
        pytest.param(0.0, 0.5, id="start-is-the-floor"),
        pytest.param(10.0, 0.5, id="floor-until-ten-seconds"),
        pytest.param(100.0, 5.0, id="five-percent-of-the-wait"),
        pytest.param(1200.0, 60.0, id="cap-reached-at-twenty-minutes"),
        pytest.param(86400.0, 60.0, id="capped-after"),
    ],
)
def test_default_delay_without_jitter(waited: float, expected: float) -> None:
    assert DEFAULT.delay(waited) == pytest.approx(expected)


def test_poll_gaps_keep_the_lag_promise_for_twenty_minutes() -> None:
    # A store that settles at any instant s is noticed within max(floor, ratio * s).
    times = DEFAULT.poll_times(TWENTY_MINUTES)
    previous = 0.0
    for t in times:
        gap = t - previous
        assert gap <= max(DEFAULT.floor, DEFAULT.ratio * previous) + 1e-9, f"gap {gap} after {previous} s"
        previous = t


def test_poll_times_strictly_increase() -> None:
    times = DEFAULT.poll_times(TWENTY_MINUTES)
    assert all(b > a for a, b in itertools.pairwise([0.0, *times]))


def test_poll_times_end_at_the_first_poll_at_or_past_the_horizon() -> None:
    times = DEFAULT.poll_times(TWENTY_MINUTES)
    assert times[-1] >= TWENTY_MINUTES
    assert times[-2] < TWENTY_MINUTES


def test_a_twenty_minute_wait_polls_fewer_than_150_times() -> None:
    # Independently: floor-spaced polls up to floor/ratio seconds (0.5 s apart up to 10 s), then each poll
    # 1 + ratio times later than the one before until the horizon (20 minutes is also where the cap starts).
    floor_phase_end = DEFAULT.floor / DEFAULT.ratio
    floor_polls = round(floor_phase_end / DEFAULT.floor)
    growth_polls = math.ceil(math.log(TWENTY_MINUTES / floor_phase_end) / math.log(1 + DEFAULT.ratio))
    expected = floor_polls + growth_polls

    assert expected == 119
    assert len(DEFAULT.poll_times(TWENTY_MINUTES)) == expected
    assert expected < 150


def test_polls_after_the_cap_are_a_cap_apart() -> None:
    times = DEFAULT.poll_times(2 * TWENTY_MINUTES)
    late = [t for t in times if t >= TWENTY_MINUTES]
    gaps = [b - a for a, b in itertools.pairwise(late)]
    assert gaps
    assert all(gap == pytest.approx(DEFAULT.cap) for gap in gaps)


@settings(max_examples=50, deadline=None)
@given(schedule=schedules, horizon=st.floats(min_value=0.0, max_value=3600.0))
def test_poll_times_increase_and_reach_the_horizon_for_any_schedule(schedule: PollSchedule, horizon: float) -> None:
    times = schedule.poll_times(horizon)
    assert times[-1] >= horizon
    assert all(b > a for a, b in itertools.pairwise([0.0, *times]))
