"""Measure 1: KMS calls per operation, through the real provider server, against the minimum.

Each row is one engine operation (what ``pulumi preview``/``up``/``destroy`` sends the provider for it), and the
calls are counted from the emulator's log. Minimums: a preview must read each store once and change nothing; a
change needs its mutating calls (repair of a FAILED store: a Disconnect, then a Connect) plus a read to decide and
a read to see it done (one more in a repair, to see DISCONNECTED before connecting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seam.engine import Registration

from .harness import REGION, Bench, Counts, count

FAILED_CODE = "INTERNAL_ERROR"


@dataclass(frozen=True)
class Row:
    operation: str
    resource: str
    stores: int
    counts: Counts
    min_describe: int
    min_mutating: int
    changes: int | None = None
    """For a preview: how many resources the preview said would change (drift must still show)."""
    note: str = ""

    @property
    def at_minimum(self) -> bool:
        """Mutating calls exactly the minimum, and reads no more than the minimum where the minimum is exact
        (previews and adoption: no waiting involved)."""
        if self.counts.mutating != self.min_mutating:
            return False
        exact_reads = self.operation.startswith(("preview", "adopt"))
        return self.counts.describe <= self.min_describe if exact_reads else True

    def as_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "resource": self.resource,
            "stores": self.stores,
            **self.counts.as_json(),
            "min_describe": self.min_describe,
            "min_mutating": self.min_mutating,
            "at_minimum": self.at_minimum,
            "changes": self.changes,
            "note": self.note,
        }


def run(*, stores: int, connect_seconds: float, disconnect_seconds: float) -> dict[str, Any]:
    """Every operation once; ``stores`` is N for the previews and adoptions."""
    rows: list[Row] = []
    with Bench(connect_seconds=connect_seconds, disconnect_seconds=disconnect_seconds) as bench:
        bench.warm()
        rows += _previews(bench, stores)
        rows += _lifecycle(bench)
    return {
        "connect_seconds": connect_seconds,
        "disconnect_seconds": disconnect_seconds,
        "rows": [row.as_json() for row in rows],
    }


def _drift(bench: Bench, store_ids: list[str]) -> None:
    """Disconnect stores behind the stack's back (outside any measurement), so a preview has drift to show."""
    client = bench.emu.client(REGION)
    for store_id in store_ids:
        client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    for store_id in store_ids:
        bench.wait_for_state(store_id, "DISCONNECTED")


def _previews(bench: Bench, n: int) -> list[Row]:
    rows: list[Row] = []
    drifted = max(1, n // 2)

    # N per-store resources.
    ids = bench.stores(n, "CONNECTED")
    registrations = [bench.connection(store_id) for store_id in ids]
    mark = bench.mark()
    results = [bench.stack.preview(r) for r in registrations]
    rows.append(
        Row("preview (new stack)", "per-store", n, count(bench.calls_since(mark)), n, 0, _changes(results),
            "Check reads each store once to say what up will do; Create is not sent during a preview")
    )
    mark = bench.mark()
    for registration in registrations:
        bench.stack.up(registration)
    rows.append(
        Row("adopt (already CONNECTED)", "per-store", n, count(bench.calls_since(mark)), 2 * n, 0,
            note="Check's read (the plan line) and Create's")
    )
    _drift(bench, ids[:drifted])
    mark = bench.mark()
    results = [bench.stack.preview(r) for r in registrations]
    rows.append(
        Row("preview", "per-store", n, count(bench.calls_since(mark)), n, 0, _changes(results),
            f"{drifted} of {n} stores drifted to DISCONNECTED")
    )

    # One set of N stores.
    ids = bench.stores(n, "CONNECTED")
    registration = bench.connection_set(ids)
    mark = bench.mark()
    result = bench.stack.preview(registration)
    rows.append(
        Row("preview (new stack)", "set", n, count(bench.calls_since(mark)), 1, 0, _changes([result]),
            "Check reads every store with one Describe; Create is not sent during a preview")
    )
    mark = bench.mark()
    bench.stack.up(registration)
    rows.append(
        Row("adopt (already CONNECTED)", "set", n, count(bench.calls_since(mark)), 2, 0,
            note="Check's Describe and Create's, each listing every store of the Region")
    )
    _drift(bench, ids[:drifted])
    mark = bench.mark()
    result = bench.stack.preview(registration)
    rows.append(
        Row("preview", "set", n, count(bench.calls_since(mark)), 1, 0, _changes([result]),
            f"{drifted} of {n} stores drifted; one Describe lists every store of the Region")
    )
    return rows


def _changes(results: list[Any]) -> int:
    return sum(1 for r in results if r.op != "same")


def _lifecycle(bench: Bench) -> list[Row]:
    """One store through connect, repair, disconnect and destroy; one more adopted."""
    rows: list[Row] = []
    store_id = bench.store("DISCONNECTED")
    name = bench.name("life")

    def up(registration: Registration) -> Counts:
        mark = bench.mark()
        bench.stack.up(registration)
        return count(bench.calls_since(mark), [store_id])

    rows.append(
        Row("connect (up, new resource)", "per-store", 1, up(bench.connection(store_id, name)), 3, 1,
            note="reads include Check's")
    )

    _fail(bench, store_id)
    rows.append(
        Row("repair FAILED (up)", "per-store", 1, up(bench.connection(store_id, name)), 3, 2,
            note=f"FAILED ({FAILED_CODE}) behind the stack's back; reads include the diff's")
    )
    disconnected = bench.connection(store_id, name, desired_state="DISCONNECTED")
    rows.append(
        Row("disconnect (up, desired_state)", "per-store", 1, up(disconnected), 2, 1, note="reads include the diff's")
    )
    connected = bench.connection(store_id, name)
    bench.stack.up(connected)
    mark = bench.mark()
    bench.stack.destroy(connected.urn)
    rows.append(Row("destroy (CONNECTED store)", "per-store", 1, count(bench.calls_since(mark), [store_id]), 2, 1))

    adopted = bench.store("CONNECTED")
    mark = bench.mark()
    bench.stack.up(bench.connection(adopted))
    rows.append(
        Row("adopt (already CONNECTED)", "per-store", 1, count(bench.calls_since(mark), [adopted]), 2, 0,
            note="Check's read and Create's")
    )
    return rows


def _fail(bench: Bench, store_id: str) -> None:
    """Make a CONNECTED store FAILED through the API, as a broken backing store would (not measured)."""
    client = bench.emu.client(REGION)
    bench.emu.set_connect_outcome(store_id, "fail", FAILED_CODE, region=REGION)
    client.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    bench.wait_for_state(store_id, "DISCONNECTED")
    client.connect_custom_key_store(CustomKeyStoreId=store_id)
    bench.wait_for_state(store_id, "FAILED")
    bench.emu.set_connect_outcome(store_id, "succeed", region=REGION)
