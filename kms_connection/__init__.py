"""Declare the connection state of AWS KMS custom key stores and converge it with ``pulumi up``.

The resource classes load on first use, so ``kms_connection.emulator`` and the provider process do not pay for
importing what they do not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .answer_first import install as _install_answer_first
from .states import ConnectionState, DesiredState, OnDelete

# Inside the SDK's provider server, failures then read answer first in `pulumi up` (answer_first.py).
_install_answer_first()

if TYPE_CHECKING:
    from .resource import (
        CustomKeyStoreConnection,
        CustomKeyStoreConnectionArgs,
        CustomKeyStoreConnectionSet,
        CustomKeyStoreConnectionSetArgs,
    )

__all__ = [
    "ConnectionState",
    "CustomKeyStoreConnection",
    "CustomKeyStoreConnectionArgs",
    "CustomKeyStoreConnectionSet",
    "CustomKeyStoreConnectionSetArgs",
    "DesiredState",
    "OnDelete",
]
_LAZY = dict.fromkeys(
    [
        "CustomKeyStoreConnection",
        "CustomKeyStoreConnectionArgs",
        "CustomKeyStoreConnectionSet",
        "CustomKeyStoreConnectionSetArgs",
    ],
    ".resource",
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
