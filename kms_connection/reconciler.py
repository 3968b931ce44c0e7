"""The observe -> decide -> act loop that converges one store, in the style of Terraform's StateChangeConf and
of a Kubernetes controller: every pass re-reads KMS, so running it again after any interruption is safe.

I/O comes in through the gateway and the injected clock, sleep and log functions; tests pass fakes.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .errors import (
    ChangedByOthersError,
    ConnectFailedError,
    ConvergeTimeoutError,
    KeyStoreNotFoundError,
    KmsApiError,
)
from .gateway import KeyStore
from .plan import Action, Failure, Observation, Progress, decide
from .schedule import PollSchedule
from .states import DesiredState

# A progress line at most this often while waiting, so a 20-minute CloudHSM connect shows it is alive.
PROGRESS_EVERY_SECONDS = 30.0
# Right after a change KMS may briefly answer NotFound or refuse a call with InvalidState (eventual
# consistency); a store we have already seen in this operation gets this many more looks before we believe it.
CONSISTENCY_RETRIES = 3


class Gateway(Protocol):
    """What the reconciler needs from ``gateway.KmsGateway``."""

    region: str

    def describe(self, store_id: str) -> KeyStore | None: ...
    def connect(self, store_id: str) -> None: ...
    def disconnect(self, store_id: str) -> None: ...


@dataclass
class Reconciler:
    """Converges one store to a desired state within a timeout."""

    gateway: Gateway
    schedule: PollSchedule = field(default_factory=PollSchedule)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    log: Callable[[str], None] = print
    draw: Callable[[], float] = random.random

    def converge(
        self,
        store_id: str,
        desired: DesiredState,
        timeout: float,
        *,
        timeout_input: str = "the timeout",
        missing_ok: bool = False,
    ) -> KeyStore | None:
        """Drive the store to ``desired`` and return it as last described.

        With ``missing_ok`` a store that does not exist (or disappears while we wait) is success and returns None:
        that is what deleting a connection to a deleted store wants.
        """
        region = self.gateway.region
        start = self.clock()
        action_at = start
        last_progress_line = start
        progress = Progress()
        store: KeyStore | None = None
        consistency_retries = 0
        while True:
            described = self.gateway.describe(store_id)
            if described is None and store is not None and consistency_retries < CONSISTENCY_RETRIES:
                # We saw it a moment ago: a spurious NotFound is likelier than a deletion. Look again.
                consistency_retries += 1
                self._pause(self.clock() - action_at)
                continue
            observation = described.observation if described else Observation(None)
            store = described
            progress = progress.observed(observation.state)
            step = decide(observation, desired, progress)
            now = self.clock()
            if step.action is Action.DONE:
                return store
            if step.action is Action.FAIL:
                if step.failure is Failure.NOT_FOUND and missing_ok:
                    return None
                raise self._failure(step.failure, store_id, desired, observation)
            if step.action in (Action.CONNECT, Action.DISCONNECT):
                self.log(f"{store_id}: {observation.describe()}, desired {desired.value}: {step.action.value}ing")
                try:
                    if step.action is Action.CONNECT:
                        self.gateway.connect(store_id)
                    else:
                        self.gateway.disconnect(store_id)
                except KeyStoreNotFoundError:
                    if missing_ok:
                        return None
                    raise
                except KmsApiError as error:
                    # A stale read can send a request the store's real state refuses; read again and re-decide.
                    invalid_state = error.code == "CustomKeyStoreInvalidStateException"
                    if not invalid_state or consistency_retries >= CONSISTENCY_RETRIES:
                        raise
                    consistency_retries += 1
                    self._pause(0.0)
                    continue
                progress = progress.sent(step.action)
                action_at = self.clock()
            else:
                waited = now - start
                if waited >= timeout:
                    raise ConvergeTimeoutError(
                        store_id, region, desired.value, observation.describe(), waited, timeout_input
                    )
                if now - last_progress_line >= PROGRESS_EVERY_SECONDS:
                    self.log(
                        f"{store_id}: still {observation.describe()} after {_duration(waited)} "
                        f"(waiting for {desired.value}, timeout {_duration(timeout)})"
                    )
                    last_progress_line = now
            self._pause(self.clock() - action_at, limit=start + timeout - self.clock())

    def _pause(self, waited: float, limit: float | None = None) -> None:
        delay = self.schedule.delay(waited, self.draw())
        if limit is not None:
            # Never sleep past the deadline; one last look at it decides between success and timeout.
            delay = max(0.0, min(delay, limit))
        self.sleep(delay)

    def _failure(
        self, failure: Failure | None, store_id: str, desired: DesiredState, observation: Observation
    ) -> Exception:
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

