"""What every measure shares: an emulator, the SDK's real provider server pointed at it, and call counting.

The emulator runs in this process on a ``perf_counter`` clock, so the times in its call log (when a Connect
was accepted, hence when the store reached its target) compare directly with this process's timings. The
provider runs where the engine runs it, in ``python -u -m pulumi.dynamic``, driven by ``seam.engine``.
"""

from __future__ import annotations

import itertools
import os
import statistics
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from bench.pulumi_cli import AMBIENT_AWS_VARIABLES
from kms_connection.emulator import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, Call, Emulator
from kms_connection.provider import CustomKeyStoreConnectionProvider, CustomKeyStoreConnectionSetProvider
from seam.engine import ProviderServer, Registration, Stack, dynamic_inputs

PER_STORE_TYPE = "pulumi-python:dynamic/kms:CustomKeyStoreConnection"
SET_TYPE = "pulumi-python:dynamic/kms:CustomKeyStoreConnectionSet"
REGION = "us-east-1"
DESCRIBE = "DescribeCustomKeyStores"
CONNECT = "ConnectCustomKeyStore"
DISCONNECT = "DisconnectCustomKeyStore"
MUTATING = frozenset({CONNECT, DISCONNECT, "CreateCustomKeyStore", "UpdateCustomKeyStore", "DeleteCustomKeyStore"})
THROTTLED = "ThrottlingException"
# Long enough for 40 stores in turns of four behind a throttled endpoint; a hung provider still ends the run.
RPC_TIMEOUT = 600.0


class PerfClock:
    """The emulator's clock: ``time.perf_counter``, the clock every timing of the benchmark uses."""

    def now(self) -> float:
        return time.perf_counter()


def isolate_environment() -> None:
    """Dummy credentials and no profile or endpoint from the developer's machine, for this process and the
    provider servers it starts (they inherit it). Only the benchmark's own process is changed."""
    for name in AMBIENT_AWS_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID=DUMMY_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=DUMMY_SECRET_ACCESS_KEY,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )


def stack_config(endpoint_url: str) -> dict[str, Any]:
    """The stack config a user of the emulator sets (see ``Pulumi.local.yaml``)."""
    return {"aws:region": REGION, "aws:endpoints": [{"kms": endpoint_url}]}


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


# --------------------------------------------------------------------------------------------------
# Counting calls
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """KMS calls by kind, as the emulator logged them."""

    describe: int = 0
    connect: int = 0
    disconnect: int = 0
    other_mutating: int = 0
    throttled: int = 0
    """Calls answered with ThrottlingException (counted in their kind too)."""

    @property
    def mutating(self) -> int:
        return self.connect + self.disconnect + self.other_mutating

    @property
    def total(self) -> int:
        return self.describe + self.mutating

    def as_json(self) -> dict[str, int]:
        return {
            "describe": self.describe,
            "connect": self.connect,
            "disconnect": self.disconnect,
            "mutating": self.mutating,
            "total": self.total,
            "throttled": self.throttled,
        }


def count(calls: Iterable[Call], store_ids: Iterable[str] | None = None) -> Counts:
    """Count ``calls``; with ``store_ids``, only calls naming one of them (a Describe of every store names none
    and is always counted)."""
    wanted = None if store_ids is None else set(store_ids)
    describe = connect = disconnect = other = throttled = 0
    for call in calls:
        if wanted is not None and call.store_id is not None and call.store_id not in wanted:
            continue
        if call.outcome == THROTTLED:
            throttled += 1
        if call.operation == DESCRIBE:
            describe += 1
        elif call.operation == CONNECT:
            connect += 1
        elif call.operation == DISCONNECT:
            disconnect += 1
        elif call.operation in MUTATING:
            other += 1
    return Counts(describe, connect, disconnect, other, throttled)


# --------------------------------------------------------------------------------------------------
# An emulator and a provider server
# --------------------------------------------------------------------------------------------------


