"""Run the `local` stack without the Pulumi CLI: this driver plays the engine's part.

``scripts/up`` runs this when ``pulumi`` is not on PATH, against the emulator it started. The program's
registrations come from the real ``__main__.py`` under ``pulumi.runtime.set_mocks`` with the config of
``Pulumi.local.yaml``; the provider is the SDK's real provider server (``python -u -m pulumi.dynamic``), driven
by ``tests/engine.py`` as the engine drives it. The checkpoint (ids, inputs, outputs) is kept in a JSON file,
so ``up``, ``preview``, ``refresh`` and ``destroy`` follow each other as they do with the CLI's file backend.

    python -m tests.local_stack up|preview|refresh|destroy [--state .local/harness-state.json] [--endpoint URL]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.engine import (
    PROJECT_ROOT,
    CheckFailuresError,
    ProviderError,
    ProviderServer,
    ResourceState,
    Stack,
    StepResult,
    capture_registrations,
    unwrap_secrets,
)

STACK = "local"


def stack_config() -> dict[str, Any]:
    """The `local` stack's config, as the CLI would hand it to the program and the provider."""
    document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{STACK}.yaml").read_text(encoding="utf-8"))
    config: dict[str, Any] = document.get("config") or {}
    return config


def load(stack: Stack, path: Path) -> None:
    if path.exists():
        for entry in json.loads(path.read_text(encoding="utf-8")):
            state = ResourceState(**entry)
            stack.resources[state.urn] = state


def save(stack: Stack, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = [dataclasses.asdict(state) for state in stack.resources.values()]
    path.write_text(json.dumps(entries, indent=2), encoding="utf-8")


def show(results: list[StepResult]) -> None:
    for result in results:
        name = result.urn.rsplit("::", 1)[-1]
        state = result.new.outputs if result.new else {}
        observed = unwrap_secrets(state).get("connection_state") or unwrap_secrets(state).get("connection_states")
        print(f"  {result.op:8} {name}" + (f"  {observed}" if observed else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.local_stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "preview", "refresh", "destroy"])
    parser.add_argument("--state", type=Path, default=PROJECT_ROOT / ".local" / "harness-state.json")
    parser.add_argument("--endpoint", help="a KMS endpoint to use instead of the stack's `aws:endpoints`")
    args = parser.parse_args(argv)

    config = stack_config()
    if args.endpoint:
        config["aws:endpoints"] = [{"kms": args.endpoint}]
    registrations = capture_registrations(PROJECT_ROOT / "__main__.py", config, stack=STACK)
    with ProviderServer() as server:
        server.configure(config)
        stack = Stack(server)
        load(stack, args.state)
        error: Exception | None = None
        results: list[StepResult] = []
        try:
            if args.command == "preview":
                results = [stack.preview(registration) for registration in registrations]
            elif args.command == "up":
                results = stack.up_all(registrations)
            elif args.command == "refresh":
                results = [stack.refresh(urn) for urn in list(stack.resources)]
            else:
                results = stack.destroy_all()
        except (ProviderError, CheckFailuresError) as failed:
            error = failed
        # What the provider told the user (plan lines, progress, warnings), as the CLI shows it.
        for line in server.stderr_lines():
            print(f"  provider: {line}")
        if error is not None:
            print(f"{args.command} failed: {error}", file=sys.stderr)
            return 1
        if args.command != "preview":
            save(stack, args.state)
        print(f"{args.command} of stack '{STACK}' through the SDK's provider server:")
        show(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
