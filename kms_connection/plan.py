"""The decision core: observed state + desired state (+ what this operation already did) -> the next step.

Plain Python with no I/O, so every case is a row in a table test. The reconciler (``reconciler.py``) runs the
observe -> decide -> act loop around :func:`decide`; ``diff`` prints :func:`plan`, which replays :func:`decide`
over the transitions it expects, so the preview line and the real run can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from .states import ConnectionState, DesiredState

# States in which a store that was asked to connect is making (or has made) progress towards CONNECTED.
_PROGRESS_AFTER_CONNECT = frozenset({ConnectionState.CONNECTING, ConnectionState.CONNECTED})
# The same for a store that was asked to disconnect.
_PROGRESS_AFTER_DISCONNECT = frozenset({ConnectionState.DISCONNECTING, ConnectionState.DISCONNECTED})


@dataclass(frozen=True)
class Observation:
    """What DescribeCustomKeyStores said about one store; ``state`` is None when the store does not exist."""

    state: ConnectionState | None
    error_code: str | None = None

    @property
    def exists(self) -> bool:
        return self.state is not None

    def describe(self) -> str:
        """``FAILED (USER_LOCKED_OUT)``, ``CONNECTED`` or ``not found``, for messages."""
        if self.state is None:
            return "not found"
        if self.state is ConnectionState.FAILED and self.error_code:
            return f"{self.state.value} ({self.error_code})"
        return self.state.value


class Action(str, Enum):
    """What the reconciler does next."""

    DONE = "done"
    WAIT = "wait"
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    FAIL = "fail"


class Failure(str, Enum):
    """Why converging cannot go on; the reconciler turns each into an error message for the user."""

    NOT_FOUND = "not_found"
    CONNECT_FAILED = "connect_failed"
    DISCONNECTED_BY_OTHERS = "disconnected_by_others"
    CONNECTED_BY_OTHERS = "connected_by_others"


@dataclass(frozen=True)
class Progress:
    """What one operation has done so far, and what it has seen since; the memory :func:`decide` needs.

    Without it a stale read right after ConnectCustomKeyStore (KMS is eventually consistent) would look like a
    store that still needs connecting, and a FAILED store we just connected would be "repaired" in a loop.
    """

    connect_sent: bool = False
    disconnect_sent: bool = False
    seen_since_last_action: frozenset[ConnectionState] = field(default_factory=frozenset)

    def observed(self, state: ConnectionState | None) -> Progress:
        if state is None:
            return self
        return replace(self, seen_since_last_action=self.seen_since_last_action | {state})

    def sent(self, action: Action) -> Progress:
        if action is Action.CONNECT:
            return Progress(connect_sent=True, disconnect_sent=self.disconnect_sent)
        if action is Action.DISCONNECT:
            return Progress(connect_sent=self.connect_sent, disconnect_sent=True)
        raise ValueError(f"{action} is not a mutating action")


@dataclass(frozen=True)
class Step:
    """The decision: an action, and for FAIL the reason."""

    action: Action
    failure: Failure | None = None


DONE = Step(Action.DONE)
WAIT = Step(Action.WAIT)
CONNECT = Step(Action.CONNECT)
DISCONNECT = Step(Action.DISCONNECT)


def decide(observation: Observation, desired: DesiredState, progress: Progress = Progress()) -> Step:
    """The next step towards ``desired`` from ``observation``.

    The rules follow what KMS accepts: Connect is refused in FAILED and DISCONNECTING, Disconnect in DISCONNECTING
    and DISCONNECTED. A transitional state is waited out, except CONNECTING when DISCONNECTED is desired: KMS
    accepts a Disconnect there, and waiting up to 20 minutes for a CloudHSM connect only to undo it helps nobody.
    """
    state = observation.state
    if state is None:
        return Step(Action.FAIL, Failure.NOT_FOUND)
    if desired is DesiredState.CONNECTED:
        return _towards_connected(state, progress)
    return _towards_disconnected(state, progress)


def _towards_connected(state: ConnectionState, progress: Progress) -> Step:
    seen = progress.seen_since_last_action
    if state is ConnectionState.CONNECTED:
        return DONE
    if state is ConnectionState.CONNECTING:
        return WAIT
    if state is ConnectionState.FAILED:
        if progress.connect_sent:
            return Step(Action.FAIL, Failure.CONNECT_FAILED)
        if progress.disconnect_sent:
            # FAILED after our repair Disconnect showed means someone connected it again; before it showed,
            # the read is stale.
            return Step(Action.FAIL, Failure.CONNECTED_BY_OTHERS) if seen & _PROGRESS_AFTER_DISCONNECT else WAIT
        return DISCONNECT
    if state is ConnectionState.DISCONNECTING:
        if progress.connect_sent and seen & _PROGRESS_AFTER_CONNECT:
            return Step(Action.FAIL, Failure.DISCONNECTED_BY_OTHERS)
        return WAIT
    # DISCONNECTED
    if progress.connect_sent:
        if seen & _PROGRESS_AFTER_CONNECT:
            return Step(Action.FAIL, Failure.DISCONNECTED_BY_OTHERS)
        # Our Connect has not shown yet: a stale read. The timeout bounds how long we believe that.
        return WAIT
    return CONNECT


def _towards_disconnected(state: ConnectionState, progress: Progress) -> Step:
    seen = progress.seen_since_last_action
    if state is ConnectionState.DISCONNECTED:
        return DONE
    if state is ConnectionState.DISCONNECTING:
        return WAIT
    # CONNECTED, CONNECTING or FAILED: all accept a Disconnect.
    if progress.disconnect_sent:
        if seen & _PROGRESS_AFTER_DISCONNECT:
            return Step(Action.FAIL, Failure.CONNECTED_BY_OTHERS)
        return WAIT
    return DISCONNECT


def _settled(state: ConnectionState) -> ConnectionState:
    """Where a transitional state goes if nothing fails: what a plan assumes."""
    if state is ConnectionState.CONNECTING:
        return ConnectionState.CONNECTED
    if state is ConnectionState.DISCONNECTING:
        return ConnectionState.DISCONNECTED
    return state


def plan(observation: Observation, desired: DesiredState) -> list[str]:
    """The steps an update would take, assuming KMS does what it is asked: ``[]`` when there is nothing to do.

    Each step is ``"connect"``, ``"disconnect"`` or ``"wait for <STATE>"``; a store that does not exist gives
    ``["fail: not found"]``.
    """
    steps: list[str] = []
    state = observation.state
    progress = Progress()
    # Each loop either ends or moves the simulated store one transition on; four bounds the longest plan
    # (wait out DISCONNECTING, connect, wait), plus a margin.
    for _ in range(8):
        step = decide(Observation(state), desired, progress.observed(state))
        if step.action is Action.DONE:
            return steps
        if step.action is Action.FAIL:
            steps.append(f"fail: {(step.failure or Failure.NOT_FOUND).value.replace('_', ' ')}")
            return steps
        assert state is not None  # decide() fails on a missing store
        if step.action is Action.WAIT:
            state = _settled(state)
            steps.append(f"wait for {state.value}")
            progress = progress.observed(state)
        else:
            progress = progress.sent(step.action)
            state = ConnectionState.CONNECTED if step.action is Action.CONNECT else ConnectionState.DISCONNECTED
            steps.append(step.action.value)
            progress = progress.observed(ConnectionState.CONNECTING if step.action is Action.CONNECT else state)
    raise AssertionError(f"no plan converges from {observation} to {desired}")  # pragma: no cover


def describe_plan(steps: list[str]) -> str:
    """``will disconnect, then connect``: a plan in words."""
    if not steps:
        return "nothing to do"
    return "will " + ", then ".join(steps)