class Bench:
    """One emulator and one configured provider server; a ``Stack`` over it for engine steps.

    ``warm()`` adopts a connected store once, so the provider process has unpickled the provider and made its
    boto3 client before anything is timed (the engine pays that once per process, not per resource).
    """

    def __init__(
        self,
        *,
        connect_seconds: float,
        disconnect_seconds: float,
        throttle_rps: float | None = None,
    ) -> None:
        # No store limit: stores are made directly for set-up (no quota either way), and 40 stores exceed the
        # default of 10 per Region.
        self.emu = Emulator(
            connect_seconds=connect_seconds,
            disconnect_seconds=disconnect_seconds,
            clock=PerfClock(),
            store_limit=None,
            throttle_rps=throttle_rps,
            call_log_limit=1_000_000,
        )
        self.server = ProviderServer(rpc_timeout=RPC_TIMEOUT)
        self.stack = Stack(self.server)
        self._names = itertools.count()
        self._lock = threading.Lock()
        try:
            self.server.start()
            self.server.configure(stack_config(self.emu.endpoint_url))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Bench:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.server.close()
        self.emu.stop()

    # ---- set-up ---------------------------------------------------------------------------------

    def name(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}-{next(self._names)}"

    def store(self, state: str = "DISCONNECTED", error_code: str | None = None) -> str:
        """A new store in ``state`` (made directly: not logged, no quota)."""
        return self.emu.create_store(self.name("store"), region=REGION, connection_state=state, error_code=error_code)

    def stores(self, n: int, state: str = "DISCONNECTED") -> list[str]:
        return [self.store(state) for _ in range(n)]

    def connection(self, store_id: str, name: str | None = None, **props: Any) -> Registration:
        """The registration of a ``CustomKeyStoreConnection`` (what the program would send the engine)."""
        inputs = {"custom_key_store_id": store_id, "connect_timeout_seconds": 600, **props}
        provider = CustomKeyStoreConnectionProvider()
        return Registration(PER_STORE_TYPE, name or self.name("conn"), dynamic_inputs(provider, inputs))

    def connection_set(self, store_ids: Sequence[str], name: str | None = None, **props: Any) -> Registration:
        """The registration of a ``CustomKeyStoreConnectionSet``."""
        inputs = {"custom_key_store_ids": list(store_ids), "connect_timeout_seconds": 600, **props}
        provider = CustomKeyStoreConnectionSetProvider()
        return Registration(SET_TYPE, name or self.name("set"), dynamic_inputs(provider, inputs))

    def warm(self) -> None:
        """Adopt one connected store with each resource type, outside any measurement."""
        self.stack.up(self.connection(self.store("CONNECTED"), name="warm"))
        self.stack.up(self.connection_set([self.store("CONNECTED")], name="warm-set"))

    # ---- observation ----------------------------------------------------------------------------

    def mark(self) -> int:
        """A position in the call log; ``calls_since(mark)`` is what happened after it."""
        return len(self.emu.calls)

    def calls_since(self, mark: int) -> list[Call]:
        return self.emu.calls[mark:]

    def wait_for_state(self, store_id: str, state: str, timeout: float = 30.0) -> None:
        """Wait (outside any measurement) until the emulator says ``store_id`` is in ``state``."""
        deadline = time.perf_counter() + timeout
        while self.emu.state_of(store_id, REGION) != state:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{store_id} did not reach {state} in {timeout}s")
            time.sleep(0.01)


def connect_time(calls: Iterable[Call], store_id: str) -> float:
    """When the emulator accepted the last Connect of ``store_id`` (its clock is ``perf_counter``)."""
    times = [c.time for c in calls if c.operation == CONNECT and c.store_id == store_id and c.outcome == "ok"]
    if not times:
        raise LookupError(f"no accepted ConnectCustomKeyStore for {store_id}")
    return times[-1]
