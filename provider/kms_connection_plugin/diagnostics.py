"""What the core tells the user, shown by the engine on the resource it is about.

The core writes its user-facing lines (the preview's plan line, progress while waiting, warnings) to stderr: the
engine shows a dynamic provider's stderr as info messages. A native provider's stderr is hidden (the engine keeps
it for a crash report), so the plugin replaces the process's stderr with :class:`Diagnostics`, which sends each
line written by an operation's thread to the engine's ``Log`` with that resource's URN, in the users' names.
Anything else (start-up, a crash) still reaches the real stderr.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

import grpc
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc

from .names import users_text

WARNING_PREFIX = "warning: "
LOG_TIMEOUT_SECONDS = 10.0
"""A line is not worth holding up an operation's wait for longer."""


class Diagnostics:
    """A text stream in place of ``sys.stderr``: lines from an operation go to the engine's log."""

    def __init__(self, stderr: TextIO, engine_address: str | None) -> None:
        self._stderr = stderr
        self._engine: Any = None
        if engine_address:
            self._engine = engine_pb2_grpc.EngineStub(grpc.insecure_channel(engine_address))
        self._local = threading.local()

    @contextlib.contextmanager
    def operation(self, urn: str, names: Mapping[str, str] | None = None) -> Iterator[None]:
        """Within this block, lines this thread writes are about ``urn``; ``names`` as for ``users_text``."""
        self._local.urn, self._local.names, self._local.pending = urn, names, ""
        try:
            yield
        finally:
            self._emit(getattr(self._local, "pending", ""))
            self._local.urn = None

    def write(self, text: str) -> int:
        urn = getattr(self._local, "urn", None)
        if urn is None or self._engine is None:
            return self._stderr.write(text)
        *lines, self._local.pending = (self._local.pending + text).split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def _emit(self, line: str) -> None:
        if not line.strip():
            return
        urn, names = getattr(self._local, "urn", None), getattr(self._local, "names", None)
        severity = engine_pb2.LogSeverity.INFO
        if line.startswith(WARNING_PREFIX):
            severity, line = engine_pb2.LogSeverity.WARNING, line.removeprefix(WARNING_PREFIX)
        request = engine_pb2.LogRequest(severity=severity, message=users_text(line, names), urn=urn or "")
        try:
            self._engine.Log(request, timeout=LOG_TIMEOUT_SECONDS)
        except grpc.RpcError:
            # The engine is gone or stuck (a cancelled run): the line still reaches the kept stderr.
            self._stderr.write(line + "\n")

    def flush(self) -> None:
        self._stderr.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stderr, name)
