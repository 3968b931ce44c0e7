"""The decision core as a table: observed state x desired state x what this operation already did -> next step.

The expectations follow what KMS accepts (Connect is refused in FAILED and DISCONNECTING, Disconnect in
DISCONNECTING and DISCONNECTED) and what an eventually consistent read can show right after a request.
"""

from __future__ import annotations

import botocore.session
import pytest

from kms_connection.plan import (
    Action,
    Failure,
    Observation,
    Progress,
    Step,
    decide,
    describe_plan,
    plan,
)
from kms_connection.states import ConnectionState, DesiredState

C = ConnectionState
UP = DesiredState.CONNECTED
DOWN = DesiredState.DISCONNECTED

DONE = Step(Action.DONE)
WAIT = Step(Action.WAIT)
CONNECT = Step(Action.CONNECT)
DISCONNECT = Step(Action.DISCONNECT)
NOT_FOUND = Step(Action.FAIL, Failure.NOT_FOUND)
CONNECT_FAILED = Step(Action.FAIL, Failure.CONNECT_FAILED)
DISCONNECTED_BY_OTHERS = Step(Action.FAIL, Failure.DISCONNECTED_BY_OTHERS)
CONNECTED_BY_OTHERS = Step(Action.FAIL, Failure.CONNECTED_BY_OTHERS)

MODEL_ERROR_CODES: list[str] = list(
    botocore.session.get_session().get_service_model("kms").shape_for("ConnectionErrorCodeType").enum  # type: ignore[attr-defined]
)

# What the operation has done so far. Each is a Progress the reconciler can actually hold.
PROGRESS: dict[str, Progress] = {
    "nothing sent": Progress(),
    "connect sent, nothing seen since": Progress(connect_sent=True),
    "connect sent, CONNECTING seen": Progress(connect_sent=True, seen_since_last_action=frozenset({C.CONNECTING})),
    "disconnect sent, nothing seen since": Progress(disconnect_sent=True),
    "disconnect sent, DISCONNECTING seen": Progress(
        disconnect_sent=True, seen_since_last_action=frozenset({C.DISCONNECTING})
    ),
    "disconnect sent, DISCONNECTED seen": Progress(
        disconnect_sent=True, seen_since_last_action=frozenset({C.DISCONNECTING, C.DISCONNECTED})
    ),
    "repaired then connect sent, CONNECTING seen": Progress(
        connect_sent=True, disconnect_sent=True, seen_since_last_action=frozenset({C.CONNECTING})
    ),
}

# For DISCONNECTED the reconciler never sends a Connect, so a connect in the history must not matter; the
# "repaired then connect sent" history cannot happen there and is left out.
REPAIRED_THEN_CONNECTED = "repaired then connect sent, CONNECTING seen"
PROGRESS_TOWARDS_DISCONNECTED = [name for name in PROGRESS if name != REPAIRED_THEN_CONNECTED]

