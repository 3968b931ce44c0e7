"""Self-tests of ``seam/engine.py`` against the toy provider, through the real ``python -m pulumi.dynamic``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from seam.engine import (
    PROVIDER_KEY,
    UNKNOWN,
    CheckFailure,
    CheckFailuresError,
    Protocol,
    ProviderError,
    ProviderServer,
    ProviderStartupError,
    Registration,
    Stack,
    capture_registrations,
    decode_provider,
    dynamic_inputs,
    is_secret,
    make_urn,
    unwrap_secrets,
)
from tests.toy_provider import EchoProvider, MinimalProvider, read_log

pytestmark = pytest.mark.timeout(30)

ECHO = "pulumi-python:dynamic/toy:Echo"
TOY_PROGRAM = Path(__file__).with_name("toy_provider.py")
TOY_CONFIG = {"kms-connection:names": ["n1", "n2"], "aws:region": "us-east-2"}


@pytest.fixture(scope="module")
def toy_registrations() -> list[Registration]:
    """The toy program's registrations, captured once (a capture costs one interpreter start)."""
    return capture_registrations(TOY_PROGRAM, TOY_CONFIG)


@pytest.fixture
def toy_log(tmp_path: Path) -> Path:
    return tmp_path / "toy.log"


@pytest.fixture
def server(toy_log: Path) -> Iterator[ProviderServer]:
    with ProviderServer(env={"TOY_LOG": str(toy_log)}) as started:
        yield started


def echo(name: str, provider: object | None = None, **props: Any) -> Registration:
    return Registration(ECHO, name, dynamic_inputs(provider or EchoProvider(), {"value": name, **props}))


def methods(toy_log: Path) -> list[str]:
    return [entry["method"] for entry in read_log(toy_log)]


def test_server_starts_and_reports_its_port(server: ProviderServer) -> None:
    assert server.port > 0
    assert 0 < server.startup_seconds < 10
    assert server.returncode is None
    assert server.plugin_version == "0.1.0"  # GetPluginInfo answered by the SDK server
    assert server.handshake_supported is False  # the engine falls back to Configure's answer
    assert server.stdout_lines() == []


def test_startup_failure_reports_stderr() -> None:
    with pytest.raises(ProviderStartupError, match="Fatal Python error"):
        ProviderServer(env={"PYTHONHOME": "/nonexistent"}, startup_timeout=10).start()


