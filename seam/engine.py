"""Drive the real Python dynamic-provider server the way the Pulumi engine does, without the engine.

The Pulumi CLI runs every Python dynamic resource of a stack through one process,
``python -u -m pulumi.dynamic`` (the SDK's gRPC ``ResourceProvider`` server, reached through the
``pulumi-resource-pulumi-python`` shim). This module starts that very server and speaks gRPC to it
with the requests the engine sends, so tests and benchmarks exercise the product through the same
serialisation, pickling and error paths as a real ``pulumi up``.

Three layers, smallest first:

* :class:`ProviderServer`: one provider process plus one RPC method per engine call
  (``configure``, ``check``, ``diff``, ``create``, ``update``, ``read``, ``delete``), taking and
  returning plain dicts. It also applies the engine's client-side rules (what is marshalled with
  which options, what is skipped during preview, how secrets are re-annotated).
* :class:`Stack`: a checkpoint (urn -> id, inputs, outputs) plus the engine's step logic for
  ``preview``, ``up``, ``refresh`` and ``destroy``.
* :func:`capture_registrations`: runs a Pulumi program under ``pulumi.runtime.set_mocks`` in a fresh
  subprocess and returns what it registers (type, name, inputs including ``__provider``).

Value conventions (the SDK's own wire conventions, kept as plain Python data):

* a secret is ``{rpc._special_sig_key: rpc._special_secret_sig, "value": ...}``: see :func:`secret`;
* an unknown (preview only) is the string :data:`UNKNOWN` (``rpc.UNKNOWN``);
* numbers come back as floats, because ``google.protobuf.Struct`` has only doubles.

Engine behaviour mirrored here, and where it comes from (pulumi/pulumi sources):

* ``sdk/go/common/resource/plugin/provider_plugin.go``: ``NewProvider`` starts a resource plugin in
  the project directory with ``PULUMI_PROJECT`` set; ``provider.Configure`` sends ``args`` (the
  inputs, secrets kept) and ``variables`` (``"<pkg>:config:<key>" -> string``); later calls are
  marshalled with ``KeepSecrets`` = the ``acceptSecrets`` bit answered by ``Configure`` (``False`` for
  the Python dynamic provider), unknowns kept only when allowed (preview), and secretness copied back
  onto results (``annotateSecrets``). ``Create``/``Update`` are not sent during preview to a provider
  without ``supportsPreview`` (the Python dynamic provider): the inputs stand in for the outputs.
* ``pkg/resource/deploy/target.go`` (``GetPackageConfig``): the default provider of a dynamic package
  (``pulumi-python``, ``pulumi-nodejs``) gets the *whole* stack configuration, keys keeping their
  namespace (``aws:region``), each value the config string (structured values JSON-encoded), secure
  values marked secret.
* ``pkg/resource/deploy/step_generator.go``: Check gets the old *inputs*; Diff the old outputs; a
  DIFF_UNKNOWN falls back to comparing old and new inputs; a replacement re-runs Check without olds;
  URNs prefix the parent's qualified type unless the parent is the root stack.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dill
import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

__all__ = [
    "DEFAULT_PROJECT",
    "DEFAULT_STACK",
    "PROJECT_ROOT",
    "PROVIDER_KEY",
    "UNKNOWN",
    "CheckFailure",
    "CheckFailuresError",
    "CheckResult",
    "DiffResult",
    "PlannedStep",
    "ProgramError",
    "Protocol",
    "ProviderError",
    "ProviderServer",
    "ProviderStartupError",
    "Registration",
    "ResourceState",
    "Stack",
    "StepResult",
    "UpOutcome",
    "capture_registrations",
    "contains_unknowns",
    "decode_provider",
    "dynamic_inputs",
    "from_struct",
    "is_secret",
    "make_urn",
    "secret",
    "to_struct",
    "unwrap_secrets",
]

PROJECT_ROOT: Path = Path(__file__).resolve().parent.parent
"""The repository root: the provider process and captured programs run here, like ``pulumi`` does."""

PROVIDER_KEY = "__provider"
UNKNOWN: str = rpc.UNKNOWN
DEFAULT_PROJECT = "kms-connection"
DEFAULT_STACK = "local"
DYNAMIC_PACKAGE = "pulumi-python"
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"

# The engine's gRPC client options (rpcutil.GrpcChannelOptions): 400 MiB messages both ways.
_MAX_MESSAGE = 400 * 1024 * 1024
# What ``ProviderServer.stderr_lines`` writes into the provider's stderr pipe to know the reader has caught up (no
# provider writes a NUL), and how long it waits for it.
_SYNC_MARKER = "\x00seam-stderr-sync\x00"
_SYNC_TIMEOUT = 30.0

_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
]


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------


def secret(value: Any) -> dict[str, Any]:
    """Wrap ``value`` as a secret, the way properties carry secrets on the wire and in state."""
    wrapped: dict[str, Any] = rpc.wrap_rpc_secret(value)
    return wrapped


def is_secret(value: Any) -> bool:
    """True when ``value`` is a wrapped secret."""
    return bool(rpc.is_rpc_secret(value))


def unwrap_secrets(value: Any) -> Any:
    """Return ``value`` with every secret wrapper removed, at any depth."""
    if is_secret(value):
        return unwrap_secrets(value["value"])
    if isinstance(value, Mapping):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [unwrap_secrets(v) for v in value]
    return value


def _contains_secrets(value: Any) -> bool:
    if is_secret(value):
        return True
    if isinstance(value, Mapping):
        return any(_contains_secrets(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_contains_secrets(v) for v in value)
    return False


def contains_unknowns(value: Any) -> bool:
    """True when ``value`` holds the unknown sentinel at any depth."""
    if isinstance(value, str):
        return value == UNKNOWN
    if isinstance(value, Mapping):
        return any(contains_unknowns(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(contains_unknowns(v) for v in value)
    return False


def _drop_unknowns(value: Any) -> Any:
    """What the engine's MarshalProperties does with unknowns when they are not allowed: skip them."""
    if isinstance(value, Mapping):
        return {k: _drop_unknowns(v) for k, v in value.items() if not (isinstance(v, str) and v == UNKNOWN)}
    if isinstance(value, list | tuple):
        return [_drop_unknowns(v) for v in value if not (isinstance(v, str) and v == UNKNOWN)]
    return value


