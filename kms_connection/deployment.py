"""What one deployment's provider process knows about the program: which resource declares which store in which
desired state, and which operation is sending requests for a store right now.

The engine runs one dynamic provider process per deployment (``pulumi preview``, ``up``, ``destroy``) and shows it
every resource the program registers (Check, then Diff, then Create or Update) before it deletes anything the
program dropped. A record kept in that process is therefore the deployment's knowledge of the program, and it
is complete by the time the engine deletes: that is what lets a delete, or a store leaving a set, leave a store
connected that another resource declares CONNECTED, and what lets ``check`` refuse two resources that want one
store in opposite states. The rules themselves are pure (``plan.standing``); this module only keeps the record,
thread-safe, since the provider server runs four worker threads. No I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from .states import DesiredState

StoreKey = tuple[str, str]
"""(Region, store id): a store id names a store only within its Region."""


@dataclass(frozen=True)
class Declaration:
    """One resource's wish for one store."""

    resource: str
    """The resource, as users read it: ``CustomKeyStoreConnection 'hsm'``."""
    desired: DesiredState
    resource_id: str | None = None
    """The resource's id once the engine has shown it (Diff, Update) or Create has made it."""

    def describe(self) -> str:
        """``CONNECTED by CustomKeyStoreConnection 'hsm'``, for messages."""
        return f"{self.desired.value} by {self.resource}"


class Deployment:
    """The declarations the engine has shown this provider process, and the operation driving each store.

    A resource's latest declaration replaces its earlier one, so a resource the engine shows several times
    (Check, Diff, Create; a replacement is checked twice) counts once, and a test process that runs several
    deployments one after another sees each resource's latest wish.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._declared: dict[str, tuple[str, frozenset[str], DesiredState, str | None]] = {}
        self._drivers: dict[StoreKey, object] = {}

    def declare(
        self,
        resource: str,
        region: str,
        store_ids: Iterable[str],
        desired: DesiredState,
        resource_id: str | None = None,
    ) -> dict[str, list[Declaration]]:
        """Record that ``resource`` wants ``store_ids`` in ``desired``; return, per store, the declarations of
        other resources that want the opposite (none: no conflict). The declaration is kept either way, so that
        the other side's running operations learn of the conflict too. Without ``resource_id`` (Check knows none)
        the id recorded before, if any, is kept."""
        stores = frozenset(store_ids)
        with self._lock:
            if resource_id is None and resource in self._declared:
                resource_id = self._declared[resource][3]
            self._declared[resource] = (region, stores, desired, resource_id)
            conflicts: dict[str, list[Declaration]] = {}
            for store_id in sorted(stores):
                opposed = [d for d in self._of(region, store_id, resource) if d.desired is not desired]
                if opposed:
                    conflicts[store_id] = opposed
            return conflicts

    def declarations(self, region: str, store_id: str, *, excluding: str | None = None) -> list[Declaration]:
        """Every resource's declaration of the store but ``excluding``'s, in resource order."""
        with self._lock:
            return self._of(region, store_id, excluding)

    def _of(self, region: str, store_id: str, excluding: str | None) -> list[Declaration]:
        return [
            Declaration(resource, desired, resource_id)
            for resource, (declared_region, stores, desired, resource_id) in sorted(self._declared.items())
            if resource != excluding and declared_region == region and store_id in stores
        ]

    def withdraw(self, resource_id: str) -> None:
        """Forget the declaration recorded under ``resource_id``: that resource is being deleted. (A replacement
        that shares its name has its own id by then, and keeps its declaration.)"""
        with self._lock:
            for resource, (*_, declared_id) in list(self._declared.items()):
                if declared_id == resource_id:
                    del self._declared[resource]

    def drive(self, region: str, store_id: str, operation: object) -> bool:
        """Let ``operation`` send requests for the store unless another operation is doing so; True if it may.

        Two resources that both want a store CONNECTED must not both repair it: one's Disconnect, sent on a read
        taken before the other's Connect, would undo that Connect. So one operation at a time sends requests for
        a store, until it is done with the store (:meth:`release`); the others watch and decide afresh after.
        """
        with self._lock:
            driver = self._drivers.setdefault((region, store_id), operation)
            return driver is operation

    def release(self, region: str, store_id: str, operation: object) -> None:
        """``operation`` is done with the store: another may send requests for it now."""
        with self._lock:
            if self._drivers.get((region, store_id)) is operation:
                del self._drivers[(region, store_id)]

    def clear(self) -> None:
        """Forget everything: what a new provider process starts with."""
        with self._lock:
            self._declared.clear()
            self._drivers.clear()