class SlowLines:
    """A stream whose every line takes a second to read: a stderr reader kept behind the provider throughout."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def readline(self) -> bytes:
        time.sleep(1.0)
        return bytes(self._stream.readline())


class LaggingLines(ProviderServer):
    """A server whose stderr reader falls a second behind on every line, as it can on a loaded machine."""

    def _pump(self, stream: Any, sink: list[str], first: Any) -> None:
        super()._pump(SlowLines(stream) if sink is self._stderr else stream, sink, first)


def test_stderr_lines_hold_every_line_the_provider_wrote_before_the_call_returned(toy_log: Path) -> None:
    with LaggingLines(env={"TOY_LOG": str(toy_log)}) as server:
        server.configure({})
        server.check(make_urn(ECHO, "a"), {}, echo("a").inputs)

        assert server.stderr_lines() == ["toy: configure", "toy: check"]


def test_wait_for_stderr_finds_a_line_written_before_the_call_however_far_the_reader_lags(toy_log: Path) -> None:
    with LaggingLines(env={"TOY_LOG": str(toy_log)}) as server:
        server.configure({})
        server.check(make_urn(ECHO, "a"), {}, echo("a").inputs)

        # The reader is a second behind; the timeout bounds only lines still to come, not that lag.
        assert server.wait_for_stderr("toy: check", timeout=0.1) == "toy: check"


def test_calls_before_configure_are_refused() -> None:
    with pytest.raises(RuntimeError, match="before configure"):
        ProviderServer().check(make_urn(ECHO, "a"), {}, {})


def test_configure_reaches_the_provider_with_namespaced_keys(server: ProviderServer, toy_log: Path) -> None:
    protocol = server.configure(
        {"aws:region": "eu-west-1", "kms-connection:keyStores": [{"id": "cks-1"}], "kms-connection:token": "s3cret"},
        secret_keys={"kms-connection:token"},
    )
    assert protocol == Protocol(
        accept_secrets=False, accept_resources=False, supports_preview=False, accept_outputs=False
    )

    server.check(make_urn(ECHO, "a"), {}, echo("a").inputs)  # the provider is unpickled and configured here

    (configure, check) = read_log(toy_log)
    assert configure["method"] == "configure" and check["method"] == "check"
    assert configure["config"] == {
        "aws:region": "eu-west-1",
        "kms-connection:keyStores": '[{"id": "cks-1"}]',  # structured config travels JSON-encoded
        "kms-connection:token": "s3cret",  # secure config arrives unwrapped
    }
    assert configure["project"] == "kms-connection"  # from PULUMI_PROJECT, as the engine sets it
    assert configure["region"] == "eu-west-1"


def test_check_failures_come_back_with_property_names(server: ProviderServer) -> None:
    server.configure({})
    bad = echo("bad")

    result = server.check(bad.urn, {}, bad.inputs)

    assert result.failures == [CheckFailure("value", "value must not be 'bad'")]
    with pytest.raises(CheckFailuresError, match="value: value must not be 'bad'"):
        Stack(server).up(bad)


def test_crud_round_trip_keeps_the_provider(server: ProviderServer, toy_log: Path) -> None:
    server.configure({})
    reg = echo("a")
    provider_value = reg.inputs[PROVIDER_KEY]
    assert is_secret(provider_value)

    checked = server.check(reg.urn, {}, reg.inputs)
    id_, outputs = server.create(reg.urn, checked.inputs)
    diff = server.diff(reg.urn, id_, outputs, {**checked.inputs, "value": "b"}, old_inputs=checked.inputs)
    updated = server.update(reg.urn, id_, outputs, {**checked.inputs, "value": "b"}, old_inputs=checked.inputs)
    read_id, read_outputs, read_inputs = server.read(reg.urn, id_, updated, {**checked.inputs, "value": "b"})
    server.delete(reg.urn, id_, read_outputs, old_inputs=read_inputs)

    for props in (checked.inputs, outputs, updated, read_outputs, read_inputs or {}):
        assert props[PROVIDER_KEY] == provider_value  # kept, and re-marked secret like the engine does
    assert id_.startswith("echo-") and read_id == id_
    assert (diff.changes, diff.replaces, diff.delete_before_replace) == (True, [], False)
    assert outputs["echo"] == "a" and updated["echo"] == "b" and updated["generation"] == 2
    assert read_outputs["refreshed"] is True and read_inputs == {"value": "b", PROVIDER_KEY: provider_value}
    log = read_log(toy_log)
    assert [e["method"] for e in log] == ["configure", "check", "create", "diff", "update", "read", "delete"]
    # acceptSecrets=False: the engine strips the secret wrapper, so the provider gets a plain string.
    assert {e["provider"] for e in log if "provider" in e} == {"str"}


def test_unknowns_during_preview_reach_diff_as_unknowns(server: ProviderServer, toy_log: Path) -> None:
    server.configure({})
    stack = Stack(server)
    stack.up(echo("a"))
    pending = echo("a")
    pending.inputs["value"] = UNKNOWN

    plan = stack.preview(pending)
    new_plan = stack.preview(echo("b"))
    server.diff(pending.urn, stack.state(pending.urn).id, stack.state(pending.urn).outputs, pending.inputs)

    assert plan.op == "update" and plan.diff is not None and plan.diff.changes is True
    assert new_plan.op == "create" and new_plan.new is not None and new_plan.new.id == ""
    diffs = [e for e in read_log(toy_log) if e["method"] == "diff"]
    assert diffs[0]["news"]["value"] == "<unknown>"  # the SDK's Unknown() reached diff()
    assert "value" not in diffs[1]["news"]  # outside preview the engine drops unknowns
    assert methods(toy_log).count("create") == 1  # preview never calls Create or Update
    assert "update" not in methods(toy_log)


def test_provider_exception_surfaces_as_provider_error(server: ProviderServer) -> None:
    server.configure({})
    reg = echo("explode")

    with pytest.raises(ProviderError) as caught:
        server.create(reg.urn, server.check(reg.urn, {}, reg.inputs).inputs)

    assert caught.value.method == "Create"
    assert caught.value.code == grpc.StatusCode.UNKNOWN
    assert "RuntimeError: toy create exploded: value=explode" in caught.value.details
    assert "Traceback" in caught.value.details


def test_sigkill_mid_operation_then_a_new_server_works(toy_log: Path) -> None:
    reg = echo("slow", sleep=30)
    errors: list[ProviderError] = []
    with ProviderServer(env={"TOY_LOG": str(toy_log)}) as first:
        first.configure({})
        inputs = first.check(reg.urn, {}, reg.inputs).inputs

        def create() -> None:
            try:
                first.create(reg.urn, inputs)
            except ProviderError as exc:
                errors.append(exc)

        worker = threading.Thread(target=create)
        worker.start()
        first.wait_for_stderr("toy: create sleeping")
        first.kill()
        worker.join(timeout=10)
        assert first.returncode == -9

    assert len(errors) == 1 and errors[0].code in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    with ProviderServer(env={"TOY_LOG": str(toy_log)}) as second:
        second.configure({})
        fast = echo("fast")
        id_, _ = second.create(fast.urn, second.check(fast.urn, {}, fast.inputs).inputs)
        assert id_.startswith("echo-")
        assert second.pid != first.pid


def test_stack_steps_follow_the_engine(server: ProviderServer, toy_log: Path) -> None:
    server.configure({})
    stack = Stack(server)

    created = stack.up(echo("a"))
    same = stack.up(echo("a"))
    updated = stack.up(echo("a", value="b"))
    before = len(read_log(toy_log))
    replaced = stack.up(echo("a", value="b", replace_me="x"))
    replace_calls = read_log(toy_log)[before:]
    before = len(read_log(toy_log))
    replaced_first = stack.up(echo("a", value="b", replace_me="y", delete_before_replace=True))
    dbr_calls = [e["method"] for e in read_log(toy_log)[before:]]
    refreshed = stack.refresh(created.urn)
    destroyed = stack.destroy(created.urn)

    assert [r.op for r in (created, same, updated, replaced, replaced_first)] == [
        "create",
        "same",
        "update",
        "replace",
        "replace",
    ]
    assert same.new is not None and created.new is not None and same.new.outputs == created.new.outputs
    assert updated.new is not None and updated.new.outputs["generation"] == 2
    # Create-before-delete; the replacement is re-checked without olds; Diff got the old outputs.
    assert [e["method"] for e in replace_calls] == ["check", "diff", "check", "create", "delete"]
    assert replace_calls[1]["olds"]["generation"] == 2 and replace_calls[2]["olds"] == {}
    assert replace_calls[4]["id"] == created.new.id
    assert dbr_calls == ["check", "diff", "check", "delete", "create"]
    assert refreshed.new is not None and refreshed.new.outputs["refreshed"] is True
    assert destroyed.op == "delete" and stack.resources == {}
    assert methods(toy_log)[-1] == "delete"


def test_refresh_of_a_vanished_resource_drops_it(server: ProviderServer) -> None:
    server.configure({})
    stack = Stack(server)
    urn = stack.up(echo("vanish")).urn

    result = stack.refresh(urn)

    assert result.new is None and urn not in stack.resources


def test_unknown_diff_falls_back_to_comparing_inputs(server: ProviderServer) -> None:
    server.configure({})
    stack = Stack(server)
    provider = MinimalProvider()
    stack.up(echo("m", provider))

    same = stack.up(echo("m", provider))
    changed = stack.up(echo("m", provider, extra="x"))

    assert same.op == "same" and same.diff is not None and same.diff.changes is False
    assert changed.op == "update"
    # The SDK's default update() returns no outputs: everything but __provider is wiped.
    assert changed.new is not None and list(changed.new.outputs) == [PROVIDER_KEY]


def test_capture_registrations_returns_the_provider(toy_registrations: list[Registration]) -> None:
    registrations = toy_registrations

    assert [(r.type_, r.name, r.custom) for r in registrations] == [
        (ECHO, "n1", True),
        (ECHO, "n2", True),
        ("toy:index:EchoGroup", "group", False),
        (ECHO, "inner", True),
    ]
    n1, _, group, inner = registrations
    assert n1.urn == "urn:pulumi:local::kms-connection::pulumi-python:dynamic/toy:Echo::n1"
    assert inner.parent == group.urn
    assert inner.urn == "urn:pulumi:local::kms-connection::toy:index:EchoGroup$pulumi-python:dynamic/toy:Echo::inner"
    assert unwrap_secrets({k: v for k, v in n1.inputs.items() if k != PROVIDER_KEY}) == {
        "value": "n1",
        "region": "us-east-2",  # config reached the program; the None-valued input was dropped
    }
    for reg in (n1, inner):
        assert is_secret(reg.inputs[PROVIDER_KEY])
        assert type(decode_provider(reg.inputs[PROVIDER_KEY])) is EchoProvider


def test_captured_registrations_run_through_the_server(
    server: ProviderServer, toy_log: Path, toy_registrations: list[Registration]
) -> None:
    registrations = toy_registrations
    server.configure(TOY_CONFIG)
    stack = Stack(server)

    first = stack.up_all(registrations)
    second = stack.up_all([r for r in registrations if r.name != "n2"])
    stack.destroy_all()

    assert [r.op for r in first] == ["create"] * 4
    assert [r.op for r in second] == ["same", "same", "same", "delete"]
    assert second[-1].urn.endswith("::n2")
    assert stack.resources == {}
    assert methods(toy_log).count("delete") == 3  # n2, then inner and n1; the component has no provider
