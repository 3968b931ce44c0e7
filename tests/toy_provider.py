"""A toy dynamic provider used only to self-test ``seam/engine.py``.

``EchoProvider`` echoes its inputs into outputs and appends one JSON line per call (method, pid,
what it received) to the file named by the ``TOY_LOG`` environment variable of the provider
process, plus a ``toy: <method>`` line on stderr. Inputs steer it:

* ``value``: echoed as ``echo``; ``"bad"`` fails Check, ``"explode"`` makes Create raise,
  ``"vanish"`` makes Read report the resource gone;
* ``replace_me``: a change requires replacement; ``delete_before_replace: True`` asks for it first;
* ``sleep``: seconds Create sleeps (announced on stderr first), to kill the server mid-operation.

``MinimalProvider`` implements only ``create``, leaving the SDK defaults for the rest.

Run as a program (``capture_registrations(Path(__file__), ...)``) this file registers an ``Echo`` per
name in the ``names`` config list and one ``EchoGroup`` component with a child.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pulumi.output import Unknown

INPUT_KEYS = ("value", "replace_me", "delete_before_replace", "sleep", "region")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Unknown):
        return "<unknown>"
    return repr(value)


def _plain(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k != "__provider"}


def _record(method: str, **payload: Any) -> None:
    print(f"toy: {method}", file=sys.stderr, flush=True)
    path = os.environ.get("TOY_LOG")
    if path:
        entry = {"method": method, "pid": os.getpid(), **payload}
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry, default=_jsonable, sort_keys=True) + "\n")


def _provider_seen(props: dict[str, Any]) -> str:
    """How ``__provider`` reached the provider: ``str`` when the engine stripped its secret wrapper."""
    return type(props.get("__provider")).__name__


def read_log(path: Path) -> list[dict[str, Any]]:
    """The calls recorded in a ``TOY_LOG`` file, in order."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class EchoProvider(ResourceProvider):
    def __init__(self) -> None:
        super().__init__()
        self.config: dict[str, Any] = {}

    def configure(self, req: ConfigureRequest) -> None:
        self.config = dict(req.config._props)
        _record(
            "configure",
            config=self.config,
            project=req.config._project_name,
            region=req.config.get("aws:region"),
        )

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        _record("check", olds=_plain(_olds), news=_plain(news), provider=_provider_seen(news))
        failures = []
        if news.get("value") == "bad":
            failures.append(CheckFailure("value", "value must not be 'bad'"))
        return CheckResult(news, failures)

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> DiffResult:
        _record("diff", id=_id, olds=_plain(_olds), news=_plain(_news), provider=_provider_seen(_news))
        changed = [k for k in INPUT_KEYS if _olds.get(k) != _news.get(k)]
        return DiffResult(
            changes=bool(changed),
            replaces=["replace_me"] if "replace_me" in changed else [],
            delete_before_replace=_news.get("delete_before_replace") is True,
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        _record("create", props=_plain(props), provider=_provider_seen(props))
        if props.get("value") == "explode":
            raise RuntimeError("toy create exploded: value=explode")
        if props.get("sleep"):
            print("toy: create sleeping", file=sys.stderr, flush=True)
            time.sleep(float(props["sleep"]))
        outs = {**_plain(props), "echo": props.get("value"), "generation": 1}
        return CreateResult(f"echo-{uuid.uuid4().hex[:8]}", outs)

    def update(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> UpdateResult:
        _record("update", id=_id, olds=_plain(_olds), news=_plain(_news), provider=_provider_seen(_news))
        generation = int(_olds.get("generation", 0)) + 1
        return UpdateResult({**_plain(_news), "echo": _news.get("value"), "generation": generation})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        _record("read", id=id_, props=_plain(props), provider=_provider_seen(props))
        if props.get("value") == "vanish":
            return ReadResult("", {})
        inputs = {k: props[k] for k in INPUT_KEYS if k in props}
        return ReadResult(id_, {**_plain(props), "refreshed": True}, inputs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        _record("delete", id=_id, props=_plain(_props), provider=_provider_seen(_props))


class MinimalProvider(ResourceProvider):
    """Only ``create``: ``diff``, ``update`` and ``read`` are the SDK defaults (unknown diff, no outputs)."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        _record("create", props=_plain(props), provider=_provider_seen(props))
        return CreateResult(f"minimal-{uuid.uuid4().hex[:8]}", {**_plain(props), "echo": props.get("value")})


class Echo(Resource, module="toy", name="Echo"):
    """``pulumi-python:dynamic/toy:Echo``."""

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(EchoProvider(), name, dict(props), opts)


class EchoGroup(pulumi.ComponentResource):
    """A component with ``Echo`` children, to exercise parent-qualified URNs."""

    def __init__(self, name: str, members: list[str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("toy:index:EchoGroup", name, None, opts)
        for member in members:
            Echo(member, {"value": member}, pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


if __name__ == "__main__":
    # Import the classes from the module, not from this ``__main__`` copy, so that dill pickles the
    # provider by reference like a provider kept in an importable module.
    from tests.toy_provider import Echo as ImportedEcho
    from tests.toy_provider import EchoGroup as ImportedEchoGroup

    region = pulumi.Config("aws").get("region")
    for member in pulumi.Config().require_object("names"):
        ImportedEcho(member, {"value": member, "region": region, "unset": None})
    ImportedEchoGroup("group", ["inner"])
