"""Property values between the engine's wire form (``PropertyValue``) and the plain Python the core reads.

The plugin tells the engine it accepts neither secrets nor resource references (``Configure``), so the engine
unwraps secrets before they reach the plugin and marks as secret every output named like a secret input
itself. What is left is JSON-like, plus the marker of a value unknown during a preview, which crosses as the
SDK's sentinel string both ways, as the dynamic provider's server passes it to the core.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi.provider.experimental.property_value import Computed, PropertyValue
from pulumi.runtime import rpc


def plain(value: PropertyValue) -> Any:
    """A wire value as plain Python: numbers stay floats, as in the dynamic provider (``check`` accepts whole
    floats as whole numbers)."""
    inner = value.value
    if isinstance(inner, Computed):
        return rpc.UNKNOWN
    if isinstance(inner, Mapping):
        return {key: plain(item) for key, item in inner.items()}
    if isinstance(inner, tuple | list):
        return [plain(item) for item in inner]
    return inner


def plain_map(props: Mapping[str, PropertyValue]) -> dict[str, Any]:
    """A property map as plain Python; null values are dropped, as the dynamic provider's server drops them."""
    return {key: plain(value) for key, value in props.items() if value.value is not None}


def wire(value: Any) -> PropertyValue:
    """Plain Python as a wire value (the wire knows only floats as numbers)."""
    if value is None or isinstance(value, bool | str | float):
        return PropertyValue(value)
    if isinstance(value, int):
        return PropertyValue(float(value))
    if isinstance(value, Mapping):
        return PropertyValue({str(key): wire(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return PropertyValue([wire(item) for item in value])
    raise TypeError(f"a property value cannot be a {type(value).__name__}: {value!r}")


def wire_map(props: Mapping[str, Any]) -> dict[str, PropertyValue]:
    """A plain property map as wire values; None values are left out."""
    return {key: wire(value) for key, value in props.items() if value is not None}
