"""The poll schedule: bounded delays, jitter that only shortens, and a lag that stays a fixed fraction of the wait."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kms_connection.schedule import MARK_TOLERANCE, PollSchedule

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
    align=st.none() | st.floats(min_value=1.0, max_value=600.0),
)
unaligned_schedules = schedules.map(lambda schedule: dataclasses.replace(schedule, align=None))


def test_default_schedule_is_half_a_second_to_half_a_minute_with_a_fifth_of_jitter_on_30_second_marks() -> None:
    assert (DEFAULT.floor, DEFAULT.ratio, DEFAULT.cap, DEFAULT.jitter, DEFAULT.align) == (0.5, 0.05, 30.0, 0.2, 30.0)


@settings(max_examples=100, deadline=None)
@given(schedule=unaligned_schedules, waited=waited_seconds, draw=draws)
def test_delay_is_never_below_the_jittered_floor(schedule: PollSchedule, waited: float, draw: float) -> None:
    assert schedule.delay(waited, draw) >= schedule.floor * (1 - schedule.jitter) - 1e-12


def _next_mark(schedule: PollSchedule, waited: float) -> float:
    """The first mark a poll after ``waited`` must not pass: a mark less than the tolerance ahead counts as reached."""
    assert schedule.align is not None
    return (math.floor((waited + MARK_TOLERANCE) / schedule.align) + 1) * schedule.align


@settings(max_examples=100, deadline=None)
@given(schedule=schedules, waited=st.floats(min_value=0.0, max_value=7 * 24 * 3600.0), draw=draws)
# Found on a fresh clone: 0.03 s before a mark, the poll goes on to the mark after (the tolerance), not to 2.0.
@example(schedule=PollSchedule(floor=0.5, ratio=0.05, cap=30.0, jitter=0.0, align=1.0), waited=1.96875, draw=0.0)
def test_delay_never_passes_the_next_mark(schedule: PollSchedule, waited: float, draw: float) -> None:
    if schedule.align is None:
        return
    assert waited + schedule.delay(waited, draw) <= _next_mark(schedule, waited) + schedule.align * 1e-9 + 1e-9


def test_a_poll_within_the_tolerance_before_a_mark_waits_for_the_mark_after() -> None:
    schedule = PollSchedule(floor=0.5, ratio=0.05, cap=30.0, jitter=0.0, align=1.0)
    assert 1.96875 + schedule.delay(1.96875) == pytest.approx(2.46875)
    assert 1.9 + schedule.delay(1.9) == pytest.approx(2.0)


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
        pytest.param(590.0, 10.0, id="shortened-to-the-next-mark"),
        pytest.param(600.0, 30.0, id="cap-reached-at-ten-minutes"),
        pytest.param(86400.0, 30.0, id="capped-after"),
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
    # Unaligned: floor-spaced polls up to floor/ratio seconds (0.5 s apart up to 10 s), then each poll 1 + ratio
    # times later than the one before until the cap (at 600 s), then cap-spaced polls to the horizon.
    unaligned = dataclasses.replace(DEFAULT, align=None)
    floor_phase_end = DEFAULT.floor / DEFAULT.ratio
    cap_phase_start = DEFAULT.cap / DEFAULT.ratio
    floor_polls = round(floor_phase_end / DEFAULT.floor)
    growth_polls = math.ceil(math.log(cap_phase_start / floor_phase_end) / math.log(1 + DEFAULT.ratio))
    assert len(unaligned.poll_times(TWENTY_MINUTES)) == pytest.approx(floor_polls + growth_polls + 20, abs=1)
    # The 30-second marks add at most one poll to each of the 19 windows before the cap takes over.
    aligned = len(DEFAULT.poll_times(TWENTY_MINUTES))
    assert len(unaligned.poll_times(TWENTY_MINUTES)) <= aligned <= len(unaligned.poll_times(TWENTY_MINUTES)) + 19
    assert aligned < 150


def test_every_30_second_mark_is_a_poll() -> None:
    times = DEFAULT.poll_times(TWENTY_MINUTES)
    assert all(any(t == pytest.approx(mark) for t in times) for mark in range(30, 1201, 30))


def test_a_wait_never_ends_later_than_the_30_second_polling_script() -> None:
    # The script polls at 0, 30, 60, ...: for a store settling at T it returns at the first multiple of 30 >= T.
    times = DEFAULT.poll_times(TWENTY_MINUTES)
    for quarter in range(1, int(TWENTY_MINUTES * 4) + 1):
        settled = quarter / 4
        ours = next(t for t in times if t >= settled - 1e-9)
        assert ours <= math.ceil(settled / 30) * 30 + 1e-9, settled


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
