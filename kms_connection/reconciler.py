"""The observe -> decide -> act loop that converges stores, in the style of Terraform's StateChangeConf and of
a Kubernetes controller: every pass re-reads KMS, so running it again after any interruption is safe.

One loop serves one store (``CustomKeyStoreConnection``) or many at once (``CustomKeyStoreConnectionSet``): each
pass reads every unsettled store with one DescribeCustomKeyStores call, then takes each store's next step. I/O
comes in through the gateway and the injected clock, sleep and log functions; tests pass fakes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .errors import (
    ChangedByOthersError,
    ConnectFailedError,
    ConvergeTimeoutError,
    KeyStoreError,
    KeyStoreNotFoundError,
    KeyStoreSetError,
    KmsApiError,
)
from .gateway import KeyStore
from .plan import Action, Failure, Observation, Progress, decide
from .schedule import PollSchedule
from .states import DesiredState

# A progress line at most this often while waiting, so a 20-minute CloudHSM connect shows it is alive.
PROGRESS_EVERY_SECONDS = 30.0
# Right after a change KMS may briefly answer NotFound or refuse a call with InvalidState (eventual
# consistency); a store gets this many more looks before we believe either.
CONSISTENCY_RETRIES = 3
_CHANGED_BY_OTHERS = (Failure.DISCONNECTED_BY_OTHERS, Failure.CONNECTED_BY_OTHERS)
# A store created a moment ago (by aws.kms.CustomKeyStore in the same `pulumi up`) can be invisible to Describe
# until KMS's replicas catch up: a create looks this long (within the timeout) for a store it has not seen yet
# before it believes a NotFound.
NOT_FOUND_GRACE_SECONDS = 10.0


class Gateway(Protocol):
    """What the reconciler needs from ``gateway.KmsGateway``."""

    region: str

    def describe(self, store_id: str) -> KeyStore | None: ...
    def connect(self, store_id: str) -> None: ...
    def disconnect(self, store_id: str) -> None: ...


@dataclass(frozen=True)
class Goal:
    """Where one store should end, and how long it may take."""

    desired: DesiredState
    timeout: float
    timeout_input: str = "the timeout"
    missing_ok: bool = False
    """Whether a store that does not exist (or disappears) counts as done: what a delete wants."""
    not_found_grace: float = 0.0
    """How long a store not seen yet may be missing before that is believed: ``NOT_FOUND_GRACE_SECONDS`` for a
    store that may have just been created, 0 for one that existed before."""


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
    finished: bool = False
    error: KeyStoreError | None = None

    @property
    def deadline(self) -> float:
        return self.started + self.goal.timeout


@dataclass
class Reconciler:
    """Converges stores to their desired states within their timeouts."""

    gateway: Gateway
    schedule: PollSchedule = field(default_factory=PollSchedule)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    log: Callable[[str], None] = print
    draw: Callable[[], float] = random.random

    def converge(self, store_id: str, goal: Goal) -> KeyStore | None:
        """Drive one store to its goal and return it as last described (None: missing, if the goal allows)."""
        return self.converge_many({store_id: goal})[store_id]

    def converge_many(self, goals: Mapping[str, Goal]) -> dict[str, KeyStore | None]:
        """Drive every store to its goal at once; return each as last described (None: missing, if allowed).

        Stores go on converging when another fails; the failures are raised together at the end, a single one
        as itself and several as a ``KeyStoreSetError``.
        """
        start = self.clock()
        stores = [_Store(store_id, goal, start, start) for store_id, goal in goals.items()]
        last_progress_line = start
        while True:
            pending = [store for store in stores if not store.finished]
            if not pending:
                break
            described = self._describe([store.store_id for store in pending])
            for store in pending:
                self._step(store, described[store.store_id])
            waiting = [store for store in stores if not store.finished]
            if not waiting:
                break
            now = self.clock()
            if now - last_progress_line >= PROGRESS_EVERY_SECONDS:
                for store in waiting:
                    self.log(self._progress_line(store, now))
                last_progress_line = now
            # The most recent request sets the pace: polls are dense just after it, sparse in a long wait.
            waited = now - max(store.action_at for store in waiting)
            delay = self.schedule.delay(waited, self.draw())
            # Never sleep past a deadline; one last look at it decides between success and timeout.
            self.sleep(max(0.0, min(delay, min(store.deadline for store in waiting) - now)))
        errors = [store.error for store in stores if store.error is not None]
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise KeyStoreSetError(errors, [store.store_id for store in stores if store.error is None])
        return {store.store_id: store.described for store in stores}

    def _describe(self, store_ids: list[str]) -> dict[str, KeyStore | None]:
        # One DescribeCustomKeyStores for many stores where the gateway can (``KmsGateway.describe_many``).
        many = getattr(self.gateway, "describe_many", None)
        if len(store_ids) > 1 and many is not None:
            result: dict[str, KeyStore | None] = many(store_ids)
            return result
        return {store_id: self.gateway.describe(store_id) for store_id in store_ids}

    def _step(self, store: _Store, described: KeyStore | None) -> None:
        """Decide and take one store's next step after a read; mark it finished when it is done or failed."""
        region = self.gateway.region
        now = self.clock()
        retry = store.consistency_retries < CONSISTENCY_RETRIES and now < store.deadline
        if described is None and store.seen and retry:
            # We saw it a moment ago: a spurious NotFound is likelier than a deletion. Look again.
            store.consistency_retries += 1
            return
        grace = min(store.started + store.goal.not_found_grace, store.deadline)
        if described is None and not store.seen and not store.goal.missing_ok and now < grace:
            if not store.not_found_logged:
                self.log(f"{store.store_id}: not found yet; a new store can take a few seconds to show, looking again")
                store.not_found_logged = True
            return
        store.seen = store.seen or described is not None
        store.described = described
        observation = described.observation if described else Observation(None)
        store.progress = store.progress.observed(observation.state)
        desired = store.goal.desired
        step = decide(observation, desired, store.progress)
        if step.failure in _CHANGED_BY_OTHERS and retry:
            # A read that contradicts what we already saw may be a stale replica; believe it when it persists.
            store.consistency_retries += 1
            return
        if step.action is Action.DONE:
            store.finished = True
        elif step.action is Action.FAIL:
            store.finished = True
            if not (step.failure is Failure.NOT_FOUND and store.goal.missing_ok):
                store.error = self._failure(step.failure, store.store_id, desired, observation)
        elif step.action is Action.WAIT:
            if now >= store.deadline:
                store.finished = True
                store.error = ConvergeTimeoutError(
                    store.store_id,
                    region,
                    desired.value,
                    observation.describe(),
                    now - store.started,
                    store.goal.timeout_input,
                )
        else:
            self._request(store, step.action, observation)

    def _request(self, store: _Store, action: Action, observation: Observation) -> None:
        """Send Connect or Disconnect for one store."""
        self.log(f"{store.store_id}: {observation.describe()}, desired {store.goal.desired.value}: {action.value}ing")
        try:
            if action is Action.CONNECT:
                self.gateway.connect(store.store_id)
            else:
                self.gateway.disconnect(store.store_id)
        except KeyStoreNotFoundError as error:
            store.finished = True
            store.described = None
            store.error = None if store.goal.missing_ok else error
            return
        except KmsApiError as error:
            # A stale read can send a request the store's real state refuses; read again and re-decide.
            invalid_state = error.code == "CustomKeyStoreInvalidStateException"
            if invalid_state and store.consistency_retries < CONSISTENCY_RETRIES:
                store.consistency_retries += 1
                return
            store.finished = True
            store.error = error
            return
        except KeyStoreError as error:
            store.finished = True
            store.error = error
            return
        store.progress = store.progress.sent(action)
        store.action_at = self.clock()

    def _progress_line(self, store: _Store, now: float) -> str:
        observation = store.described.observation if store.described else Observation(None)
        return (
            f"{store.store_id}: still {observation.describe()} after {_duration(now - store.started)} "
            f"(waiting for {store.goal.desired.value}, timeout {_duration(store.goal.timeout)})"
        )

    def _failure(
        self, failure: Failure | None, store_id: str, desired: DesiredState, observation: Observation
    ) -> KeyStoreError:
        region = self.gateway.region
        if failure is Failure.CONNECT_FAILED:
            return ConnectFailedError(store_id, region, observation.error_code)
        if failure in (Failure.DISCONNECTED_BY_OTHERS, Failure.CONNECTED_BY_OTHERS):
            return ChangedByOthersError(store_id, region, desired.value, observation.describe())
        return KeyStoreNotFoundError(store_id, region)


def _duration(time: float) -> str:
    seconds = round(time)
    if seconds < 60:
        return f"{seconds}s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
