"""The decision core as a table: observed state x desired state x what this operation already did -> next step.

The expectations follow what KMS accepts (Connect is refused in FAILED and DISCONNECTING, Disconnect in
DISCONNECTING and DISCONNECTED) and what an eventually consistent read can show right after a request.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import botocore.session
import pytest

from kms_connection.plan import (
    CONSISTENCY_LOOKS,
    CONSISTENCY_SECONDS,
    Action,
    Failure,
    KeyCensus,
    Observation,
    Progress,
    Standing,
    Step,
    StoreKey,
    advance,
    blast_radius,
    breaks_keys,
    contradicts,
    decide,
    describe_plan,
    guard_refusal,
    next_up,
    plan,
    plan_line,
    standing,
)
from kms_connection.states import ConnectionState, DesiredState, DisconnectGuard

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
REQUEST_NOT_SEEN = Step(Action.FAIL, Failure.REQUEST_NOT_SEEN)

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



@dataclass(frozen=True)
class Doubt:
    """A read that contradicts the last request: waited on (WAIT) until it is believed, then ``believed``.

    ``unseen``: the read shows no sign of the request, so believing it means deciding anew from the read (once;
    a second time it fails). Otherwise it goes back on progress we saw: another client's doing.
    """

    believed: Step
    unseen: bool = False


def unseen(believed: Step) -> Doubt:
    return Doubt(believed, unseen=True)


# observed state (None: not found) -> desired -> progress name -> expected step.
TABLE: dict[C | None, dict[DesiredState, dict[str, Step | Doubt]]] = {
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
            "disconnect sent, nothing seen since": unseen(DISCONNECT),  # stale, or reconnected before we looked
            "disconnect sent, DISCONNECTING seen": Doubt(CONNECTED_BY_OTHERS),
            "disconnect sent, DISCONNECTED seen": Doubt(CONNECTED_BY_OTHERS),
        },
    },
    C.CONNECTING: {
        UP: dict.fromkeys(PROGRESS, WAIT),
        DOWN: {
            # KMS accepts a Disconnect while CONNECTING: no point waiting 20 minutes to undo it.
            "nothing sent": DISCONNECT,
            "connect sent, nothing seen since": DISCONNECT,
            "connect sent, CONNECTING seen": DISCONNECT,
            "disconnect sent, nothing seen since": unseen(DISCONNECT),
            "disconnect sent, DISCONNECTING seen": Doubt(CONNECTED_BY_OTHERS),
            "disconnect sent, DISCONNECTED seen": Doubt(CONNECTED_BY_OTHERS),
        },
    },
    C.FAILED: {
        UP: {
            # Connect is refused in FAILED: disconnect first.
            "nothing sent": DISCONNECT,
            "connect sent, nothing seen since": CONNECT_FAILED,
            "connect sent, CONNECTING seen": CONNECT_FAILED,
            "disconnect sent, nothing seen since": unseen(DISCONNECT),  # our repair Disconnect has not shown yet
            "disconnect sent, DISCONNECTING seen": Doubt(CONNECTED_BY_OTHERS),
            # FAILED after the repair: another Connect.
            "disconnect sent, DISCONNECTED seen": Doubt(CONNECTED_BY_OTHERS),
            REPAIRED_THEN_CONNECTED: CONNECT_FAILED,
        },
        DOWN: {
            "nothing sent": DISCONNECT,
            "connect sent, nothing seen since": DISCONNECT,
            "connect sent, CONNECTING seen": DISCONNECT,
            "disconnect sent, nothing seen since": unseen(DISCONNECT),
            "disconnect sent, DISCONNECTING seen": Doubt(CONNECTED_BY_OTHERS),
            "disconnect sent, DISCONNECTED seen": Doubt(CONNECTED_BY_OTHERS),
        },
    },
    C.DISCONNECTING: {
        UP: {
            "nothing sent": WAIT,  # Connect is refused while DISCONNECTING
            # KMS refused Connect while DISCONNECTING, so this was not so when it accepted ours.
            "connect sent, nothing seen since": unseen(WAIT),
            "connect sent, CONNECTING seen": Doubt(DISCONNECTED_BY_OTHERS),
            "disconnect sent, nothing seen since": WAIT,
            "disconnect sent, DISCONNECTING seen": WAIT,
            "disconnect sent, DISCONNECTED seen": WAIT,
            REPAIRED_THEN_CONNECTED: Doubt(DISCONNECTED_BY_OTHERS),
        },
        DOWN: dict.fromkeys(PROGRESS_TOWARDS_DISCONNECTED, WAIT),
    },
    C.DISCONNECTED: {
        UP: {
            "nothing sent": CONNECT,
            "connect sent, nothing seen since": unseen(CONNECT),  # stale, or disconnected before we looked
            "connect sent, CONNECTING seen": Doubt(DISCONNECTED_BY_OTHERS),
            "disconnect sent, nothing seen since": CONNECT,
            "disconnect sent, DISCONNECTING seen": CONNECT,
            "disconnect sent, DISCONNECTED seen": CONNECT,  # the repair has finished
            REPAIRED_THEN_CONNECTED: Doubt(DISCONNECTED_BY_OTHERS),
        },
        DOWN: dict.fromkeys(PROGRESS_TOWARDS_DISCONNECTED, DONE),
    },
}


def _name(state: C | None) -> str:
    return "missing" if state is None else state.value


def _step_name(step: Step | Doubt) -> str:
    if isinstance(step, Doubt):
        return f"doubt, then {_step_name(step.believed)}"
    return f"fail:{step.failure.value}" if step.failure else step.action.value


def convinced(progress: Progress) -> Progress:
    """``progress`` after a contradicting read has persisted for the whole consistency window."""
    return dataclasses.replace(progress, doubts=CONSISTENCY_LOOKS + 1, doubted_for=CONSISTENCY_SECONDS)


def _cells(kind: type) -> list[Any]:
    return [
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
        if isinstance(expected, kind)
    ]


DECISIONS = _cells(Step)
DOUBTS = _cells(Doubt)


def test_the_table_covers_every_state_desired_state_and_progress() -> None:
    assert set(TABLE) == {None, *ConnectionState}
    for by_desired in TABLE.values():
        assert set(by_desired) == set(DesiredState)
        assert set(by_desired[UP]) == set(PROGRESS)
        assert set(by_desired[DOWN]) == set(PROGRESS_TOWARDS_DISCONNECTED)


@pytest.mark.parametrize(("state", "desired", "progress", "expected"), DECISIONS)
def test_decide(state: C | None, desired: DesiredState, progress: Progress, expected: Step) -> None:
    assert decide(Observation(state), desired, progress) == expected
    assert not contradicts(Observation(state), desired, progress)


@pytest.mark.parametrize(("state", "desired", "progress", "expected"), DECISIONS)
def test_decide_is_the_same_once_the_current_observation_is_recorded(
    state: C | None, desired: DesiredState, progress: Progress, expected: Step
) -> None:
    # The reconciler records what it sees before it decides; that must not change the decision.
    assert decide(Observation(state), desired, progress.observed(state)) == expected


@pytest.mark.parametrize(("state", "desired", "progress", "doubt"), DOUBTS)
def test_a_read_that_contradicts_the_last_request_is_waited_on_until_believed(
    state: C, desired: DesiredState, progress: Progress, doubt: Doubt
) -> None:
    assert contradicts(Observation(state), desired, progress)
    assert decide(Observation(state), desired, progress) == WAIT
    assert decide(Observation(state), desired, progress.observed(state)) == WAIT


@pytest.mark.parametrize(("state", "desired", "progress", "doubt"), DOUBTS)
def test_a_contradiction_believed_is_decided_anew_or_blamed_on_another_client(
    state: C, desired: DesiredState, progress: Progress, doubt: Doubt
) -> None:
    assert decide(Observation(state), desired, convinced(progress)) == doubt.believed


@pytest.mark.parametrize(("state", "desired", "progress", "doubt"), DOUBTS)
def test_a_request_that_never_shows_after_it_was_decided_anew_fails_as_not_seen(
    state: C, desired: DesiredState, progress: Progress, doubt: Doubt
) -> None:
    second_time = dataclasses.replace(convinced(progress), redecided=True)
    expected = REQUEST_NOT_SEEN if doubt.unseen else doubt.believed
    assert decide(Observation(state), desired, second_time) == expected


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


def test_doubts_count_contradicting_reads_and_time_from_the_first() -> None:
    progress = Progress(connect_sent=True).doubting(10.0).doubting(10.5).doubting(12.0)
    assert (progress.doubts, progress.doubt_since, progress.doubted_for) == (3, 10.0, 2.0)


def test_a_read_that_agrees_ends_the_doubt() -> None:
    progress = Progress(connect_sent=True).doubting(10.0).doubting(11.0).trusting()
    assert progress == Progress(connect_sent=True)


@pytest.mark.parametrize(
    ("reads", "seconds", "believed"),
    [
        pytest.param(CONSISTENCY_LOOKS + 1, CONSISTENCY_SECONDS, True, id="both-reached"),
        pytest.param(CONSISTENCY_LOOKS, 60.0, False, id="too-few-reads"),
        pytest.param(50, CONSISTENCY_SECONDS - 0.1, False, id="too-soon"),
    ],
)
def test_a_contradiction_is_believed_after_enough_looks_and_enough_seconds(
    reads: int, seconds: float, believed: bool
) -> None:
    assert Progress(doubts=reads, doubted_for=seconds).convinced is believed


def test_sending_a_request_ends_the_doubt_but_remembers_a_decision_made_anew() -> None:
    progress = Progress(connect_sent=True, redecided=True).doubting(1.0).sent(Action.CONNECT)
    assert progress == Progress(connect_sent=True, redecided=True)


# --- advance: what the reconciler calls after every read ----------------------------------------------------------


def _reads(progress: Progress, desired: DesiredState, reads: list[tuple[float, C]]) -> list[tuple[Progress, Step]]:
    steps = []
    for at, state in reads:
        progress, step = advance(Observation(state), desired, progress, at)
        steps.append((progress, step))
    return steps


def test_advance_waits_out_a_stale_read_that_then_shows_the_request() -> None:
    steps = _reads(Progress(connect_sent=True), UP, [(0.5, C.DISCONNECTED), (1.0, C.CONNECTING), (1.5, C.CONNECTED)])
    assert [step for _, step in steps] == [WAIT, WAIT, DONE]
    assert steps[1][0].doubts == 0  # the agreeing read ended the doubt


def test_advance_believes_a_request_never_shown_after_the_window_and_sends_it_again() -> None:
    reads = [(0.5 * n, C.DISCONNECTED) for n in range(1, 12)]
    steps = _reads(Progress(connect_sent=True), UP, reads)
    actions = [step.action for _, step in steps]
    # First contradicting read at 0.5 s; believed at the first read 5 s after it.
    assert actions == [Action.WAIT] * 10 + [Action.CONNECT]
    progress, _ = steps[-1]
    assert progress == Progress(redecided=True, seen_since_last_action=frozenset({C.DISCONNECTED}))


def test_advance_blames_another_client_for_progress_reversed_only_after_the_window() -> None:
    progress = Progress(connect_sent=True).observed(C.CONNECTING)
    reads = [(100.0 + n, C.DISCONNECTED) for n in range(7)]
    actions = [step for _, step in _reads(progress, UP, reads)]
    assert actions == [WAIT] * 5 + [DISCONNECTED_BY_OTHERS] * 2


def test_advance_fails_a_request_that_never_shows_twice() -> None:
    progress = Progress(connect_sent=True, redecided=True)
    reads = [(0.5 * n, C.DISCONNECTED) for n in range(1, 12)]
    assert _reads(progress, UP, reads)[-1][1] == REQUEST_NOT_SEEN


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


# --- next_up: what the next `pulumi up` does, for messages --------------------------------------------------------

NEXT_UP = [
    (C.CONNECTED, UP, "makes no request"),
    (C.CONNECTED, DOWN, "disconnects it"),
    (C.CONNECTING, UP, "keeps waiting for CONNECTED without a new request"),
    (C.CONNECTING, DOWN, "disconnects it"),
    (C.FAILED, UP, "disconnects it, then connects it"),
    (C.FAILED, DOWN, "disconnects it"),
    (C.DISCONNECTING, UP, "waits for DISCONNECTED, then connects it"),
    (C.DISCONNECTING, DOWN, "keeps waiting for DISCONNECTED without a new request"),
    (C.DISCONNECTED, UP, "connects it"),
    (C.DISCONNECTED, DOWN, "makes no request"),
]


def test_the_next_up_table_covers_every_state_and_desired_state() -> None:
    every = {(state, desired) for state in ConnectionState for desired in DesiredState}
    assert {(state, desired) for state, desired, _ in NEXT_UP} == every


@pytest.mark.parametrize(
    ("state", "desired", "doing"), [pytest.param(s, d, t, id=f"{s.value}->{d.value}") for s, d, t in NEXT_UP]
)
def test_next_up_says_what_a_fresh_up_does_if_the_store_has_not_moved(
    state: C, desired: DesiredState, doing: str
) -> None:
    observation = Observation(state, "NETWORK_ERRORS" if state is C.FAILED else None)
    assert next_up(observation, desired) == (
        f"the next `pulumi up` reads it again and, if it is still {observation.describe()}, {doing}"
    )


# --- standing: one store, several resources -----------------------------------------------------------------------

STANDINGS = [
    # (desired, release, what other resources declare) -> standing
    (DOWN, True, [], Standing.FREE),
    (DOWN, True, [DOWN], Standing.FREE),
    (DOWN, True, [UP], Standing.YIELD),
    (DOWN, True, [DOWN, UP], Standing.YIELD),
    (UP, False, [], Standing.FREE),
    (UP, False, [UP], Standing.FREE),  # two resources may both want it CONNECTED; a repair is for both
    (UP, False, [DOWN], Standing.CONFLICT),
    (UP, False, [UP, DOWN], Standing.CONFLICT),
    (DOWN, False, [], Standing.FREE),
    (DOWN, False, [DOWN], Standing.FREE),
    (DOWN, False, [UP], Standing.CONFLICT),
]


@pytest.mark.parametrize(
    ("desired", "release", "others", "expected"),
    [
        pytest.param(d, r, o, e, id=f"{'release' if r else d.value} vs {[x.value for x in o]}: {e.value}")
        for d, r, o, e in STANDINGS
    ],
)
def test_standing(desired: DesiredState, release: bool, others: list[DesiredState], expected: Standing) -> None:
    assert standing(desired, release, others) is expected


# --- what a disconnect breaks -------------------------------------------------------------------------------------

KEY_A = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_B = "5678efgh-0000-4000-8000-000000000000"
PAYMENTS = StoreKey(KEY_A, "Enabled", ("alias/payments",))
PLAIN = StoreKey(KEY_B, "Enabled")
DENIED = "kms:ListKeys is denied (AccessDeniedException: User: arn:aws:iam::111122223333:root is not authorized)"

# Whether a plan disconnects a store for good, for every observed state and desired state.
BREAKS_KEYS: list[tuple[C | None, DesiredState, bool]] = [
    (C.CONNECTED, DOWN, True),
    (C.CONNECTING, DOWN, True),
    (C.FAILED, DOWN, True),
    (C.DISCONNECTING, DOWN, False),  # a wait, no request
    (C.DISCONNECTED, DOWN, False),
    (None, DOWN, False),
    (C.FAILED, UP, False),  # the repair: disconnect, then connect
    (C.CONNECTED, UP, False),
    (C.CONNECTING, UP, False),
    (C.DISCONNECTING, UP, False),
    (C.DISCONNECTED, UP, False),
    (None, UP, False),
]


def test_the_breaks_keys_table_covers_every_state_and_desired_state() -> None:
    assert {(state, desired) for state, desired, _ in BREAKS_KEYS} == {
        (state, desired) for state in [*C, None] for desired in DesiredState
    }


@pytest.mark.parametrize(("state", "desired", "expected"), BREAKS_KEYS)
def test_breaks_keys(state: C | None, desired: DesiredState, expected: bool) -> None:
    assert breaks_keys(Observation(state, "NETWORK_ERRORS" if state is C.FAILED else None), desired) is expected


def test_blast_radius_names_each_enabled_key_by_alias_and_id() -> None:
    census = KeyCensus((PLAIN, StoreKey("9999aaaa-0000-4000-8000-000000000000", "Disabled"), PAYMENTS))
    assert blast_radius(census) == f"2 enabled keys become unusable: alias/payments ({KEY_A}), {KEY_B}"


def test_blast_radius_of_one_key_is_singular() -> None:
    assert blast_radius(KeyCensus((PLAIN,))) == f"1 enabled key becomes unusable: {KEY_B}"


def test_blast_radius_names_at_most_five_keys_then_says_how_many_more() -> None:
    keys = tuple(StoreKey(f"{index:08x}-0000-4000-8000-000000000000", "Enabled") for index in range(8))
    text = blast_radius(KeyCensus(keys))
    assert text.startswith("8 enabled keys become unusable: 00000000-")
    assert text.endswith("00000004-0000-4000-8000-000000000000, and 3 more")


def test_blast_radius_names_keys_with_an_alias_before_the_others() -> None:
    unnamed = StoreKey("00000000-0000-4000-8000-000000000000", "Enabled")
    census = KeyCensus((unnamed, StoreKey("ffffffff-0000-4000-8000-000000000000", "Enabled", ("alias/zz",))))
    assert blast_radius(census).endswith(
        "unusable: alias/zz (ffffffff-0000-4000-8000-000000000000), 00000000-0000-4000-8000-000000000000"
    )


def test_blast_radius_of_a_store_with_no_enabled_key_says_so_and_what_it_holds() -> None:
    census = KeyCensus((StoreKey(KEY_A, "Unavailable"), StoreKey(KEY_B, "Unavailable"), StoreKey(KEY_A, "Disabled")))
    assert blast_radius(census) == "no enabled key becomes unusable (the store holds 3 keys: 1 Disabled, 2 Unavailable)"


def test_blast_radius_of_a_store_with_no_keys() -> None:
    assert blast_radius(KeyCensus()) == "no KMS keys in the store"


def test_blast_radius_of_uncounted_keys_says_why() -> None:
    assert blast_radius(KeyCensus(uncounted=DENIED)) == f"keys not counted: {DENIED}"


def test_blast_radius_says_when_aliases_could_not_be_read() -> None:
    census = KeyCensus((PLAIN,), aliases_unread="kms:ListAliases is denied")
    assert blast_radius(census).endswith("(aliases not read: kms:ListAliases is denied)")


@pytest.mark.parametrize("guard", [DisconnectGuard.WARN, DisconnectGuard.OFF])
def test_only_refuse_ever_refuses(guard: DisconnectGuard) -> None:
    assert guard_refusal(guard, KeyCensus((PAYMENTS,))) is None
    assert guard_refusal(guard, KeyCensus(uncounted=DENIED)) is None


def test_refuse_refuses_a_store_holding_enabled_keys_naming_them() -> None:
    refusal = guard_refusal(DisconnectGuard.REFUSE, KeyCensus((PAYMENTS, PLAIN)))
    assert refusal == (
        f"the store holds 2 enabled KMS keys that a disconnect makes unusable: alias/payments ({KEY_A}), {KEY_B}"
    )


def test_refuse_lets_a_store_without_enabled_keys_go() -> None:
    census = KeyCensus((StoreKey(KEY_A, "Disabled"), StoreKey(KEY_B, "PendingDeletion")))
    assert guard_refusal(DisconnectGuard.REFUSE, census) is None
    assert guard_refusal(DisconnectGuard.REFUSE, KeyCensus()) is None


def test_refuse_fails_closed_when_the_keys_could_not_be_counted() -> None:
    refusal = guard_refusal(DisconnectGuard.REFUSE, KeyCensus(uncounted=DENIED))
    assert refusal == f"the keys in the store could not be counted ({DENIED}), so it fails closed"


def test_plan_line_without_a_census_is_the_plan() -> None:
    line = plan_line(Observation(C.FAILED, "USER_LOCKED_OUT"), UP)
    assert line == "observed FAILED (USER_LOCKED_OUT), desired CONNECTED: will disconnect, then connect"


def test_plan_line_of_a_disconnect_adds_what_it_breaks() -> None:
    line = plan_line(Observation(C.CONNECTED), DOWN, KeyCensus((PAYMENTS, PLAIN)))
    assert line == (
        "observed CONNECTED, desired DISCONNECTED: will disconnect; 2 enabled keys become unusable: "
        f"alias/payments ({KEY_A}), {KEY_B}"
    )


def test_plan_line_of_a_refused_disconnect_says_it_will_refuse_and_what_would_break() -> None:
    line = plan_line(Observation(C.CONNECTED), DOWN, KeyCensus((PLAIN,)), DisconnectGuard.REFUSE)
    assert line == (
        "observed CONNECTED, desired DISCONNECTED: will refuse to disconnect (disconnect_guard is 'refuse'); "
        f"1 enabled key would become unusable: {KEY_B}"
    )


def test_plan_line_of_a_guarded_disconnect_with_uncounted_keys_will_refuse() -> None:
    line = plan_line(Observation(C.CONNECTED), DOWN, KeyCensus(uncounted=DENIED), DisconnectGuard.REFUSE)
    assert line.endswith(f"will refuse to disconnect (disconnect_guard is 'refuse'); keys not counted: {DENIED}")
