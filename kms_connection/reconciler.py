"""The observe -> decide -> act loop that converges stores, in the style of Terraform's StateChangeConf and of
a Kubernetes controller: every pass re-reads KMS, so running it again after any interruption is safe.

One loop serves one store (``CustomKeyStoreConnection``) or many at once (``CustomKeyStoreConnectionSet``): each
pass reads every unsettled store with one DescribeCustomKeyStores call, then takes each store's next step. I/O
comes in through the gateway and the injected clock, sleep and log functions; tests pass fakes. When given the
deployment's record (``deployment.Deployment``), the loop consults it before every read and at the moment of
every request, so a store another resource declares CONNECTED is never disconnected by a delete or a set it
leaves, conflicting declarations stop the operation, and one operation at a time sends requests for a store.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .deployment import Declaration, Deployment
from .errors import (
    ChangedByOthersError,
    ConnectFailedError,
    ConvergeTimeoutError,
    DeclarationConflictError,
    KeyStoreError,
    KeyStoreNotFoundError,
    KeyStoreSetError,
    KmsApiError,
    RequestNotSeenError,
)
from .gateway import KeyStore
from .plan import Action, Failure, Observation, Progress, Standing, advance, next_up, plan, standing
from .schedule import PollSchedule
from .states import ConnectionState, DesiredState

# A progress line at most this often while waiting, so a 20-minute CloudHSM connect shows it is alive.
PROGRESS_EVERY_SECONDS = 30.0
# Right after a change KMS may briefly answer NotFound or refuse a call with InvalidState (eventual
# consistency); a store gets this many more looks before we believe either. (Reads that contradict a request
# have their own, longer window: ``plan.CONSISTENCY_LOOKS`` and ``plan.CONSISTENCY_SECONDS``.)
CONSISTENCY_RETRIES = 3
# A store created a moment ago (by aws.kms.CustomKeyStore in the same `pulumi up`) can be invisible to Describe
# until KMS's replicas catch up: a create looks this long (within the timeout) for a store it has not seen yet
# before it believes a NotFound.
NOT_FOUND_GRACE_SECONDS = 10.0
_OPERATIONS = {Action.CONNECT: "ConnectCustomKeyStore", Action.DISCONNECT: "DisconnectCustomKeyStore"}
_LIVE = frozenset({ConnectionState.CONNECTED, ConnectionState.CONNECTING})


class Gateway(Protocol):
    """What the reconciler needs from ``gateway.KmsGateway`` (which also has ``account_place``, the
    ``222233334444/us-east-1`` that lines name a store with once the account is known)."""

    region: str

    def describe(self, store_id: str) -> KeyStore | None: ...
    def connect(self, store_id: str) -> None: ...
    def disconnect(self, store_id: str) -> None: ...


@dataclass(frozen=True)
class Goal:
    """Where one store should end, how long it may take, and on whose behalf."""

    desired: DesiredState
    timeout: float
    timeout_input: str = "the timeout"
    missing_ok: bool = False
    """Whether a store that does not exist (or disappears) counts as done: what a delete wants."""
    not_found_grace: float = 0.0
    """How long a store not seen yet may be missing before that is believed: ``NOT_FOUND_GRACE_SECONDS`` for a
    store that may have just been created, 0 for one that existed before."""
    known: bool = False
    """The stack's state records the store, so it existed: a first NotFound gets more looks, like a later one."""
    resource: str | None = None
    """The resource whose declaration this goal serves (``CustomKeyStoreConnection 'hsm'``)."""
    release: bool = False
    """A delete, or a store leaving a set: DISCONNECTED only if no other resource declares the store CONNECTED."""
    not_found_fix: str | None = None
    """What to do about a store that does not exist, where the connection's advice does not fit (set members)."""


@dataclass
class _Store:
    """One store's place in a converge: what it was asked, what it has seen, how it ended."""

    store_id: str
    goal: Goal
    started: float
    action_at: float
    progress: Progress = field(default_factory=Progress)
    described: KeyStore | None = None
    seen: bool = False
    consistency_retries: int = 0
    not_found_logged: bool = False
    held_logged: bool = False
    last_action: Action | None = None
    connect_sent: bool = False
    missing: bool = False
    yielded: bool = False
    finished: bool = False
    error: KeyStoreError | None = None

    @property
    def deadline(self) -> float:
        return self.started + self.goal.timeout


