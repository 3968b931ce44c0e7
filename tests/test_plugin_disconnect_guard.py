"""The provider plugin (provider/) exposes ``disconnect_guard`` as every schema names it, ``disconnectGuard``, and
words the core's refusal in its users' names."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONNECTION = "kms-connection:index:CustomKeyStoreConnection"
SET = "kms-connection:index:CustomKeyStoreConnectionSet"


def plugin_module(name: str) -> ModuleType:
    # The plugin's package lives in provider/, which the engine puts first on the plugin's path.
    sys.path.insert(0, str(ROOT / "provider"))
    try:
        return importlib.import_module(f"kms_connection_plugin.{name}")
    finally:
        sys.path.remove(str(ROOT / "provider"))


@pytest.fixture(scope="module")
def schema() -> Iterator[dict[str, Any]]:
    built: dict[str, Any] = plugin_module("schema").build()
    yield built


@pytest.mark.parametrize("resource", [CONNECTION, SET])
def test_the_schema_declares_disconnect_guard_as_an_optional_string_input_and_output(
    schema: dict[str, Any], resource: str
) -> None:
    spec = schema["resources"][resource]

    guard = spec["inputProperties"]["disconnectGuard"]
    assert guard["type"] == "string"
    assert "disconnectGuard" not in spec["requiredInputs"]
    assert "disconnectGuard" in spec["properties"]
    assert "replaceOnChanges" not in guard


def test_the_schemas_words_for_disconnect_guard_name_the_three_values_and_the_key_reads(
    schema: dict[str, Any],
) -> None:
    text = schema["resources"][CONNECTION]["inputProperties"]["disconnectGuard"]["description"]

    assert '`"warn"` (the default)' in text and '`"refuse"`' in text and '`"off"`' in text
    assert "`kms:ListKeys`, `kms:DescribeKey` and `kms:ListAliases`" in text
    assert "disconnect_guard" not in text and "on_delete" not in text  # the users' names: onDelete


def test_a_refusal_reaches_plugin_users_in_their_names() -> None:
    names = plugin_module("names")
    core = (
        "refused to disconnect: disconnect_guard is 'refuse' and the store holds 1 enabled KMS key that a "
        "disconnect makes unusable: k. To fix: to disconnect it anyway, set disconnect_guard to 'warn'"
    )

    text = names.users_text(core)

    assert "disconnectGuard is 'refuse'" in text and "set disconnectGuard to 'warn'" in text
    assert names.core_name("disconnectGuard") == "disconnect_guard"
