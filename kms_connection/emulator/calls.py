"""The call log: what each KMS or STS request asked for, in which account, and how it ended, for tests to assert on.

An entry holds the operation, the store id, the Region, the clock time, the outcome, the account and the service,
and nothing else: no request body, header or credential (not even an access key id) can reach it, so a password
or secret cannot leak through it.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

#: The outcome of a request that was answered normally.
OK = "ok"
#: The outcome of a request whose connection was closed without an answer (fault mode ``drop``).
DROPPED = "dropped"

DEFAULT_CALL_LOG_LIMIT = 10_000


@dataclass(frozen=True)
class Call:
    """One KMS or STS request seen by the emulator.

    ``operation`` is the ``X-Amz-Target`` operation name of a KMS request ("" when the request named none), or
    the ``Action`` of an STS request (``GetCallerIdentity``, ``AssumeRole``); ``store_id`` the
    ``CustomKeyStoreId`` of the request (for a successful create, the new store's id), else None; ``region``
    comes from the SigV4 credential scope (None for an unsigned request); ``time`` is the emulator clock;
    ``outcome`` is ``"ok"``, the error ``__type`` (or STS ``Code``) answered, or ``"dropped"``; ``account`` is
    the account the request acted in (None when its credentials told none: unsigned, or a session that is no
    longer valid); ``service`` is ``kms`` or ``sts``.
    """

    operation: str
    store_id: str | None
    region: str | None
    time: float
    outcome: str
    account: str | None = None
    service: str = "kms"

    def as_json(self) -> dict[str, Any]:
        """The entry as a JSON object."""
        return asdict(self)


class CallLog:
    """A bounded, thread-safe log of ``Call``; the oldest entries go first once ``limit`` is reached."""

    def __init__(self, limit: int = DEFAULT_CALL_LOG_LIMIT) -> None:
        # Bounded so a long-running emulator cannot grow without limit.
        self._calls: deque[Call] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def record(self, call: Call) -> None:
        """Append ``call``."""
        with self._lock:
            self._calls.append(call)

    def snapshot(self) -> list[Call]:
        """A copy of the log, oldest first."""
        with self._lock:
            return list(self._calls)

    def clear(self) -> None:
        """Empty the log."""
        with self._lock:
            self._calls.clear()
