"""The reconciler against a scripted KMS: the calls it makes, the errors it raises and how long it waits.

Time is fake: ``sleep`` moves the fake clock, so a twenty-minute wait runs in milliseconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from kms_connection.deployment import Deployment
from kms_connection.errors import (
    ChangedByOthersError,
    ConnectFailedError,
    ConvergeTimeoutError,
    DeclarationConflictError,
    DisconnectRefusedError,
    KeyStoreNotFoundError,
    KmsApiError,
    RequestNotSeenError,
)
from kms_connection.gateway import KeyStore
from kms_connection.plan import CONSISTENCY_LOOKS, CONSISTENCY_SECONDS, Observation, plan
from kms_connection.reconciler import (
    CONSISTENCY_RETRIES,
    NOT_FOUND_GRACE_SECONDS,
    PROGRESS_EVERY_SECONDS,
    Goal,
    Reconciler,
)
from kms_connection.schedule import PollSchedule
from kms_connection.states import CONNECTION_ERROR_REMEDIES, ConnectionState, DesiredState
from tests.fakes import (
    CONNECTED,
    CONNECTING,
    DISCONNECTED,
    DISCONNECTING,
    FAILED,
    REGION,
    STORE_ID,
    Answer,
    FakeClock,
    FakeLog,
    ScriptedGateway,
)

UP = DesiredState.CONNECTED
DOWN = DesiredState.DISCONNECTED


@dataclass
class World:
    """A reconciler wired to a scripted gateway, a fake clock, a log that records fake times and a deployment's
    record of declarations."""

    gateway: ScriptedGateway
    clock: FakeClock
    log: FakeLog
    draw: float = 0.0
    deployment: Deployment = field(default_factory=Deployment)
    reconciler: Reconciler = field(init=False)

    def __post_init__(self) -> None:
        self.reconciler = Reconciler(
            self.gateway,
            clock=self.clock,
            sleep=self.clock.sleep,
            log=self.log,
            draw=lambda: self.draw,
            deployment=self.deployment,
        )

    def converge(
        self,
        desired: DesiredState = UP,
        timeout: float = 1800,
        *,
        missing_ok: bool = False,
        grace: float = 0.0,
        known: bool = False,
    ) -> KeyStore | None:
        goal = Goal(
            desired, timeout, "connect_timeout_seconds", missing_ok=missing_ok, not_found_grace=grace, known=known
        )
        return self.reconciler.converge(STORE_ID, goal)


def world(
    *script: Answer,
    on_connect: Sequence[Answer] | None = None,
    on_disconnect: Sequence[Answer] | None = None,
    connect_errors: Sequence[Exception] = (),
    disconnect_errors: Sequence[Exception] = (),
    draw: float = 0.0,
) -> World:
    clock = FakeClock()
    gateway = ScriptedGateway(clock, list(script))
    if on_connect is not None:
        gateway.on_connect = list(on_connect)
    if on_disconnect is not None:
        gateway.on_disconnect = list(on_disconnect)
    gateway.connect_errors = list(connect_errors)
    gateway.disconnect_errors = list(disconnect_errors)
    return World(gateway, clock, FakeLog(clock), draw)


def invalid_state(operation: str = "ConnectCustomKeyStore") -> KmsApiError:
    return KmsApiError(
        STORE_ID, REGION, operation, "CustomKeyStoreInvalidStateException", "The custom key store is DISCONNECTING."
    )


def state_of(store: KeyStore | None) -> ConnectionState | None:
    return store.connection_state if store else None


# --- the happy paths ----------------------------------------------------------------------------------------------


def test_connects_a_disconnected_store_with_exactly_one_connect() -> None:
    w = world(DISCONNECTED, on_connect=[CONNECTING, CONNECTING, CONNECTED])
    assert state_of(w.converge(UP)) is CONNECTED
    assert w.gateway.mutations == ["connect"]


def test_an_already_connected_store_gets_no_mutating_call_and_no_wait() -> None:
    w = world(CONNECTED)
    assert state_of(w.converge(UP)) is CONNECTED
    assert w.gateway.names == ["describe"]
    assert w.clock.sleeps == []


def test_an_already_disconnected_store_desired_disconnected_gets_no_mutating_call() -> None:
    w = world(DISCONNECTED)
    assert state_of(w.converge(DOWN)) is DISCONNECTED
    assert w.gateway.names == ["describe"]


def test_returns_the_store_as_last_described() -> None:
    w = world(CONNECTED)
    assert w.converge(UP) == KeyStore(STORE_ID, CONNECTED)


def test_disconnects_a_connected_store_with_exactly_one_disconnect() -> None:
    w = world(CONNECTED, on_disconnect=[CONNECTED, DISCONNECTING, DISCONNECTED])
    assert state_of(w.converge(DOWN)) is DISCONNECTED
    assert w.gateway.mutations == ["disconnect"]


def test_a_connecting_store_desired_disconnected_is_disconnected_at_once() -> None:
    w = world(CONNECTING)
    assert state_of(w.converge(DOWN)) is DISCONNECTED
    assert w.gateway.calls[:2] == [(0.0, "describe"), (0.0, "disconnect")]
    assert w.gateway.mutations == ["disconnect"]


def test_a_connecting_store_desired_connected_is_waited_for_without_a_request() -> None:
    w = world(CONNECTING, CONNECTING, CONNECTING, CONNECTED)
    assert state_of(w.converge(UP)) is CONNECTED
    assert w.gateway.mutations == []


def test_a_disconnecting_store_is_waited_out_before_connecting() -> None:
    w = world(DISCONNECTING, DISCONNECTING, DISCONNECTED)
    assert state_of(w.converge(UP)) is CONNECTED
    assert w.gateway.names[:4] == ["describe", "describe", "describe", "connect"]


def test_logs_the_request_it_sends() -> None:
    w = world(DISCONNECTED)
    w.converge(UP)
    assert w.log.lines[0] == (0.0, f"{STORE_ID}: DISCONNECTED, desired CONNECTED: connecting")


# --- FAILED -------------------------------------------------------------------------------------------------------


def test_a_failed_store_is_disconnected_waited_for_then_connected() -> None:
    w = world(
        (FAILED, "INTERNAL_ERROR"),
        on_disconnect=[(FAILED, "INTERNAL_ERROR"), DISCONNECTING, DISCONNECTED],  # one stale read first
        on_connect=[CONNECTING, CONNECTED],
    )
    assert state_of(w.converge(UP)) is CONNECTED
    assert w.gateway.mutations == ["disconnect", "connect"]
    # The connect waits for DISCONNECTED: three reads (stale FAILED, DISCONNECTING, DISCONNECTED) come between.
    names = w.gateway.names
    assert names[names.index("disconnect") + 1 : names.index("connect")] == ["describe"] * 3


def test_failed_again_after_our_connect_raises_connect_failed_with_the_code_and_remedy() -> None:
    w = world(DISCONNECTED, on_connect=[CONNECTING, CONNECTING, (FAILED, "USER_NOT_FOUND")])
    with pytest.raises(ConnectFailedError) as raised:
        w.converge(UP)
    message = str(raised.value)
    assert STORE_ID in message
    assert REGION in message
    assert "USER_NOT_FOUND" in message
    assert CONNECTION_ERROR_REMEDIES["USER_NOT_FOUND"] in message
    assert raised.value.error_code == "USER_NOT_FOUND"
    assert w.gateway.mutations == ["connect"]


def test_a_repair_that_fails_again_is_not_retried_in_a_loop() -> None:
    w = world(
        (FAILED, "USER_LOCKED_OUT"),
        on_disconnect=[DISCONNECTING, DISCONNECTED],
        on_connect=[CONNECTING, (FAILED, "USER_LOCKED_OUT")],
    )
    with pytest.raises(ConnectFailedError, match="USER_LOCKED_OUT"):
        w.converge(UP)
    assert w.gateway.mutations == ["disconnect", "connect"]


# --- eventual consistency -----------------------------------------------------------------------------------------


def test_stale_disconnected_reads_after_connect_are_waited_out_not_reconnected() -> None:
    w = world(DISCONNECTED, on_connect=[DISCONNECTED, DISCONNECTED, DISCONNECTED, CONNECTING, CONNECTED])
    assert state_of(w.converge(UP)) is CONNECTED
    assert w.gateway.mutations == ["connect"]


def test_spurious_not_found_after_seeing_the_store_is_tolerated_up_to_the_retry_limit() -> None:
    w = world(DISCONNECTED, on_connect=[CONNECTING, *[None] * CONSISTENCY_RETRIES, CONNECTED])
    assert state_of(w.converge(UP)) is CONNECTED
    assert w.gateway.mutations == ["connect"]


def test_not_found_beyond_the_retry_limit_is_believed() -> None:
    w = world(DISCONNECTED, on_connect=[CONNECTING, *[None] * (CONSISTENCY_RETRIES + 1), CONNECTED])
    with pytest.raises(KeyStoreNotFoundError):
        w.converge(UP)


def test_a_store_never_seen_is_not_found_at_once_without_a_grace_period() -> None:
    w = world(None, CONNECTED)
    with pytest.raises(KeyStoreNotFoundError):
        w.converge(UP)
    assert w.gateway.names == ["describe"]


def test_a_new_store_not_visible_yet_is_looked_for_until_it_shows() -> None:
    w = world(None, None, DISCONNECTED)
    assert state_of(w.converge(UP, grace=NOT_FOUND_GRACE_SECONDS)) is CONNECTED
    assert w.gateway.mutations == ["connect"]
    assert len(w.log.containing("not found yet")) == 1


def test_a_store_never_seen_is_believed_missing_after_the_grace_period() -> None:
    w = world(None)
    with pytest.raises(KeyStoreNotFoundError) as raised:
        w.converge(UP, grace=NOT_FOUND_GRACE_SECONDS)
    assert w.clock.now >= NOT_FOUND_GRACE_SECONDS
    assert w.clock.now < NOT_FOUND_GRACE_SECONDS + PollSchedule().floor + 1
    assert w.gateway.mutations == []
    assert STORE_ID in str(raised.value)
    assert REGION in str(raised.value)


def test_the_grace_period_for_a_missing_store_ends_at_the_timeout() -> None:
    w = world(None)
    with pytest.raises(KeyStoreNotFoundError):
        w.converge(UP, timeout=2, grace=NOT_FOUND_GRACE_SECONDS)
    assert w.clock.now == pytest.approx(2)


def test_a_missing_store_is_done_at_once_when_missing_is_fine() -> None:
    w = world(None)
    assert w.converge(DOWN, missing_ok=True) is None
    assert w.gateway.names == ["describe"]


def test_invalid_state_from_connect_leads_to_a_reread_not_an_error() -> None:
    # The first read is stale: the store is really DISCONNECTING, so KMS refuses the Connect.
    w = world(DISCONNECTED, DISCONNECTING, DISCONNECTED, connect_errors=[invalid_state()])
    assert state_of(w.converge(UP)) is CONNECTED
    assert w.gateway.names[:4] == ["describe", "connect", "describe", "describe"]
    assert w.gateway.mutations == ["connect", "connect"]


def test_invalid_state_from_disconnect_leads_to_a_reread_not_an_error() -> None:
    w = world(CONNECTED, DISCONNECTING, DISCONNECTED, disconnect_errors=[invalid_state("DisconnectCustomKeyStore")])
    assert state_of(w.converge(DOWN)) is DISCONNECTED
    assert w.gateway.mutations == ["disconnect"]


def test_invalid_state_that_persists_is_raised_after_the_retry_limit() -> None:
    w = world(DISCONNECTED, connect_errors=[invalid_state() for _ in range(CONSISTENCY_RETRIES + 1)])
    with pytest.raises(KmsApiError, match="CustomKeyStoreInvalidStateException"):
        w.converge(UP)
    assert w.gateway.mutations == ["connect"] * (CONSISTENCY_RETRIES + 1)


def test_other_api_errors_from_connect_are_raised_at_once() -> None:
    error = KmsApiError(
        STORE_ID, REGION, "ConnectCustomKeyStore", "CloudHsmClusterNotActiveException", "The cluster is not active."
    )
    w = world(DISCONNECTED, connect_errors=[error])
    with pytest.raises(KmsApiError) as raised:
        w.converge(UP)
    assert raised.value is error
    assert w.gateway.mutations == ["connect"]


# --- others changing the store ------------------------------------------------------------------------------------


def test_one_stale_read_that_contradicts_progress_is_looked_at_again() -> None:
    w = world(DISCONNECTED, on_connect=[CONNECTING, DISCONNECTED, CONNECTING, CONNECTED])
    assert state_of(w.converge(UP)) is CONNECTED
    assert w.gateway.mutations == ["connect"]


def test_disconnected_by_others_during_the_wait_raises_changed_by_others() -> None:
    w = world(DISCONNECTED, on_connect=[CONNECTING, CONNECTING, DISCONNECTED])
    with pytest.raises(ChangedByOthersError) as raised:
        w.converge(UP)
    assert str(raised.value) == (
        f"custom key store {STORE_ID} in {REGION}: another client changed the store to DISCONNECTED while it was "
        "converging to CONNECTED. Check who manages this store: the next `pulumi up` reads it again and, if it is "
        "still DISCONNECTED, connects it."
    )
    assert w.gateway.mutations == ["connect"]


def test_progress_reversed_is_believed_only_after_the_consistency_window() -> None:
    w = world(DISCONNECTED, on_connect=[CONNECTING, CONNECTING, DISCONNECTED])
    with pytest.raises(ChangedByOthersError):
        w.converge(UP)
    first_reversed, failed_at = w.gateway.times_of("describe")[2], w.clock.now
    assert failed_at - first_reversed >= CONSISTENCY_SECONDS
    assert len([at for at in w.gateway.times_of("describe") if at >= first_reversed]) > CONSISTENCY_LOOKS


def test_connected_by_others_during_a_disconnect_raises_changed_by_others() -> None:
    w = world(CONNECTED, on_disconnect=[DISCONNECTING, CONNECTING])
    with pytest.raises(ChangedByOthersError, match="changed the store to CONNECTING while it was converging to DISC"):
        w.converge(DOWN)
    assert w.gateway.mutations == ["disconnect"]


# --- missing stores -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("desired", list(DesiredState), ids=lambda d: d.value)
def test_missing_ok_returns_none_for_a_missing_store(desired: DesiredState) -> None:
    w = world(None)
    assert w.converge(desired, missing_ok=True) is None
    assert w.gateway.mutations == []


def test_missing_ok_returns_none_for_a_store_deleted_during_the_wait() -> None:
    w = world(CONNECTED, on_disconnect=[DISCONNECTING, None])
    assert w.converge(DOWN, missing_ok=True) is None


def test_missing_ok_returns_none_when_the_request_finds_no_store() -> None:
    w = world(CONNECTED, disconnect_errors=[KeyStoreNotFoundError(STORE_ID, REGION)])
    assert w.converge(DOWN, missing_ok=True) is None


def test_not_found_from_the_request_is_raised_without_missing_ok() -> None:
    w = world(CONNECTED, disconnect_errors=[KeyStoreNotFoundError(STORE_ID, REGION)])
    with pytest.raises(KeyStoreNotFoundError):
        w.converge(DOWN)


# --- timeouts and waiting -----------------------------------------------------------------------------------------


def test_timeout_raises_naming_the_last_state_and_the_seconds_waited() -> None:
    w = world(DISCONNECTED, on_connect=[CONNECTING])
    with pytest.raises(ConvergeTimeoutError) as raised:
        w.converge(UP, timeout=300)
    assert str(raised.value) == (
        f"custom key store {STORE_ID} in {REGION}: still CONNECTING after waiting 300 s for CONNECTED. Nothing was "
        "undone: run `pulumi up` again to keep waiting without a new request, or raise connect_timeout_seconds."
    )
    assert raised.value.last_state == "CONNECTING"
    assert w.gateway.mutations == ["connect"]


def test_timeout_names_the_error_code_of_a_failed_store_it_was_waiting_on() -> None:
    # Our repair Disconnect has not shown when the (short) timeout comes.
    w = world((FAILED, "NETWORK_ERRORS"), on_disconnect=[(FAILED, "NETWORK_ERRORS")])
    with pytest.raises(ConvergeTimeoutError, match=r"still FAILED \(NETWORK_ERRORS\) after waiting 3 s"):
        w.converge(UP, timeout=3)


def test_a_timeout_before_a_request_has_shown_says_the_next_up_sends_it_again() -> None:
    w = world(DISCONNECTED, on_connect=[DISCONNECTED])
    with pytest.raises(ConvergeTimeoutError) as raised:
        w.converge(UP, timeout=2)
    assert str(raised.value) == (
        f"custom key store {STORE_ID} in {REGION}: still DISCONNECTED after waiting 2 s for CONNECTED. Nothing was "
        "undone: the next `pulumi up` reads it again and, if it is still DISCONNECTED, connects it; raise "
        "connect_timeout_seconds to wait longer."
    )


@pytest.mark.parametrize("timeout", [1, 7, 60, 1800, 86400])
@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999], ids=["no-jitter", "half-jitter", "full-jitter"])
def test_a_wait_never_sleeps_past_the_deadline(timeout: int, draw: float) -> None:
    w = world(CONNECTING, draw=draw)
    with pytest.raises(ConvergeTimeoutError):
        w.converge(UP, timeout=timeout)
    assert w.clock.now == pytest.approx(timeout)
    last_call_at, last_call = w.gateway.calls[-1]
    assert last_call == "describe"  # one last look at the deadline
    assert last_call_at == pytest.approx(timeout)


def test_a_store_that_settles_at_the_deadline_is_a_success() -> None:
    w = world(CONNECTING)
    with pytest.raises(ConvergeTimeoutError):
        w.converge(UP, timeout=60)
    reads = w.gateway.names.count("describe")

    settles = world(*[CONNECTING] * (reads - 1), CONNECTED)
    assert state_of(settles.converge(UP, timeout=60)) is CONNECTED
    assert settles.clock.now == pytest.approx(60)


def test_a_long_wait_polls_a_bounded_number_of_times() -> None:
    w = world(CONNECTING)
    with pytest.raises(ConvergeTimeoutError):
        w.converge(UP, timeout=1200)
    assert w.gateway.names.count("describe") < 150


def test_waiting_sleeps_follow_the_schedule_with_the_drawn_jitter() -> None:
    w = world(CONNECTING, CONNECTING, CONNECTED, draw=0.5)
    w.converge(UP)
    # floor 0.5 s, less half of the 20 % jitter.
    assert w.clock.sleeps == [pytest.approx(0.45), pytest.approx(0.45)]


def test_progress_lines_at_most_every_30_seconds_during_a_ten_minute_wait() -> None:
    w = world(CONNECTING)
    with pytest.raises(ConvergeTimeoutError):
        w.converge(UP, timeout=600)
    lines = w.log.containing("still CONNECTING")
    times = [at for at, _ in lines]
    assert all(b - a >= PROGRESS_EVERY_SECONDS for a, b in itertools.pairwise([0.0, *times]))
    # At most one a half-minute; and the gap between polls (at most 30 s by ten minutes) bounds how late one is.
    assert 10 <= len(lines) <= 600 / PROGRESS_EVERY_SECONDS
    assert lines[-1][1].endswith("(waiting for CONNECTED, timeout 10m)")


def test_a_progress_line_says_how_long_it_has_waited() -> None:
    w = world(CONNECTING)
    with pytest.raises(ConvergeTimeoutError):
        w.converge(UP, timeout=90)
    at, line = w.log.containing("still")[0]
    assert at >= PROGRESS_EVERY_SECONDS
    assert line == f"{STORE_ID}: still CONNECTING after {round(at)}s (waiting for CONNECTED, timeout 1m30s)"


def test_a_short_wait_logs_no_progress_line() -> None:
    w = world(DISCONNECTED, on_connect=[CONNECTING] * 20 + [CONNECTED])
    w.converge(UP)
    assert w.clock.now < PROGRESS_EVERY_SECONDS
    assert w.log.containing("still") == []


@dataclass
class BlinkingGateway(ScriptedGateway):
    """Answers NotFound once, at the first read at or after ``blink_at`` (a spurious NotFound)."""

    blink_at: float = 0.0
    blinked: bool = False

    def describe(self, store_id: str) -> KeyStore | None:
        store = super().describe(store_id)
        if not self.blinked and self.clock.now >= self.blink_at:
            self.blinked = True
            return None
        return store


def test_a_spurious_not_found_near_the_deadline_does_not_sleep_past_it() -> None:
    clock = FakeClock()
    gateway = BlinkingGateway(clock, [CONNECTING], blink_at=1750.0)
    reconciler = Reconciler(gateway, clock=clock, sleep=clock.sleep, log=FakeLog(clock), draw=lambda: 0.0)
    with pytest.raises(ConvergeTimeoutError) as raised:
        reconciler.converge(STORE_ID, Goal(UP, 1800))
    assert gateway.blinked
    assert clock.now <= 1800, f"slept {clock.now - 1800:.0f} s past the deadline"
    assert "after waiting 1800 s" in str(raised.value)


# --- the preview and the real run agree ---------------------------------------------------------------------------


def _settled(state: ConnectionState) -> ConnectionState:
    return {CONNECTING: CONNECTED, DISCONNECTING: DISCONNECTED}.get(state, state)


@pytest.mark.parametrize("desired", list(DesiredState), ids=lambda d: d.value)
@pytest.mark.parametrize("state", list(ConnectionState), ids=lambda s: s.value)
def test_the_requests_sent_are_the_ones_the_plan_announced(state: ConnectionState, desired: DesiredState) -> None:
    initial: Answer = (FAILED, "INTERNAL_ERROR") if state is FAILED else state
    w = world(initial, _settled(state))
    announced = [step for step in plan(Observation(state), desired) if step in ("connect", "disconnect")]
    assert state_of(w.converge(desired)) is ConnectionState(desired.value)
    assert w.gateway.mutations == announced


def test_a_missing_store_fails_as_the_plan_announced() -> None:
    assert plan(Observation(None), UP) == ["fail: not found"]
    with pytest.raises(KeyStoreNotFoundError):
        world(None).converge(UP)


# --- a request undone before we looked ----------------------------------------------------------------------------


def test_a_disconnect_undone_before_the_first_read_is_sent_again_once_the_window_has_passed() -> None:
    # Another client reconnects the store between our Disconnect and our first read.
    w = world(CONNECTED, DISCONNECTED)
    w.gateway.on_each_disconnect = [[CONNECTED], [DISCONNECTING, DISCONNECTED]]
    assert state_of(w.converge(DOWN, timeout=900)) is DISCONNECTED
    first, second = w.gateway.times_of("disconnect")
    assert CONSISTENCY_SECONDS <= second - first < 2 * CONSISTENCY_SECONDS  # believed at the window, not the timeout
    assert w.gateway.mutations == ["disconnect", "disconnect"]


def test_a_connect_undone_before_the_first_read_is_sent_again_once_the_window_has_passed() -> None:
    w = world(DISCONNECTED)
    w.gateway.on_each_connect = [[DISCONNECTED], [CONNECTING, CONNECTED]]
    assert state_of(w.converge(UP)) is CONNECTED
    first, second = w.gateway.times_of("connect")
    assert CONSISTENCY_SECONDS <= second - first < 2 * CONSISTENCY_SECONDS
    assert w.gateway.mutations == ["connect", "connect"]


def test_a_request_undone_twice_fails_naming_what_changed_and_what_the_next_up_does() -> None:
    w = world(CONNECTED, on_disconnect=[CONNECTED])
    with pytest.raises(RequestNotSeenError) as raised:
        w.converge(DOWN, timeout=900)
    message = str(raised.value)
    assert message.startswith(
        f"custom key store {STORE_ID} in {REGION}: KMS accepted DisconnectCustomKeyStore twice, but the store still "
        "showed CONNECTED 5 s after the second"
    )
    assert message.endswith(
        "Check who manages this store: the next `pulumi up` reads it again and, if it is still CONNECTED, "
        "disconnects it."
    )
    assert w.gateway.mutations == ["disconnect", "disconnect"]
    assert w.clock.now < 3 * CONSISTENCY_SECONDS  # not the 900 s timeout


# --- a store the state records ------------------------------------------------------------------------------------


def test_a_first_not_found_of_a_store_the_state_records_is_looked_at_again() -> None:
    w = world(None, CONNECTED)
    assert state_of(w.converge(UP, known=True)) is CONNECTED
    assert w.gateway.names == ["describe", "describe"]


def test_a_store_the_state_records_is_believed_missing_after_the_retry_limit() -> None:
    w = world(None)
    with pytest.raises(KeyStoreNotFoundError):
        w.converge(UP, known=True)
    assert w.gateway.names == ["describe"] * (CONSISTENCY_RETRIES + 1)


def test_observe_looks_again_for_a_store_not_found() -> None:
    w = world(None, None, CONNECTED)
    assert state_of(w.reconciler.observe([STORE_ID])[STORE_ID]) is CONNECTED
    assert w.gateway.names == ["describe"] * 3


def test_observe_believes_a_missing_store_after_the_retry_limit() -> None:
    w = world(None)
    assert w.reconciler.observe([STORE_ID]) == {STORE_ID: None}
    assert w.gateway.names == ["describe"] * (CONSISTENCY_RETRIES + 1)


# --- one store, several resources of the deployment ---------------------------------------------------------------

SET = "CustomKeyStoreConnectionSet 'fleet'"
CONN = "CustomKeyStoreConnection 'hsm'"


def declaring(w: World, resource: str, desired: DesiredState) -> Callable[[], None]:
    """What happens when the engine shows the provider a resource that names the store, at some read."""

    def declare() -> None:
        w.deployment.declare(resource, REGION, [STORE_ID], desired)

    return declare


def nothing() -> None:
    """A read at which nothing else happens."""


def release() -> Goal:
    return Goal(DOWN, 900, "disconnect_timeout_seconds", missing_ok=True, known=True, release=True)


def declared(resource: str = SET) -> Goal:
    return Goal(UP, 1800, "connect_timeout_seconds", resource=resource)


def test_a_release_of_a_store_another_resource_declares_connected_makes_no_call() -> None:
    w = world(CONNECTED)
    w.deployment.declare(SET, REGION, [STORE_ID], UP)
    outcome = w.reconciler.run({STORE_ID: release()})
    assert not outcome.failed and outcome.yielded == [STORE_ID]
    assert w.gateway.calls == []
    assert w.log.containing(f"{STORE_ID}: declared CONNECTED by {SET} in this stack: leaving it connected")


def test_a_release_consults_the_declarations_at_the_moment_of_its_disconnect() -> None:
    # The resource that wants it CONNECTED reaches the provider while the release reads the store.
    w = world(CONNECTED)
    w.gateway.on_describe = [declaring(w, SET, UP)]
    outcome = w.reconciler.run({STORE_ID: release()})
    assert outcome.yielded == [STORE_ID]
    assert w.gateway.mutations == []


def test_a_release_stops_waiting_when_another_resource_declares_the_store_connected() -> None:
    w = world(CONNECTED, on_disconnect=[DISCONNECTING])
    w.gateway.on_describe = [nothing, declaring(w, SET, UP)]
    outcome = w.reconciler.run({STORE_ID: release()})
    assert not outcome.failed and outcome.yielded == [STORE_ID]  # no "changed by others" when it is reconnected
    assert w.gateway.mutations == ["disconnect"]


def test_a_declaration_that_conflicts_stops_an_operation_at_its_next_step_naming_both() -> None:
    w = world(DISCONNECTED, on_connect=[CONNECTING])
    w.deployment.declare(CONN, REGION, [STORE_ID], UP)
    w.gateway.on_describe = [nothing, declaring(w, SET, DOWN)]
    with pytest.raises(DeclarationConflictError) as raised:
        w.reconciler.converge(STORE_ID, declared(CONN))
    assert str(raised.value).startswith(
        f"custom key store {STORE_ID} in {REGION}: stopped converging: the store is declared CONNECTED by {CONN} "
        f"and DISCONNECTED by {SET}."
    )
    assert w.gateway.mutations == ["connect"]


def test_a_repair_waits_while_another_operation_sends_requests_for_the_store() -> None:
    w = world((FAILED, "INTERNAL_ERROR"), DISCONNECTED)
    other = object()
    assert w.deployment.drive(REGION, STORE_ID, other)
    w.gateway.on_describe = [nothing, nothing, lambda: w.deployment.release(REGION, STORE_ID, other)]
    assert state_of(w.reconciler.converge(STORE_ID, declared())) is CONNECTED
    # Held on the FAILED read and on the DISCONNECTED one (the other operation's repair under way); once that
    # operation was done, our own decision from the next read. Never a Disconnect of ours in between.
    assert w.gateway.names[:3] == ["describe", "describe", "describe"]
    assert w.gateway.mutations == ["connect"]
    assert w.log.containing("another resource of this stack is sending requests for it")


def test_an_operation_lets_other_operations_drive_the_store_once_it_is_done() -> None:
    w = world(DISCONNECTED)
    w.reconciler.converge(STORE_ID, declared())
    assert w.deployment.drive(REGION, STORE_ID, object())


# --- before a disconnect: what it breaks, or a refusal ------------------------------------------------------------


def checked(w: World, answer: str | None = "2 enabled keys become unusable: k1, k2") -> list[tuple[str, str]]:
    """Give the reconciler a check before each Disconnect that answers ``answer`` (None: refuses); return the log
    of what it was asked."""
    asked: list[tuple[str, str]] = []

    def check(store_id: str, observation: Observation) -> str:
        asked.append((store_id, observation.describe()))
        if answer is None:
            raise DisconnectRefusedError(store_id, REGION, "the store holds 1 enabled KMS key", "CONNECTED", True)
        return answer

    w.reconciler.before_disconnect = check
    return asked


def test_a_disconnect_is_checked_first_and_announced_with_what_it_breaks() -> None:
    w = world(CONNECTED)
    asked = checked(w)

    assert state_of(w.converge(DOWN)) is DISCONNECTED

    assert asked == [(STORE_ID, "CONNECTED")]
    assert w.log.containing("CONNECTED, desired DISCONNECTED: disconnecting; 2 enabled keys become unusable: k1, k2")
    assert w.gateway.mutations == ["disconnect"]


def test_a_refused_disconnect_fails_the_store_and_sends_no_request() -> None:
    w = world(CONNECTED)
    checked(w, answer=None)

    with pytest.raises(DisconnectRefusedError):
        w.converge(DOWN)

    assert w.gateway.mutations == []


def test_the_disconnect_of_a_failed_stores_repair_is_not_checked() -> None:
    w = world((FAILED, "USER_LOCKED_OUT"), on_disconnect=[DISCONNECTED], on_connect=[CONNECTED])
    asked = checked(w, answer=None)

    assert state_of(w.converge(UP)) is CONNECTED

    assert asked == []
    assert w.gateway.mutations == ["disconnect", "connect"]