@dataclass
class Outcome:
    """How a converge ended for each store, failures included: what a provider needs to tell the user what the
    stack's state will not record."""

    stores: dict[str, KeyStore | None]
    """Each store as last described (None: never seen, or missing)."""
    errors: list[KeyStoreError]
    fatal: KeyStoreError | None = None
    """An error that stopped the whole converge (KMS unreachable), not one store."""
    converged: list[str] = field(default_factory=list)
    connected: list[str] = field(default_factory=list)
    """Stores this converge sent Connect to and last saw CONNECTING or CONNECTED."""
    missing: list[str] = field(default_factory=list)
    """Stores that do not exist, where the goal allowed it."""
    yielded: list[str] = field(default_factory=list)
    """Stores a release left to another resource that declares them CONNECTED."""

    @property
    def failed(self) -> bool:
        return bool(self.errors) or self.fatal is not None

    def error(self) -> Exception:
        """The error to raise: the fatal one, a store's, or all the stores' together."""
        if self.fatal is not None:
            return self.fatal
        if len(self.errors) == 1:
            return self.errors[0]
        return KeyStoreSetError(self.errors, self.converged)

    def result(self) -> dict[str, KeyStore | None]:
        """Each store as last described; raises :meth:`error` if anything failed."""
        if self.failed:
            raise self.error()
        return self.stores


