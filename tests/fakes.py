"""Test doubles for the reconciler: a scripted KMS gateway and a clock whose sleep only moves fake time.

The gateway answers DescribeCustomKeyStores from a script (the last answer repeats for ever); ConnectCustomKeyStore
and DisconnectCustomKeyStore replace the script with what KMS would report next, so a test reads as the story a
store goes through. Every call is recorded with the fake time it was made at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kms_connection.gateway import KeyStore
from kms_connection.states import ConnectionState

STORE_ID = "cks-1234567890abcdef0"
REGION = "eu-west-1"

# One answer of DescribeCustomKeyStores: a state, a FAILED state with its error code, or None for NotFound.
Answer = ConnectionState | tuple[ConnectionState, str] | None

CONNECTED = ConnectionState.CONNECTED
CONNECTING = ConnectionState.CONNECTING
FAILED = ConnectionState.FAILED
DISCONNECTED = ConnectionState.DISCONNECTED
DISCONNECTING = ConnectionState.DISCONNECTING

MUTATING = frozenset({"connect", "disconnect"})


@dataclass
class FakeClock:
    """``clock()`` reads fake time; ``sleep(s)`` records the delay and moves fake time on by it."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"asked to sleep a negative {seconds} s"
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakeLog:
    """Collects log lines with the fake time each was written at."""

    clock: FakeClock
    lines: list[tuple[float, str]] = field(default_factory=list)

    def __call__(self, line: str) -> None:
        self.lines.append((self.clock.now, line))

    def containing(self, text: str) -> list[tuple[float, str]]:
        return [(at, line) for at, line in self.lines if text in line]


@dataclass
class ScriptedGateway:
    """A KMS gateway for one store that answers from a script and records the calls made to it."""

    clock: FakeClock
    script: list[Answer]
    on_connect: list[Answer] = field(default_factory=lambda: [CONNECTING, CONNECTED])
    on_disconnect: list[Answer] = field(default_factory=lambda: [DISCONNECTING, DISCONNECTED])
    connect_errors: list[Exception] = field(default_factory=list)
    disconnect_errors: list[Exception] = field(default_factory=list)
    region: str = REGION
    calls: list[tuple[float, str]] = field(default_factory=list)
    on_each_connect: list[list[Answer]] = field(default_factory=list)
    """Scripts for the first Connects, one each, before ``on_connect`` serves every later one."""
    on_each_disconnect: list[list[Answer]] = field(default_factory=list)
    """The same for Disconnects."""
    on_describe: list[Callable[[], None]] = field(default_factory=list)
    """Called at each read, in order, before it answers (one per read): what happens in the world meanwhile."""

    def __post_init__(self) -> None:
        assert self.script, "a script needs at least one answer"

    def describe(self, store_id: str) -> KeyStore | None:
        self.calls.append((self.clock.now, "describe"))
        if self.on_describe:
            self.on_describe.pop(0)()
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return key_store(answer, store_id)

    def connect(self, store_id: str) -> None:
        self.calls.append((self.clock.now, "connect"))
        if self.connect_errors:
            raise self.connect_errors.pop(0)
        self.script = self.on_each_connect.pop(0) if self.on_each_connect else list(self.on_connect)

    def disconnect(self, store_id: str) -> None:
        self.calls.append((self.clock.now, "disconnect"))
        if self.disconnect_errors:
            raise self.disconnect_errors.pop(0)
        self.script = self.on_each_disconnect.pop(0) if self.on_each_disconnect else list(self.on_disconnect)

    @property
    def names(self) -> list[str]:
        return [name for _, name in self.calls]

    @property
    def mutations(self) -> list[str]:
        return [name for name in self.names if name in MUTATING]

    def times_of(self, name: str) -> list[float]:
        """When each call of ``name`` was made, in fake time."""
        return [at for at, called in self.calls if called == name]


def key_store(answer: Answer, store_id: str = STORE_ID) -> KeyStore | None:
    if answer is None:
        return None
    if isinstance(answer, tuple):
        state, code = answer
        return KeyStore(store_id, state, code)
    return KeyStore(store_id, answer)
