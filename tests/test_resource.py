"""The resource constructors refuse a misspelt keyword before anything reaches the engine, naming the nearest one.

mypy catches these calls statically (hence the ignores); programs that are not type-checked get the same help at
run time."""

from __future__ import annotations

import pytest

from kms_connection import CustomKeyStoreConnection, CustomKeyStoreConnectionSet

HSM = "cks-0123456789abcdef0"


def test_a_misspelt_keyword_of_a_connection_names_the_nearest_keyword() -> None:
    with pytest.raises(TypeError, match=r"desired_stat \(did you mean desired_state\?\)"):
        CustomKeyStoreConnection("primary", custom_key_store_id=HSM, desired_stat="CONNECTED")  # type: ignore[call-overload]


def test_a_misspelt_keyword_of_a_set_names_the_nearest_keyword() -> None:
    with pytest.raises(TypeError, match=r"custom_key_store_id \(did you mean custom_key_store_ids\?\)"):
        CustomKeyStoreConnectionSet("fleet", custom_key_store_id=[HSM])  # type: ignore[call-overload]


def test_an_unrelated_keyword_is_named_with_every_keyword_the_resource_takes() -> None:
    with pytest.raises(TypeError, match=r"got unexpected arguments: colour; it takes custom_key_store_id, "):
        CustomKeyStoreConnection("primary", custom_key_store_id=HSM, colour="blue")  # type: ignore[call-overload]
