"""Injected faults: denied operations, throttling, internal errors, dropped connections, random failures, connect
outcomes, drills.

A ``FaultPlan`` is consulted before each KMS request is handled (``check``), when a connect starts
(``connect_outcome``) and when a request has passed every rule (``take_drill``). Its own lock makes it safe to
change from a test thread while server threads read it.
Order of checks for a request: a denied operation first (``AccessDeniedException``, as IAM answers a principal whose
policies do not allow the action: authorization comes before the service does anything), then throttling (a
throttled request consumes no other fault, as a throttled AWS request never reaches the service), then the queue of
"fail next" faults, then the failure rate.

Throttling: a rate given without operations applies to the custom key store operations (KMS's quota for them is 5
requests per second); whenever it is on, each key operation gets KMS's own default quota (``KEY_OPERATION_QUOTAS``:
DescribeKey 2,000, ListKeys and ListAliases 100, ...) unless a rate is set for it by name.

Drills answer the documented errors whose cause lies outside KMS (``model.BACKING_ERRORS``: the CloudHSM cluster
is not active, the proxy is unreachable...), which no rule of the emulator can produce. A drill is per call
(``drill_next``: the next requests of an operation for a store of the error's type) or per store
(``drill_store``: every request on the store whose operation documents the error, until cleared). A drill fires
only for a request that passes every rule and would change something: a Create, a Connect that starts
connecting, an Update that changes more than the name; the request then changes nothing. Per-call drills come
first.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from .accounts import DEFAULT_ACCOUNT
from .errors import EmulatorConfigError, KmsError
from .model import (
    BACKING_ERRORS,
    KEY_OPERATION_QUOTAS,
    OPERATIONS,
    connection_error_codes,
    documented_errors,
    drillable_errors,
    error_code_store_types,
    error_message,
    error_status,
)
from .store import CLOUDHSM, EXTERNAL, SUCCEED, ConnectOutcome

FailMode = Literal["internal", "drop"]

THROTTLE_MESSAGE = "Rate exceeded"
#: The status AWS answers AccessDeniedException with on the JSON protocols.
ACCESS_DENIED_STATUS = 400
INTERNAL_MESSAGE = "The request was rejected because an internal exception occurred. The request can be retried."


class DropConnection(Exception):
    """The server must close the connection without answering (fault mode ``drop``)."""


def internal_error() -> KmsError:
    """A ``KMSInternalException`` (HTTP 500), which botocore retries as a transient error."""
    return KmsError("KMSInternalException", INTERNAL_MESSAGE, status=500)


def access_denied(operation: str, caller: str, resource: str) -> KmsError:
    """What IAM answers a caller whose policies do not allow ``kms:<operation>``, in AWS's words."""
    return KmsError(
        "AccessDeniedException",
        f"User: {caller} is not authorized to perform: kms:{operation} on resource: {resource} because no "
        f"identity-based policy allows the kms:{operation} action",
        ACCESS_DENIED_STATUS,
    )


def parse_outcome(text: str | ConnectOutcome, error_code: str | None = None) -> ConnectOutcome:
    """A ``ConnectOutcome`` from ``succeed``, ``hang``, ``fail`` + ``error_code``, or ``fail:CODE``.

    Every ``ConnectionErrorCode`` of the service model is accepted, whatever the store type.
    """
    if isinstance(text, ConnectOutcome):
        return text
    kind, _, code = text.partition(":")
    code = code or (error_code or "")
    if kind in ("succeed", "hang"):
        if code:
            raise EmulatorConfigError(f"connect outcome {kind!r} takes no error code (got {code!r})")
        return ConnectOutcome(cast(Literal["succeed", "hang"], kind))
    if kind == "fail":
        codes = connection_error_codes()
        if code not in codes:
            raise EmulatorConfigError(
                f"connect outcome 'fail' needs a ConnectionErrorCode, one of {', '.join(codes)} (got {code!r})"
            )
        return ConnectOutcome("fail", code)
    raise EmulatorConfigError(f"unknown connect outcome {text!r}: use succeed, hang or fail:CODE")


def outcome_misfit(outcome: ConnectOutcome, store_type: str) -> str | None:
    """Why ``outcome`` cannot end a connect of a store of ``store_type``, or None when it can."""
    if outcome.kind != "fail" or outcome.error_code is None:
        return None
    types = error_code_store_types(outcome.error_code)
    if store_type in types:
        return None
    return f"ConnectionErrorCode {outcome.error_code} belongs to {' and '.join(sorted(types))} stores, not {store_type}"


