"""``python -m bench.plugin``: the provider plugin (provider/) against the dynamic provider, side by side.

1. Cold start: from launching the provider process to the first Check answered, with what the engine sends in
   between (Handshake, GetPluginInfo, Configure), for ``python -u provider <engine>`` (the plugin, as the Python
   language host runs it) and ``python -u -m pulumi.dynamic`` (the dynamic provider, Check with the pickled
   ``__provider``), alternating ABBA, one client for both.
2. Ten per-store ``CustomKeyStoreConnection`` resources whose stores take T seconds to connect, through the real
   Pulumi CLI: the project's own stack program (dynamic resources, from ``kms-connection:keyStores``) against a
   YAML program of the plugin's native resources, run after run, each on fresh DISCONNECTED stores of one
   emulator. The figure is the span on the emulator's clock from the first Connect to the last call (the Describe
   that saw the last store CONNECTED), over T; the CLI's wall time is shown too. The dynamic provider server runs 4
   operations at a time, so ten connects take about 3 T; the plugin's server is asynchronous. ``--parallel`` is
   the same for both (the engine's default is 4 x CPUs: 8 on two cores, which would itself put the plugin's
   ninth store in a second turn).

Figures go to stdout and to ``--out`` (JSON, not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf import empty_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from kms_connection.emulator import Emulator
from kms_connection.provider import CustomKeyStoreConnectionProvider
from seam.engine import dynamic_inputs, make_urn, to_struct, unwrap_secrets

from .harness import isolate_environment
from .overhead import _children_cpu  # the same CPU measure as section 4
from .pulumi_cli import ROOT, cli_env, copy_project, pulumi_bin_dir, run_pulumi, write_stack_config
from .report import table

DEFAULT_OUT = Path(__file__).resolve().parent / "results-plugin.json"
PLUGIN_TYPE = "kms-connection:index:CustomKeyStoreConnection"
DYNAMIC_TYPE = "pulumi-python:dynamic/kms:CustomKeyStoreConnection"
CONNECT = "ConnectCustomKeyStore"
# Check makes no KMS call: the endpoint only has to parse. The engine address is dialled only to log.
_ENDPOINT = "http://127.0.0.1:9"
_ENGINE = "127.0.0.1:9"
_STORE = "cks-0123456789abcdef0"
_STARTUP_TIMEOUT = 30.0


# --- 1. cold start -------------------------------------------------------------------------------------------------


def _command(kind: str) -> list[str]:
    if kind == "plugin":
        return [sys.executable, "-u", str(ROOT / "provider"), _ENGINE]
    return [sys.executable, "-u", "-m", "pulumi.dynamic"]


def _configure(kind: str) -> provider_pb2.ConfigureRequest:
    args: dict[str, Any]
    if kind == "plugin":
        args = {"region": "us-east-1", "endpoints": [{"kms": _ENDPOINT}]}
        variables = {"kms-connection:config:region": "us-east-1"}
    else:
        # Stack config as the engine hands it to the dynamic provider: strings, structured values as JSON.
        endpoints = json.dumps([{"kms": _ENDPOINT}])
        args = {"aws:region": "us-east-1", "aws:endpoints": endpoints}
        variables = {"pulumi-python:config:aws:region": "us-east-1", "pulumi-python:config:aws:endpoints": endpoints}
    return provider_pb2.ConfigureRequest(
        variables=variables, args=to_struct(args), acceptSecrets=True, acceptResources=True
    )


def _check(kind: str, accept_secrets: bool) -> provider_pb2.CheckRequest:
    news: dict[str, Any]
    if kind == "plugin":
        urn, news = make_urn(PLUGIN_TYPE, "cold"), {"customKeyStoreId": _STORE}
    else:
        urn = make_urn(DYNAMIC_TYPE, "cold")
        news = dynamic_inputs(CustomKeyStoreConnectionProvider(), {"custom_key_store_id": _STORE})
    if not accept_secrets:
        news = unwrap_secrets(news)  # as the engine does for a provider that said so in Configure
    # The Check of a resource the state already records (olds = news), as in every preview of a steady stack: a new
    # resource's Check reads its store for the plan line, which would time KMS (here a closed port) too.
    return provider_pb2.CheckRequest(urn=urn, olds=to_struct(news), news=to_struct(news))


def first_check(kind: str) -> dict[str, float]:
    """Launch a provider, speak to it as the engine does up to the first Check; timings in seconds."""
    cpu_before = _children_cpu()
    started = time.perf_counter()
    process = subprocess.Popen(
        _command(kind), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PULUMI_PROJECT": "kms-connection"},
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().strip() or "0")
        if not port:
            raise RuntimeError(f"{kind}: no port; stderr:\n{process.communicate(timeout=5)[1].decode()}")
        listening = time.perf_counter()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            try:
                stub.Handshake(provider_pb2.ProviderHandshakeRequest(), timeout=_STARTUP_TIMEOUT)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNIMPLEMENTED:  # both fall back to Configure, as the engine does
                    raise
            stub.GetPluginInfo(empty_pb2.Empty(), timeout=_STARTUP_TIMEOUT)
            configured = stub.Configure(_configure(kind), timeout=_STARTUP_TIMEOUT)
            check = stub.Check(_check(kind, configured.acceptSecrets), timeout=_STARTUP_TIMEOUT)
            answered = time.perf_counter()
    finally:
        process.terminate()
        process.communicate(timeout=10)
    if check.failures:
        raise RuntimeError(f"{kind}: the first Check failed: {list(check.failures)}")
    return {
        "total": answered - started,
        "to_port": listening - started,
        "port_to_check": answered - listening,
        "cpu": _children_cpu() - cpu_before,
    }


def cold_start(runs: int) -> dict[str, Any]:
    samples: dict[str, list[dict[str, float]]] = {"plugin": [], "dynamic": []}
    for index in range(runs):
        for kind in ("plugin", "dynamic") if index % 2 == 0 else ("dynamic", "plugin"):
            samples[kind].append(first_check(kind))
    summary = {
        kind: {part: statistics.median(s[part] for s in runs_) for part in ("total", "to_port", "port_to_check", "cpu")}
        for kind, runs_ in samples.items()
    }
    pairs = [a["total"] / b["total"] for a, b in zip(samples["plugin"], samples["dynamic"], strict=True)]
    return {
        "runs": runs,
        "summary": summary,
        "ratio": summary["plugin"]["total"] / summary["dynamic"]["total"],
        "paired_ratio": statistics.median(pairs),
        "cpu_ratio": summary["plugin"]["cpu"] / summary["dynamic"]["cpu"],
        "samples": samples,
    }


# --- 2. ten per-store resources through the CLI --------------------------------------------------------------------


def _yaml_project(project_dir: Path, store_ids: Sequence[str]) -> None:
    project_dir.mkdir(parents=True)
    program = {
        "name": "kms-connection-bench",
        "runtime": "yaml",
        "plugins": {"providers": [{"name": "kms-connection", "path": str(ROOT / "provider")}]},
        "resources": {
            f"store-{index}": {
                "type": "kms-connection:CustomKeyStoreConnection",
                "properties": {"customKeyStoreId": store_id},
            }
            for index, store_id in enumerate(store_ids)
        },
    }
    (project_dir / "Pulumi.yaml").write_text(yaml.safe_dump(program, sort_keys=False))


def _one_up(
    kind: str, bin_dir: Path, workspace: Path, emulator: Emulator, store_ids: Sequence[str], parallel: int
) -> dict[str, float]:
    project_dir = workspace / "project"
    env = cli_env(bin_dir, workspace)
    if kind == "plugin":
        _yaml_project(project_dir, store_ids)
        config = {"kms-connection:region": "us-east-1", "kms-connection:endpoints": [{"kms": emulator.endpoint_url}]}
        (project_dir / "Pulumi.bench.yaml").write_text(yaml.safe_dump({"config": config}))
    else:
        copy_project(project_dir)
        write_stack_config(project_dir, "bench", emulator.endpoint_url,
                           keyStores=[{"id": store_id, "name": store_id} for store_id in store_ids])
    _ok(run_pulumi(bin_dir, project_dir, env, "stack", "init", "bench"))
    before = len(emulator.calls)
    started = time.perf_counter()
    _ok(run_pulumi(bin_dir, project_dir, env, "up", "--yes", "--stack", "bench", "--parallel", str(parallel)))
    wall = time.perf_counter() - started
    calls = [call for call in emulator.calls[before:] if call.store_id in store_ids or call.store_id is None]
    connects = [call for call in calls if call.operation == CONNECT]
    if sorted(str(call.store_id) for call in connects) != sorted(store_ids):
        raise RuntimeError(f"{kind}: expected one Connect per store, got {[c.store_id for c in connects]}")
    if any(emulator.state_of(store_id) != "CONNECTED" for store_id in store_ids):
        raise RuntimeError(f"{kind}: not every store is CONNECTED")
    span = calls[-1].time - connects[0].time
    return {"wall": wall, "span": span, "connect_spread": connects[-1].time - connects[0].time}


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"pulumi failed:\n{result.stdout}")


def per_store_through_the_cli(stores: int, t: float, repeat: int, parallel: int) -> dict[str, Any]:
    bin_dir = pulumi_bin_dir()
    runs: dict[str, list[dict[str, float]]] = {"dynamic": [], "plugin": []}
    with (
        tempfile.TemporaryDirectory(prefix="kms-bench-plugin-") as scratch,
        Emulator(connect_seconds=t, disconnect_seconds=0.5, store_limit=None) as emulator,
    ):
        for index in range(repeat):
            for kind in ("dynamic", "plugin") if index % 2 == 0 else ("plugin", "dynamic"):
                # Hex, as store ids are: d... for the dynamic provider's stores, f... for the plugin's.
                prefix = f"{'d' if kind == 'dynamic' else 'f'}{index}"
                store_ids = [f"cks-{prefix}{n:0{17 - len(prefix)}d}" for n in range(stores)]
                for store_id in store_ids:
                    emulator.create_store(store_id=store_id, name=store_id)
                runs[kind].append(_one_up(kind, bin_dir, Path(scratch) / f"{kind}-{index}", emulator, store_ids,
                                          parallel))
    summary = {
        kind: {part: statistics.median(r[part] for r in kind_runs) for part in ("wall", "span", "connect_spread")}
        for kind, kind_runs in runs.items()
    }
    return {"stores": stores, "t": t, "repeat": repeat, "parallel": parallel, "summary": summary, "runs": runs}


# --- the report ----------------------------------------------------------------------------------------------------


def render(results: Mapping[str, Any]) -> str:
    lines = [f"kms-connection plugin benchmark: {results['meta']['cpus']} CPUs, Python {results['meta']['python']}, "
             f"took {results['meta']['seconds']:.0f} s", ""]
    cold = results.get("cold_start")
    if cold:
        lines.append(
            f"1. Cold start, launch to the first Check answered (medians of {cold['runs']}, interleaved): plugin / "
            f"dynamic = {cold['ratio']:.2f}x (paired {cold['paired_ratio']:.2f}x, CPU {cold['cpu_ratio']:.2f}x)"
        )
        lines.append(table(
            ["provider", "cold start s", "to port s", "port to Check s", "CPU s"],
            [[kind, f"{s['total']:.2f}", f"{s['to_port']:.2f}", f"{s['port_to_check']:.2f}", f"{s['cpu']:.2f}"]
             for kind, s in cold["summary"].items()],
        ))
        lines.append("")
    scale = results.get("per_store")
    if scale:
        t = scale["t"]
        lines.append(
            f"2. {scale['stores']} per-store resources, T = {t:g} s, through the real CLI (`pulumi up --parallel "
            f"{scale['parallel']}`), medians of {scale['repeat']}; span = first Connect to last call, emulator clock"
        )
        lines.append(table(
            ["provider", "span s", "span / T", "Connects spread over s", "CLI wall s", "goal"],
            [[kind, f"{s['span']:.2f}", f"{s['span'] / t:.2f}", f"{s['connect_spread']:.2f}", f"{s['wall']:.2f}",
              "<= 1.5 T" if kind == "plugin" else "(turns of 4: ~3 T)"]
             for kind, s in scale["summary"].items()],
        ))
        met = scale["summary"]["plugin"]["span"] <= 1.5 * t
        lines.append(f"    plugin at most 1.5 T: {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plugin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="cold starts per provider (default 9)")
    parser.add_argument("--repeat", type=int, default=3, help="CLI runs per provider (default 3)")
    parser.add_argument("--stores", type=int, default=10)
    parser.add_argument("--t", type=float, default=5.0, help="seconds a store takes to connect (default 5)")
    parser.add_argument("--parallel", type=int, default=32, help="`pulumi up --parallel` for both (default 32)")
    parser.add_argument("--only", choices=("cold", "cli"), help="one of the two measures")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    options = parser.parse_args(argv)
    isolate_environment()
    started = time.perf_counter()
    results: dict[str, Any] = {}
    if options.only in (None, "cold"):
        results["cold_start"] = cold_start(options.runs)
    if options.only in (None, "cli"):
        results["per_store"] = per_store_through_the_cli(options.stores, options.t, options.repeat, options.parallel)
    results["meta"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "seconds": time.perf_counter() - started,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    options.out.write_text(json.dumps(results, indent=2))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
