"""A dynamic provider that does nothing: the baseline of the cold-start measure.

It lives in an importable module, like the product's providers, so dill pickles it by reference, and it imports
only what any Python dynamic provider imports (``pulumi.dynamic``).
"""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import CheckResult, CreateResult, ResourceProvider

NOOP_TYPE = "pulumi-python:dynamic/bench:Noop"


class NoopProvider(ResourceProvider):
    """Check accepts the inputs as they are; Create echoes them."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, [])

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult("noop", dict(props))