def drill_error(error: str) -> KmsError:
    """The answer of a drill: the modeled error, its documentation's first paragraph and its modeled status."""
    return KmsError(error, error_message(error), error_status(error))


def store_operations(error: str) -> tuple[str, ...]:
    """The operations on an existing store that document ``error`` (a per-store drill affects these)."""
    return tuple(op for op in OPERATIONS if op != "CreateCustomKeyStore" and error in documented_errors(op))


def check_store_drill(error: str) -> None:
    """Raise ``EmulatorConfigError`` unless ``error`` can be drilled on a store."""
    if error not in BACKING_ERRORS:
        raise EmulatorConfigError(f"cannot drill {error!r}: a drill answers one of {', '.join(BACKING_ERRORS)}")
    if not store_operations(error):
        raise EmulatorConfigError(
            f"{error} is answered by CreateCustomKeyStore only, which names no store: drill it per call"
        )


def check_next_drill(operation: str, error: str, count: int) -> None:
    """Raise ``EmulatorConfigError`` unless the next ``count`` requests of ``operation`` can answer ``error``."""
    _check_operation(operation)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise EmulatorConfigError(f"a drill needs a count >= 0 (got {count!r})")
    allowed = drillable_errors(operation)
    if error not in allowed:
        raise EmulatorConfigError(
            f"{operation} does not document {error!r} as an error a drill can answer; "
            + (f"it documents {', '.join(allowed)}" if allowed else "it documents none")
        )


def store_drill_misfit(error: str, store_type: str) -> str | None:
    """Why ``error`` cannot be drilled on a store of ``store_type``, or None when it can."""
    if BACKING_ERRORS[error] == store_type:
        return None
    return f"{error} belongs to {BACKING_ERRORS[error]} stores, not {store_type}"


def _check_operation(operation: str | None) -> None:
    if operation is not None and operation not in OPERATIONS:
        raise EmulatorConfigError(f"unknown operation {operation!r}: one of {', '.join(OPERATIONS)}")


def _check_rps(rps: float | None) -> float | None:
    if rps is None or rps == 0:
        return None
    if rps < 0:
        raise EmulatorConfigError(f"a request rate cannot be negative (got {rps!r})")
    return float(rps)