# observed state (None: not found) -> desired -> progress name -> expected step.
TABLE: dict[C | None, dict[DesiredState, dict[str, Step]]] = {
    None: {
        UP: dict.fromkeys(PROGRESS, NOT_FOUND),
        DOWN: dict.fromkeys(PROGRESS_TOWARDS_DISCONNECTED, NOT_FOUND),
    },
    C.CONNECTED: {
        UP: dict.fromkeys(PROGRESS, DONE),
        DOWN: {
            "nothing sent": DISCONNECT,
            "connect sent, nothing seen since": DISCONNECT,
            "connect sent, CONNECTING seen": DISCONNECT,
            "disconnect sent, nothing seen since": WAIT,  # a stale read from before our Disconnect
            "disconnect sent, DISCONNECTING seen": CONNECTED_BY_OTHERS,
            "disconnect sent, DISCONNECTED seen": CONNECTED_BY_OTHERS,
        },
    },
    C.CONNECTING: {
        UP: dict.fromkeys(PROGRESS, WAIT),
        DOWN: {
            # KMS accepts a Disconnect while CONNECTING: no point waiting 20 minutes to undo it.
            "nothing sent": DISCONNECT,
            "connect sent, nothing seen since": DISCONNECT,
            "connect sent, CONNECTING seen": DISCONNECT,
            "disconnect sent, nothing seen since": WAIT,
            "disconnect sent, DISCONNECTING seen": CONNECTED_BY_OTHERS,
            "disconnect sent, DISCONNECTED seen": CONNECTED_BY_OTHERS,
        },
    },
    C.FAILED: {
        UP: {
            # Connect is refused in FAILED: disconnect first.
            "nothing sent": DISCONNECT,
            "connect sent, nothing seen since": CONNECT_FAILED,
            "connect sent, CONNECTING seen": CONNECT_FAILED,
            "disconnect sent, nothing seen since": WAIT,  # our repair Disconnect has not shown yet
            "disconnect sent, DISCONNECTING seen": CONNECTED_BY_OTHERS,
            "disconnect sent, DISCONNECTED seen": CONNECTED_BY_OTHERS,  # FAILED after the repair: another Connect
            REPAIRED_THEN_CONNECTED: CONNECT_FAILED,
        },
        DOWN: {
            "nothing sent": DISCONNECT,
            "connect sent, nothing seen since": DISCONNECT,
            "connect sent, CONNECTING seen": DISCONNECT,
            "disconnect sent, nothing seen since": WAIT,
            "disconnect sent, DISCONNECTING seen": CONNECTED_BY_OTHERS,
            "disconnect sent, DISCONNECTED seen": CONNECTED_BY_OTHERS,
        },
    },
    C.DISCONNECTING: {
        UP: {
            "nothing sent": WAIT,  # Connect is refused while DISCONNECTING
            "connect sent, nothing seen since": WAIT,
            "connect sent, CONNECTING seen": DISCONNECTED_BY_OTHERS,
            "disconnect sent, nothing seen since": WAIT,
            "disconnect sent, DISCONNECTING seen": WAIT,
            "disconnect sent, DISCONNECTED seen": WAIT,
            REPAIRED_THEN_CONNECTED: DISCONNECTED_BY_OTHERS,
        },
        DOWN: dict.fromkeys(PROGRESS_TOWARDS_DISCONNECTED, WAIT),
    },
    C.DISCONNECTED: {
        UP: {
            "nothing sent": CONNECT,
            "connect sent, nothing seen since": WAIT,  # a stale read: our Connect has not shown yet
            "connect sent, CONNECTING seen": DISCONNECTED_BY_OTHERS,
            "disconnect sent, nothing seen since": CONNECT,
            "disconnect sent, DISCONNECTING seen": CONNECT,
            "disconnect sent, DISCONNECTED seen": CONNECT,  # the repair has finished
            REPAIRED_THEN_CONNECTED: DISCONNECTED_BY_OTHERS,
        },
        DOWN: dict.fromkeys(PROGRESS_TOWARDS_DISCONNECTED, DONE),
    },
}


def _name(state: C | None) -> str:
    return "missing" if state is None else state.value


def _step_name(step: Step) -> str:
    return f"fail:{step.failure.value}" if step.failure else step.action.value


DECISIONS = [
    pytest.param(
        state,
        desired,
        PROGRESS[progress],
        expected,
        id=f"{_name(state)}->{desired.value}, {progress}: {_step_name(expected)}",
    )
    for state, by_desired in TABLE.items()
    for desired, by_progress in by_desired.items()
    for progress, expected in by_progress.items()
]


def test_the_table_covers_every_state_desired_state_and_progress() -> None:
    assert set(TABLE) == {None, *ConnectionState}
    for by_desired in TABLE.values():
        assert set(by_desired) == set(DesiredState)
        assert set(by_desired[UP]) == set(PROGRESS)
        assert set(by_desired[DOWN]) == set(PROGRESS_TOWARDS_DISCONNECTED)


@pytest.mark.parametrize(("state", "desired", "progress", "expected"), DECISIONS)
def test_decide(state: C | None, desired: DesiredState, progress: Progress, expected: Step) -> None:
    assert decide(Observation(state), desired, progress) == expected


@pytest.mark.parametrize(("state", "desired", "progress", "expected"), DECISIONS)
def test_decide_is_the_same_once_the_current_observation_is_recorded(
    state: C | None, desired: DesiredState, progress: Progress, expected: Step
) -> None:
    # The reconciler records what it sees before it decides; that must not change the decision.
    assert decide(Observation(state), desired, progress.observed(state)) == expected


def test_decide_defaults_to_nothing_sent() -> None:
    assert decide(Observation(C.DISCONNECTED), UP) == CONNECT


@pytest.mark.parametrize("code", MODEL_ERROR_CODES)
def test_failed_store_is_repaired_by_disconnecting_first_whatever_the_code(code: str) -> None:
    assert decide(Observation(C.FAILED, code), UP, Progress()) == DISCONNECT


@pytest.mark.parametrize("code", MODEL_ERROR_CODES)
def test_failed_after_our_connect_is_a_connect_failure_whatever_the_code(code: str) -> None:
    progress = Progress().sent(Action.CONNECT).observed(C.CONNECTING).observed(C.FAILED)
    assert decide(Observation(C.FAILED, code), UP, progress) == CONNECT_FAILED


