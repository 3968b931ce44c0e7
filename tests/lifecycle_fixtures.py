"""Helpers for ``tests/test_lifecycle.py``: stack configs, cached registrations, the provider's environment and
the emulator's call log.

Registrations come from the real stack program (``__main__.py``) run under mocks by
:func:`seam.engine.capture_registrations`; a capture costs one interpreter start (about a second), so
:class:`RegistrationCache` keeps them per config and can capture several configs at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kms_connection.emulator import Call, Emulator
from seam.engine import PROJECT_ROOT, Registration, capture_registrations

PROGRAM = PROJECT_ROOT / "__main__.py"
CONNECTION_TYPE = "pulumi-python:dynamic/kms:CustomKeyStoreConnection"

REGION = "us-east-1"
OTHER_REGION = "us-west-2"

# Credentials only the provider process sees; the secrets scenario looks for them everywhere it can.
ACCESS_KEY_ID = "AKIALIFECYCLE0TEST42"
SECRET_ACCESS_KEY = "lifecycle/Secret+Key-that-must-never-leak-42"

DESCRIBE = "DescribeCustomKeyStores"
CONNECT = "ConnectCustomKeyStore"
DISCONNECT = "DisconnectCustomKeyStore"
MUTATING = frozenset({CONNECT, DISCONNECT, "CreateCustomKeyStore", "UpdateCustomKeyStore", "DeleteCustomKeyStore"})


def stack_config(*entries: Mapping[str, Any], region: str = REGION) -> dict[str, Any]:
    """A stack config as in ``Pulumi.<stack>.yaml``: the stack's Region and ``kms-connection:keyStores``."""
    return {"aws:region": region, "kms-connection:keyStores": [dict(entry) for entry in entries]}


def provider_env(endpoint_url: str | None, config_dir: Path) -> dict[str, str]:
    """The provider process's environment: dummy credentials, a Region and (unless None) the KMS endpoint.

    The AWS config and credentials files point into ``config_dir`` (files that need not exist), so the
    developer's profiles never reach the provider.
    """
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(config_dir / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "aws-credentials"),
    }
    if endpoint_url is not None:
        env["AWS_ENDPOINT_URL_KMS"] = endpoint_url
    return env


# Variables of the developer's environment that would change where or as whom the provider calls KMS.
AMBIENT_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_DEFAULT_REGION",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


class RegistrationCache:
    """Registrations of ``__main__.py`` per stack config, captured once each (and several at a time)."""

    def __init__(self, program: Path = PROGRAM) -> None:
        self.program = program
        self._cache: dict[str, list[Registration]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(config: Mapping[str, Any]) -> str:
        return json.dumps(config, sort_keys=True)

    def prefetch(self, configs: Iterable[Mapping[str, Any]], workers: int = 4) -> None:
        """Capture every config not yet cached, ``workers`` at a time (each capture is its own process)."""
        wanted = {self.key(config): config for config in configs if self.key(config) not in self._cache}
        if not wanted:
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {key: pool.submit(capture_registrations, self.program, config) for key, config in wanted.items()}
            for key, future in futures.items():
                registrations = future.result()
                with self._lock:
                    self._cache[key] = registrations

    def all(self, config: Mapping[str, Any]) -> list[Registration]:
        """Every registration of the program for ``config``, in program order."""
        key = self.key(config)
        with self._lock:
            cached = self._cache.get(key)
        if cached is None:
            cached = capture_registrations(self.program, config)
            with self._lock:
                self._cache[key] = cached
        return list(cached)

    def __call__(self, config: Mapping[str, Any]) -> dict[str, Registration]:
        """The program's ``CustomKeyStoreConnection`` registrations for ``config``, by resource name."""
        return {reg.name: reg for reg in self.all(config) if reg.type_ == CONNECTION_TYPE}


# --------------------------------------------------------------------------------------------------
# The emulator's call log
# --------------------------------------------------------------------------------------------------


def operations(emu: Emulator, store_id: str | None = None) -> list[str]:
    """The operations of the call log, oldest first (only those naming ``store_id`` when given)."""
    return [call.operation for call in emu.calls if store_id is None or call.store_id == store_id]


def mutating_calls(emu: Emulator) -> list[Call]:
    return [call for call in emu.calls if call.operation in MUTATING]


def count_by_store(emu: Emulator, operation: str) -> Counter[str | None]:
    """How many ``operation`` calls each store got."""
    return Counter(call.store_id for call in emu.calls if call.operation == operation)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    """Poll ``predicate`` until it holds; ``AssertionError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_state(emu: Emulator, store_id: str, state: str, timeout: float = 5.0, region: str = REGION) -> None:
    wait_until(lambda: emu.state_of(store_id, region) == state, timeout, f"{store_id} to be {state}")


def disconnect_out_of_band(emu: Emulator, store_id: str, region: str = REGION) -> None:
    """Disconnect a store as another client would (AWS console, CLI), and wait until it is DISCONNECTED."""
    emu.client(region).disconnect_custom_key_store(CustomKeyStoreId=store_id)
    wait_for_state(emu, store_id, "DISCONNECTED", region=region)


def delete_out_of_band(emu: Emulator, store_id: str, region: str = REGION) -> None:
    """Disconnect (if needed) and delete a store as another client would."""
    if emu.state_of(store_id, region) != "DISCONNECTED":
        disconnect_out_of_band(emu, store_id, region)
    emu.client(region).delete_custom_key_store(CustomKeyStoreId=store_id)


def exception_line(details: str) -> str:
    """The ``module.Error: message`` line of a Python traceback as the SDK's server reports it to the engine."""
    lines = [line for line in details.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if not line.startswith((" ", "\t")) and ": " in line:
            return line
    return lines[-1] if lines else ""
