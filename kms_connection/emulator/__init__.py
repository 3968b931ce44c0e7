"""A local, wire-compatible AWS KMS endpoint for custom key stores, for tests and local stacks.

Run it in-process (``with Emulator() as emu: ...``) or as a program (``python -m kms_connection.emulator``).
Modules: ``store`` (state machine and per-Region registry, no I/O), ``service`` (operations, faults, call log,
persistence), ``server`` (AWS JSON 1.1 over HTTP, and STS's query protocol), ``accounts`` (access keys to accounts,
the sessions AssumeRole issues), ``sts`` (GetCallerIdentity and AssumeRole), ``sigv4``, ``model`` (botocore's
KMS model and validation),
``faults``, ``clock``, ``calls``, ``persistence``, ``seeding``, ``admin`` (``/_emulator/`` endpoints),
``emulator`` (the in-process runner) and ``__main__`` (the command line).
"""

from .calls import Call
from .clock import Clock, FakeClock, SystemClock
from .emulator import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, Emulator
from .errors import EmulatorConfigError, EmulatorStateError
from .store import ConnectOutcome

__all__ = [
    "DUMMY_ACCESS_KEY_ID",
    "DUMMY_SECRET_ACCESS_KEY",
    "Call",
    "Clock",
    "ConnectOutcome",
    "Emulator",
    "EmulatorConfigError",
    "EmulatorStateError",
    "FakeClock",
    "SystemClock",
]
