"""Admin endpoints under ``/_emulator/`` (a path KMS never uses): control and observe a running emulator.

No signature is needed: the emulator binds loopback by default, and anyone who can reach it can reach these.

=======  ======================  ==================================================================
method   path                    what it does
=======  ======================  ==================================================================
GET      /_emulator/health       ``{"status": "ok"}``
GET      /_emulator/calls        ``{"calls": [{operation, store_id, region, time, outcome, account, service}...]}``
DELETE   /_emulator/calls        empty the call log (also ``POST /_emulator/calls/clear``)
GET      /_emulator/stores       every store of every account and Region with its true state (no secrets)
GET      /_emulator/keys         every KMS key of every account and Region as DescribeKey shows it, with its aliases
GET      /_emulator/faults       the current faults, timing and accounts (access key ids, denied roles)
POST     /_emulator/faults       change faults, drills and timing; every key is optional (``apply_faults``)
POST     /_emulator/reset        back to the state at start: seeds only, initial faults, empty log
=======  ======================  ==================================================================

Answers are JSON; a bad request gets HTTP 400 ``{"error": "..."}`` and nothing of it is applied.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .accounts import check_account_id, check_role_arn
from .errors import EmulatorConfigError
from .faults import FailMode, FaultPlan, check_next_drill, check_store_drill, parse_outcome
from .model import OPERATIONS
from .seeding import DEFAULT_REGION
from .service import KmsService

PREFIX = "/_emulator/"

_FAULT_KEYS = {
    "throttle_rps",
    "throttle_operations",
    "fail_next",
    "failure_rate",
    "consistency_lag",
    "connect_outcomes",
    "default_connect_outcome",
    "connect_seconds",
    "disconnect_seconds",
    "region",
    "store_drills",
    "drill_next",
    "clear_drills",
    "accounts",
    "denied_roles",
    "session_seconds",
    "denied_operations",
}


def _number(body: dict[str, Any], key: str, allow_none: bool = False) -> float | None:
    value = body[key]
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise EmulatorConfigError(f"{key} must be a number >= 0 (found {value!r})")
    return float(value)


def apply_faults(service: KmsService, body: object) -> None:
    """Apply a ``POST /_emulator/faults`` body, all of it or (on any error) none of it.

    Keys: ``throttle_rps`` (number or null) with optional ``throttle_operations`` (list of operations);
    ``fail_next`` (a count, or ``{"count", "operation", "mode": "internal"|"drop"}``); ``failure_rate`` (a
    fraction, or ``{"fraction", "seed"}``); ``consistency_lag``, ``connect_seconds``, ``disconnect_seconds``
    (seconds); ``connect_outcomes`` (``{"cks-...": "succeed"|"hang"|"fail:CODE"}``, in ``region``, default
    us-east-1); ``default_connect_outcome``; ``clear_drills`` (true: drop every drill first);
    ``store_drills`` (``{"cks-...": "CloudHsmClusterNotActiveException"}``, or null to clear one, in
    ``region``); ``drill_next`` (``{"operation", "error", "count"?}`` or a list of them); ``accounts``
    (``{access_key_id: account_id}``); ``denied_roles`` (``{role_arn: true|false}``: AssumeRole denied or not);
    ``session_seconds`` (the longest session AssumeRole issues, or null); ``denied_operations``
    (``{"ListKeys": true|false}``: answered AccessDeniedException or not). A code or drill of the other store
    type is refused.
    """
    if not isinstance(body, dict):
        raise EmulatorConfigError("the body must be a JSON object")
    unknown = sorted(set(body) - _FAULT_KEYS)
    if unknown:
        raise EmulatorConfigError(f"unknown key {unknown[0]!r}; known keys: {', '.join(sorted(_FAULT_KEYS))}")
    region = body.get("region", DEFAULT_REGION)
    if not isinstance(region, str) or not region:
        raise EmulatorConfigError("region must be a non-empty string")
    # Check everything first, then apply: a request half-applied would leave faults nobody asked for.
    steps: list[Callable[[FaultPlan], None]] = []
    if "throttle_rps" in body:
        rps = _number(body, "throttle_rps", allow_none=True)
        operations = body.get("throttle_operations")
        if operations is not None and (
            not isinstance(operations, list) or not all(op in OPERATIONS for op in operations)
        ):
            raise EmulatorConfigError(f"throttle_operations must be a list of: {', '.join(OPERATIONS)}")
        steps.append(lambda faults: faults.set_throttle(rps, operations))
    elif "throttle_operations" in body:
        raise EmulatorConfigError("throttle_operations needs throttle_rps")
    if "fail_next" in body:
        spec = body["fail_next"]
        if isinstance(spec, int) and not isinstance(spec, bool):
            spec = {"count": spec}
        if not isinstance(spec, dict) or not isinstance(spec.get("count"), int) or spec["count"] < 0:
            raise EmulatorConfigError('fail_next must be a count or {"count": n, "operation"?, "mode"?}')
        operation = spec.get("operation")
        mode: FailMode = spec.get("mode", "internal")
        if operation is not None and operation not in OPERATIONS:
            raise EmulatorConfigError(f"fail_next.operation must be one of {', '.join(OPERATIONS)}")
        if mode not in ("internal", "drop"):
            raise EmulatorConfigError("fail_next.mode must be 'internal' or 'drop'")
        count = int(spec["count"])
        steps.append(lambda faults: faults.fail_next(count, operation, mode))
    if "failure_rate" in body:
        rate = body["failure_rate"]
        if not isinstance(rate, dict):
            rate = {"fraction": rate}
        fraction, seed = rate.get("fraction"), rate.get("seed", 0)
        if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 <= fraction <= 1:
            raise EmulatorConfigError("failure_rate must be a fraction between 0 and 1")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise EmulatorConfigError("failure_rate.seed must be an integer")
        steps.append(lambda faults: faults.set_failure_rate(float(fraction), seed))
    for key in ("consistency_lag", "connect_seconds", "disconnect_seconds"):
        if key in body:
            value = _number(body, key)
            steps.append(lambda _faults, key=key, value=value: setattr(service, key, value))  # type: ignore[misc]
    # Checks against the stores (a code or drill must belong to the store's type), run with the steps under one lock.
    store_checks: list[Callable[[], None]] = []
    if "connect_outcomes" in body:
        outcomes = body["connect_outcomes"]
        if not isinstance(outcomes, dict) or not all(isinstance(v, str) for v in outcomes.values()):
            raise EmulatorConfigError("connect_outcomes must map store ids to 'succeed', 'hang' or 'fail:CODE'")
        parsed = {store_id: parse_outcome(text) for store_id, text in outcomes.items()}
        for store_id, outcome in parsed.items():
            store_checks.append(lambda s=store_id, o=outcome: service.check_fits(region, s, outcome=o))  # type: ignore[misc]
            steps.append(lambda faults, s=store_id, o=outcome: faults.set_connect_outcome(region, s, o))  # type: ignore[misc]
    if body.get("clear_drills") is not None:
        if not isinstance(body["clear_drills"], bool):
            raise EmulatorConfigError("clear_drills must be true or false")
        if body["clear_drills"]:
            steps.append(lambda faults: faults.clear_drills())
    if "store_drills" in body:
        drills = body["store_drills"]
        if not isinstance(drills, dict) or not all(e is None or isinstance(e, str) for e in drills.values()):
            raise EmulatorConfigError("store_drills must map store ids to an error name, or null to clear it")
        for store_id, error in drills.items():
            if error is not None:
                check_store_drill(error)
                store_checks.append(lambda s=store_id, e=error: service.check_fits(region, s, drill=e))  # type: ignore[misc]
            steps.append(lambda faults, s=store_id, e=error: faults.drill_store(region, s, e))  # type: ignore[misc]
    if "drill_next" in body:
        entries = body["drill_next"]
        for entry in entries if isinstance(entries, list) else [entries]:
            if not isinstance(entry, dict) or not {"operation", "error"} <= set(entry) <= {
                "operation",
                "error",
                "count",
            }:
                raise EmulatorConfigError('drill_next must be {"operation": ..., "error": ..., "count"?} or a list')
            operation, error, count = entry["operation"], entry["error"], entry.get("count", 1)
            if not isinstance(operation, str) or not isinstance(error, str):
                raise EmulatorConfigError("drill_next.operation and drill_next.error must be strings")
            check_next_drill(operation, error, count)
            steps.append(lambda faults, o=operation, e=error, c=count: faults.drill_next(o, e, c))  # type: ignore[misc]
    account_steps: list[Callable[[], None]] = []
    if "accounts" in body:
        mapping = body["accounts"]
        if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in mapping.items()
        ):
            raise EmulatorConfigError("accounts must map access key ids to account ids")
        for access_key_id, account in mapping.items():
            check_account_id(account, f"accounts[{access_key_id!r}]")
            account_steps.append(lambda k=access_key_id, a=account: service.accounts.map_key(k, a))  # type: ignore[misc]
    if "denied_roles" in body:
        roles = body["denied_roles"]
        if not isinstance(roles, dict) or not all(isinstance(v, bool) for v in roles.values()):
            raise EmulatorConfigError("denied_roles must map role ARNs to true (denied) or false (allowed)")
        for role_arn, denied in roles.items():
            check_role_arn(role_arn)
            account_steps.append(lambda r=role_arn, d=denied: service.accounts.deny_role(r, d))  # type: ignore[misc]
    if "session_seconds" in body:
        seconds = body["session_seconds"]
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0):
            raise EmulatorConfigError("session_seconds must be a number > 0, or null")
        account_steps.append(lambda: setattr(service.accounts, "session_seconds", seconds))
    if "denied_operations" in body:
        denials = body["denied_operations"]
        if not isinstance(denials, dict) or not all(
            op in OPERATIONS and isinstance(flag, bool) for op, flag in denials.items()
        ):
            raise EmulatorConfigError(
                f"denied_operations must map operations ({', '.join(OPERATIONS)}) to true (denied) or false"
            )
        for operation, flag in denials.items():
            steps.append(lambda faults, o=operation, f=flag: faults.deny([o], f))  # type: ignore[misc]
    if "default_connect_outcome" in body:
        text = body["default_connect_outcome"]
        if not isinstance(text, str):
            raise EmulatorConfigError("default_connect_outcome must be 'succeed', 'hang' or 'fail:CODE'")
        default = parse_outcome(text)
        steps.append(lambda faults: faults.set_default_connect_outcome(default))
    with service.lock:
        for check in store_checks:
            check()
        for step in steps:
            step(service.faults)
        for account_step in account_steps:
            account_step()


def describe_settings(service: KmsService) -> dict[str, Any]:
    """Faults and timing, for ``GET /_emulator/faults``."""
    with service.lock:
        return {
            **service.faults.describe(),
            "consistency_lag": service.consistency_lag,
            "connect_seconds": service.connect_seconds,
            "disconnect_seconds": service.disconnect_seconds,
            **service.accounts.describe(),
        }


def handle_admin(service: KmsService, method: str, path: str, body: object) -> tuple[int, dict[str, Any]]:
    """Answer an admin request: ``(HTTP status, JSON object)``."""
    route = (method, path.rstrip("/"))
    try:
        if route == ("GET", "/_emulator/health"):
            return 200, {"status": "ok"}
        if route == ("GET", "/_emulator/calls"):
            return 200, {"calls": [call.as_json() for call in service.call_log.snapshot()]}
        if route in (("DELETE", "/_emulator/calls"), ("POST", "/_emulator/calls/clear")):
            service.call_log.clear()
            return 200, {}
        if route == ("GET", "/_emulator/stores"):
            return 200, {"stores": service.stores()}
        if route == ("GET", "/_emulator/keys"):
            return 200, {"keys": service.keys()}
        if route == ("GET", "/_emulator/faults"):
            return 200, describe_settings(service)
        if route == ("POST", "/_emulator/faults"):
            apply_faults(service, body)
            return 200, describe_settings(service)
        if route == ("POST", "/_emulator/reset"):
            service.reset()
            return 200, {}
    except EmulatorConfigError as error:
        return 400, {"error": str(error)}
    return 404, {"error": f"no admin endpoint {method} {path}"}
