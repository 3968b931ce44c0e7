"""Errors the emulator raises: AWS-style errors for the wire, and its own configuration/state errors."""

from __future__ import annotations


class KmsError(Exception):
    """An error answered to the client as ``{"__type": code, "message": message}`` with ``status``.

    ``code`` is the modeled exception name (``CustomKeyStoreInvalidStateException``...) or a protocol-level
    one (``ValidationException``, ``ThrottlingException``...); botocore maps it to ``client.exceptions.<code>``.
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def not_found(store_id: str) -> KmsError:
    """The error KMS answers for an id that names no custom key store in the account and Region."""
    return KmsError(
        "CustomKeyStoreNotFoundException",
        f"Custom key store {store_id} does not exist in this account and Region.",
    )


def validation_error(problems: list[str]) -> KmsError:
    """A ``ValidationException`` in the Coral format AWS services use for constraint violations."""
    noun = "error" if len(problems) == 1 else "errors"
    return KmsError("ValidationException", f"{len(problems)} validation {noun} detected: " + "; ".join(problems))


class EmulatorStateError(Exception):
    """The state file (or seed) cannot be used: the message names the file and what is wrong with it.

    Raised instead of starting from an empty state, so a corrupt file never silently loses stores.
    """


class EmulatorConfigError(ValueError):
    """A fault or option given to the emulator is not valid (unknown outcome, negative rate...)."""