@dataclass
class Reconciler:
    """Converges stores to their desired states within their timeouts."""

    gateway: Gateway
    schedule: PollSchedule = field(default_factory=PollSchedule)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    log: Callable[[str], None] = print
    draw: Callable[[], float] = random.random
    deployment: Deployment | None = None
    """The deployment's record of declarations and drivers; None converges as if no other resource existed."""
    before_disconnect: Callable[[str, Observation], str] | None = None
    """Called at the moment of a Disconnect that takes a store towards DISCONNECTED (not a FAILED store's repair,
    which ends connected): returns what the disconnect breaks, for the line that announces it, or raises a
    ``KeyStoreError`` to refuse it, and then nothing is sent. None: no such check."""

    def converge(self, store_id: str, goal: Goal) -> KeyStore | None:
        """Drive one store to its goal and return it as last described (None: missing, if the goal allows)."""
        return self.run({store_id: goal}).result()[store_id]

    def converge_many(self, goals: Mapping[str, Goal]) -> dict[str, KeyStore | None]:
        """Drive every store to its goal at once; return each as last described (None: missing, if allowed).

        Stores go on converging when another fails; the failures are raised together at the end, a single one
        as itself and several as a ``KeyStoreSetError``.
        """
        return self.run(goals).result()

    def run(self, goals: Mapping[str, Goal]) -> Outcome:
        """Drive every store to its goal at once and report how each ended, without raising for a store."""
        operation = object()  # this converge, as the deployment's record of drivers knows it
        start = self.clock()
        stores = [_Store(store_id, goal, start, start, seen=goal.known) for store_id, goal in goals.items()]
        last_progress_line = start
        fatal: KeyStoreError | None = None
        try:
            while True:
                for store in stores:
                    if not store.finished:
                        self._consult(store, operation)
                pending = [store for store in stores if not store.finished]
                if not pending:
                    break
                try:
                    described = self._describe([store.store_id for store in pending])
                except KeyStoreError as error:
                    fatal = error
                    break
                for store in pending:
                    self._step(store, described[store.store_id], operation)
                waiting = [store for store in stores if not store.finished]
                if not waiting:
                    break
                now = self.clock()
                if now - last_progress_line >= PROGRESS_EVERY_SECONDS:
                    for store in waiting:
                        self.log(self._progress_line(store, now))
                    last_progress_line = now
                # The most recent request sets the pace: polls are dense just after it, sparse in a long wait. A
                # read in doubt is looked at again as soon as the schedule allows, to settle the doubt quickly.
                doubting = any(store.progress.doubts for store in waiting)
                waited = 0.0 if doubting else now - max(store.action_at for store in waiting)
                delay = self.schedule.delay(waited, self.draw())
                # Never sleep past a deadline; one last look at it decides between success and timeout.
                self.sleep(max(0.0, min(delay, min(store.deadline for store in waiting) - now)))
        finally:
            for store in stores:
                self._release(store, operation)
        return Outcome(
            stores={store.store_id: store.described for store in stores},
            errors=[store.error for store in stores if store.error is not None],
            fatal=fatal,
            converged=[store.store_id for store in stores if store.finished and store.error is None],
            connected=[
                store.store_id
                for store in stores
                if store.connect_sent and store.described and store.described.connection_state in _LIVE
            ],
            missing=[store.store_id for store in stores if store.missing],
            yielded=[store.store_id for store in stores if store.yielded],
        )

    def observe(self, store_ids: list[str]) -> dict[str, KeyStore | None]:
        """Read stores the stack's state records (``pulumi refresh``): one that is not found is looked for again,
        up to ``CONSISTENCY_RETRIES`` more times, before that is believed, since a spurious NotFound is likelier
        than a deletion."""
        found = self._describe(store_ids)
        for _ in range(CONSISTENCY_RETRIES):
            missing = [store_id for store_id, store in found.items() if store is None]
            if not missing:
                break
            self.sleep(self.schedule.delay(0.0, self.draw()))
            found.update(self._describe(missing))
        return found

    def _describe(self, store_ids: list[str]) -> dict[str, KeyStore | None]:
        # One DescribeCustomKeyStores for many stores where the gateway can (``KmsGateway.describe_many``).
        many = getattr(self.gateway, "describe_many", None)
        if len(store_ids) > 1 and many is not None:
            result: dict[str, KeyStore | None] = many(store_ids)
            return result
        return {store_id: self.gateway.describe(store_id) for store_id in store_ids}

    def _finish(self, store: _Store, operation: object, error: KeyStoreError | None = None) -> None:
        store.finished = True
        store.error = error
        self._release(store, operation)

    def _release(self, store: _Store, operation: object) -> None:
        if self.deployment is not None:
            self.deployment.release(self.gateway.region, store.store_id, operation)

    def _consult(self, store: _Store, operation: object) -> None:
        """Finish the store if what other resources declare says so: a release yields to a resource that wants
        the store CONNECTED; opposite declarations stop the operation."""
        if self.deployment is None:
            return
        goal = store.goal
        # A release counts every declaration: the resource it comes from declares nothing (a deleted resource
        # withdrew, a set no longer lists the store), and a replacement that shares its name is another resource.
        others = self.deployment.declarations(
            self.gateway.region, store.store_id, excluding=None if goal.release else goal.resource
        )
        verdict = standing(goal.desired, goal.release, [declaration.desired for declaration in others])
        if verdict is Standing.YIELD:
            keepers = [d.describe() for d in others if d.desired is DesiredState.CONNECTED]
            self.log(f"{self._who(store)}: declared {' and '.join(keepers)} in this stack: leaving it connected")
            store.yielded = True
            self._finish(store, operation)
        elif verdict is Standing.CONFLICT:
            own = Declaration(goal.resource or "this resource", goal.desired)
            opposed = [d for d in others if d.desired is not goal.desired]
            declarations = [d.describe() for d in (own, *opposed)]
            self._finish(store, operation, DeclarationConflictError(store.store_id, self.gateway.region, declarations))

    def _step(self, store: _Store, described: KeyStore | None, operation: object) -> None:
        """Decide and take one store's next step after a read; mark it finished when it is done or failed."""
        now = self.clock()
        retry = store.consistency_retries < CONSISTENCY_RETRIES and now < store.deadline
        if described is None and store.seen and retry:
            # We saw it a moment ago, or the state records it: a spurious NotFound is likelier than a deletion.
            store.consistency_retries += 1
            return
        grace = min(store.started + store.goal.not_found_grace, store.deadline)
        if described is None and not store.seen and not store.goal.missing_ok and now < grace:
            if not store.not_found_logged:
                self.log(
                    f"{self._who(store)}: not found yet; a new store can take a few seconds to show, looking again"
                )
                store.not_found_logged = True
            return
        store.seen = store.seen or described is not None
        store.described = described
        observation = described.observation if described else Observation(None)
        desired = store.goal.desired
        store.progress, step = advance(observation, desired, store.progress, now)
        if step.action is Action.DONE:
            self._finish(store, operation)
        elif step.action is Action.FAIL:
            if step.failure is Failure.NOT_FOUND and store.goal.missing_ok:
                store.missing = True
                self._finish(store, operation)
            else:
                self._finish(store, operation, self._failure(step.failure, store, observation))
        elif step.action is Action.WAIT:
            if now >= store.deadline:
                self._finish(store, operation, self._timeout(store, observation, now))
        else:
            self._request(store, step.action, observation, operation)

    def _request(self, store: _Store, action: Action, observation: Observation, operation: object) -> None:
        """Send Connect or Disconnect for one store, if the deployment's record still allows it at this moment."""
        if self.deployment is not None:
            # The record may have changed since the read (the engine shows the provider resources as the program
            # registers them): consult it at the moment of the request, not only before the read.
            self._consult(store, operation)
            if store.finished:
                return
            if not self.deployment.drive(self.gateway.region, store.store_id, operation):
                if not store.held_logged:
                    self.log(
                        f"{self._who(store)}: another resource of this stack is sending requests for it; "
                        "waiting for that to finish"
                    )
                    store.held_logged = True
                now = self.clock()
                if now >= store.deadline:
                    self._finish(store, operation, self._timeout(store, observation, now))
                return
        breaks = ""
        if action is Action.DISCONNECT and store.goal.desired is DesiredState.DISCONNECTED and self.before_disconnect:
            try:
                breaks = f"; {self.before_disconnect(store.store_id, observation)}"
            except KeyStoreError as refused:
                self._finish(store, operation, refused)
                return
        self.log(
            f"{self._who(store)}: {observation.describe()}, desired {store.goal.desired.value}: {action.value}ing"
            + breaks
        )
        try:
            if action is Action.CONNECT:
                self.gateway.connect(store.store_id)
            else:
                self.gateway.disconnect(store.store_id)
        except KeyStoreNotFoundError:
            store.described = None
            if store.goal.missing_ok:
                store.missing = True
                self._finish(store, operation)
            else:
                self._finish(store, operation, self._not_found(store))
            return
        except KmsApiError as error:
            # A stale read can send a request the store's real state refuses; read again and re-decide.
            invalid_state = error.code == "CustomKeyStoreInvalidStateException"
            if invalid_state and store.consistency_retries < CONSISTENCY_RETRIES:
                store.consistency_retries += 1
                return
            self._finish(store, operation, error)
            return
        except KeyStoreError as error:
            self._finish(store, operation, error)
            return
        store.progress = store.progress.sent(action)
        store.action_at = self.clock()
        store.last_action = action
        store.connect_sent = store.connect_sent or action is Action.CONNECT

    def _who(self, store: _Store) -> str:
        """A store as lines name it: ``cks-… (222233334444/us-east-1)`` once the gateway knows the account."""
        place = getattr(self.gateway, "account_place", None)
        return f"{store.store_id} ({place})" if place else store.store_id

    def _progress_line(self, store: _Store, now: float) -> str:
        observation = store.described.observation if store.described else Observation(None)
        return (
            f"{self._who(store)}: still {observation.describe()} after {_duration(now - store.started)} "
            f"(waiting for {store.goal.desired.value}, timeout {_duration(store.goal.timeout)})"
        )

    def _timeout(self, store: _Store, observation: Observation, now: float) -> ConvergeTimeoutError:
        desired = store.goal.desired
        # The next `up` remembers nothing of this one: say what it will do, from what we saw last.
        on_its_way = plan(observation, desired) == [f"wait for {desired.value}"]
        return ConvergeTimeoutError(
            store.store_id,
            self.gateway.region,
            desired.value,
            observation.describe(),
            now - store.started,
            store.goal.timeout_input,
            None if on_its_way else next_up(observation, desired),
        )

    def _not_found(self, store: _Store) -> KeyStoreNotFoundError:
        return KeyStoreNotFoundError(store.store_id, self.gateway.region, store.goal.not_found_fix)

    def _failure(self, failure: Failure | None, store: _Store, observation: Observation) -> KeyStoreError:
        region = self.gateway.region
        desired = store.goal.desired
        if failure is Failure.CONNECT_FAILED:
            return ConnectFailedError(store.store_id, region, observation.error_code)
        if failure in (Failure.DISCONNECTED_BY_OTHERS, Failure.CONNECTED_BY_OTHERS):
            return ChangedByOthersError(
                store.store_id, region, desired.value, observation.describe(), next_up(observation, desired)
            )
        if failure is Failure.REQUEST_NOT_SEEN:
            return RequestNotSeenError(
                store.store_id,
                region,
                _OPERATIONS.get(store.last_action or Action.CONNECT, "the request"),
                observation.describe(),
                store.progress.doubted_for,
                next_up(observation, desired),
            )
        return self._not_found(store)


def _duration(time: float) -> str:
    seconds = round(time)
    if seconds < 60:
        return f"{seconds}s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