def _annotate_secrets(outs: dict[str, Any], ins: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's annotateSecrets: copy secretness from ``ins`` onto same-named values of ``outs``.

    Used because the Python dynamic provider answers ``acceptSecrets=False``, so it receives and
    returns plain values; the engine re-marks as secret every output whose input was secret
    (recursing into objects present on both sides).
    """
    result = dict(outs)
    for key, in_value in ins.items():
        if key not in result:
            continue
        out_value = result[key]
        if (
            isinstance(out_value, dict)
            and not is_secret(out_value)
            and isinstance(in_value, Mapping)
            and not is_secret(in_value)
        ):
            result[key] = _annotate_secrets(out_value, in_value)
        elif not is_secret(out_value) and _contains_secrets(in_value):
            result[key] = secret(out_value)
    return result


def _normalize(value: Any) -> Any:
    """Turn the SDK's deserialised values into plain data (``Unknown()`` -> :data:`UNKNOWN`)."""
    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, Mapping):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalize(v) for v in value]
    return value


def _run_async(awaitable: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(awaitable)
    finally:
        loop.close()


def to_struct(props: Mapping[str, Any]) -> Any:
    """Serialise a property dict with the SDK's own serialiser (returns a ``google.protobuf.Struct``)."""
    return _run_async(rpc.serialize_properties(dict(props), {}))


def from_struct(struct: Any) -> dict[str, Any]:
    """Deserialise a ``Struct`` with the SDK's deserialiser, keeping unknowns, into plain data."""
    if struct is None:
        return {}
    props = _normalize(rpc.deserialize_properties(struct, keep_unknowns=True))
    if not isinstance(props, dict):
        raise TypeError(f"expected a property map, got {type(props).__name__}")
    return props


def make_urn(
    type_: str, name: str, project: str = DEFAULT_PROJECT, stack: str = DEFAULT_STACK, parent: str = ""
) -> str:
    """The engine's URN: ``urn:pulumi:<stack>::<project>::[<parent type>$]<type>::<name>``.

    ``parent`` is the parent's URN; the root stack resource as parent adds no prefix.
    """
    qualified = type_
    if parent:
        parent_type = parent.split("::")[2]
        if parent_type != ROOT_STACK_TYPE:
            qualified = f"{parent_type}${type_}"
    return f"urn:pulumi:{stack}::{project}::{qualified}::{name}"


def dynamic_inputs(provider: object, props: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs ``pulumi.dynamic.Resource(provider, name, props)`` registers, without running a program.

    ``None`` values are dropped (as serialisation does) and ``__provider`` is the SDK's dill+base64
    serialisation of ``provider``, wrapped as a secret (``serialize_as_secret_always`` defaults to True).
    """
    from pulumi.dynamic.dynamic import serialize_provider

    inputs = {k: v for k, v in props.items() if v is not None}
    serialized = serialize_provider(provider)
    inputs[PROVIDER_KEY] = secret(serialized) if getattr(provider, "serialize_as_secret_always", True) else serialized
    return inputs


def decode_provider(value: Any) -> Any:
    """Decode a ``__provider`` value (secret or plain) back to the provider object, as the server does."""
    encoded = unwrap_secrets(value)
    if not isinstance(encoded, str):
        raise TypeError(f"__provider should be a base64 string, got {type(encoded).__name__}")
    return dill.loads(base64.b64decode(encoded))


def _config_string(value: Any) -> str:
    """Stack config values are strings; structured values travel JSON-encoded (as ``pulumi config``)."""
    return value if isinstance(value, str) else json.dumps(value)


# --------------------------------------------------------------------------------------------------
# Results and errors
# --------------------------------------------------------------------------------------------------


class ProviderError(Exception):
    """A gRPC call to the provider failed; ``details`` holds the full message (a traceback for the SDK)."""

    def __init__(self, method: str, code: Any, details: str) -> None:
        self.method = method
        self.code = code
        self.details = details
        name = getattr(code, "name", str(code))
        super().__init__(f"{method} failed ({name}): {details}")


class ProviderStartupError(RuntimeError):
    """The provider process did not report its port."""


class ProgramError(RuntimeError):
    """A program run by :func:`capture_registrations` failed."""

    def __init__(self, returncode: int, stderr: str) -> None:
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"program exited with {returncode}:\n{stderr}")


@dataclass(frozen=True)
class Protocol:
    """What the provider answered to ``Configure`` (the engine's ``pluginProtocol``)."""

    accept_secrets: bool
    accept_resources: bool
    supports_preview: bool
    accept_outputs: bool


@dataclass(frozen=True)
class CheckFailure:
    property: str
    reason: str


@dataclass(frozen=True)
class CheckResult:
    inputs: dict[str, Any]
    failures: list[CheckFailure]


@dataclass(frozen=True)
class DiffResult:
    """``changes`` is ``True``/``False``, or ``None`` when the provider left it unknown (DIFF_UNKNOWN)."""

    changes: bool | None
    replaces: list[str]
    delete_before_replace: bool


class CheckFailuresError(Exception):
    """Check returned failures; the engine stops the step and reports them."""

    def __init__(self, urn: str, failures: Sequence[CheckFailure]) -> None:
        self.urn = urn
        self.failures = list(failures)
        lines = "; ".join(f"{f.property}: {f.reason}" for f in self.failures)
        super().__init__(f"{urn}: check failed: {lines}")


# --------------------------------------------------------------------------------------------------
# The provider process
# --------------------------------------------------------------------------------------------------


class ProviderServer:
    """``python -u -m pulumi.dynamic`` plus the engine's client side of the ResourceProvider protocol.

    Use as a context manager::

        with ProviderServer(env={"AWS_ENDPOINT_URL_KMS": url}) as server:
            server.configure({"aws:region": "eu-west-1"})
            check = server.check(urn, {}, inputs)
            id_, outputs = server.create(urn, check.inputs)

    ``env`` is merged over ``os.environ`` (and over ``PULUMI_PROJECT``, which the engine sets). The
    process runs in the project root. Every RPC failure raises :class:`ProviderError`.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        project: str = DEFAULT_PROJECT,
        cwd: Path | None = None,
        startup_timeout: float = 20.0,
        rpc_timeout: float | None = 120.0,
    ) -> None:
        self.env = dict(env or {})
        self.project = project
        self.cwd = cwd or PROJECT_ROOT
        self.startup_timeout = startup_timeout
        self.rpc_timeout = rpc_timeout
        self.startup_seconds: float = 0.0
        self.port: int = 0
        self.protocol: Protocol | None = None
        self.plugin_version: str = ""
        self.handshake_supported: bool = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._channel: Any = None
        self._stub: Any = None
        self._stderr: list[str] = []
        self._stdout: list[str] = []
        self._lines_changed = threading.Condition()
        # Our own pipe for the provider's stderr, whose write end we keep too: a marker we write after the
        # provider's lines arrives after them, so the reader can say when it has read all the provider wrote
        # before now (see ``stderr_lines``).
        self._stderr_reader: Any = None
        self._stderr_writer: int | None = None
        self._syncs_sent = 0
        self._syncs_seen = 0
        self._threads: list[threading.Thread] = []

    # ---- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> ProviderServer:
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> ProviderServer:
        """Start the process, read its port (first stdout line) and connect, as the engine does."""
        if self._proc is not None:
            raise RuntimeError("server already started")
        env = {**os.environ, "PULUMI_PROJECT": self.project, **self.env}
        started = time.monotonic()
        reader, self._stderr_writer = os.pipe()
        self._stderr_reader = os.fdopen(reader, "rb")
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-u", "-m", "pulumi.dynamic"],
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr_writer,
            )
        except BaseException:
            self._close_stderr_writer()
            self._stderr_reader.close()
            raise
        try:
            self._connect(started)
        except BaseException:
            self.kill()
            self.close()
            raise
        return self

    def _connect(self, started: float) -> None:
        assert self._proc is not None
        port_line: queue.Queue[str | None] = queue.Queue(maxsize=1)
        self._threads = [
            threading.Thread(target=self._pump, args=(self._proc.stdout, self._stdout, port_line), daemon=True),
            threading.Thread(target=self._pump, args=(self._stderr_reader, self._stderr, None), daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        try:
            line = port_line.get(timeout=self.startup_timeout)
        except queue.Empty:
            raise ProviderStartupError(
                f"provider did not report a port within {self.startup_timeout}s; stderr:\n{self._stderr_text()}"
            ) from None
        if line is None or not line.strip().isdigit():
            code = self._proc.wait(timeout=5) if line is None else None
            if code is not None:
                self._close_stderr_writer()
            self._join_pumps(2.0)
            raise ProviderStartupError(
                f"provider exited (code {code}) or printed no port (first line {line!r}); "
                f"stderr:\n{self._stderr_text()}"
            )
        self.startup_seconds = time.monotonic() - started
        self.port = int(line.strip())
        self._channel = grpc.insecure_channel(f"127.0.0.1:{self.port}", options=_CHANNEL_OPTIONS)
        self._stub = provider_pb2_grpc.ResourceProviderStub(self._channel)
        self._handshake()
        info = self._call("GetPluginInfo", empty_pb2.Empty())
        self.plugin_version = str(info.version)

    def _handshake(self) -> None:
        # The engine tries Handshake first (with the plugin binary's directory as root and program
        # directory) and falls back silently when it is unimplemented, as in the Python dynamic
        # provider; the protocol bits then come from Configure.
        request = provider_pb2.ProviderHandshakeRequest(
            engine_address="",
            root_directory=str(self.cwd),
            program_directory=str(self.cwd),
            configure_with_urn=True,
        )
        try:
            response = self._stub.Handshake(request, timeout=self.rpc_timeout)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return
            raise ProviderError("Handshake", exc.code(), exc.details() or "") from exc
        self.handshake_supported = True
        self.protocol = Protocol(
            accept_secrets=bool(response.accept_secrets),
            accept_resources=bool(response.accept_resources),
            supports_preview=True,
            accept_outputs=bool(response.accept_outputs),
        )

    def _pump(self, stream: Any, sink: list[str], first: queue.Queue[str | None] | None) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if first is not None:
                first.put(line)
                first = None
                continue
            with self._lines_changed:
                markers = line.count(_SYNC_MARKER)
                if markers:
                    # A provider line still being written when the marker went in keeps its text (its newline
                    # then comes as an empty line of its own).
                    self._syncs_seen += markers
                    line = line.replace(_SYNC_MARKER, "")
                if line or not markers:
                    sink.append(line)
                self._lines_changed.notify_all()
        if first is not None:
            first.put(None)

    def _join_pumps(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _stderr_text(self) -> str:
        return "\n".join(self.stderr_lines())

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("server not started")
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def stderr_lines(self) -> list[str]:
        """Every stderr line the provider wrote before this call."""
        self._catch_up_stderr()
        with self._lines_changed:
            return list(self._stderr)

    def _catch_up_stderr(self) -> None:
        """Return once the background reader has read every stderr line the provider wrote before this call.

        A line written during an RPC can still be in the pipe when the RPC returns (seen under load). So this writes
        a marker into the same pipe and waits until the reader reaches it.
        """
        if self._stderr_writer is not None and self._threads:
            with self._lines_changed:
                self._syncs_sent += 1
                wanted = self._syncs_sent
            # Written without the lock: a full pipe must not block the reader, which needs the lock to go on.
            os.write(self._stderr_writer, (_SYNC_MARKER + "\n").encode())
            deadline = time.monotonic() + _SYNC_TIMEOUT
            with self._lines_changed:
                while self._syncs_seen < wanted and (remaining := deadline - time.monotonic()) > 0:
                    self._lines_changed.wait(remaining)

    def stdout_lines(self) -> list[str]:
        """Stdout lines after the port line."""
        with self._lines_changed:
            return list(self._stdout)

    def wait_for_stderr(self, needle: str, timeout: float = 5.0) -> str:
        """Wait until a stderr line contains ``needle``; return that line (``TimeoutError`` otherwise).

        Lines the provider wrote before this call are all read first, so ``timeout`` bounds only the wait for lines
        still to be written, never the background reader's lag.
        """
        self._catch_up_stderr()
        deadline = time.monotonic() + timeout
        with self._lines_changed:
            while True:
                for line in self._stderr:
                    if needle in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no stderr line containing {needle!r}; stderr:\n" + "\n".join(self._stderr))
                self._lines_changed.wait(remaining)

    def kill(self) -> None:
        """SIGKILL the process (a crash, or ``kill -9`` of a hung ``pulumi up``)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=10)
        self._close_channel()
        self._close_stderr_writer()
        self._join_pumps(2.0)

    def close(self, timeout: float = 5.0) -> None:
        """Close the channel and terminate the process (SIGTERM; SIGKILL if it lingers).

        The server keeps no state of its own, so SIGTERM loses nothing; SIGINT (which the server maps
        to a gRPC stop) would take several times longer per test.
        """
        self._close_channel()
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._close_stderr_writer()
        self._join_pumps(2.0)
        for stream in (proc.stdout, self._stderr_reader):
            if stream is not None:
                stream.close()

    def _close_stderr_writer(self) -> None:
        # Until our write end is closed too, the reader sees no end of the pipe when the process exits.
        if self._stderr_writer is not None:
            os.close(self._stderr_writer)
            self._stderr_writer = None

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    # ---- RPCs ---------------------------------------------------------------------------------

    def _call(self, method: str, request: Any) -> Any:
        if self._stub is None or self._channel is None:
            raise ProviderError(method, grpc.StatusCode.UNAVAILABLE, "provider connection is closed")
        try:
            return getattr(self._stub, method)(request, timeout=self.rpc_timeout)
        except grpc.RpcError as exc:
            raise ProviderError(method, exc.code(), exc.details() or "") from exc

    def _require_protocol(self, method: str) -> Protocol:
        if self.protocol is None:
            raise RuntimeError(f"{method} before configure(): the engine always configures a provider first")
        return self.protocol

    def _marshal(self, props: Mapping[str, Any], *, keep_unknowns: bool) -> Any:
        protocol = self._require_protocol("marshal")
        value: Any = dict(props)
        if not protocol.accept_secrets:
            value = unwrap_secrets(value)
        if not keep_unknowns:
            value = _drop_unknowns(value)
        return to_struct(value)

    def configure(self, config: Mapping[str, Any], *, secret_keys: Iterable[str] = ()) -> Protocol:
        """Send the engine's ``Configure`` for the ``pulumi-python`` default provider.

        ``config`` is the whole stack configuration keyed as in ``Pulumi.<stack>.yaml``
        (``"aws:region"``, ``"kms-connection:keyStores"``); non-string values are JSON-encoded, since
        stack config values are strings. Keys in ``secret_keys`` travel as secrets, like secure config.
        ``args`` carries them with namespaces kept; ``variables`` repeats them as
        ``"pulumi-python:config:<key>" -> string`` (the legacy spelling the engine still sends).
        """
        secrets = set(secret_keys)
        args = {k: secret(_config_string(v)) if k in secrets else _config_string(v) for k, v in config.items()}
        variables = {f"{DYNAMIC_PACKAGE}:config:{k}": _config_string(v) for k, v in config.items()}
        request = provider_pb2.ConfigureRequest(
            variables=variables,
            args=to_struct(args),
            acceptSecrets=True,
            acceptResources=True,
            sends_old_inputs=True,
            sends_old_inputs_to_delete=True,
        )
        response = self._call("Configure", request)
        if self.protocol is None or not self.handshake_supported:
            self.protocol = Protocol(
                accept_secrets=bool(response.acceptSecrets),
                accept_resources=bool(response.acceptResources),
                supports_preview=bool(response.supportsPreview),
                accept_outputs=bool(response.acceptOutputs),
            )
        return self.protocol

    def check(
        self, urn: str, olds: Mapping[str, Any], news: Mapping[str, Any], *, preview: bool = False
    ) -> CheckResult:
        """``Check(olds=old inputs, news=program inputs)``; unknowns are sent only when ``preview``."""
        response = self._call(
            "Check",
            provider_pb2.CheckRequest(
                urn=urn,
                name=_urn_name(urn),
                type=_urn_type(urn),
                olds=self._marshal(olds, keep_unknowns=preview),
                news=self._marshal(news, keep_unknowns=preview),
            ),
        )
        inputs = from_struct(response.inputs) if response.HasField("inputs") else {}
        if self._require_protocol("Check").accept_secrets is False:
            inputs = _annotate_secrets(inputs, news)
        failures = [CheckFailure(str(f.property), str(f.reason)) for f in response.failures]
        return CheckResult(inputs=inputs, failures=failures)

    def diff(
        self,
        urn: str,
        id_: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        *,
        old_inputs: Mapping[str, Any] | None = None,
        preview: bool = False,
        ignore_changes: Sequence[str] = (),
    ) -> DiffResult:
        """``Diff(olds=old OUTPUTS, news=checked inputs)``, as the engine calls it."""
        response = self._call(
            "Diff",
            provider_pb2.DiffRequest(
                id=id_,
                urn=urn,
                name=_urn_name(urn),
                type=_urn_type(urn),
                olds=self._marshal(olds, keep_unknowns=preview),
                news=self._marshal(news, keep_unknowns=preview),
                old_inputs=self._marshal(old_inputs or {}, keep_unknowns=preview),
                ignoreChanges=list(ignore_changes),
            ),
        )
        changes: bool | None = {
            provider_pb2.DiffResponse.DIFF_SOME: True,
            provider_pb2.DiffResponse.DIFF_NONE: False,
        }.get(response.changes)
        return DiffResult(
            changes=changes,
            replaces=[str(r) for r in response.replaces],
            delete_before_replace=bool(response.deleteBeforeReplace),
        )

    def create(self, urn: str, inputs: Mapping[str, Any], *, preview: bool = False) -> tuple[str, dict[str, Any]]:
        """``Create``; returns ``(id, outputs)``.

        During preview the engine does not call a provider that lacks ``supportsPreview`` (the Python
        dynamic provider, whose Create ignores the preview flag and would really create): it uses the
        inputs as outputs and an empty id. This method does the same.
        """
        protocol = self._require_protocol("Create")
        if preview and not protocol.supports_preview:
            return "", dict(inputs)
        response = self._call(
            "Create",
            provider_pb2.CreateRequest(
                urn=urn,
                name=_urn_name(urn),
                type=_urn_type(urn),
                properties=self._marshal(inputs, keep_unknowns=preview),
                preview=preview,
            ),
        )
        outputs = from_struct(response.properties)
        if not preview and contains_unknowns(outputs):
            raise ProviderError("Create", grpc.StatusCode.INTERNAL, f"provider returned unknown outputs: {outputs}")
        if not protocol.accept_secrets:
            outputs = _annotate_secrets(outputs, inputs)
        if not response.id and not preview:
            raise ProviderError("Create", grpc.StatusCode.INTERNAL, f"provider returned an empty id for {urn}")
        return str(response.id), outputs

    def update(
        self,
        urn: str,
        id_: str,
        olds: Mapping[str, Any],
        news: Mapping[str, Any],
        *,
        old_inputs: Mapping[str, Any] | None = None,
        preview: bool = False,
        ignore_changes: Sequence[str] = (),
    ) -> dict[str, Any]:
        """``Update(olds=old OUTPUTS, news=checked inputs)``; returns the new outputs.

        Skipped during preview (returns ``news``) for a provider without ``supportsPreview``.
        """
        protocol = self._require_protocol("Update")
        if preview and not protocol.supports_preview:
            return dict(news)
        response = self._call(
            "Update",
            provider_pb2.UpdateRequest(
                id=id_,
                urn=urn,
                name=_urn_name(urn),
                type=_urn_type(urn),
                olds=self._marshal(olds, keep_unknowns=False),
                news=self._marshal(news, keep_unknowns=preview),
                old_inputs=self._marshal(old_inputs or {}, keep_unknowns=False),
                ignoreChanges=list(ignore_changes),
                preview=preview,
            ),
        )
        outputs = from_struct(response.properties)
        if not protocol.accept_secrets:
            outputs = _annotate_secrets(outputs, news)
        return outputs

    def read(
        self, urn: str, id_: str, props: Mapping[str, Any], inputs: Mapping[str, Any] | None = None
    ) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
        """``Read`` as ``pulumi refresh`` sends it (``properties`` = old outputs, ``inputs`` = old inputs).

        Returns ``(id, outputs, inputs)``; ``inputs`` is ``None`` when the provider returned none
        (the engine then keeps the old inputs); an empty id means the resource is gone.
        """
        protocol = self._require_protocol("Read")
        response = self._call(
            "Read",
            provider_pb2.ReadRequest(
                id=id_,
                urn=urn,
                name=_urn_name(urn),
                type=_urn_type(urn),
                properties=self._marshal(props, keep_unknowns=False),
                inputs=self._marshal(inputs, keep_unknowns=False) if inputs is not None else None,
            ),
        )
        outputs = from_struct(response.properties)
        new_inputs = from_struct(response.inputs) if response.HasField("inputs") else None
        if not protocol.accept_secrets:
            outputs = _annotate_secrets(outputs, props)
            if new_inputs is not None and inputs is not None:
                new_inputs = _annotate_secrets(new_inputs, inputs)
        return str(response.id), outputs, new_inputs

    def delete(
        self, urn: str, id_: str, props: Mapping[str, Any], *, old_inputs: Mapping[str, Any] | None = None
    ) -> None:
        """``Delete(properties=old outputs)`` (the engine also sends the old inputs)."""
        self._call(
            "Delete",
            provider_pb2.DeleteRequest(
                id=id_,
                urn=urn,
                name=_urn_name(urn),
                type=_urn_type(urn),
                properties=self._marshal(props, keep_unknowns=False),
                old_inputs=self._marshal(old_inputs or {}, keep_unknowns=False),
            ),
        )


def _urn_name(urn: str) -> str:
    return urn.split("::")[-1]


def _urn_type(urn: str) -> str:
    parts = urn.split("::")
    return parts[2].split("$")[-1] if len(parts) > 2 else ""


# --------------------------------------------------------------------------------------------------
# Registrations and the checkpoint
# --------------------------------------------------------------------------------------------------


@dataclass
class Registration:
    """One ``RegisterResource`` of a program: what the engine gets before planning a step.

    ``inputs`` are as the program sent them, including ``__provider`` (a secret). ``parent`` is the
    parent's URN (the root stack's for top-level resources). The URN is computed like the engine's.
    """

    type_: str
    name: str
    inputs: dict[str, Any]
    parent: str = ""
    custom: bool = True
    delete_before_replace: bool = False
    project: str = DEFAULT_PROJECT
    stack: str = DEFAULT_STACK

    @property
    def urn(self) -> str:
        return make_urn(self.type_, self.name, self.project, self.stack, self.parent)

    @property
    def is_dynamic(self) -> bool:
        return self.custom and self.type_.startswith(f"{DYNAMIC_PACKAGE}:dynamic")


@dataclass
class ResourceState:
    """One checkpoint entry (the engine's resource state)."""

    urn: str
    type_: str
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    custom: bool = True


@dataclass(frozen=True)
class StepResult:
    """What a step did (or, for preview, would do).

    ``op`` is one of ``create``, ``same``, ``update``, ``replace``, ``delete``, ``refresh``.
    ``new`` is ``None`` after a delete, or after a refresh that found the resource gone.
    """

    op: str
    urn: str
    check: CheckResult | None = None
    diff: DiffResult | None = None
    old: ResourceState | None = None
    new: ResourceState | None = None


@dataclass
class Stack:
    """A checkpoint plus the engine's per-resource step logic, driving one :class:`ProviderServer`.

    Simplifications (the real engine does more): resources are stepped one at a time, in call order;
    no dependency graph, ``protect``, ``ignoreChanges``, ``replaceOnChanges``, aliases or targets; the
    old resource of a create-before-delete replacement is deleted at once by :meth:`up` (the engine
    defers it to the end of the deployment, which :meth:`up_all` does); a failed step leaves the
    checkpoint untouched (the engine may record a partial state).
    """

    server: ProviderServer
    resources: dict[str, ResourceState] = field(default_factory=dict)

    def state(self, urn: str) -> ResourceState:
        return self.resources[urn]

    # ---- steps --------------------------------------------------------------------------------

    def preview(self, registration: Registration) -> StepResult:
        """Plan the step for ``registration`` without changing anything (``pulumi preview``)."""
        return self._step(registration, preview=True, pending_deletes=None)

    def up(self, registration: Registration) -> StepResult:
        """Run the step for ``registration`` (``pulumi up`` for one resource) and record the result."""
        pending: list[ResourceState] = []
        result = self._step(registration, preview=False, pending_deletes=pending)
        for old in pending:
            self._delete(old)
        return result

    def up_all(self, registrations: Sequence[Registration]) -> list[StepResult]:
        """``pulumi up`` for a whole program: step every registration in order, then delete the old
        halves of replacements and every resource the program no longer registers (newest first)."""
        results: list[StepResult] = []
        pending: list[ResourceState] = []
        wanted = {r.urn for r in registrations}
        if len(wanted) != len(registrations):
            raise ValueError("duplicate URNs among the registrations (the engine refuses them too)")
        for registration in registrations:
            results.append(self._step(registration, preview=False, pending_deletes=pending))
        for old in reversed(pending):
            self._delete(old)
        for urn in reversed([u for u in self.resources if u not in wanted]):
            results.append(self.destroy(urn))
        order = [r.urn for r in registrations if r.urn in self.resources]
        self.resources = {urn: self.resources[urn] for urn in order}
        return results

    def refresh(self, urn: str) -> StepResult:
        """``pulumi refresh`` for one resource: Read with the old outputs and inputs."""
        old = self.resources[urn]
        if not old.custom:
            return StepResult("refresh", urn, old=old, new=old)
        id_, outputs, inputs = self.server.read(urn, old.id, old.outputs, old.inputs)
        if not id_:
            del self.resources[urn]
            return StepResult("refresh", urn, old=old, new=None)
        new = ResourceState(urn, old.type_, id_, inputs if inputs is not None else old.inputs, outputs)
        self.resources[urn] = new
        return StepResult("refresh", urn, old=old, new=new)

    def destroy(self, urn: str) -> StepResult:
        """Delete one resource with its recorded outputs and drop it from the checkpoint."""
        old = self.resources[urn]
        self._delete(old)
        return StepResult("delete", urn, old=old, new=None)

    def destroy_all(self) -> list[StepResult]:
        """``pulumi destroy``: delete every resource, newest first."""
        return [self.destroy(urn) for urn in reversed(list(self.resources))]

    # ---- internals ----------------------------------------------------------------------------

    def _delete(self, old: ResourceState) -> None:
        if old.custom:
            self.server.delete(old.urn, old.id, old.outputs, old_inputs=old.inputs)
        if self.resources.get(old.urn) is old:
            del self.resources[old.urn]

    def _check(self, registration: Registration, olds: Mapping[str, Any], preview: bool) -> CheckResult:
        check = self.server.check(registration.urn, olds, registration.inputs, preview=preview)
        if check.failures:
            raise CheckFailuresError(registration.urn, check.failures)
        return check

    def _step(
        self, registration: Registration, *, preview: bool, pending_deletes: list[ResourceState] | None
    ) -> StepResult:
        return self.run_step(self.plan_step(registration, preview=preview), pending_deletes=pending_deletes)

    def plan_step(self, registration: Registration, *, preview: bool = False) -> PlannedStep:
        """What the engine's step generator does for a registration: Check, and Diff for a resource in the
        checkpoint (Check again, without olds, for a replacement). Nothing is created, updated or recorded."""
        urn = registration.urn
        old = self.resources.get(urn)
        if not registration.custom:
            return PlannedStep("create" if old is None else "same", registration, None, None, old, preview)
        if not registration.is_dynamic:
            raise ValueError(f"{urn}: only Python dynamic resources can be stepped through this driver")

        check = self._check(registration, old.inputs if old else {}, preview)
        if old is None:
            return PlannedStep("create", registration, check, None, None, preview)

        diff = self.server.diff(urn, old.id, old.outputs, check.inputs, old_inputs=old.inputs, preview=preview)
        if diff.changes is None:
            # DIFF_UNKNOWN (e.g. the SDK's default diff()): the engine compares old and new inputs.
            diff = DiffResult(check.inputs != old.inputs, diff.replaces, diff.delete_before_replace)
        if not diff.changes:
            return PlannedStep("same", registration, check, diff, old, preview)
        if not diff.replaces:
            return PlannedStep("update", registration, check, diff, old, preview)
        # Replacement: the engine re-runs Check without olds (defaults are no longer carried over).
        check = self._check(registration, {}, preview)
        return PlannedStep("replace", registration, check, diff, old, preview)

    def run_step(self, planned: PlannedStep, *, pending_deletes: list[ResourceState] | None = None) -> StepResult:
        """What the engine's step executor does with a planned step: Create or Update (nothing for ``same``, and
        nothing but the plan in a preview), and record the result. The old half of a create-before-delete
        replacement goes to ``pending_deletes`` if given, else is deleted at once."""
        registration, check, diff, old, preview = (
            planned.registration,
            planned.check,
            planned.diff,
            planned.old,
            planned.preview,
        )
        urn = registration.urn
        if check is None:
            # Component resources have no provider: the engine records their inputs as outputs.
            new = ResourceState(
                urn, registration.type_, "", dict(registration.inputs), dict(registration.inputs), False
            )
            if not preview:
                self.resources[urn] = new
            return StepResult(planned.op, urn, old=old, new=new)
        if planned.op == "create":
            id_, outputs = self.server.create(urn, check.inputs, preview=preview)
            new = ResourceState(urn, registration.type_, id_, check.inputs, outputs)
            if not preview:
                self.resources[urn] = new
            return StepResult("create", urn, check=check, new=new)
        assert old is not None and diff is not None
        if planned.op == "same":
            new = ResourceState(urn, old.type_, old.id, check.inputs, old.outputs)
            if not preview:
                self.resources[urn] = new
            return StepResult("same", urn, check=check, diff=diff, old=old, new=new)
        if planned.op == "update":
            outputs = self.server.update(urn, old.id, old.outputs, check.inputs, old_inputs=old.inputs, preview=preview)
            new = ResourceState(urn, old.type_, old.id, check.inputs, outputs)
            if not preview:
                self.resources[urn] = new
            return StepResult("update", urn, check=check, diff=diff, old=old, new=new)
        if preview:
            new = ResourceState(urn, registration.type_, "", check.inputs, dict(check.inputs))
            return StepResult("replace", urn, check=check, diff=diff, old=old, new=new)
        if diff.delete_before_replace or registration.delete_before_replace:
            self._delete(old)
            id_, outputs = self.server.create(urn, check.inputs)
        else:
            id_, outputs = self.server.create(urn, check.inputs)
            if pending_deletes is None:
                self._delete(old)
            else:
                pending_deletes.append(old)
        new = ResourceState(urn, registration.type_, id_, check.inputs, outputs)
        self.resources[urn] = new
        return StepResult("replace", urn, check=check, diff=diff, old=old, new=new)

    def up_parallel(self, registrations: Sequence[Registration]) -> UpOutcome:
        """``pulumi up`` in the engine's order, with its parallelism: the step generator takes the registrations
        one at a time, in the order the program made them (Check, Diff), and hands each step to the step
        executor, which runs it on a thread of its own while the generator goes on to the next registration.
        Once every step has finished, the old halves of replacements and the resources the program no longer
        registers are deleted, newest first. A failure (a step's, or a Check's, which stops the generator) lets
        the running steps finish and deletes nothing, as the engine does; the failures are in the outcome."""
        wanted = {r.urn for r in registrations}
        if len(wanted) != len(registrations):
            raise ValueError("duplicate URNs among the registrations (the engine refuses them too)")
        pending: list[ResourceState] = []
        lock = threading.Lock()
        results: dict[str, StepResult] = {}
        errors: list[Exception] = []

        def execute(planned: PlannedStep) -> None:
            try:
                result = self.run_step(planned, pending_deletes=pending)
            except Exception as error:  # the engine reports a failed step and goes on
                with lock:
                    errors.append(error)
                return
            with lock:
                results[planned.registration.urn] = result

        threads: list[threading.Thread] = []
        for registration in registrations:
            try:
                planned = self.plan_step(registration)
            except Exception as error:  # a failed Check stops the step generator
                errors.append(error)
                break
            thread = threading.Thread(target=execute, args=(planned,), name=f"step-{registration.name}", daemon=True)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        ordered = [results[r.urn] for r in registrations if r.urn in results]
        if errors:
            return UpOutcome(ordered, errors)
        for old in reversed(pending):
            self._delete(old)
        for urn in reversed([u for u in self.resources if u not in wanted]):
            ordered.append(self.destroy(urn))
        order = [r.urn for r in registrations if r.urn in self.resources]
        self.resources = {urn: self.resources[urn] for urn in order}
        return UpOutcome(ordered, [])


@dataclass(frozen=True)
class PlannedStep:
    """A step the engine has generated (Check and Diff done) but not executed yet.

    ``op`` is ``create``, ``same``, ``update`` or ``replace``; ``check`` is None for a component resource.
    """

    op: str
    registration: Registration
    check: CheckResult | None
    diff: DiffResult | None
    old: ResourceState | None
    preview: bool = False


@dataclass(frozen=True)
class UpOutcome:
    """What :meth:`Stack.up_parallel` did: the steps that finished, in program order (then the deletes), and the
    failures; an ``up`` with failures deleted nothing."""

    results: list[StepResult]
    errors: list[Exception]


# --------------------------------------------------------------------------------------------------
# Capturing a program's registrations under mocks
# --------------------------------------------------------------------------------------------------


def capture_registrations(
    program: Path,
    config: Mapping[str, Any],
    project: str = DEFAULT_PROJECT,
    stack: str = DEFAULT_STACK,
    *,
    secret_keys: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> list[Registration]:
    """Run a Pulumi Python program under ``pulumi.runtime.set_mocks`` and return its registrations.

    The program runs in a fresh interpreter (no runtime state or config leaks between calls), with
    the project root as working directory and the program's directory first on ``sys.path``. Config
    reaches it the way the Python language host passes it, through ``PULUMI_CONFIG`` (a JSON object of
    ``"namespace:key" -> string``; non-string values are JSON-encoded here) and
    ``PULUMI_CONFIG_SECRET_KEYS``. Inputs are the wire properties the SDK sent to the monitor,
    deserialised like the engine sees them: ``__provider`` is present and is a secret.
    Registrations of the root stack are left out; components are kept (``custom=False``).
    """
    program = Path(program).resolve()
    child_env = {
        **os.environ,
        "PULUMI_CONFIG": json.dumps({k: _config_string(v) for k, v in config.items()}),
        "PULUMI_CONFIG_SECRET_KEYS": json.dumps(sorted(secret_keys)),
        "PULUMI_PROJECT": project,
        "PULUMI_STACK": stack,
        **(env or {}),
    }
    with tempfile.TemporaryDirectory(prefix="capture-") as tmp:
        out = Path(tmp) / "registrations.json"
        proc = subprocess.run(
            [sys.executable, "-m", "seam.engine", "capture", str(program), project, stack, str(out)],
            cwd=PROJECT_ROOT,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0 or not out.exists():
            raise ProgramError(proc.returncode, proc.stderr)
        records = json.loads(out.read_text())

    engine_urns: dict[str, str] = {}
    registrations: list[Registration] = []
    for record in records:
        mock_parent = str(record["parent"])
        parent = engine_urns.get(mock_parent, mock_parent)
        struct = struct_pb2.Struct()
        struct.update(record["object"])
        registration = Registration(
            type_=str(record["type"]),
            name=str(record["name"]),
            inputs=from_struct(struct),
            parent=parent,
            custom=bool(record["custom"]),
            delete_before_replace=bool(record["delete_before_replace"]),
            project=project,
            stack=stack,
        )
        engine_urns[str(record["mock_urn"])] = registration.urn
        registrations.append(registration)
    return registrations


def _capture_child(program: str, project: str, stack: str, out: str) -> int:
    """Child side of :func:`capture_registrations` (``python -m seam.engine capture ...``)."""
    import runpy

    import pulumi
    from pulumi.runtime import mocks

    records: list[dict[str, Any]] = []

    class _Monitor(mocks.MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            if request.type != ROOT_STACK_TYPE:
                records.append(
                    {
                        "type": request.type,
                        "name": request.name,
                        "parent": request.parent,
                        "mock_urn": self.make_urn(request.parent, request.type, request.name),
                        "custom": request.custom,
                        "delete_before_replace": request.deleteBeforeReplace,
                        # The wire form the engine receives (secrets and unknowns as sig values).
                        "object": json_format.MessageToDict(request.object),
                    }
                )
            return super().RegisterResource(request)  # type: ignore[no-untyped-call]

    class _Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: mocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
            return (f"{args.name}_id" if args.custom else None), dict(args.inputs)

        def call(self, args: mocks.MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
            return {}, None

    the_mocks = _Mocks()
    pulumi.runtime.set_mocks(the_mocks, project=project, stack=stack, preview=False, monitor=_Monitor(the_mocks))
    program_path = Path(program)
    sys.path.insert(0, str(program_path if program_path.is_dir() else program_path.parent))

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> None:
        runpy.run_path(program, run_name="__main__")

    run()
    Path(out).write_text(json.dumps(records))
    return 0


def _main(argv: Sequence[str]) -> int:
    if len(argv) == 5 and argv[0] == "capture":
        return _capture_child(*argv[1:])
    print("usage: python -m seam.engine capture PROGRAM PROJECT STACK OUT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
