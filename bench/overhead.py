"""Measure 4: the provider's cost to the engine, against a dynamic provider that does nothing.

Cold start: from starting ``python -u -m pulumi.dynamic`` to the first ``Check`` answered, with what the engine
sends in between (Handshake, GetPluginInfo, Configure); the first Check unpickles ``__provider``, which imports
the provider's module. The Check is of a resource already in the state (olds given), as in every ``up`` of an
existing stack: it makes no KMS call. (Check of a new resource reads its store once, a call the ``calls``
section counts; timing it here would measure the endpoint, not the start-up.) The provider is configured with a
live emulator, which must see no call: a call would put a network round trip, or botocore's retries against a
dead endpoint, into a figure about start-up. Runs of the two providers alternate (ABBA order), so machine noise
falls on both. The figures: the ratio of the medians, the median of the ratios of runs side by side (robust to
noise lasting a few seconds), and the ratio of CPU seconds (robust to other load on the machine).
Size: the serialized ``__provider`` property (the base64 text stored in every resource's state).
"""

from __future__ import annotations

import base64
import resource
import time
from collections.abc import Callable
from typing import Any

from kms_connection.emulator import Emulator
from kms_connection.provider import CustomKeyStoreConnectionProvider, CustomKeyStoreConnectionSetProvider
from seam.engine import PROVIDER_KEY, ProviderServer, dynamic_inputs, make_urn, unwrap_secrets

from .harness import PER_STORE_TYPE, PerfClock, median, stack_config
from .noop_provider import NOOP_TYPE, NoopProvider

_STORE = "cks-0123456789abcdef0"


def _first_check(kind: str, emu: Emulator) -> dict[str, float]:
    """Start a provider server, configure it and answer one Check of an existing resource; timings in seconds."""
    if kind == "ours":
        urn = make_urn(PER_STORE_TYPE, "cold")
        inputs = dynamic_inputs(CustomKeyStoreConnectionProvider(), {"custom_key_store_id": _STORE})
    else:
        urn = make_urn(NOOP_TYPE, "cold")
        inputs = dynamic_inputs(NoopProvider(), {"value": "x"})
    server = ProviderServer()
    calls_before = len(emu.calls)
    cpu_before = _children_cpu()
    started = time.perf_counter()
    try:
        server.start()
        listening = time.perf_counter()
        server.configure(stack_config(emu.endpoint_url))
        check = server.check(urn, inputs, inputs)
        answered = time.perf_counter()
    finally:
        server.close()
    if check.failures:
        raise RuntimeError(f"{kind}: the first Check failed: {check.failures}")
    made = [call.operation for call in emu.calls[calls_before:]]
    if made:
        raise RuntimeError(f"{kind}: the first Check of an existing resource made KMS calls {made}: not a start-up")
    return {
        "total": answered - started,
        "to_port": listening - started,
        "port_to_check": answered - listening,
        # The process's whole life, start to SIGTERM; it idles after the Check, so this is the start-up's CPU.
        "cpu": _children_cpu() - cpu_before,
    }


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's children that have ended and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(*, runs: int) -> dict[str, Any]:
    samples: dict[str, list[dict[str, float]]] = {"ours": [], "noop": []}
    with Emulator(clock=PerfClock()) as emu:
        for i in range(runs):
            order = ("ours", "noop") if i % 2 == 0 else ("noop", "ours")
            for kind in order:
                samples[kind].append(_first_check(kind, emu))
    summary = {
        kind: {part: median(s[part] for s in runs_) for part in ("total", "to_port", "port_to_check", "cpu")}
        for kind, runs_ in samples.items()
    }
    pairs = [a["total"] / b["total"] for a, b in zip(samples["ours"], samples["noop"], strict=True)]
    return {
        "runs": runs,
        "cold_start": summary,
        "ratio": summary["ours"]["total"] / summary["noop"]["total"],
        # Each run of ours against the no-op run next to it: robust to noise that lasts a few seconds.
        "paired_ratio": median(pairs),
        "paired_ratios": pairs,
        # CPU seconds hardly depend on what else the machine runs.
        "cpu_ratio": summary["ours"]["cpu"] / summary["noop"]["cpu"],
        "samples": samples,
        "provider_bytes": {
            "CustomKeyStoreConnection": _size(CustomKeyStoreConnectionProvider),
            "CustomKeyStoreConnectionSet": _size(CustomKeyStoreConnectionSetProvider),
            "noop": _size(NoopProvider),
        },
        "pickle_bytes": {
            "CustomKeyStoreConnection": _size(CustomKeyStoreConnectionProvider, decoded=True),
            "CustomKeyStoreConnectionSet": _size(CustomKeyStoreConnectionSetProvider, decoded=True),
            "noop": _size(NoopProvider, decoded=True),
        },
    }


def _size(provider: Callable[[], object], decoded: bool = False) -> int:
    """Bytes of the ``__provider`` value a resource registers (base64 text), or of the pickle inside it."""
    value = unwrap_secrets(dynamic_inputs(provider(), {})[PROVIDER_KEY])
    text = str(value)
    return len(base64.b64decode(text)) if decoded else len(text.encode())