@pytest.mark.parametrize("code", MODEL_ERROR_CODES)
def test_failed_store_desired_disconnected_is_disconnected_whatever_the_code(code: str) -> None:
    assert decide(Observation(C.FAILED, code), DOWN, Progress()) == DISCONNECT


# --- Progress ---------------------------------------------------------------------------------------------------


def test_progress_remembers_what_it_has_seen() -> None:
    progress = Progress().observed(C.CONNECTING).observed(C.CONNECTED)
    assert progress.seen_since_last_action == {C.CONNECTING, C.CONNECTED}


def test_progress_ignores_a_missing_store() -> None:
    assert Progress().observed(None) == Progress()


def test_sending_a_request_forgets_what_was_seen_before_it() -> None:
    progress = Progress().observed(C.FAILED).sent(Action.DISCONNECT)
    assert progress == Progress(disconnect_sent=True)


def test_sending_a_connect_keeps_the_earlier_disconnect() -> None:
    progress = Progress().sent(Action.DISCONNECT).observed(C.DISCONNECTED).sent(Action.CONNECT)
    assert progress == Progress(connect_sent=True, disconnect_sent=True)


@pytest.mark.parametrize("action", [Action.DONE, Action.WAIT, Action.FAIL])
def test_only_connect_and_disconnect_can_be_sent(action: Action) -> None:
    with pytest.raises(ValueError, match="not a mutating action"):
        Progress().sent(action)


# --- Observation --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("observation", "text"),
    [
        pytest.param(Observation(None), "not found", id="missing"),
        pytest.param(Observation(C.CONNECTED), "CONNECTED", id="connected"),
        pytest.param(Observation(C.FAILED, "USER_LOCKED_OUT"), "FAILED (USER_LOCKED_OUT)", id="failed-with-code"),
        pytest.param(Observation(C.FAILED), "FAILED", id="failed-without-code"),
    ],
)
def test_observation_describes_itself_for_messages(observation: Observation, text: str) -> None:
    assert observation.describe() == text


def test_observation_of_a_missing_store_does_not_exist() -> None:
    assert not Observation(None).exists
    assert Observation(C.DISCONNECTED).exists


# --- plan and describe_plan ---------------------------------------------------------------------------------------

PLANS = [
    (None, UP, ["fail: not found"]),
    (None, DOWN, ["fail: not found"]),
    (C.CONNECTED, UP, []),
    (C.CONNECTED, DOWN, ["disconnect"]),
    (C.CONNECTING, UP, ["wait for CONNECTED"]),
    (C.CONNECTING, DOWN, ["disconnect"]),
    (C.FAILED, UP, ["disconnect", "connect"]),
    (C.FAILED, DOWN, ["disconnect"]),
    (C.DISCONNECTING, UP, ["wait for DISCONNECTED", "connect"]),
    (C.DISCONNECTING, DOWN, ["wait for DISCONNECTED"]),
    (C.DISCONNECTED, UP, ["connect"]),
    (C.DISCONNECTED, DOWN, []),
]


def test_the_plan_table_covers_every_state_and_desired_state() -> None:
    assert {(state, desired) for state, desired, _ in PLANS} == {
        (state, desired) for state in [None, *ConnectionState] for desired in DesiredState
    }


@pytest.mark.parametrize(
    ("state", "desired", "steps"),
    [pytest.param(s, d, steps, id=f"{_name(s)}->{d.value}") for s, d, steps in PLANS],
)
def test_plan(state: C | None, desired: DesiredState, steps: list[str]) -> None:
    assert plan(Observation(state), desired) == steps


def test_plan_ignores_the_error_code_of_a_failed_store() -> None:
    assert plan(Observation(C.FAILED, "USER_NOT_FOUND"), UP) == ["disconnect", "connect"]


@pytest.mark.parametrize(
    ("steps", "text"),
    [
        pytest.param([], "nothing to do", id="empty"),
        pytest.param(["connect"], "will connect", id="one-step"),
        pytest.param(["disconnect", "connect"], "will disconnect, then connect", id="two-steps"),
        pytest.param(
            ["wait for DISCONNECTED", "connect"], "will wait for DISCONNECTED, then connect", id="wait-then-connect"
        ),
        pytest.param(["fail: not found"], "will fail: not found", id="failure"),
    ],
)
def test_describe_plan(steps: list[str], text: str) -> None:
    assert describe_plan(steps) == text
