"""When to look again while a store settles: capped exponential backoff with jitter, as a pure function.

The delay grows with the time already waited (``ratio`` of it), so the lag between KMS settling and us noticing
stays a fixed fraction of the transition time: about half a second for an external key store that settles in
seconds, at most ``cap`` for a CloudHSM connect that takes twenty minutes. Jitter only ever shortens a delay, so
it spreads the polls of many stores without adding lag. Polls also land on every multiple of ``align`` seconds
after the request, so a wait never ends later than the loop people script today (Connect, then Describe every
30 seconds). The benchmark evaluates :meth:`PollSchedule.poll_times` to show the schedule for long waits without
sleeping through them.
"""

from __future__ import annotations

from dataclasses import dataclass

MARK_TOLERANCE = 0.05
"""Seconds before a mark within which a poll counts as on it: float drift and request latency must not cause a
second poll just before the mark. The next mark is then the one after."""


@dataclass(frozen=True)
class PollSchedule:
    """Delays between DescribeCustomKeyStores calls while waiting for a store to settle."""

    floor: float = 0.5
    """The shortest delay, in seconds: KMS's eventual consistency makes faster polls mostly stale reads."""
    ratio: float = 0.05
    """The delay as a fraction of the time waited so far: the lag this schedule promises."""
    cap: float = 30.0
    """The longest delay, in seconds."""
    jitter: float = 0.2
    """The largest fraction a random draw takes off a delay."""
    align: float | None = 30.0
    """Polls also land on every multiple of this many seconds after the request (None: no alignment)."""

    def delay(self, waited: float, draw: float = 0.0) -> float:
        """The delay before the next poll, after ``waited`` seconds; ``draw`` in [0, 1) is the jitter's random draw."""
        waited = max(0.0, waited)
        base = min(self.cap, max(self.floor, self.ratio * waited))
        delay = base * (1.0 - self.jitter * min(max(draw, 0.0), 1.0))
        if self.align:
            # Shorten the delay to reach the next mark; a poll a hair before a mark counts as on it.
            to_mark = self.align - waited % self.align
            if to_mark < MARK_TOLERANCE:
                to_mark += self.align
            delay = min(delay, to_mark)
        return delay

    def poll_times(self, horizon: float) -> list[float]:
        """The instants (seconds after the action) at which a wait polls, up to ``horizon``, without jitter."""
        times: list[float] = []
        now = 0.0
        while True:
            now += self.delay(now)
            times.append(now)
            if now >= horizon:
                return times