class _TokenBucket:
    """AWS-style rate limit: a burst of up to ``rate`` requests (at least 1), refilled at ``rate`` per second."""

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = now

    def take(self, now: float) -> bool:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = max(self.updated, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


@dataclass
class _FailNext:
    remaining: int
    operation: str | None
    mode: FailMode


@dataclass
class _NextDrill:
    operation: str
    error: str
    remaining: int


class FaultPlan:
    """The faults of one emulator. Every setter applies at once to the next request."""

    def __init__(
        self,
        throttle_rps: float | None = None,
        fail_next: int = 0,
        failure_rate: float = 0.0,
        failure_seed: int = 0,
        default_connect_outcome: str | ConnectOutcome = SUCCEED,
        connect_outcomes: Mapping[tuple[str, str], str | ConnectOutcome] | None = None,
        store_drills: Mapping[tuple[str, str], str] | None = None,
        next_drills: Iterable[tuple[str, str, int]] = (),
        denied_operations: Iterable[str] = (),
    ) -> None:
        self._lock = threading.Lock()
        self._store_drills: dict[tuple[str, str], str] = {}
        self._next_drills: list[_NextDrill] = []
        self._throttle_default: float | None = None
        self._throttle_per_operation: dict[str, float | None] = {}
        self._buckets: dict[tuple[str, str, str], _TokenBucket] = {}
        self._fail_next: list[_FailNext] = []
        self._failure_rate = 0.0
        self._failure_seed = 0
        self._rng = random.Random(0)
        self._default_outcome = SUCCEED
        self._outcomes: dict[tuple[str, str], ConnectOutcome] = {}
        self._denied: set[str] = set()
        self.set_throttle(throttle_rps)
        if fail_next:
            self.fail_next(fail_next)
        self.set_failure_rate(failure_rate, failure_seed)
        self.set_default_connect_outcome(default_connect_outcome)
        for (region, store_id), outcome in (connect_outcomes or {}).items():
            self.set_connect_outcome(region, store_id, outcome)
        for (region, store_id), error in (store_drills or {}).items():
            self.drill_store(region, store_id, error)
        for operation, error, count in next_drills:
            self.drill_next(operation, error, count)
        self.deny(denied_operations)

    # -- settings --------------------------------------------------------------------------------------

    def set_throttle(self, rps: float | None, operations: Iterable[str] | None = None) -> None:
        """Limit each operation to ``rps`` requests per second per account and Region (None or 0: no limit).

        Without ``operations`` the limit applies to every custom key store operation, each key operation gets
        KMS's own quota (``KEY_OPERATION_QUOTAS``) while the limit is on, and per-operation limits are replaced;
        with ``operations``, only the named operations get this limit.
        """
        rate = _check_rps(rps)
        names = None if operations is None else list(operations)
        for name in names or ():
            _check_operation(name)
        with self._lock:
            if names is None:
                self._throttle_default = rate
                self._throttle_per_operation.clear()
            else:
                for name in names:
                    self._throttle_per_operation[name] = rate
            # A new limit starts with a full bucket, so a test sees exactly `rps` calls pass.
            self._buckets.clear()

    def deny(self, operations: Iterable[str], denied: bool = True) -> None:
        """Answer every request of ``operations`` with ``AccessDeniedException`` (``denied=False``: allow them
        again), as IAM does when the caller's policies lack ``kms:<operation>``: in every account and Region."""
        names = list(operations)
        for name in names:
            _check_operation(name)
        with self._lock:
            if denied:
                self._denied.update(names)
            else:
                self._denied.difference_update(names)

    @property
    def denied(self) -> frozenset[str]:
        """The operations answered AccessDeniedException."""
        with self._lock:
            return frozenset(self._denied)

    def fail_next(self, count: int, operation: str | None = None, mode: FailMode = "internal") -> None:
        """Answer the next ``count`` requests (of ``operation`` only, if given) with a fault.

        ``mode="internal"``: ``KMSInternalException`` with HTTP 500; ``mode="drop"``: close the connection
        without an answer. Successive calls queue up: each request consumes the first matching entry.
        """
        if count < 0:
            raise EmulatorConfigError(f"fail_next needs a count >= 0 (got {count!r})")
        if mode not in ("internal", "drop"):
            raise EmulatorConfigError(f"unknown failure mode {mode!r}: use 'internal' or 'drop'")
        _check_operation(operation)
        if count:
            with self._lock:
                self._fail_next.append(_FailNext(count, operation, mode))

    def set_failure_rate(self, fraction: float, seed: int = 0) -> None:
        """Fail a ``fraction`` (0..1) of requests with ``KMSInternalException``, drawn from ``Random(seed)``."""
        if not 0.0 <= fraction <= 1.0:
            raise EmulatorConfigError(f"a failure rate is a fraction between 0 and 1 (got {fraction!r})")
        with self._lock:
            self._failure_rate = float(fraction)
            self._failure_seed = seed
            self._rng = random.Random(seed)

    def set_connect_outcome(
        self, region: str, store_id: str, outcome: str | ConnectOutcome, error_code: str | None = None
    ) -> None:
        """How connects of ``store_id`` in ``region`` end, from the next connect on."""
        parsed = parse_outcome(outcome, error_code)
        with self._lock:
            self._outcomes[(region, store_id)] = parsed

    def set_default_connect_outcome(self, outcome: str | ConnectOutcome, error_code: str | None = None) -> None:
        """How connects end for stores without an outcome of their own.

        A default applies to stores of both types, so its ``ConnectionErrorCode`` must belong to both (e.g.
        ``NETWORK_ERRORS``); a code of one type (``USER_LOCKED_OUT``) is set per store.
        """
        parsed = parse_outcome(outcome, error_code)
        for store_type in (CLOUDHSM, EXTERNAL):
            problem = outcome_misfit(parsed, store_type)
            if problem is not None:
                raise EmulatorConfigError(
                    f"a default connect outcome applies to every store, but {problem}: set it per store instead"
                )
        with self._lock:
            self._default_outcome = parsed

    def connect_outcome(self, region: str, store_id: str) -> ConnectOutcome:
        """The outcome a connect of ``store_id`` starting now will have."""
        with self._lock:
            return self._outcomes.get((region, store_id), self._default_outcome)

    def outcome_of(self, region: str, store_id: str) -> ConnectOutcome | None:
        """The outcome set for this one store, if any (not the default)."""
        with self._lock:
            return self._outcomes.get((region, store_id))

    def forget_store(self, region: str, store_id: str) -> None:
        """Drop the outcome and drill of a deleted store, so an id reused later starts from the defaults."""
        with self._lock:
            self._outcomes.pop((region, store_id), None)
            self._store_drills.pop((region, store_id), None)

    # -- drills ----------------------------------------------------------------------------------------

    def drill_store(self, region: str, store_id: str, error: str | None) -> None:
        """Answer ``error`` to every request on the store whose operation documents it; None clears the drill.

        The caller checks that ``error`` belongs to the store's type (``store_drill_misfit``).
        """
        if error is not None:
            check_store_drill(error)
        with self._lock:
            if error is None:
                self._store_drills.pop((region, store_id), None)
            else:
                self._store_drills[(region, store_id)] = error

    def store_drill(self, region: str, store_id: str) -> str | None:
        """The drill set on one store, if any."""
        with self._lock:
            return self._store_drills.get((region, store_id))

    def drill_next(self, operation: str, error: str, count: int = 1) -> None:
        """Answer ``error`` to the next ``count`` requests of ``operation`` for a store of the error's type.

        Successive calls queue up; each request consumes the first matching entry.
        """
        check_next_drill(operation, error, count)
        if count:
            with self._lock:
                self._next_drills.append(_NextDrill(operation, error, count))

    def clear_drills(self) -> None:
        """Drop every drill, per call and per store."""
        with self._lock:
            self._store_drills.clear()
            self._next_drills.clear()

    def take_drill(self, operation: str, region: str, store_id: str | None, store_type: str) -> str | None:
        """The error a drill answers to this request (one that passed every rule), consuming a per-call drill."""
        with self._lock:
            for entry in self._next_drills:
                if entry.operation == operation and BACKING_ERRORS[entry.error] == store_type:
                    entry.remaining -= 1
                    self._next_drills = [e for e in self._next_drills if e.remaining > 0]
                    return entry.error
            error = self._store_drills.get((region, store_id)) if store_id is not None else None
            if error is not None and error in documented_errors(operation):
                return error
            return None

    # -- per request -----------------------------------------------------------------------------------

    def check(
        self,
        operation: str,
        region: str,
        now: float,
        account: str = DEFAULT_ACCOUNT,
        caller: str | None = None,
        resource: str = "*",
    ) -> None:
        """Raise the fault this request gets, if any: ``KmsError`` to answer, or ``DropConnection``.

        ``caller`` (the principal's ARN, by default the account's root) and ``resource`` word a denial. Throttling
        is per operation, account and Region, as KMS's request quotas are."""
        with self._lock:
            if operation in self._denied:
                raise access_denied(operation, caller or f"arn:aws:iam::{account}:root", resource)
            rate = self._rate(operation)
            if rate is not None:
                key = (account, region, operation)
                bucket = self._buckets.get(key)
                if bucket is None:
                    bucket = self._buckets[key] = _TokenBucket(rate, now)
                if not bucket.take(now):
                    raise KmsError("ThrottlingException", THROTTLE_MESSAGE)
            for entry in self._fail_next:
                if entry.remaining > 0 and entry.operation in (None, operation):
                    entry.remaining -= 1
                    self._fail_next = [e for e in self._fail_next if e.remaining > 0]
                    if entry.mode == "drop":
                        raise DropConnection(operation)
                    raise internal_error()
            # Draw for every request, even at rate 0, so a seed gives the same sequence however the rate moves.
            if self._rng.random() < self._failure_rate:
                raise internal_error()

    def _rate(self, operation: str) -> float | None:
        if operation in self._throttle_per_operation:
            return self._throttle_per_operation[operation]
        if self._throttle_default is not None and operation in KEY_OPERATION_QUOTAS:
            return float(KEY_OPERATION_QUOTAS[operation])
        return self._throttle_default

    # -- introspection ---------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The current settings, as the admin endpoint ``GET /_emulator/faults`` shows them."""
        with self._lock:
            return {
                "throttle_rps": self._throttle_default,
                "throttle_operations": dict(self._throttle_per_operation),
                "fail_next": [
                    {"count": e.remaining, "operation": e.operation, "mode": e.mode} for e in self._fail_next
                ],
                "failure_rate": {"fraction": self._failure_rate, "seed": self._failure_seed},
                "default_connect_outcome": str(self._default_outcome),
                "connect_outcomes": {
                    f"{region}/{store_id}": str(outcome) for (region, store_id), outcome in self._outcomes.items()
                },
                "store_drills": {
                    f"{region}/{store_id}": error for (region, store_id), error in self._store_drills.items()
                },
                "drill_next": [
                    {"operation": e.operation, "error": e.error, "count": e.remaining} for e in self._next_drills
                ],
                "denied_operations": sorted(self._denied),
            }
