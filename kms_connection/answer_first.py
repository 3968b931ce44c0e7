"""What ``pulumi up`` shows first when an operation fails: the answer (the store, its state, the KMS code, the fix),
then the frames.

The SDK's provider server (``python -u -m pulumi.dynamic``) reports every exception an operation raises as
``traceback.format_exc()``, which the CLI prints as it is: fifteen frames of the SDK and of this package, and only
then the sentence a user needs. The server offers no hook for this, so when this package is imported inside that
server, :func:`install` gives the server module a ``traceback`` whose ``format_exc`` puts the message of this
package's own errors first and keeps the frames after it for bug reports. Any other exception (a bug) is reported
exactly as the SDK reports it.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

FRAMES_HEADING = "Provider traceback (for a bug report):"


def format_answer_first(error: BaseException, frames: str) -> str:
    """The report of ``error``: its message first when it is one of this package's errors, else ``frames``."""
    if type(error).__module__.split(".")[0] != __name__.split(".")[0]:
        return frames
    return f"{error}\n\n{FRAMES_HEADING}\n{frames}"


class _AnswerFirstTraceback:
    """The ``traceback`` module as the provider server sees it, but for ``format_exc``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)

    @staticmethod
    def format_exc(limit: int | None = None, chain: bool = True) -> str:
        frames = traceback.format_exc(limit, chain)
        error = sys.exc_info()[1]
        return frames if error is None else format_answer_first(error, frames)


def install() -> bool:
    """Make the provider server report this package's errors answer first; True if this is that server."""
    server = sys.modules.get("__main__")
    # The server module is recognised by the wrapper it reports errors with; anywhere else this does nothing.
    if server is None or not hasattr(server, "_abort_with_traceback") or not hasattr(server, "traceback"):
        return False
    server.traceback = _AnswerFirstTraceback()  # type: ignore[attr-defined]
    return True
