"""Deployments as the engine runs them, for the scenarios where one store meets several resources, operations fail
part-way or reads contradict a request.

* :class:`Deployments`: one provider server process per deployment (``python -u -m pulumi.dynamic``, as the
  engine starts one for each ``preview``, ``up``, ``refresh`` or ``destroy``), the checkpoint carried from one
  deployment to the next.
* :class:`Door`: the emulator's door, where chosen requests wait until the test opens it, or get a spurious
  NotFound: how a test forces one interleaving of parallel steps, or a stale read, without sleeping.
* Stack configs for ``__main__.py`` and for ``tests/programs/free_stack.py`` (which, unlike ``__main__.py``, lets
  several resources name one store), and call-log helpers for the invariant that matters most: no Disconnect of a
  store while a resource of the deployment declares it CONNECTED.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kms_connection.emulator import Call, Emulator
from kms_connection.emulator.errors import KmsError
from seam.engine import PROJECT_ROOT, PlannedStep, ProviderError, ProviderServer, Stack, StepResult
from tests.lifecycle_fixtures import DESCRIBE, DISCONNECT, REGION, provider_env

FREE_PROGRAM = PROJECT_ROOT / "tests" / "programs" / "free_stack.py"
SET_TYPE = "pulumi-python:dynamic/kms:CustomKeyStoreConnectionSet"

# --------------------------------------------------------------------------------------------------
# Stack configs
# --------------------------------------------------------------------------------------------------


def connection(name: str, store_id: str, **settings: Any) -> dict[str, Any]:
    """A ``CustomKeyStoreConnection`` entry of ``free_stack.py`` (settings as in ``__main__.py``'s entries)."""
    return {"kind": "connection", "name": name, "id": store_id, **settings}


def connection_set(name: str, store_ids: list[str], **settings: Any) -> dict[str, Any]:
    """A ``CustomKeyStoreConnectionSet`` entry of ``free_stack.py``."""
    return {"kind": "set", "name": name, "ids": store_ids, **settings}


def free_config(*resources: Mapping[str, Any]) -> dict[str, Any]:
    """The config of ``free_stack.py``: the resources in program order."""
    return {"aws:region": REGION, "kms-connection:resources": [dict(resource) for resource in resources]}


def main_config(
    key_stores: list[dict[str, Any]] | None = None, key_store_sets: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The config of ``__main__.py``: ``kms-connection:keyStores`` and ``kms-connection:keyStoreSets``."""
    config: dict[str, Any] = {"aws:region": REGION}
    if key_stores:
        config["kms-connection:keyStores"] = key_stores
    if key_store_sets:
        config["kms-connection:keyStoreSets"] = key_store_sets
    return config


# --------------------------------------------------------------------------------------------------
# One provider process per deployment
# --------------------------------------------------------------------------------------------------


class Deployments:
    """Start a provider server for each deployment of one stack, each configured with the deployment's config,
    and hand each the checkpoint the previous deployment left. Every server is stopped by :meth:`close`."""

    def __init__(self, emulator: Emulator, config_dir: Path) -> None:
        self.emulator = emulator
        self.config_dir = config_dir
        self.servers: list[ProviderServer] = []
        self.last: Stack | None = None

    def start(self, config: Mapping[str, Any]) -> Stack:
        """A new deployment: a new provider process, and the checkpoint as the last deployment left it."""
        server = ProviderServer(env=provider_env(self.emulator.endpoint_url, self.config_dir))
        self.servers.append(server)
        server.start()
        server.configure(config)
        stack = Stack(server, dict(self.last.resources) if self.last else {})
        self.last = stack
        return stack

    def close(self) -> None:
        for server in self.servers:
            server.close()


# --------------------------------------------------------------------------------------------------
# The emulator's door
# --------------------------------------------------------------------------------------------------


@dataclass
class Held:
    """Requests that wait at the door: the first ``skip`` matching ones go through, the next ``count`` wait."""

    operation: str
    store_id: str | None
    skip: int = 0
    count: int = 1
    arrived: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)
    not_found: bool = False
    """Answer NotFound instead of holding (a spurious NotFound from a lagging replica)."""

    def wait_arrived(self, timeout: float = 20.0) -> None:
        """Block until a matching request waits at the door (``AssertionError`` after ``timeout``)."""
        if not self.arrived.wait(timeout):
            raise AssertionError(f"no {self.operation} of {self.store_id} reached the door within {timeout}s")

    def open(self) -> None:
        """Let the waiting request in (and any later one this rule would hold)."""
        self.opened.set()


class Door:
    """Stands in front of an in-process emulator's request handling (``Emulator.service.handle``) and holds, or
    answers NotFound to, the requests a test names. Other requests pass untouched."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self._handle = emulator.service.handle
        self._rules: list[Held] = []
        self._lock = threading.Lock()
        emulator.service.handle = self._at_the_door  # type: ignore[method-assign]

    def hold(self, operation: str, store_id: str | None, *, skip: int = 0, count: int = 1) -> Held:
        """Let ``skip`` requests of ``operation`` for ``store_id`` (None: a request naming no store, such as a
        set's DescribeCustomKeyStores) through, then hold the next ``count`` until :meth:`Held.open`."""
        rule = Held(operation, store_id, skip, count)
        with self._lock:
            self._rules.append(rule)
        return rule

    def not_found_once(self, store_id: str, *, skip: int = 0) -> Held:
        """Answer the DescribeCustomKeyStores of ``store_id`` after the first ``skip`` with NotFound, once."""
        rule = Held(DESCRIBE, store_id, skip, 1, not_found=True)
        with self._lock:
            self._rules.append(rule)
        return rule

    def close(self) -> None:
        """Open every rule and take the door away."""
        with self._lock:
            rules, self._rules = self._rules, []
        for rule in rules:
            rule.open()
        self.emulator.service.handle = self._handle  # type: ignore[method-assign]

    def _match(self, operation: str, store_id: str | None) -> Held | None:
        with self._lock:
            for rule in self._rules:
                if rule.operation != operation or rule.store_id != store_id or rule.count <= 0:
                    continue
                if rule.skip:
                    rule.skip -= 1
                    return None
                rule.count -= 1
                return rule
        return None

    def _at_the_door(
        self, operation: str, params: dict[str, Any], region: str, *rest: Any, **options: Any
    ) -> dict[str, Any]:
        store_id = params.get("CustomKeyStoreId") if isinstance(params.get("CustomKeyStoreId"), str) else None
        rule = self._match(operation, store_id)
        if rule is not None and rule.not_found:
            rule.arrived.set()
            self.emulator.service.record_call(operation, store_id, region, "CustomKeyStoreNotFoundException")
            raise KmsError("CustomKeyStoreNotFoundException", f"Custom key store {store_id} not found.")
        if rule is not None:
            rule.arrived.set()
            # Bounded, so that a test that forgets to open the door fails instead of hanging the suite.
            rule.opened.wait(60)
        result: dict[str, Any] = self._handle(operation, params, region, *rest, **options)
        return result


# --------------------------------------------------------------------------------------------------
# Steps on threads
# --------------------------------------------------------------------------------------------------


@dataclass
class Running:
    """A step running on its own thread, as the engine's step executor runs it."""

    thread: threading.Thread
    outcome: dict[str, Any]

    def result(self, timeout: float = 60.0) -> StepResult:
        """Wait for the step; return its result or raise what it raised."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.thread.name} still running after {timeout}s"
        if "error" in self.outcome:
            raise self.outcome["error"]
        result: StepResult = self.outcome["result"]
        return result

    def error(self, timeout: float = 60.0) -> ProviderError:
        """Wait for the step and return the ProviderError it failed with."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"{self.thread.name} still running after {timeout}s"
        error = self.outcome.get("error")
        assert isinstance(error, ProviderError), self.outcome
        return error


def run_in_background(stack: Stack, planned: PlannedStep) -> Running:
    """Execute a planned step on a thread of its own."""
    return background(lambda: stack.run_step(planned), f"step-{planned.registration.name}")


def background(work: Callable[[], Any], name: str) -> Running:
    """Run ``work`` on a thread of its own."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = work()
        except Exception as error:  # handed to the test by Running
            outcome["error"] = error

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return Running(thread, outcome)


# --------------------------------------------------------------------------------------------------
# The call log
# --------------------------------------------------------------------------------------------------


def disconnects(emulator: Emulator, store_id: str) -> list[Call]:
    """Every DisconnectCustomKeyStore of ``store_id`` KMS accepted."""
    return [c for c in emulator.calls if c.operation == DISCONNECT and c.store_id == store_id and c.outcome == "ok"]


def mark(emulator: Emulator) -> int:
    """A place in the call log: what was called before now. Call-log order, unlike a fake clock, tells apart two
    requests made at the same instant."""
    return len(emulator.calls)


def assert_no_disconnect_after(emulator: Emulator, store_id: str, declared: int) -> None:
    """The invariant: no Disconnect of ``store_id`` reached KMS after the call-log place ``declared``, when a
    resource of the deployment had declared the store CONNECTED to the provider."""
    late = [
        call
        for call in emulator.calls[declared:]
        if call.operation == DISCONNECT and call.store_id == store_id and call.outcome == "ok"
    ]
    assert late == [], f"{store_id} was disconnected while a resource declared it CONNECTED: {late}"


def states(emulator: Emulator, *store_ids: str) -> dict[str, str]:
    """The true state of each store now."""
    return {store_id: emulator.state_of(store_id) for store_id in store_ids}
