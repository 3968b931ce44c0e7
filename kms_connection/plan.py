"""The decision core: observed state + desired state (+ what this operation already did) -> the next step.

Plain Python with no I/O, so every case is a row in a table test. The reconciler (``reconciler.py``) runs the
observe -> decide -> act loop around :func:`advance`; ``diff`` prints :func:`plan`, which replays :func:`decide`
over the transitions it expects, so the preview line and the real run can never disagree. :func:`standing` is
the rule for a store that several resources of one deployment name. :func:`breaks_keys`, :func:`blast_radius` and
:func:`guard_refusal` decide what a disconnect's key census (``KeyCensus``, listed by the gateway) means for the
plan, and :func:`plan_line` words the preview's line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from enum import Enum

from .states import ConnectionState, DesiredState, DisconnectGuard

# States in which a store that was asked to connect is making (or has made) progress towards CONNECTED.
_PROGRESS_AFTER_CONNECT = frozenset({ConnectionState.CONNECTING, ConnectionState.CONNECTED})
# The same for a store that was asked to disconnect.
_PROGRESS_AFTER_DISCONNECT = frozenset({ConnectionState.DISCONNECTING, ConnectionState.DISCONNECTED})

# KMS is eventually consistent: right after a request a read may come from a replica that has not seen it yet.
# A read that contradicts our request (it shows no sign of it, or goes back on what we already saw) is therefore
# looked at again, and believed only once it has been read this many more times AND this many seconds have
# passed since it was first read. Reads come every 0.5 s at first, so the seconds are what usually decides.
CONSISTENCY_LOOKS = 3
CONSISTENCY_SECONDS = 5.0


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
    REQUEST_NOT_SEEN = "request_not_seen"
    """A request never showed, and neither did the same request sent again."""


@dataclass(frozen=True)
class Progress:
    """What one operation has done so far, and what it has seen since; the memory :func:`decide` needs.

    Without it a stale read right after ConnectCustomKeyStore (KMS is eventually consistent) would look like a
    store that still needs connecting, and a FAILED store we just connected would be "repaired" in a loop.
    ``doubts`` counts the reads in a row that contradicted our last request and ``doubted_for`` the seconds since
    the first of them; ``redecided`` says that a request which never showed was already decided anew once.
    """

    connect_sent: bool = False
    disconnect_sent: bool = False
    seen_since_last_action: frozenset[ConnectionState] = field(default_factory=frozenset)
    doubts: int = 0
    doubt_since: float = 0.0
    doubted_for: float = 0.0
    redecided: bool = False

    @property
    def convinced(self) -> bool:
        """Whether a contradicting read has persisted long enough to be believed (see ``CONSISTENCY_*``)."""
        return self.doubts > CONSISTENCY_LOOKS and self.doubted_for >= CONSISTENCY_SECONDS

    def observed(self, state: ConnectionState | None) -> Progress:
        if state is None:
            return self
        return replace(self, seen_since_last_action=self.seen_since_last_action | {state})

    def sent(self, action: Action) -> Progress:
        if action is Action.CONNECT:
            return Progress(connect_sent=True, disconnect_sent=self.disconnect_sent, redecided=self.redecided)
        if action is Action.DISCONNECT:
            return Progress(connect_sent=self.connect_sent, disconnect_sent=True, redecided=self.redecided)
        raise ValueError(f"{action} is not a mutating action")

    def doubting(self, now: float) -> Progress:
        """One more read that contradicts our request, at time ``now``."""
        since = self.doubt_since if self.doubts else now
        return replace(self, doubts=self.doubts + 1, doubt_since=since, doubted_for=now - since)

    def trusting(self) -> Progress:
        """A read that agrees with our request: a run of contradicting reads, if any, is over."""
        if not self.doubts:
            return self
        return replace(self, doubts=0, doubt_since=0.0, doubted_for=0.0)


@dataclass(frozen=True)
class Step:
    """The decision: an action, and for FAIL the reason."""

    action: Action
    failure: Failure | None = None


DONE = Step(Action.DONE)
WAIT = Step(Action.WAIT)
CONNECT = Step(Action.CONNECT)
DISCONNECT = Step(Action.DISCONNECT)


class _Doubt(Enum):
    """How a read contradicts our last request."""

    UNSEEN = "unseen"
    """It shows no sign of the request: stale, or undone before we looked. Believed, we decide anew."""
    REVERSED = "reversed"
    """It goes back on progress we saw: stale, or another client. Believed, it is another client."""


def decide(observation: Observation, desired: DesiredState, progress: Progress = Progress()) -> Step:
    """The next step towards ``desired`` from ``observation``.

    The rules follow what KMS accepts: Connect is refused in FAILED and DISCONNECTING, Disconnect in DISCONNECTING
    and DISCONNECTED. A transitional state is waited out, except CONNECTING when DISCONNECTED is desired: KMS
    accepts a Disconnect there, and waiting up to 20 minutes for a CloudHSM connect only to undo it helps nobody.
    A read that contradicts our last request is waited on until ``progress`` is convinced of it; then a request
    that never showed is decided anew from the observation (once: a second time fails), and progress that was
    reversed is another client's doing (a failure).
    """
    step, doubt = _judge(observation, desired, progress)
    if doubt is None:
        return step
    if not progress.convinced:
        return WAIT
    if doubt is _Doubt.REVERSED:
        return step
    if progress.redecided:
        return Step(Action.FAIL, Failure.REQUEST_NOT_SEEN)
    return _judge(observation, desired, _fresh(observation))[0]


def contradicts(observation: Observation, desired: DesiredState, progress: Progress) -> bool:
    """Whether ``observation`` contradicts the last request recorded in ``progress`` (see :func:`decide`)."""
    return _judge(observation, desired, progress)[1] is not None


def advance(observation: Observation, desired: DesiredState, progress: Progress, now: float) -> tuple[Progress, Step]:
    """Record a read made at ``now`` in ``progress`` and decide: what the reconciler calls after every read.

    When a request that never showed is decided anew, the progress returned starts afresh (marked
    ``redecided``), since what we sent evidently did not count.
    """
    progress = progress.observed(observation.state)
    doubtful = contradicts(observation, desired, progress)
    progress = progress.doubting(now) if doubtful else progress.trusting()
    step = decide(observation, desired, progress)
    if doubtful and progress.convinced and not progress.redecided:
        _, doubt = _judge(observation, desired, progress)
        if doubt is _Doubt.UNSEEN:
            progress = _fresh(observation)
    return progress, step


def _fresh(observation: Observation) -> Progress:
    return Progress(redecided=True).observed(observation.state)


def _judge(observation: Observation, desired: DesiredState, progress: Progress) -> tuple[Step, _Doubt | None]:
    """The step if every read is believed, and whether (and how) this read contradicts our last request."""
    state = observation.state
    if state is None:
        return Step(Action.FAIL, Failure.NOT_FOUND), None
    if desired is DesiredState.CONNECTED:
        return _towards_connected(state, progress)
    return _towards_disconnected(state, progress)


def _towards_connected(state: ConnectionState, progress: Progress) -> tuple[Step, _Doubt | None]:
    seen = progress.seen_since_last_action
    if state is ConnectionState.CONNECTED:
        return DONE, None
    if state is ConnectionState.CONNECTING:
        return WAIT, None
    if state is ConnectionState.FAILED:
        if progress.connect_sent:
            return Step(Action.FAIL, Failure.CONNECT_FAILED), None
        if progress.disconnect_sent:
            # FAILED after our repair Disconnect showed means someone connected it again; before it showed, the
            # read is stale or the Disconnect was undone.
            if seen & _PROGRESS_AFTER_DISCONNECT:
                return Step(Action.FAIL, Failure.CONNECTED_BY_OTHERS), _Doubt.REVERSED
            return WAIT, _Doubt.UNSEEN
        return DISCONNECT, None
    if state is ConnectionState.DISCONNECTING:
        if progress.connect_sent:
            # KMS refuses a Connect while DISCONNECTING, so this was not so when our Connect was accepted.
            if seen & _PROGRESS_AFTER_CONNECT:
                return Step(Action.FAIL, Failure.DISCONNECTED_BY_OTHERS), _Doubt.REVERSED
            return WAIT, _Doubt.UNSEEN
        return WAIT, None
    # DISCONNECTED
    if progress.connect_sent:
        if seen & _PROGRESS_AFTER_CONNECT:
            return Step(Action.FAIL, Failure.DISCONNECTED_BY_OTHERS), _Doubt.REVERSED
        # Our Connect has not shown yet: a stale read, or someone disconnected it before we looked.
        return WAIT, _Doubt.UNSEEN
    return CONNECT, None


def _towards_disconnected(state: ConnectionState, progress: Progress) -> tuple[Step, _Doubt | None]:
    seen = progress.seen_since_last_action
    if state is ConnectionState.DISCONNECTED:
        return DONE, None
    if state is ConnectionState.DISCONNECTING:
        return WAIT, None
    # CONNECTED, CONNECTING or FAILED: all accept a Disconnect.
    if progress.disconnect_sent:
        if seen & _PROGRESS_AFTER_DISCONNECT:
            return Step(Action.FAIL, Failure.CONNECTED_BY_OTHERS), _Doubt.REVERSED
        return WAIT, _Doubt.UNSEEN
    return DISCONNECT, None


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


def next_up(observation: Observation, desired: DesiredState) -> str:
    """What the next ``pulumi up`` does with a store last seen as ``observation``, in words for error messages.

    A new ``up`` remembers no request of this one: it reads the store and starts from :func:`plan`, e.g. "the next
    `pulumi up` reads it again and, if it is still DISCONNECTED, connects it".
    """
    steps = plan(observation, desired)
    if not steps:
        doing = "makes no request"
    elif steps == [f"wait for {desired.value}"]:
        doing = f"keeps waiting for {desired.value} without a new request"
    else:
        doing = ", then ".join(_third_person(step) for step in steps)
    return f"the next `pulumi up` reads it again and, if it is still {observation.describe()}, {doing}"


def _third_person(step: str) -> str:
    if step in (Action.CONNECT.value, Action.DISCONNECT.value):
        return f"{step}s it"
    if step.startswith("fail: "):
        return f"fails ({step.removeprefix('fail: ')})"
    return step.replace("wait for", "waits for", 1)


class Standing(str, Enum):
    """What the other resources of a deployment that name a store make of an operation on it."""

    FREE = "free"
    """Nothing stands in the way: go on converging."""
    YIELD = "yield"
    """A delete, or a store leaving a set, while another resource declares the store CONNECTED: leave it."""
    CONFLICT = "conflict"
    """Another resource declares the opposite desired state: refuse, naming both."""


def standing(desired: DesiredState, release: bool, others: Collection[DesiredState]) -> Standing:
    """Whether an operation on a store may go on, given what other resources of the deployment declare for it.

    ``release`` marks a delete or a store leaving a set: it wants the store DISCONNECTED (``desired``) only if
    nobody else wants it CONNECTED, so it yields to any such declaration, even after its own Disconnect was sent
    (the resource that declares it CONNECTED then connects it). A declaration instead conflicts with any other
    declaration of the opposite state: neither can win without undoing the other at every ``up``.
    """
    if release:
        return Standing.YIELD if DesiredState.CONNECTED in others else Standing.FREE
    opposite = DesiredState.DISCONNECTED if desired is DesiredState.CONNECTED else DesiredState.CONNECTED
    return Standing.CONFLICT if opposite in others else Standing.FREE


# --- what a disconnect breaks -------------------------------------------------------------------------------------

KEYS_NAMED = 5
"""How many keys a line names before it says "and N more": enough to recognise the store, short enough to read."""
ENABLED = "Enabled"
"""The ``KeyState`` of a key that cryptographic operations can use, and a disconnect makes unusable."""


@dataclass(frozen=True)
class StoreKey:
    """One KMS key of a custom key store, as DescribeKey reports it, and its aliases (ListAliases)."""

    key_id: str
    state: str
    aliases: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.state == ENABLED

    def describe(self) -> str:
        """``alias/payments (1234abcd-...)``, or the key id alone when it has no alias."""
        return f"{', '.join(self.aliases)} ({self.key_id})" if self.aliases else self.key_id


@dataclass(frozen=True)
class KeyCensus:
    """The KMS keys of one custom key store, or why they could not be counted.

    KMS has no call that lists a store's keys: the gateway lists the Region's keys (ListKeys), reads each
    (DescribeKey's ``CustomKeyStoreId``) and names the ones a line shows (ListAliases). ``uncounted`` says why the
    keys are not known (a denied ListKeys or DescribeKey, an error that retries did not cure); ``aliases_unread``
    why they are named by id only.
    """

    keys: tuple[StoreKey, ...] = ()
    uncounted: str | None = None
    aliases_unread: str | None = None

    @property
    def counted(self) -> bool:
        return self.uncounted is None

    @property
    def enabled(self) -> list[StoreKey]:
        """The keys a disconnect makes unusable, in the order lines name them: keys with an alias first (people know
        keys by their aliases), then by key id."""
        return sorted((key for key in self.keys if key.enabled), key=lambda key: (not key.aliases, key.key_id))


def breaks_keys(observation: Observation, desired: DesiredState) -> bool:
    """Whether converging a store to ``desired`` disconnects it for good, so that its keys go dark: a plan with a
    disconnect towards DISCONNECTED. A FAILED store's repair (disconnect, then connect) does not count: it ends
    connected, and its keys are unusable while it is FAILED anyway."""
    return desired is DesiredState.DISCONNECTED and Action.DISCONNECT.value in plan(observation, desired)


def blast_radius(census: KeyCensus, *, refused: bool = False) -> str:
    """What a disconnect breaks, in words: ``2 enabled keys become unusable: alias/payments (1234abcd-...),
    5678efgh-...`` (at most ``KEYS_NAMED`` keys, then "and N more"), that none does, or why the keys were not
    counted. ``refused``: the disconnect will not happen, so the keys "would become" unusable."""
    if not census.counted:
        return f"keys not counted: {census.uncounted}"
    enabled = census.enabled
    if enabled:
        noun = "key" if len(enabled) == 1 else "keys"
        verb = "would become" if refused else ("becomes" if len(enabled) == 1 else "become")
        text = f"{len(enabled)} enabled {noun} {verb} unusable: {_named(enabled)}"
        if census.aliases_unread:
            text += f" (aliases not read: {census.aliases_unread})"
        return text
    if not census.keys:
        return "no KMS keys in the store"
    counts = Counter(key.state for key in census.keys)
    states = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
    noun = "key" if len(census.keys) == 1 else "keys"
    return f"no enabled key becomes unusable (the store holds {len(census.keys)} {noun}: {states})"


def guard_refusal(guard: DisconnectGuard, census: KeyCensus) -> str | None:
    """Why ``guard`` refuses a disconnect, given the store's keys; None when the disconnect may go on.

    ``refuse`` refuses a store that holds enabled keys, and fails closed when the keys could not be counted: a
    guard that let a disconnect through because it could not look would guard nothing.
    """
    if guard is not DisconnectGuard.REFUSE:
        return None
    if not census.counted:
        return f"the keys in the store could not be counted ({census.uncounted}), so it fails closed"
    enabled = census.enabled
    if not enabled:
        return None
    noun = "key" if len(enabled) == 1 else "keys"
    return f"the store holds {len(enabled)} enabled KMS {noun} that a disconnect makes unusable: {_named(enabled)}"


def plan_line(
    observation: Observation,
    desired: DesiredState,
    census: KeyCensus | None = None,
    guard: DisconnectGuard = DisconnectGuard.WARN,
) -> str:
    """The preview's words for a store that exists (the line names the store before them): ``observed CONNECTED,
    desired DISCONNECTED: will disconnect; 2 enabled keys become unusable: ...``. ``census`` is given when the plan
    breaks keys (:func:`breaks_keys`) and the guard is not ``off``; a refusing guard turns "will disconnect" into
    "will refuse to disconnect"."""
    steps = plan(observation, desired)
    head = f"observed {observation.describe()}, desired {desired.value}"
    if census is None:
        return f"{head}: {describe_plan(steps)}"
    if guard_refusal(guard, census) is not None:
        radius = blast_radius(census, refused=True)
        return f"{head}: will refuse to disconnect (disconnect_guard is '{guard.value}'); {radius}"
    return f"{head}: {describe_plan(steps)}; {blast_radius(census)}"


def _named(keys: list[StoreKey]) -> str:
    shown = ", ".join(key.describe() for key in keys[:KEYS_NAMED])
    rest = len(keys) - KEYS_NAMED
    return f"{shown}, and {rest} more" if rest > 0 else shown
