"""Where the provider sends its KMS calls: Region, profile and endpoint, from stack config and the environment.

Resolved in the provider process from the stack config the engine hands to ``configure()``, using the keys
pulumi-aws users already set (``aws:region``, ``aws:profile``, ``aws:endpoints``). Credentials are deliberately
absent: they come only from boto3's own chain, so they never enter inputs, outputs or the pickled provider.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

REGION_HELP = (
    "set the resource's `region` input, or the stack's Region with `pulumi config set aws:region us-east-1`, "
    "or AWS_REGION in the environment"
)


@dataclass(frozen=True)
class AwsSettings:
    """The stack-wide settings for KMS clients; every field may be unset."""

    region: str | None = None
    profile: str | None = None
    kms_endpoint: str | None = None

    @classmethod
    def from_stack_config(
        cls, get: Callable[[str], Any], environ: Mapping[str, str] | None = None
    ) -> AwsSettings:
        """Read ``aws:region``/``aws:profile``/``aws:endpoints``; fall back to the environment for the Region."""
        env = os.environ if environ is None else environ
        region = _text(get("aws:region")) or _text(env.get("AWS_REGION")) or _text(env.get("AWS_DEFAULT_REGION"))
        return cls(
            region=region,
            profile=_text(get("aws:profile")),
            kms_endpoint=kms_endpoint_from(get("aws:endpoints")),
        )

    def region_for(self, resource_region: str | None) -> str | None:
        """The Region a resource's calls go to: its own input first, then the stack's."""
        return resource_region or self.region


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def kms_endpoint_from(endpoints: Any) -> str | None:
    """The ``kms`` entry of pulumi-aws's ``aws:endpoints`` config (a list of ``{service: url}`` objects).

    The engine hands structured config over as JSON text; a malformed value is ignored rather than guessed at,
    leaving boto3's own ``AWS_ENDPOINT_URL_KMS`` resolution in charge.
    """
    if isinstance(endpoints, str):
        try:
            endpoints = json.loads(endpoints)
        except ValueError:
            return None
    if isinstance(endpoints, Mapping):
        endpoints = [endpoints]
    if not isinstance(endpoints, list):
        return None
    for entry in endpoints:
        if isinstance(entry, Mapping):
            url = _text(entry.get("kms"))
            if url:
                return url
    return None
