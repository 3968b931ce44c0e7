"""Time sources for the emulator.

Every connection-state transition is computed from timestamps of an injected clock, never from a background
thread, so a ``FakeClock`` moved by a test drives connect and disconnect in microseconds.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A source of seconds. Only differences between two readings carry meaning."""

    def now(self) -> float:
        """The current time in seconds."""
        ...


class SystemClock:
    """Real time, from ``time.monotonic`` so that a wall-clock step (NTP, DST) cannot reorder transitions."""

    def now(self) -> float:
        """Seconds from ``time.monotonic``."""
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to; safe to advance from one thread while server threads read it."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        """The time the clock was last set to."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0) and return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds!r})")
        with self._lock:
            self._now += seconds
            return self._now
